"""References: what a healthy platform measures, and a measured figure judged as % of it.

A reference is one YAML or JSON file (`format: minicluster-reference/1`): the platform it holds
for (GPU model and GPUs per node, or CPU model), whether it is `published` (figures from a
vendor or a public benchmark log, each with its source and date) or `site` (recorded from a
fleet of healthy results here: median and spread), and its figures. A figure names a metric
(the metric registry's name where one exists: `busbw_gbps`; node-check metrics otherwise) and
the conditions it was measured under (`op`, `size_bytes`, `dtype`, `scope`, ...). A measured
value is judged only against a figure whose conditions it meets; without one it is "not
judged" with the reason, never judged against a figure made up to fill the gap.

The references shipped with minicluster are in `minicluster/references/` (package data).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from minicluster.core.errors import InputError

FORMAT = "minicluster-reference/1"
DEFAULT_FLOOR_PCT = 90.0
KINDS = ("published", "site")
DIRECTIONS = ("higher", "lower")
PLATFORM_KEYS = ("gpu_model", "gpus_per_node", "cpu_model")
VERDICT_OK = "ok"
VERDICT_BELOW = "below_floor"
VERDICT_NOT_JUDGED = "not_judged"


@dataclass(frozen=True)
class Figure:
    """One reference figure: `value` of `metric` (in `unit`) measured under `conditions`."""

    metric: str
    value: float
    unit: str
    direction: Literal["higher", "lower"] = "higher"
    conditions: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None
    date: str | None = None
    spread: float | None = None  # site references: the fleet's MAD, in the figure's unit
    samples: int | None = None  # site references: how many healthy results the figure is from

    def meets(self, conditions: Mapping[str, Any] | None) -> bool:
        """Whether a measurement under `conditions` is comparable with this figure: every
        condition the figure names is given and equal (a measurement at another message size
        or dtype is not judged against it)."""
        given = conditions or {}
        return all(k in given and _same(given[k], v) for k, v in self.conditions.items())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metric": self.metric,
            "value": self.value,
            "unit": self.unit,
            "direction": self.direction,
        }
        if self.conditions:
            out["conditions"] = dict(self.conditions)
        for key in ("source", "date", "spread", "samples"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


@dataclass(frozen=True)
class Reference:
    """A platform's reference figures (`kind` published or site), read from `path`."""

    name: str
    kind: Literal["published", "site"]
    platform: Mapping[str, Any]
    figures: tuple[Figure, ...]
    description: str | None = None
    path: str | None = None

    def matches(self, platform: Mapping[str, Any]) -> bool:
        """Whether a result's platform is this reference's: every platform key the reference
        names is known on the result and equal (GPU model compared without case or spacing)."""
        for key, want in self.platform.items():
            have = platform.get(key)
            if have is None or not _same(have, want):
                return False
        return True

    def figure(self, metric: str, conditions: Mapping[str, Any] | None = None) -> Figure | None:
        """The figure for `metric` that a measurement under `conditions` meets (the one naming
        the most conditions when several do), else None."""
        fits = [f for f in self.figures if f.metric == metric and f.meets(conditions)]
        return max(fits, key=lambda f: len(f.conditions)) if fits else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
            "name": self.name,
            "kind": self.kind,
            "platform": dict(self.platform),
        }
        if self.description:
            out["description"] = self.description
        out["figures"] = [f.to_dict() for f in self.figures]
        return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return " ".join(a.lower().split()) == " ".join(b.lower().split())
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return bool(a == b)


def load(path: Path) -> Reference:
    """Read a reference file; InputError naming the file and the field when it is malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"no such reference file: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read reference {path}: {e}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(
            f"reference {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {first}"
        ) from None
    return from_dict(data, str(path))


def from_dict(data: Any, where: str) -> Reference:
    """A Reference from its parsed file; InputError naming `where` and the field."""
    if not isinstance(data, dict):
        raise InputError(
            f"{where}: a reference is a mapping with format, name, kind, platform, figures"
        )
    if data.get("format") is None:
        raise InputError(
            f"{where} is not a minicluster reference (no `format: {FORMAT}` in it): a reference "
            "is a mapping with format, name, kind, platform, figures"
        )
    if data.get("format") != FORMAT:
        raise InputError(
            f"{where}: format is {data.get('format')!r}; this minicluster reads {FORMAT}"
        )
    unknown = sorted(set(data) - {"format", "name", "kind", "platform", "figures", "description"})
    if unknown:
        raise InputError(f"{where}: unknown keys {', '.join(unknown)}")
    name, kind, platform = data.get("name"), data.get("kind"), data.get("platform")
    if not isinstance(name, str) or not name:
        raise InputError(f"{where}: name must be a non-empty string")
    if kind not in KINDS:
        raise InputError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not isinstance(platform, dict) or not platform:
        raise InputError(f"{where}: platform must name at least one of {', '.join(PLATFORM_KEYS)}")
    bad = sorted(set(platform) - set(PLATFORM_KEYS))
    if bad:
        raise InputError(
            f"{where}: platform keys {', '.join(bad)} unknown (allowed: {', '.join(PLATFORM_KEYS)})"
        )
    raw = data.get("figures")
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{where}: figures must be a non-empty list")
    figures = tuple(_figure(f, f"{where}: figures[{i}]", kind) for i, f in enumerate(raw))
    return Reference(name, kind, platform, figures, data.get("description"), where)


def _figure(f: Any, where: str, kind: str) -> Figure:
    if not isinstance(f, dict):
        raise InputError(f"{where} must be a mapping")
    allowed = {
        "metric",
        "value",
        "unit",
        "direction",
        "conditions",
        "source",
        "date",
        "spread",
        "samples",
    }
    unknown = sorted(set(f) - allowed)
    if unknown:
        raise InputError(f"{where}: unknown keys {', '.join(unknown)}")
    metric, value, unit = f.get("metric"), f.get("value"), f.get("unit")
    if not isinstance(metric, str) or not metric:
        raise InputError(f"{where}: metric must be a non-empty string")
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InputError(f"{where} ({metric}): value must be a positive number, not {value!r}")
    if not isinstance(unit, str) or not unit:
        raise InputError(f"{where} ({metric}): unit must be given")
    direction = f.get("direction", "higher")
    if direction not in DIRECTIONS:
        raise InputError(f"{where} ({metric}): direction must be higher or lower")
    conditions = f.get("conditions") or {}
    if not isinstance(conditions, dict):
        raise InputError(f"{where} ({metric}): conditions must be a mapping")
    if kind == "published" and not (f.get("source") and f.get("date")):
        raise InputError(f"{where} ({metric}): a published figure needs its source and date")
    spread = f.get("spread")
    if spread is not None and (not isinstance(spread, (int, float)) or spread < 0):
        raise InputError(f"{where} ({metric}): spread must be a non-negative number")
    return Figure(
        metric,
        float(value),
        unit,
        direction,
        conditions,
        None if f.get("source") is None else str(f["source"]),
        None if f.get("date") is None else str(f["date"]),
        None if spread is None else float(spread),
        f.get("samples"),
    )


def shipped() -> list[Reference]:
    """The published references that ship with minicluster (`minicluster/references/`)."""
    out = []
    folder = resources.files("minicluster").joinpath("references")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml", ".json")):
            with resources.as_file(entry) as p:
                out.append(load(Path(p)))
    return out


def find(references: Iterable[Reference], platform: Mapping[str, Any]) -> Reference | None:
    """The reference for `platform`: a site reference before a published one, then the one
    naming the most platform keys; None when none matches."""
    fits = [r for r in references if r.matches(platform)]
    if not fits:
        return None
    return max(fits, key=lambda r: (r.kind == "site", len(r.platform)))


def judge(
    reference: Reference | None,
    metric: str,
    value: float | None,
    floor_pct: float = DEFAULT_FLOOR_PCT,
    conditions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`value` as % of the reference figure it is comparable with, and a verdict: `ok`,
    `below_floor` (worse than `floor_pct` % of the reference, on the metric's bad side), or
    `not_judged` with the reason (no reference for this platform, no figure for this metric
    under these conditions, or nothing measured).

    For a lower-is-better metric the percentage is reference / value (100% = as fast as the
    reference), so the floor reads the same way for both directions."""
    out: dict[str, Any] = {
        "metric": metric,
        "value": value,
        "reference_value": None,
        "pct_of_reference": None,
        "floor_pct": floor_pct,
        "verdict": VERDICT_NOT_JUDGED,
        "reason": None,
        "reference": None,
        "source": None,
    }
    if reference is None:
        out["reason"] = "no reference for this platform"
        return out
    out["reference"] = reference.name
    fig = reference.figure(metric, conditions)
    if fig is None:
        shown = ", ".join(f"{k}={v}" for k, v in (conditions or {}).items())
        out["reason"] = f"reference {reference.name} has no {metric} figure" + (
            f" for {shown}" if shown else ""
        )
        return out
    out["reference_value"], out["source"] = fig.value, fig.source or f"site ({fig.samples} results)"
    if value is None or not math.isfinite(value) or value <= 0:
        out["reason"] = "nothing measured to judge"
        return out
    pct = 100.0 * (value / fig.value if fig.direction == "higher" else fig.value / value)
    out["pct_of_reference"] = round(pct, 2)
    out["verdict"] = VERDICT_OK if pct >= floor_pct else VERDICT_BELOW
    if out["verdict"] == VERDICT_BELOW:
        out["reason"] = (
            f"{pct:.1f}% of the reference ({fig.value:g} {fig.unit}), below the {floor_pct:g}% floor"
        )
    return out


def save(reference: Reference, path: Path) -> None:
    """Write a reference as YAML (JSON when `path` ends in .json), atomically."""
    from minicluster.core.io import atomic_write_text

    data = reference.to_dict()
    text = (
        json.dumps(data, indent=1) + "\n"
        if path.suffix == ".json"
        else yaml.safe_dump(data, sort_keys=False)
    )
    atomic_write_text(path, text)
