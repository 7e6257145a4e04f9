"""Whether two results measured the same thing: their fingerprints' defining fields, field by
field (docs/compare.md, "Comparable or not").

A field known on both sides with different values makes the pair not comparable (both values
shown, no verdict, nothing gated) unless the user allows that difference (`--allow-different`).
A field unknown on one or both sides is said ("not shown to be the same"), never taken as equal;
it does not by itself stop the comparison, since most foreign formats record few of them.
Across world sizes (only the fields that follow the world size differ) the per-rank metrics
stay comparable; the rest are not, and `sweep --from` is what answers "how does it scale".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from minicluster.core.errors import InputError
from minicluster.result.fingerprint import FIELDS_OF_KIND, SCALE_FIELDS

State = Literal["same", "different", "allowed", "unknown_both", "unknown_one"]
# Metrics that are per rank (one process's figure for the same per-rank work): comparable across
# world sizes when nothing but the world size differs.
PER_RANK_METRICS = frozenset({"memory_peak_mib", "compute_ms"})
ALL_FIELDS = tuple(dict.fromkeys(f for fields in FIELDS_OF_KIND.values() for f in fields))


@dataclass
class FieldCheck:
    field: str
    a: Any
    b: Any
    state: State
    why_unknown: str | None = None


@dataclass
class Comparability:
    """The field-by-field check of one pair, and what follows from it."""

    fields: list[FieldCheck] = field(default_factory=list)
    allowed: tuple[str, ...] = ()

    @property
    def different(self) -> list[FieldCheck]:
        return [f for f in self.fields if f.state == "different"]

    @property
    def comparable(self) -> bool:
        return not self.different

    @property
    def across_world_sizes(self) -> bool:
        """Only fields that follow the world size differ (and the world size does)."""
        names = {f.field for f in self.different}
        return "world_size" in names and names <= SCALE_FIELDS

    def reason(self) -> str | None:
        """Why no metric is compared (or, across world sizes, why only per-rank ones are)."""
        if self.comparable:
            return None
        shown = "; ".join(f"{f.field}: {_show(f.a)} vs {_show(f.b)}" for f in self.different)
        names = ",".join(f.field for f in self.different)
        if self.across_world_sizes:
            return (
                f"not comparable: different world sizes ({shown}): only per-rank metrics "
                f"({', '.join(sorted(PER_RANK_METRICS))}) are compared; for scaling use "
                "`minicluster sweep --from A B`"
            )
        return (
            f"not comparable: defining fields differ ({shown}): no verdict, nothing gated "
            f"(--allow-different {names} compares them anyway)"
        )

    def row_reason(self, metric: str) -> str | None:
        """Why `metric`'s row gets no verdict, or None when the fingerprints let it be judged."""
        if self.comparable or (self.across_world_sizes and metric in PER_RANK_METRICS):
            return None
        return self.reason()

    def notes(self) -> list[str]:
        """One line per field that is not shown to match (unknown) or that the user allowed."""
        out = []
        unknown_both = [f.field for f in self.fields if f.state == "unknown_both"]
        if unknown_both:
            out.append(
                f"unknown on both sides: not shown to be the same: {', '.join(unknown_both)}"
            )
        one = [f for f in self.fields if f.state == "unknown_one"]
        if one:
            out.append(
                "known on one side only: not shown to be the same: "
                + ", ".join(f"{f.field} ({_show(f.a)} vs {_show(f.b)})" for f in one)
            )
        allowed = [f for f in self.fields if f.state == "allowed"]
        if allowed:
            out.append(
                "compared although they differ (--allow-different): "
                + ", ".join(f"{f.field} ({_show(f.a)} vs {_show(f.b)})" for f in allowed)
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "comparable": self.comparable,
            "across_world_sizes": self.across_world_sizes,
            "allowed": list(self.allowed),
            "reason": self.reason(),
            "fields": [asdict(f) for f in self.fields],
        }


def _show(value: Any) -> str:
    return "unknown" if value is None else str(value)


def parse_allowed(text: str | None) -> tuple[str, ...]:
    """`--allow-different FIELD,...` checked against the fingerprint's fields."""
    if not text:
        return ()
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in ALL_FIELDS]
    if bad:
        raise InputError(
            f"--allow-different: unknown field {bad[0]!r}; fingerprint fields: "
            f"{', '.join(ALL_FIELDS)}"
        )
    return names


def check(
    fa: dict[str, Any] | None, fb: dict[str, Any] | None, allowed: tuple[str, ...] = ()
) -> Comparability:
    """The field-by-field check of fingerprints `fa` (baseline) and `fb` (candidate). Fields of
    another workload type are left to the workload check (`compare.engine`)."""
    va, vb = (fa or {}).get("fields") or {}, (fb or {}).get("fields") or {}
    ua, ub = (fa or {}).get("unknown") or {}, (fb or {}).get("unknown") or {}
    if va.get("workload_type") != vb.get("workload_type"):
        return Comparability([], allowed)
    names = FIELDS_OF_KIND.get(str(va.get("workload_type")), ())
    checks: list[FieldCheck] = []
    for name in names:
        a, b = va.get(name), vb.get(name)
        if a is None and b is None:
            why = ua.get(name) or ub.get(name) or "not recorded"
            checks.append(FieldCheck(name, a, b, "unknown_both", why))
        elif a is None or b is None:
            checks.append(FieldCheck(name, a, b, "unknown_one", ua.get(name) or ub.get(name)))
        elif a == b:
            checks.append(FieldCheck(name, a, b, "same"))
        else:
            checks.append(FieldCheck(name, a, b, "allowed" if name in allowed else "different"))
    return Comparability(checks, allowed)
