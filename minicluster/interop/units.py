"""Numbers with units as foreign reports write them (`1,234.5`, `1.20 s`, `Memory (GB)`), placeholders
(`N/A`, `—`, empty), and their conversion to the registry's unit.

Byte prefixes follow IEC 80000-13: KB/MB/GB are powers of 10, KiB/MiB/GiB powers of 2. A unit
not in these tables is refused (InputError naming it), never guessed.
"""

from __future__ import annotations

import re

from minicluster.core.errors import InputError
from minicluster.core.units import BYTES_PER_MIB

# Cells a report writes where it has no value.
PLACEHOLDERS = frozenset({"", "n/a", "na", "-", "--", "—", "–", "null", "none", "nan", "?"})

# unit (lower-case) -> factor to the registry unit
_TO_MS = {
    "s": 1000.0,
    "sec": 1000.0,
    "secs": 1000.0,
    "second": 1000.0,
    "seconds": 1000.0,
    "ms": 1.0,
    "msec": 1.0,
    "us": 1e-3,
    "µs": 1e-3,
    "μs": 1e-3,
    "usec": 1e-3,
    "ns": 1e-6,
}
_TO_MIB = {
    "b": 1 / BYTES_PER_MIB,
    "kb": 1e3 / BYTES_PER_MIB,
    "kib": 1024 / BYTES_PER_MIB,
    "mb": 1e6 / BYTES_PER_MIB,
    "mib": 1.0,
    "gb": 1e9 / BYTES_PER_MIB,
    "gib": 1024.0,
    "tb": 1e12 / BYTES_PER_MIB,
    "tib": 1024.0**2,
}
_DECIMAL_BYTES = frozenset({"kb", "mb", "gb", "tb"})
_PER_SECOND = re.compile(r"^[a-z][a-z _-]*/(s|sec|second)$")  # pairs/s, samples/s, req/s
_NUMBER = re.compile(
    r"^\s*(?P<num>[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*"
    r"(?P<unit>[A-Za-z%µμ/°].*?)?\s*$"
)
_PAREN_UNIT = re.compile(r"\(([^()]*)\)\s*$")


class Placeholder(str):
    """The text of a cell that holds no value (`N/A`, `—`, empty)."""


def parse_cell(cell: str, where: str) -> tuple[float, str | None] | Placeholder:
    """(value, unit written in the cell or None), or the Placeholder for a no-value cell.

    Thousands separators are read (`1,234.5`); InputError for anything that is not a number.
    """
    text = cell.strip()
    if text.lower() in PLACEHOLDERS:
        return Placeholder(text)
    m = _NUMBER.match(text)
    num = m.group("num") if m else ""
    if m is None or not re.search(r"\d", num):
        raise InputError(f"{where}: {cell!r} is not a number")
    unit = m.group("unit")
    return float(num.replace(",", "")), unit.strip() if unit else None


def unit_in_parentheses(label: str) -> str | None:
    """`Latency (s)` -> `s`; None when the label ends without a parenthesised unit."""
    m = _PAREN_UNIT.search(label)
    return m.group(1).strip() if m else None


def convert(value: float, unit: str, registry_unit: str, where: str) -> tuple[float, bool]:
    """`value` in `unit` as the registry's unit: (converted value, exact).

    `exact` is False for decimal byte prefixes (KB/MB/GB), which some tools write meaning the
    binary ones. InputError naming the unit when it is unknown or does not fit the metric.
    """
    u = unit.strip().lower()
    if registry_unit == "ms" and u in _TO_MS:
        return value * _TO_MS[u], True
    if registry_unit == "MiB" and u in _TO_MIB:
        return value * _TO_MIB[u], u not in _DECIMAL_BYTES
    if registry_unit == "samples/s" and _PER_SECOND.match(u):
        return value, True
    if registry_unit == "%" and u in ("%", "percent"):
        return value, True
    raise InputError(f"{where}: unknown unit {unit!r} for a value in {registry_unit}")
