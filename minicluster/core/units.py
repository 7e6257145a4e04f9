"""Unit conversions and compact counts (sizes, rank lists). GiB/MiB are binary (1024^n); GB/s is
decimal (1e9), as nccl-tests reports it."""

from __future__ import annotations

from collections.abc import Iterable

NS_PER_MS = 1_000_000
BYTES_PER_MIB = 1024**2
BYTES_PER_GIB = 1024**3
BYTES_PER_GB = 1e9


def ns_to_ms(ns: float) -> float:
    return ns / NS_PER_MS


def bytes_to_mib(n_bytes: float) -> float:
    return n_bytes / BYTES_PER_MIB


def bytes_per_ms_to_gbps(n_bytes: float, ms: float) -> float:
    """Bytes moved in `ms` milliseconds as decimal GB/s (1 GB = 1e9 bytes)."""
    return n_bytes / (ms / 1000.0) / BYTES_PER_GB


_SIZE_SUFFIXES = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_size(text: str) -> int:
    """`1K`, `64M`, `1G` (K = 1024, as nccl-tests reads -b/-e) or plain bytes -> bytes.

    A trailing `B` or `iB` is accepted (`64MB`, `64MiB`: also 64 x 1024^2). ValueError otherwise.
    """
    s = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = s[-1:] if s[-1:] in ("K", "M", "G") else ""
    digits = s[: len(s) - len(unit)].strip()
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"not a size: {text!r} (examples: 4096, 1K, 64M, 1G; K = 1024)")
    return int(digits) * _SIZE_SUFFIXES[unit]


def format_size(n_bytes: int) -> str:
    """Bytes as the shortest exact `1K` / `64M` / `1G` text (K = 1024), else plain bytes."""
    for unit in ("G", "M", "K"):
        factor = _SIZE_SUFFIXES[unit]
        if n_bytes >= factor and n_bytes % factor == 0:
            return f"{n_bytes // factor}{unit}"
    return str(n_bytes)


def format_ranks(ranks: Iterable[int]) -> str:
    """`0-3, 6`: sorted ranks, consecutive runs joined (a 4,096-rank node list stays short)."""
    out: list[str] = []
    ordered = sorted(ranks)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(f"{ordered[i]}-{ordered[j]}" if j > i else str(ordered[i]))
        i = j + 1
    return ", ".join(out)


def format_value(value: float | None) -> str:
    """A measured value for people, with enough digits to check a delta: 4 significant digits
    (0.01163, 15.66), thousands separators and one decimal from 1,000 on (7,066.4), scientific
    notation only from 1e9; n/a for None."""
    if value is None:
        return "n/a"
    if value == 0:
        return "0"
    if abs(value) >= 1e9:
        return f"{value:.4g}"
    if abs(value) >= 1000:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def format_pct(value: float | None, signed: bool = True) -> str:
    """A percent (without the sign %) for people, never in scientific notation: 3 significant
    digits below 100 (+5.72, -0.321), whole with thousands separators from 100 on (+5,720);
    n/a for None."""
    if value is None:
        return "n/a"
    sign = "+" if signed else ""
    if abs(value) >= 100:
        return f"{value:{sign},.0f}"
    return f"{value:{sign}.3g}"
