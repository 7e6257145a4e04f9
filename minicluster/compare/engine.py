"""The comparison rules: deltas, direction, significance, regression gate, family summary.

Rules (DESIGN.md section 7): a value not measured is never compared; a zero baseline has no
percent delta; direction comes from the metric registry; with >= 4 samples a side a two-sided
Mann-Whitney U test decides significance; a regression needs significance (when samples allow)
and the threshold; no overall winner, only counts per family and a geometric mean of
direction-normalized ratios over the matched set; training vs inference compares only
cross-applicable metrics.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from minicluster.core import metrics as metrics_registry
from minicluster.core.errors import InputError
from minicluster.interop.record import BenchmarkRecord

Verdict = Literal["better", "worse", "no_change", "not_comparable", "missing"]
VERDICTS: tuple[str, ...] = ("better", "worse", "no_change", "not_comparable", "missing")
MIN_SAMPLES = 4
DEFAULT_THRESHOLD_PCT = 5.0
DEFAULT_ALPHA = 0.05

# Metrics that mean the same thing for a training step and an inference request.
CROSS_APPLICABLE = frozenset(
    {
        "throughput_samples_per_sec",
        "tokens_per_sec",
        "energy_per_sample_joules",
        "performance_per_watt",
        "power_consumption_watts",
        "temperature_celsius",
        "memory_utilization_percent",
        "memory_peak_mib",
    }
)


@dataclass
class Row:
    metric: str
    unit: str
    family: str
    direction: str
    a: float | None
    b: float | None
    delta_abs: float | None
    delta_pct: float | None
    verdict: Verdict
    reason: str
    test: str | None = None
    p_value: float | None = None
    n_a: int | None = None
    n_b: int | None = None
    regression: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PairComparison:
    """Candidate `b` against baseline `a`."""

    a: BenchmarkRecord
    b: BenchmarkRecord
    rows: list[Row]
    warnings: list[str]
    families: dict[str, dict[str, int]]
    geomean_ratio: float | None
    geomean_n: int

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.regression]


@dataclass
class Comparison:
    baseline: BenchmarkRecord
    pairs: list[PairComparison]
    threshold_pct: float
    alpha: float
    warnings: list[str] = field(default_factory=list)

    @property
    def has_regression(self) -> bool:
        return any(p.regressions for p in self.pairs)


def compare(
    records: list[BenchmarkRecord],
    baseline_index: int = 0,
    threshold_pct: float = DEFAULT_THRESHOLD_PCT,
    alpha: float = DEFAULT_ALPHA,
) -> Comparison:
    """Compare every record against `records[baseline_index]`."""
    if len(records) < 2:
        raise InputError("compare needs at least two inputs")
    if not (math.isfinite(threshold_pct) and threshold_pct >= 0):
        raise InputError(f"--threshold must be a percent >= 0, got {threshold_pct}")
    if not (0 < alpha < 1):
        raise InputError(f"--alpha must be between 0 and 1, got {alpha}")
    base = records[baseline_index]
    pairs = [
        compare_pair(base, rec, threshold_pct, alpha)
        for i, rec in enumerate(records)
        if i != baseline_index
    ]
    return Comparison(base, pairs, threshold_pct, alpha)


# Set-up facts that change what the metrics mean, when both inputs record them (`details`).
_SETUP_DETAILS = (
    ("world_size", "world sizes (ranks)"),
    ("backend", "communication backends"),
    ("global_batch", "global batches"),
)


def compare_pair(
    a: BenchmarkRecord, b: BenchmarkRecord, threshold_pct: float, alpha: float
) -> PairComparison:
    warnings = [f"{a.label}: {w}" for w in a.warnings] + [f"{b.label}: {w}" for w in b.warnings]
    cross = a.workload_type != b.workload_type
    if cross:
        latency = (
            "; step latency and request latency differ in meaning"
            if "inference" in (a.workload_type, b.workload_type)
            else ""
        )
        warnings.append(
            f"workload types differ ({a.workload_type} vs {b.workload_type}): only "
            f"cross-applicable metrics are compared{latency}"
        )
    elif a.workload_name != b.workload_name:
        warnings.append(f"workloads differ ({a.workload_name} vs {b.workload_name})")
    for key, what in _SETUP_DETAILS:
        va, vb = a.details.get(key), b.details.get(key)
        if va is not None and vb is not None and va != vb:
            warnings.append(f"{what} differ ({va} vs {vb})")
    if a.hardware and b.hardware and a.hardware != b.hardware:
        warnings.append(f"hardware differs ({a.hardware} vs {b.hardware})")
    elif not (a.hardware and b.hardware):
        warnings.append("hardware unknown for at least one input: cannot check it matches")
    names = [
        m.name
        for m in metrics_registry.REGISTRY.values()
        if m.name in a.metrics or m.name in b.metrics
    ]
    rows = [_row(name, a, b, cross, threshold_pct, alpha) for name in names]
    families: dict[str, dict[str, int]] = {}
    for r in rows:
        fam = families.setdefault(r.family, dict.fromkeys(VERDICTS, 0))
        fam[r.verdict] += 1
    ratio, n = _geomean(rows)
    return PairComparison(a, b, rows, warnings, families, ratio, n)


def _row(
    name: str,
    a: BenchmarkRecord,
    b: BenchmarkRecord,
    cross: bool,
    threshold_pct: float,
    alpha: float,
) -> Row:
    m = metrics_registry.REGISTRY[name]
    ma, mb = a.measured(name), b.measured(name)
    row = Row(
        name,
        m.unit,
        m.family,
        m.direction,
        ma.value if ma else None,
        mb.value if mb else None,
        None,
        None,
        "missing",
        "",
    )
    if ma is None or mb is None:
        row.reason = "; ".join(
            f"{rec.label}: not measured ({_why(rec, name)})"
            for rec, mv in ((a, ma), (b, mb))
            if mv is None
        )
        return row
    assert row.a is not None and row.b is not None
    if ma.unit != mb.unit:
        row.verdict, row.reason = "not_comparable", f"units differ ({ma.unit} vs {mb.unit})"
        return row
    delta = row.b - row.a
    pct = None if row.a == 0 else 100.0 * delta / abs(row.a)
    if not math.isfinite(delta) or (pct is not None and not math.isfinite(pct)):
        row.verdict, row.reason = "not_comparable", "values out of floating-point range"
        return row
    row.delta_abs, row.delta_pct = delta, pct
    if cross and name not in CROSS_APPLICABLE:
        row.verdict = "not_comparable"
        row.reason = (
            "different semantics: training step latency vs inference request latency"
            if m.family in ("latency", "llm") and m.applies_to == "both"
            else f"not cross-applicable between {a.workload_type} and {b.workload_type}"
        )
        return row
    if m.direction == "none":
        row.verdict, row.reason = "not_comparable", "no better direction for this metric (registry)"
        return row
    sa, sb = a.samples.get(name, []), b.samples.get(name, [])
    row.n_a, row.n_b = len(sa) or None, len(sb) or None
    significant: bool | None = None
    if len(sa) >= MIN_SAMPLES and len(sb) >= MIN_SAMPLES:
        row.test, row.p_value = "mann-whitney-u", _mann_whitney_p(sa, sb)
        significant = row.p_value < alpha
    improved = (row.delta_abs > 0) == (m.direction == "higher")
    if row.delta_abs == 0:
        row.verdict, row.reason = "no_change", "equal values"
        return row
    if significant is False:
        row.verdict = "no_change"
        row.reason = f"~ not significant (p={row.p_value:.3g} >= alpha {alpha:g})"
        return row
    basis = (
        f"significant (p={row.p_value:.3g})"
        if significant
        else f"no test: fewer than {MIN_SAMPLES} samples a side"
    )
    if row.delta_pct is None:
        row.verdict = "better" if improved else "worse"
        row.reason = f"baseline is 0: percent undefined, threshold not applicable; {basis}"
        return row
    if abs(row.delta_pct) < threshold_pct:
        row.verdict = "no_change"
        row.reason = f"within the {threshold_pct:g}% threshold; {basis}"
        return row
    row.verdict = "better" if improved else "worse"
    row.regression = not improved and not cross
    if row.regression:
        row.reason = f"regressed beyond {threshold_pct:g}%; {basis}"
    elif improved:
        row.reason = f"improved beyond {threshold_pct:g}%; {basis}"
    else:  # a training result is not gated against an inference one
        row.reason = (
            f"worse by more than {threshold_pct:g}%, not gated (workload types differ); {basis}"
        )
    return row


def _why(rec: BenchmarkRecord, name: str) -> str:
    mv = rec.metrics.get(name)
    if mv is None:
        return "not reported"
    return mv.reason or f"status {mv.status}"


def _mann_whitney_p(sa: list[float], sb: list[float]) -> float:
    from scipy.stats import mannwhitneyu

    if len(set(sa)) == 1 and set(sa) == set(sb):
        return 1.0  # identical constant samples: scipy would warn; there is no difference
    return float(mannwhitneyu(sa, sb, alternative="two-sided").pvalue)


def _geomean(rows: list[Row]) -> tuple[float | None, int]:
    """Geometric mean of b-over-a ratios oriented so > 1 favours b, over rows with a verdict."""
    logs: list[float] = []
    for r in rows:
        if r.verdict not in ("better", "worse", "no_change") or r.direction == "none":
            continue
        assert r.a is not None and r.b is not None
        if r.a <= 0 or r.b <= 0:
            continue
        ratio = r.b / r.a if r.direction == "higher" else r.a / r.b
        logs.append(math.log(ratio))
    if not logs:
        return None, 0
    return math.exp(sum(logs) / len(logs)), len(logs)
