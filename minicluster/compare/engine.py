"""The comparison rules: deltas, direction, coverage, noise floor, significance, regression gate,
family summary (docs/compare.md says each rule and why).

A value not measured is never compared; one covering fewer requests or energy sources than its
counterpart is not comparable; a zero baseline has no percent delta; direction comes from the
metric registry; a difference below the metric's noise floor is no change; with >= 4 samples a
side a two-sided Mann-Whitney U test and an interval of the difference over blocks of steps
decide whether it is more than noise; a per-step metric of a training run without those samples
is "not tested" and never gated; a regression needs all of that and the threshold. Across
workload types or models rows show both values and the ratio, no verdict. No overall winner:
counts per family and a geometric mean over the rows that were judged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from minicluster.compare import (
    collective_sizes,
    comparability,
    drift,
    host_load,
    repeats,
    stats,
    tails,
)
from minicluster.core import metrics as metrics_registry
from minicluster.core.errors import InputError
from minicluster.interop.record import BenchmarkRecord

# inconclusive: tested, but the runs can neither confirm nor rule out a regression (rule 9b):
# not judged, never counted as no change
Verdict = Literal[
    "better", "worse", "no_change", "inconclusive", "not_tested", "not_comparable", "missing"
]
VERDICTS: tuple[str, ...] = (
    "better",
    "worse",
    "no_change",
    "inconclusive",
    "not_tested",
    "not_comparable",
    "missing",
)
# why a pair's rows were not judged (`PairComparison.nothing_judged`)
_UNDECIDED_TEXT = {
    "below_floor": "no change below the noise floor",
    "no_change": "no change",
    "inconclusive": "inconclusive",
    "not_tested": "not tested",
    "not_comparable": "not comparable",
    "missing": "not measured",
}
MIN_SAMPLES = 4
# Coverage gaps up to this fraction of the requests (or sources) are judged and said; larger
# ones make the row not comparable (a latency over 40 survivors of 100 requests is not judged).
COVERAGE_TOLERANCE = 0.05
DEFAULT_THRESHOLD_PCT = 5.0
DEFAULT_ALPHA = 0.05


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
    ratio: float | None = None  # b / a, when both are > 0
    test: str | None = None
    p_value: float | None = None
    n_a: int | None = None
    n_b: int | None = None
    ci_low: float | None = None  # run-to-run spread interval of B - A (blocks), metric's unit
    ci_high: float | None = None
    noise_floor: float | None = None  # the registry's absolute floor for this unit
    # the smallest change (% of A) this comparison could have told from noise
    mde_pct: float | None = None
    below_floor: bool = False
    regression: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def judged(self) -> bool:
        """A row the geometric mean covers: measured on both sides, comparable, tested where it
        must be, and not below the noise floor."""
        return self.verdict in ("better", "worse", "no_change") and not self.below_floor


@dataclass
class PairComparison:
    """Candidate `b` against baseline `a`."""

    a: BenchmarkRecord
    b: BenchmarkRecord
    rows: list[Row]
    warnings: list[str]
    geomean_ratio: float | None
    geomean_n: int
    geomean_excluded: dict[str, int] = field(default_factory=dict)
    # "LABEL: run status is 'failed'" for each side whose run did not finish ok
    unfinished: list[str] = field(default_factory=list)
    # "LABEL: its own checks failed (straggler): ..." for each side whose own result named a finding
    own_failed: list[str] = field(default_factory=list)
    # "LABEL: its own run was NOT JUDGED: WHY" for each side whose own verdict was NOT JUDGED (too
    # few steps for the straggler test, too few pairs) and named no finding
    own_not_judged: list[str] = field(default_factory=list)
    # the fingerprints' field-by-field check (compare/comparability.py)
    comparability: comparability.Comparability | None = None
    # busbw per op and message size of two collective benchmarks (compare/collective_sizes.py)
    sizes: list[dict[str, Any]] = field(default_factory=list)
    # per side label: the trend or level change of its step time (compare/drift.py)
    structure: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the two runs' hosts differed in CPU load by as much as their step times (compare/host_load.py):
    # the timing rows are not judged
    host_load: str | None = None

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.regression]

    @property
    def nothing_judged(self) -> str | None:
        """`B vs A: no row could be judged (16 inconclusive, 8 not measured)` when not one row
        was judged (`Row.judged`, the rows the geometric mean covers: a verdict better, worse or
        no change above the noise floor): a gate never passes on what it could not judge, as
        `history check` (NOT JUDGED, exit 2). None otherwise, and for a pair with a run that did
        not finish ok (the gate fails on that: `unfinished`), or whose hosts' load differed (the
        pair is NOT JUDGED for that, and says so: `host_load`)."""
        if self.unfinished or self.host_load or any(r.judged for r in self.rows):
            return None
        counts: dict[str, int] = {}
        for r in self.rows:
            key = "below_floor" if r.below_floor else r.verdict
            counts[key] = counts.get(key, 0) + 1
        said = ", ".join(f"{n} {_UNDECIDED_TEXT.get(v, v)}" for v, n in counts.items())
        return f"{self.b.label} vs {self.a.label}: no row could be judged ({said or 'no rows'})"

    @property
    def families(self) -> dict[str, dict[str, int]]:
        """Per metric family, how many rows have each verdict: counted from the rows as they
        stand (after a rate took its step time's verdict), so the tally never says other than
        the rows."""
        out: dict[str, dict[str, int]] = {}
        for r in self.rows:
            out.setdefault(r.family, dict.fromkeys(VERDICTS, 0))[r.verdict] += 1
        return out


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

    @property
    def unfinished(self) -> list[str]:
        """Inputs whose run did not finish ok (failed, incomplete), each said once."""
        return list(dict.fromkeys(u for p in self.pairs for u in p.unfinished))

    @property
    def own_failed(self) -> list[str]:
        """Inputs whose own checks failed (a straggler, a culprit, wrong numbers), each once."""
        return list(dict.fromkeys(u for p in self.pairs for u in p.own_failed))

    @property
    def own_not_judged(self) -> list[str]:
        """Inputs whose own verdict was NOT JUDGED (and named no finding), each once."""
        return list(dict.fromkeys(u for p in self.pairs for u in p.own_not_judged))

    @property
    def nothing_judged(self) -> list[str]:
        """Pairs of which not one row could be judged (`PairComparison.nothing_judged`)."""
        return [line for p in self.pairs if (line := p.nothing_judged) is not None]

    @property
    def host_load(self) -> list[str]:
        """Pairs whose timing rows were not judged: the hosts' CPU load differed as much as the
        step time (`compare.host_load`)."""
        return [line for p in self.pairs if (line := p.host_load) is not None]

    @property
    def gate_failed(self) -> bool:
        """A gated regression, an input run that did not finish ok, or one whose own checks
        failed: a gate never passes on a run that failed or was interrupted, whatever its
        partial numbers say, nor on one its own checks failed."""
        return self.has_regression or bool(self.unfinished) or bool(self.own_failed)

    @property
    def verdict(self) -> str:
        """`regression` (the gate fails), `not_judged` (nothing failed, but an input's own run
        was NOT JUDGED, or a pair had not one row judged: a gate never passes on what it could
        not judge), or `ok`."""
        if self.gate_failed:
            return "regression"
        undecided = self.own_not_judged or self.nothing_judged or self.host_load
        return "not_judged" if undecided else "ok"


# verdicts of a run's own checks that its status already says (`unfinished`)
# a smallest detectable change this many times the threshold or more: the runs could not have
# seen a regression of several thresholds, so "no change" would claim what was never tested
# (`history check` and `compare` of repeat sets word it the same: inconclusive, not judged)
INCONCLUSIVE_MDE_FACTOR = 3.0

UNFINISHED_VERDICTS = frozenset({"run_failed", "interrupted", "bad_input"})


def own_checks_failed(rec: BenchmarkRecord) -> list[str]:
    """The verdicts of `rec`'s own checks (exit-policy names, minicluster results only) that made
    its own command exit 1: a straggler, a culprit, wrong numbers, a slow link, a failed
    validation. A failed or interrupted run is said by its status instead."""
    own = rec.details.get("own_verdicts") or []
    # `not_judged` (too few steps for the straggler test) is no finding of the run's
    return [v for v in own if v not in UNFINISHED_VERDICTS and v != "not_judged"]


def own_failed_line(rec: BenchmarkRecord) -> str | None:
    """`LABEL: its own checks failed (straggler, culprit): FINDING; ...`, or None."""
    names = own_checks_failed(rec)
    if not names:
        return None
    found = rec.details.get("own_findings") or []
    return f"{rec.label}: its own checks failed ({', '.join(names)})" + (
        f": {'; '.join(found)}" if found else ""
    )


def own_not_judged_line(rec: BenchmarkRecord) -> str | None:
    """`LABEL: its own run was NOT JUDGED: WHY` when `rec`'s own verdict was NOT JUDGED and its
    own checks named no finding (a finding decides first: `own_failed_line`), else None."""
    if "not_judged" not in (rec.details.get("own_verdicts") or []) or own_checks_failed(rec):
        return None
    why = rec.details.get("own_not_judged") or []
    return f"{rec.label}: its own run was NOT JUDGED" + (f": {'; '.join(why)}" if why else "")


def compare(
    records: list[BenchmarkRecord],
    baseline_index: int = 0,
    threshold_pct: float = DEFAULT_THRESHOLD_PCT,
    alpha: float = DEFAULT_ALPHA,
    allowed: tuple[str, ...] = (),
) -> Comparison:
    """Compare every record against `records[baseline_index]`; `allowed`: defining fields
    (fingerprint) that may differ (`--allow-different`)."""
    if len(records) < 2:
        raise InputError("compare needs at least two inputs")
    if not (math.isfinite(threshold_pct) and threshold_pct >= 0):
        raise InputError(f"--threshold must be a percent >= 0, got {threshold_pct}")
    if not (0 < alpha < 1):
        raise InputError(f"--alpha must be between 0 and 1, got {alpha}")
    base = records[baseline_index]
    pairs = [
        compare_pair(base, rec, threshold_pct, alpha, allowed)
        for i, rec in enumerate(records)
        if i != baseline_index
    ]
    return Comparison(base, pairs, threshold_pct, alpha)


# Set-up facts that change what the metrics mean, when both inputs record them (`details`).
_SETUP_DETAILS = (
    ("world_size", "world sizes (ranks)"),
    ("backend", "communication backends"),
    ("global_batch", "global batches"),
    # comm_ms is one quantity for every method, but a span (DDP stats) is not a union (hook)
    ("timing_method", "all-reduce timing methods"),
)


def _different_workloads(a: BenchmarkRecord, b: BenchmarkRecord) -> str | None:
    """Why `a` and `b` measure different things (workload type or model), else None."""
    if a.workload_type != b.workload_type:
        return f"workload types differ ({a.workload_type} vs {b.workload_type})"
    # an unknown model is not a different one: the fingerprint check says it is not shown the same
    if a.workload_name != b.workload_name and "unknown" not in (a.workload_name, b.workload_name):
        return f"workloads differ ({a.workload_name} vs {b.workload_name})"
    return None


def compare_pair(
    a: BenchmarkRecord,
    b: BenchmarkRecord,
    threshold_pct: float,
    alpha: float,
    allowed: tuple[str, ...] = (),
) -> PairComparison:
    warnings = [f"{a.label}: {w}" for w in a.warnings] + [f"{b.label}: {w}" for w in b.warnings]
    unfinished = [
        f"{rec.label}: run status is {rec.details['run_status']!r}"
        for rec in (a, b)
        if rec.details.get("run_status") not in (None, "ok")
    ]
    cross = _different_workloads(a, b)
    if cross:
        latency = (
            "; step latency and request latency differ in meaning"
            if "inference" in (a.workload_type, b.workload_type)
            and a.workload_type != b.workload_type
            else ""
        )
        warnings.append(f"{cross}: values and ratios only, no verdict, nothing gated{latency}")
    fit = comparability.check(a.fingerprint, b.fingerprint, allowed)
    if not cross:
        warnings += _setup_warnings(a, b, fit)
    names = [
        m.name
        for m in metrics_registry.REGISTRY.values()
        if m.name in a.metrics or m.name in b.metrics
    ]
    # several runs a side: one t test per metric over few runs; alpha is split over the metrics
    # tested so (Bonferroni), so the gate's error rate is that of one test, not of twenty
    row_alpha = alpha
    if a.runs or b.runs:
        tested = [
            n
            for n in names
            if a.measured(n) and b.measured(n) and metrics_registry.REGISTRY[n].direction != "none"
        ]
        row_alpha = alpha / max(1, len(tested))
    rows = [
        _row(name, a, b, cross or fit.row_reason(name), unfinished, threshold_pct, row_alpha)
        for name in names
    ]
    # before the geometric mean: it covers the rows as they stand (a rate not tested with its
    # step time is left out, not counted as judged on the threshold alone)
    _align_rates(rows)
    _memory_floor(rows)
    load = None if cross or not fit.comparable else host_load.differs(a, b, threshold_pct)
    if not cross and (said := host_load.unchecked(a, b)) is not None:
        warnings.append(said)
    if load is not None:
        _not_judged_for_load(rows)
    ratio, n, excluded = _geomean(rows)
    structure = _structures(a, b, threshold_pct, alpha)
    warnings += [f"{label}: step time {s.text}" for label, s in structure.items()]
    sizes = collective_sizes.sizes_rows(a, b, threshold_pct, cross or fit.reason())
    return PairComparison(
        a,
        b,
        rows,
        warnings,
        ratio,
        n,
        excluded,
        unfinished,
        [line for rec in (a, b) if (line := own_failed_line(rec)) is not None],
        [line for rec in (a, b) if (line := own_not_judged_line(rec)) is not None],
        fit,
        sizes,
        {label: st.to_dict() for label, st in structure.items()},
        load,
    )


def _not_judged_for_load(rows: list[Row]) -> None:
    """The timing rows of a pair whose hosts' CPU load differed as much as its step time
    (`compare.host_load`): not comparable, nothing gated; memory and temperature stand."""
    for r in rows:
        judged = r.verdict in ("better", "worse", "no_change", "inconclusive")
        if r.family in host_load.UNTIMED_FAMILIES or not judged:
            continue
        r.verdict = "not_comparable"
        r.regression = False
        r.reason = (
            "not judged: the hosts' CPU load differed as much as the step time (run-queue "
            "delay; see the NOT JUDGED line)"
        )


# rate metrics that are global batch (or tokens) / mean step time: judged on the step time
_RATE_OF_STEP = {
    "throughput_samples_per_sec": "step_time_mean_ms",
    "tokens_per_sec": "step_time_mean_ms",
    # FLOPs per sample x samples/s: a constant times the throughput (analysis/flops.py)
    "achieved_tflops": "step_time_mean_ms",
    "tflops_per_rank": "step_time_mean_ms",
    "mfu_pct": "step_time_mean_ms",
}


def _align_rates(rows: list[Row]) -> None:
    """A rate that is global batch / mean step time and the mean step time are one statistic:
    the rate's row takes the step-time row's test and verdict, so the two never disagree: a
    step time not tested (fewer than 4 samples, no series) leaves the rate not tested, never
    gated on the threshold alone (rule 7)."""
    by_name = {r.metric: r for r in rows}
    judged = ("better", "worse", "no_change", "inconclusive")
    for rate, step in _RATE_OF_STEP.items():
        r, s = by_name.get(rate), by_name.get(step)
        if r is None or s is None:
            continue
        # the rate's own test does not matter (a FLOPs rate had none: "fewer than 4 samples")
        if s.test is None and s.verdict != "not_tested":
            continue  # equal or below the floor: the rate keeps its own (threshold) verdict
        if r.verdict not in judged or s.verdict not in judged + ("not_tested",):
            continue  # a rate not measured on a side stays "missing"; not tested, not tested
        r.verdict, r.regression = s.verdict, s.regression  # better/worse already follow direction
        r.test, r.p_value, r.ci_low, r.ci_high = s.test, s.p_value, None, None
        r.n_a, r.n_b = s.n_a, s.n_b  # the samples the test counted: the step time's
        r.mde_pct = s.mde_pct
        lead, rest = "", s.reason
        for prefix in ("~ ", "inconclusive, not judged: ", "not tested, not gated: "):
            if s.reason.startswith(prefix):
                lead, rest = prefix, s.reason[len(prefix) :]
        r.reason = (
            f"{lead}judged on {step} (this rate is the "
            f"global batch / the mean step time: one statistic, one verdict): {rest}"
        )


def _memory_floor(rows: list[Row]) -> None:
    """`memory_utilization_percent` is the ranks' peak memory over the host's (or device's)
    total: a change smaller than `memory_peak_mib`'s 1 MiB floor relative to the peak (1 MiB
    of 342 MiB: 0.29 %) is below the noise floor here too, never judged on its own test (a
    +0.01 % utilisation was inconclusive beside its peak's 'below the noise floor')."""
    by_name = {r.metric: r for r in rows}
    u, peak = by_name.get("memory_utilization_percent"), by_name.get("memory_peak_mib")
    floor_mib = metrics_registry.noise_floor("memory_peak_mib")
    if u is None or peak is None or floor_mib is None or peak.a is None or peak.a <= 0:
        return
    if u.verdict not in ("better", "worse", "no_change", "inconclusive") or u.below_floor:
        return
    if u.a is None or not u.delta_abs:  # equal values stay "equal values"
        return
    floor = abs(u.a) * floor_mib / peak.a
    if abs(u.delta_abs) >= floor:
        return
    u.verdict, u.regression, u.below_floor, u.noise_floor = "no_change", False, True, floor
    u.test = u.p_value = u.ci_low = u.ci_high = u.mde_pct = None
    u.reason = (
        f"below the noise floor ({abs(u.delta_abs):.3g} < {floor:.3g} %: memory_peak_mib's "
        f"{floor_mib:g} MiB floor relative to its {peak.a:.4g} MiB peak)"
    )


def _structures(
    a: BenchmarkRecord, b: BenchmarkRecord, threshold_pct: float, alpha: float
) -> dict[str, drift.Structure]:
    """Each side whose step time drifts or changes level within its run (compare/drift.py)."""
    out = {}
    for rec in (a, b):
        samples = rec.samples.get("step_time_mean_ms")
        if samples:
            found = drift.find(samples, threshold_pct, alpha, "ms")
            if found is not None:
                out[rec.label] = found
    return out


def _setup_warnings(
    a: BenchmarkRecord, b: BenchmarkRecord, fit: comparability.Comparability
) -> list[str]:
    """What the fingerprints say (differences, unknowns, allowed differences); for a record
    without a fingerprint, the set-up details both sides record."""
    if a.fingerprint is not None and b.fingerprint is not None:
        reason = fit.reason()
        return ([reason] if reason else []) + fit.notes()
    out = []
    for key, what in _SETUP_DETAILS:
        va, vb = a.details.get(key), b.details.get(key)
        if va is not None and vb is not None and va != vb:
            out.append(f"{what} differ ({va} vs {vb})")
    if a.hardware and b.hardware and a.hardware != b.hardware:
        out.append(f"hardware differs ({a.hardware} vs {b.hardware})")
    elif not (a.hardware and b.hardware):
        out.append("hardware unknown for at least one input: cannot check it matches")
    return out


def _row(
    name: str,
    a: BenchmarkRecord,
    b: BenchmarkRecord,
    cross: str | None,
    unfinished: list[str],
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
        noise_floor=metrics_registry.noise_floor(name),
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
    row.ratio = row.b / row.a if row.a > 0 and row.b > 0 else None
    coverage_note = ""
    if ma.coverage and mb.coverage and ma.coverage.fraction != mb.coverage.fraction:
        less = a if ma.coverage.fraction < mb.coverage.fraction else b
        gap = abs(ma.coverage.fraction - mb.coverage.fraction)
        said = f"{a.label}: {ma.coverage.describe()}; {b.label}: {mb.coverage.describe()}"
        if gap > COVERAGE_TOLERANCE:
            row.verdict = "not_comparable"
            row.reason = (
                f"{less.label} covers less ({said}): a number over {gap:.0%} fewer "
                f"{ma.coverage.what} is not compared"
            )
            return row
        # a small gap is weighed, not a reason to judge nothing: said with the verdict
        coverage_note = (
            f"; coverage differs by {gap:.1%} ({said}), within {COVERAGE_TOLERANCE:.0%}: judged"
        )
    estimated = [rec.label for rec, mv in ((a, ma), (b, mb)) if mv.status == "estimated"]
    if len(estimated) == 1 or (estimated and a.source_format != b.source_format):
        row.verdict = "not_comparable"
        row.reason = (
            f"estimated, not measured, by {' and '.join(estimated)} (the source says so): an "
            "estimate is not compared with a measurement, nor with another tool's estimate"
        )
        return row
    if estimated:  # one estimate on both sides: a verdict to read, never a gate
        coverage_note += "; estimated on both sides by one format (see the warnings): not gated"
    if unfinished:
        row.verdict = "not_comparable"
        row.reason = (
            f"{'; '.join(unfinished)}: a run that did not finish ok is not compared (its numbers "
            "cover only what ran before it stopped); the gate fails"
        )
        return row
    if cross:
        row.verdict = "not_comparable"
        semantics = (
            "; training step latency vs inference request latency"
            if m.family in ("latency", "llm")
            and "inference" in (a.workload_type, b.workload_type)
            and a.workload_type != b.workload_type
            else ""
        )
        row.reason = f"{cross}: values and ratio only{semantics}"
        return row
    if m.direction == "none":
        row.verdict, row.reason = "not_comparable", "no better direction for this metric (registry)"
        return row
    row.n_a, row.n_b = len(a.samples.get(name, [])) or None, len(b.samples.get(name, [])) or None
    if delta == 0:
        row.verdict, row.reason = "no_change", "equal values"
        return row
    if row.noise_floor is not None and abs(delta) < row.noise_floor:
        row.verdict, row.below_floor = "no_change", True
        row.reason = f"below the noise floor ({abs(delta):.3g} < {row.noise_floor:g} {m.unit})"
        return row
    row = _judge(row, m, a, b, threshold_pct, alpha)
    row.reason += coverage_note
    if estimated:
        row.regression = False
    return row


def _judge(
    row: Row,
    m: metrics_registry.Metric,
    a: BenchmarkRecord,
    b: BenchmarkRecord,
    threshold_pct: float,
    alpha: float,
) -> Row:
    """Significance, spread and threshold for a measured, comparable, above-floor difference."""
    assert row.a is not None and row.b is not None and row.delta_abs is not None
    if a.runs or b.runs:
        return _judge_runs(row, m, a, b, threshold_pct, alpha)
    sa, sb = a.samples.get(m.name, []), b.samples.get(m.name, [])
    tested = len(sa) >= MIN_SAMPLES and len(sb) >= MIN_SAMPLES
    if not tested and m.per_step and a.workload_type == "training":
        row.verdict = "not_tested"
        row.reason = "not tested, not gated: " + "; ".join(
            f"{rec.label}: {_no_samples(rec, m.name, len(s))}"
            for rec, s in ((a, sa), (b, sb))
            if len(s) < MIN_SAMPLES
        )
        return row
    improved = (row.delta_abs > 0) == (m.direction == "higher")
    if tested:
        row.test, row.p_value = tails.test(m.statistic, sa, sb)
        # a candidate that drifts or bursts is measured around its structure, never excused by
        # it; the baseline's own structure stays part of the yardstick (how much runs move)
        spread_b = drift.adjusted(sb, drift.find(sb, threshold_pct, alpha, m.unit))
        row.ci_low, row.ci_high = stats.spread_ci(m.name, sa, sb, None, spread_b)
        if math.isfinite(row.ci_high - row.ci_low) and row.a:
            row.mde_pct = max(threshold_pct, 50.0 * (row.ci_high - row.ci_low) / abs(row.a))
        if row.p_value >= alpha:
            row.verdict = "no_change"
            test = f"{_TEST_NAME[row.test]} p={fmt_p(row.p_value, alpha)} >= alpha {alpha:g}"
            # as with repeats and `history check`: "no change" only where a regression could
            # have been seen (rule 9b), else inconclusive, not judged
            if not _inconclusive(
                row, m, threshold_pct, f"not significant: {test}", "the test", "this comparison"
            ):
                row.reason = f"~ not significant ({test}){_mde_text(row)}"
            return row
    basis = (
        f"significant ({_TEST_NAME[row.test or '']} p={fmt_p(row.p_value, alpha)})"
        if row.p_value is not None
        else f"no test: fewer than {MIN_SAMPLES} samples a side"
    )
    if row.delta_pct is None:
        row.verdict = "better" if improved else "worse"
        row.reason = f"baseline is 0: percent undefined, threshold not applicable; {basis}"
        return row
    spread = ""
    if tested:
        assert row.ci_low is not None and row.ci_high is not None
        if row.ci_low <= 0 <= row.ci_high:
            spread = (
                f"the {stats.CONFIDENCE:.0%} prediction interval of the difference over blocks "
                f"of steps, [{row.ci_low:.4g}, {row.ci_high:.4g}] {m.unit}, includes 0 "
                f"({_TEST_NAME[row.test or '']} p={fmt_p(row.p_value, alpha)})"
            )
    if abs(row.delta_pct) < threshold_pct:
        row.verdict = "no_change"
        # within the threshold, but inside a spread too wide to have seen a regression
        if not (
            spread
            and _inconclusive(
                row, m, threshold_pct, spread, "the run-to-run spread", "this comparison"
            )
        ):
            row.reason = f"within the {threshold_pct:g}% threshold; {basis}"
        return row
    if spread:
        row.verdict = "no_change"
        if not _inconclusive(
            row, m, threshold_pct, spread, "the run-to-run spread", "this comparison"
        ):
            row.reason = f"~ within the run-to-run spread: {spread}{_mde_text(row)}"
        return row
    if tested:
        basis += (
            f"; beyond the run-to-run spread ({stats.CONFIDENCE:.0%} prediction interval over blocks of "
            f"steps: [{row.ci_low:.4g}, {row.ci_high:.4g}] {m.unit})"
        )
    row.verdict = "better" if improved else "worse"
    row.regression = not improved
    verb = "regressed" if row.regression else "improved"
    row.reason = f"{verb} beyond {threshold_pct:g}%; {basis}"
    return row


_TEST_NAME = {
    "mann-whitney-u": "MWU",
    "welch-t": "Welch t",
    "quantile-exceedance-fisher": "tail exceedance",
    "runs-t": "t over runs",
    "": "",
}


def _mde_text(row: Row) -> str:
    if row.mde_pct is None:
        return ""
    return f"; the smallest change this comparison could detect: {row.mde_pct:.3g}%"


def _inconclusive(
    row: Row, m: metrics_registry.Metric, threshold_pct: float, spread: str, noise: str, who: str
) -> bool:
    """Make `row` (a tested difference the test or the spread cannot tell from noise)
    `inconclusive` when no change cannot be told from a regression, as `history check` says
    it: the change is itself worse by the threshold or more, or the smallest change the
    comparison could detect (`mde_pct`) is `INCONCLUSIVE_MDE_FACTOR` times the threshold or
    more. Not judged, not gated, never counted as no change. True when it did."""
    change = row.delta_pct
    if m.direction not in ("higher", "lower"):
        return False
    worse = change is not None and (change > 0) == (m.direction == "lower")
    if worse and change is not None and abs(change) >= threshold_pct:
        row.verdict = "inconclusive"
        row.reason = (
            f"inconclusive, not judged: a {change:+.3g}% change, worse by more than the "
            f"{threshold_pct:g}% threshold, that {noise} can neither confirm nor rule out "
            f"({spread}{_mde_text(row)}); record more runs"
        )
        return True
    if row.mde_pct is not None and row.mde_pct >= INCONCLUSIVE_MDE_FACTOR * threshold_pct:
        row.verdict = "inconclusive"
        row.reason = (
            f"inconclusive, not judged: the smallest change {who} could detect is "
            f"{row.mde_pct:.3g}%, at least {INCONCLUSIVE_MDE_FACTOR:g}x the "
            f"{threshold_pct:g}% threshold ({spread}): no change cannot be told "
            "from a regression; record more runs"
        )
        return True
    return False


def _judge_runs(
    row: Row,
    m: metrics_registry.Metric,
    a: BenchmarkRecord,
    b: BenchmarkRecord,
    threshold_pct: float,
    alpha: float,
) -> Row:
    """Several runs a side (compare/repeats.py): each run's value is one observation."""
    assert row.delta_pct is not None or row.delta_abs is not None
    g = repeats.group_test(m.name, a, b, 1 - alpha)
    row.n_a, row.n_b = len(a.runs) or 1, len(b.runs) or 1
    if g is None:
        row.verdict = "not_tested"
        row.reason = (
            f"not tested, not gated: {row.n_a} and {row.n_b} runs with a value of this metric "
            "(3 or more in all, one or more a side, all > 0, needed)"
        )
        return row
    if not math.isfinite(g.high_pct):
        row.verdict = "not_tested"
        row.reason = (
            f"not tested, not gated: the {row.n_a} and {row.n_b} runs' values of this metric differ "
            "too widely for a finite interval"
        )
        return row
    row.test, row.p_value, row.mde_pct = "runs-t", g.p_value, max(threshold_pct, g.mde_pct)
    row.ci_low, row.ci_high = g.low_pct, g.high_pct  # percent of A, for runs
    improved = (g.low_pct + g.high_pct > 0) == (m.direction == "higher")
    # the interval's level is 1 - alpha with alpha split over the metrics (Bonferroni): with
    # 16 metrics 99.7%, never rounded to "100%"; with 2 runs a side (df 2) it is wide
    spread = (
        f"{row.n_a} vs {row.n_b} runs, t over the runs' values (df {g.df}): "
        f"{100 * (1 - alpha):.3g}% interval of B vs A (alpha {alpha:.2g}, split over the "
        f"metrics tested) [{g.low_pct:+.3g}%, {g.high_pct:+.3g}%]"
    )
    if g.p_value >= alpha or g.low_pct <= 0 <= g.high_pct:
        row.verdict = "no_change"
        if not _inconclusive(
            row, m, threshold_pct, f"{spread}, includes 0", "the between-run spread", "these runs"
        ):
            row.reason = f"~ within the between-run spread: {spread}, includes 0{_mde_text(row)}"
        return row
    if row.delta_pct is not None and abs(row.delta_pct) < threshold_pct:
        row.verdict = "no_change"
        row.reason = f"within the {threshold_pct:g}% threshold; {spread}"
        return row
    row.verdict = "better" if improved else "worse"
    row.regression = not improved
    verb = "regressed" if row.regression else "improved"
    row.reason = f"{verb} beyond {threshold_pct:g}%; beyond the between-run spread: {spread}"
    return row


def fmt_p(p: float | None, alpha: float) -> str:
    """`p` with the fewest significant digits (at least 3) that keep it on its side of alpha."""
    if p is None:
        return "n/a"
    for digits in range(3, 12):
        text = f"{p:.{digits}g}"
        if (float(text) < alpha) == (p < alpha):
            return text
    return repr(p)


def _no_samples(rec: BenchmarkRecord, name: str, n: int) -> str:
    if n:
        return f"{n} per-step samples, fewer than {MIN_SAMPLES}"
    if rec.series is None:
        return (
            "no per-step series (steps.series: a minicluster/1.0 result, or one converted from "
            "another format)"
        )
    if metrics_registry.REGISTRY[name].statistic is None:
        return "no per-step series reproduces this metric"
    return "its per-step series does not reproduce the value (see the warnings)"


def _why(rec: BenchmarkRecord, name: str) -> str:
    mv = rec.metrics.get(name)
    if mv is None:
        return "not reported"
    return mv.reason or f"status {mv.status}"


def _geomean(rows: list[Row]) -> tuple[float | None, int, dict[str, int]]:
    """Geometric mean of b-over-a ratios oriented so > 1 favours b, over the judged rows; and
    how many rows it leaves out, by why."""
    ratios: list[float] = []
    excluded = {
        "inconclusive": 0,
        "not_tested": 0,
        "below_noise_floor": 0,
        "not_comparable": 0,
        "missing": 0,
        "zero_value": 0,
    }
    for r in rows:
        if not r.judged:
            key = "below_noise_floor" if r.below_floor else r.verdict
            excluded[key] = excluded.get(key, 0) + 1
            continue
        if r.ratio is None:  # a zero on one side: no ratio to take
            excluded["zero_value"] += 1
            continue
        ratios.append(r.ratio if r.direction == "higher" else 1.0 / r.ratio)
    return stats.geometric_mean(ratios), len(ratios), excluded
