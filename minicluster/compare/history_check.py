"""`history check`: a new result against the last N comparable runs of the history.

Per gated metric the series is the runs' values in the order they were added, the new result
last, on a log scale. Change points are found with ruptures (binary segmentation, least squares,
penalty 3 log(n) sigma^2 with sigma from the successive differences, a BIC-like choice that does
not count the shifts themselves as noise) and each is kept only when the segments on both sides
differ by Student's t at alpha (the significance rule Hunter/Otava apply to E-divisive's
candidates; E-divisive itself is not installable beside numpy 2: apache-otava pins numpy 2.2,
signal-processing-algorithms numpy < 2).

The new run is judged against the regime before it: the runs after the last change point that
precedes its own segment (or all of them when there is none), with the between-run spread of
those runs (Student's t on the pooled variance of the log values). A regression needs the
worse direction, p < alpha divided over the gated metrics (Bonferroni: one gate, one error
rate), and at least the threshold. When the new run's segment already holds earlier runs, the
regression is dated to its first run ("since"); a new level that has held for `settle` runs is
the baseline from then on (said, not gated again).

"No change" is a verdict only where the data could have seen a regression: a change that is not
significant but is itself a regression's size (worse by the threshold or more), or that a spread
so wide stands beside that the smallest detectable change is `INCONCLUSIVE_MDE_FACTOR` times the
threshold or more, is inconclusive: not judged, as a check with too short a history is. Any
gated metric not judged makes the whole check NOT JUDGED (`not_judged` in the exit-code policy,
as `fleet` and `diagnose` use it): a gate never passes on what it could not judge.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from minicluster.compare import host_load
from minicluster.compare.engine import INCONCLUSIVE_MDE_FACTOR, UNFINISHED_VERDICTS
from minicluster.compare.history import Run
from minicluster.core import metrics as metrics_registry
from minicluster.core.errors import InputError
from minicluster.core.units import format_pct as pct
from minicluster.core.units import format_value as value
from minicluster.interop.record import BenchmarkRecord

# gated by default: the headline figures of each kind of result (the others are noisier parts)
DEFAULT_METRICS = (
    "throughput_samples_per_sec",
    "step_time_mean_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "tokens_per_sec",
    "ttft_ms",
    "decode_tpt_ms",
    "busbw_gbps",
    "memory_peak_mib",
)
MIN_HISTORY = 3  # fewer comparable earlier runs: not judged (said), as conbench does
DEFAULT_LAST = 30
DEFAULT_SETTLE = 5


@dataclass
class MetricCheck:
    metric: str
    unit: str
    direction: str
    verdict: str  # regression, improvement, no_change, not_judged
    reason: str
    value: float | None
    # the baseline's median (a figure for the plot); the change is NOT against it, but against
    # `baseline_level`: the level of the log-scale model, the geometric mean of the baseline runs
    baseline_median: float | None = None
    baseline_level: float | None = None
    # the candidate's level: the geometric mean of the runs at its level (the candidate alone, or
    # with the earlier runs already at the new level: `level_runs`, the candidate as None);
    # change_pct = level / baseline_level - 1
    level: float | None = None
    level_runs: list[int | None] = field(default_factory=list)
    change_pct: float | None = None
    low_pct: float | None = None
    high_pct: float | None = None
    p_value: float | None = None
    mde_pct: float | None = None
    since: dict[str, Any] | None = None
    change_points: list[dict[str, Any]] = field(default_factory=list)
    baseline_runs: list[int] = field(default_factory=list)
    trend: list[dict[str, Any]] = field(default_factory=list)  # the plot data

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckResult:
    candidate: str
    history_runs: int
    metrics: list[MetricCheck]
    alpha: float
    alpha_per_metric: float
    threshold_pct: float
    notes: list[str]
    changed: list[str]
    # "LABEL: run status is 'failed'" when the candidate did not finish ok (as `compare` says)
    unfinished: str | None = None
    # the candidate's own verdicts (exit-policy names, e.g. "straggler") and findings, one line
    # each: what its own run said of it, whatever the history says of its numbers
    own_verdicts: list[str] = field(default_factory=list)
    own_findings: list[str] = field(default_factory=list)
    # why the candidate's own verdict was NOT JUDGED (too few steps, too few pairs), if it was
    own_not_judged: list[str] = field(default_factory=list)
    # the candidate's step-time change is its hosts' CPU load against its baseline runs'
    # (compare.host_load): its timing metrics are not judged
    host_load: str | None = None
    # comparable runs of the history that are never baselines, per status (`History.set_aside`)
    set_aside: dict[str, int] = field(default_factory=dict)

    @property
    def regressions(self) -> list[MetricCheck]:
        return [m for m in self.metrics if m.verdict == "regression"]

    @property
    def not_judged(self) -> list[MetricCheck]:
        return [m for m in self.metrics if m.verdict == "not_judged"]

    @property
    def own_checks_failed(self) -> list[str]:
        """The candidate's own verdicts that made its own command exit 1 (a straggler, wrong
        numbers, a slow link...); a failed or interrupted run is `unfinished`."""
        return [v for v in self.own_verdicts if v not in UNFINISHED_VERDICTS and v != "not_judged"]

    @property
    def own_unjudged(self) -> bool:
        """The candidate's own verdict was NOT JUDGED and its own checks named no finding: the
        check is NOT JUDGED whatever its numbers say (never a pass, never "failed its own
        checks")."""
        return "not_judged" in self.own_verdicts and not self.own_checks_failed

    @property
    def gate_failed(self) -> bool:
        """A regression, a candidate whose run did not finish ok, or one that failed its own
        checks: the gate never passes a run that failed or was interrupted, whatever its partial
        numbers say (as `compare`), nor one whose own run named a finding."""
        return bool(self.regressions) or self.unfinished is not None or bool(self.own_checks_failed)

    @property
    def judged(self) -> bool:
        """Every gated metric judged, against enough history: only then can the gate pass."""
        return (
            self.history_runs >= MIN_HISTORY
            and bool(self.metrics)
            and not self.not_judged
            and not self.own_unjudged
        )

    @property
    def verdict(self) -> str:
        """`regression` (the gate fails: a regression, a candidate that did not finish ok or
        failed its own checks), `not_judged`, or `ok` (no regression in any gated metric)."""
        if self.gate_failed:
            return "regression"
        return "ok" if self.judged else "not_judged"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "minicluster-history-check/1",
            "candidate": self.candidate,
            "history_runs": self.history_runs,
            "threshold_pct": self.threshold_pct,
            "alpha": self.alpha,
            "alpha_per_metric": self.alpha_per_metric,
            "regression_found": bool(self.regressions),
            "regressions": [m.metric for m in self.regressions],
            "unfinished": self.unfinished,
            "own_verdicts": self.own_verdicts,
            "own_findings": self.own_findings,
            "own_not_judged": self.own_not_judged,
            "host_load": self.host_load,
            "set_aside": self.set_aside,
            "gate_failed": self.gate_failed,
            "verdict": self.verdict,
            "not_judged": [m.metric for m in self.not_judged],
            "what_else_changed": self.changed,
            "notes": self.notes,
            "metrics": [m.to_dict() for m in self.metrics],
        }


def change_points(x: np.ndarray, alpha: float) -> list[int]:
    """Indices i where a new level starts in `x` (segments kept only when Student's t between
    the neighbouring segments has p < alpha)."""
    import ruptures

    n = x.size
    if n < 4:
        return []
    d = np.diff(x)
    sigma = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2)
    if sigma == 0:
        sigma = float(np.std(x)) or 1e-12
    bkps = (
        ruptures.Binseg(model="l2", min_size=1, jump=1)
        .fit(x)
        .predict(pen=3 * math.log(n) * sigma**2)
    )
    cps = [b for b in bkps if b < n]
    kept: list[int] = []
    bounds = [0, *cps, n]
    for i, cp in enumerate(cps, start=1):
        left, right = x[bounds[i - 1] : cp], x[cp : bounds[i + 1]]
        if _two_sample_p(left, right) < alpha:
            kept.append(cp)
    return kept


def _two_sample_p(a: np.ndarray, b: np.ndarray) -> float:
    """Student's t p-value of two groups of runs on the pooled variance; a single run against a
    group is the prediction test of that run."""
    from scipy.stats import t as student_t

    df = a.size + b.size - 2
    if df < 1:
        return 1.0
    ss = float(np.sum((a - a.mean()) ** 2) + np.sum((b - b.mean()) ** 2))
    se = math.sqrt(ss / df) * math.sqrt(1 / a.size + 1 / b.size)
    diff = float(b.mean() - a.mean())
    if se == 0:
        return 1.0 if diff == 0 else 0.0
    return float(2 * student_t.sf(abs(diff / se), df))


def check_options(threshold_pct: float, alpha: float, settle: int) -> None:
    """InputError (one line, exit 2) for options no gate can be run with: a check at alpha 5
    called three metrics regressed on made-up intervals (new-user trial, 2026-12-07)."""
    if not (math.isfinite(threshold_pct) and threshold_pct >= 0):
        raise InputError(f"--threshold must be a percent >= 0, got {threshold_pct}")
    if not (0 < alpha < 1):
        raise InputError(f"--alpha must be between 0 and 1 (an error rate), got {alpha}")
    if settle < 2:
        # a level of one run (the candidate's) would be the baseline: nothing could regress
        raise InputError(f"--settle must be >= 2 runs, got {settle}")


def check(
    record: BenchmarkRecord,
    history: list[Run],
    metrics: tuple[str, ...] | None = None,
    threshold_pct: float = 5.0,
    alpha: float = 0.05,
    settle: int = DEFAULT_SETTLE,
) -> CheckResult:
    """Judge `record` against `history` (comparable runs, oldest first)."""
    check_options(threshold_pct, alpha, settle)
    notes: list[str] = []
    wanted = metrics or DEFAULT_METRICS
    gated = [
        name
        for name in wanted
        if record.measured(name) is not None
        and metrics_registry.get(name) is not None
        and metrics_registry.REGISTRY[name].direction != "none"
    ]
    if metrics:
        for name in metrics:
            if name not in gated:
                notes.append(
                    f"{name}: not measured in the candidate, or has no direction: not gated"
                )
    per_metric = alpha / max(1, len(gated))
    out: list[MetricCheck] = []
    for name in gated:
        out.append(_one(name, record, history, threshold_pct, per_metric, settle))
    status = record.details.get("run_status")
    unfinished = None
    if status not in (None, "ok"):
        unfinished = f"{record.label}: run status is {status!r}"
        for m in out:  # partial numbers are not judged, as `compare` does not compare them
            m.verdict = "not_judged"
            m.reason = (
                f"{unfinished}: a run that did not finish ok is not judged (its numbers cover "
                "only what ran before it stopped); the gate fails"
            )
    load = _host_load(record, history, out, threshold_pct)
    if len(history) < MIN_HISTORY:
        notes.append(
            f"only {len(history)} comparable earlier run(s) in the history (at least "
            f"{MIN_HISTORY} needed): not judged; record more runs (`history add`)"
        )
    return CheckResult(
        record.label,
        len(history),
        out,
        alpha,
        per_metric,
        threshold_pct,
        notes,
        _changed(record, history),
        unfinished,
        list(record.details.get("own_verdicts") or []),
        list(record.details.get("own_findings") or []),
        list(record.details.get("own_not_judged") or []),
        load,
    )


def _one(
    name: str,
    record: BenchmarkRecord,
    history: list[Run],
    threshold_pct: float,
    alpha: float,
    settle: int,
) -> MetricCheck:
    from scipy.stats import t as student_t

    m = metrics_registry.REGISTRY[name]
    mv = record.measured(name)
    assert mv is not None and mv.value is not None
    runs = [r for r in history if _positive(r.values.get(name))]
    trend = [
        {"run": r.id, "added_at": r.added_at, "git_commit": r.git_commit, "value": r.values[name]}
        for r in runs
    ] + [{"run": None, "added_at": None, "git_commit": None, "value": mv.value, "candidate": True}]
    res = MetricCheck(name, m.unit, m.direction, "not_judged", "", mv.value, trend=trend)
    if len(runs) < MIN_HISTORY or mv.value <= 0:
        res.reason = (
            f"{len(runs)} earlier comparable run(s) with this metric: fewer than {MIN_HISTORY}"
        )
        return res
    x = np.log(np.array([r.values[name] for r in runs] + [mv.value], dtype=float))
    cps = change_points(x, alpha)
    for cp in cps:
        before, after = x[:cp], x[cp:]
        res.change_points.append(
            {
                "index": cp,
                "run": runs[cp].id if cp < len(runs) else None,
                "git_commit": runs[cp].git_commit if cp < len(runs) else None,
                "change_pct": 100
                * (math.exp(min(float(np.median(after) - np.median(before)), 700)) - 1),
            }
        )
    n = x.size
    cand = n - 1
    last_cp = cps[-1] if cps else None
    if last_cp is None:
        prev_cp, tail_start = 0, cand
    elif n - last_cp >= settle:
        # a level that has held for `settle` runs (the new one included) is the baseline now
        prev_cp, tail_start = last_cp, cand
        res.reason = (
            f"a level that began at run #{runs[last_cp].id} has held for {n - last_cp} runs: "
            "it is the baseline; "
        )
    else:
        prev_cp, tail_start = (cps[-2] if len(cps) >= 2 else 0), last_cp
    if tail_start - prev_cp < 2:  # too few runs at the level before: all earlier runs
        prev_cp, tail_start = 0, cand
    base, tail = x[prev_cp:tail_start], x[tail_start:]
    res.baseline_runs = [r.id for r in runs[prev_cp:tail_start]]
    res.baseline_median = float(math.exp(np.median(base)))
    res.baseline_level = float(math.exp(base.mean()))
    res.level = float(math.exp(tail.mean()))
    res.level_runs = [r.id for r in runs[tail_start:]] + [None]
    df = base.size + tail.size - 2
    ss = float(np.sum((base - base.mean()) ** 2) + np.sum((tail - tail.mean()) ** 2))
    se = math.sqrt(ss / df) * math.sqrt(1 / base.size + 1 / tail.size) if df >= 1 else math.inf
    diff = float(tail.mean() - base.mean())
    crit = float(student_t.ppf(1 - alpha / 2, df)) if df >= 1 else math.inf
    res.p_value = _two_sample_p(base, tail)
    if max(abs(diff), abs(diff) + crit * se if math.isfinite(se) else 0.0) >= 700:
        res.verdict = "not_judged"
        res.reason += "not judged: the runs' values differ too widely for a finite interval"
        return res
    res.change_pct = 100 * (math.exp(diff) - 1)
    res.low_pct = 100 * (math.exp(diff - crit * se) - 1) if math.isfinite(se) else None
    res.high_pct = 100 * (math.exp(diff + crit * se) - 1) if math.isfinite(se) else None
    res.mde_pct = max(threshold_pct, 100 * (math.exp(crit * se) - 1)) if math.isfinite(se) else None
    worse = (diff > 0) == (m.direction == "lower")
    since_run = runs[tail_start] if tail_start < len(runs) else None
    interval = (
        f"{pct(res.change_pct)}%: {_level_said(res)} vs the baseline level "
        f"{value(res.baseline_level)} (geometric mean of runs #{res.baseline_runs[0]}-"
        f"#{res.baseline_runs[-1]}, {len(res.baseline_runs)} runs; their median "
        f"{value(res.baseline_median)}), {100 * (1 - alpha):.3g}% interval "
        f"[{pct(res.low_pct)}%, {pct(res.high_pct)}%], t p={res.p_value:.2g}"
    )
    if res.p_value >= alpha:
        if worse and abs(res.change_pct) >= threshold_pct:
            res.reason += (
                f"inconclusive, not judged: a {pct(res.change_pct)}% change, worse by more than "
                f"the {threshold_pct:g}% threshold, that the between-run spread can neither "
                f"confirm nor rule out ({interval}; smallest detectable change "
                f"{pct(res.mde_pct, signed=False)}%); record more runs"
            )
            return res
        if res.mde_pct is not None and res.mde_pct >= INCONCLUSIVE_MDE_FACTOR * threshold_pct:
            res.reason += (
                f"inconclusive, not judged: the smallest change these runs could detect is "
                f"{pct(res.mde_pct, signed=False)}%, at least {INCONCLUSIVE_MDE_FACTOR:g}x the {threshold_pct:g}% "
                f"threshold ({interval}): no change cannot be told from a regression; record "
                "more runs"
            )
            return res
        res.verdict = "no_change"
        res.reason += f"~ within the between-run spread: {interval}; smallest detectable change {pct(res.mde_pct, signed=False)}%"
    elif abs(res.change_pct) < threshold_pct:
        res.verdict = "no_change"
        res.reason += f"within the {threshold_pct:g}% threshold: {interval}"
    else:
        res.verdict = "regression" if worse else "improvement"
        res.reason += f"{'regressed' if worse else 'improved'}: {interval}"
        if since_run is not None:
            res.since = {
                "run": since_run.id,
                "added_at": since_run.added_at,
                "git_commit": since_run.git_commit,
                "runs_at_new_level": int(tail.size),
            }
            res.reason += (
                f"; since run #{since_run.id} (commit {since_run.git_commit or 'unknown'}, added "
                f"{since_run.added_at}): {tail.size} runs at the new level"
            )
        else:
            res.since = {"run": None, "runs_at_new_level": 1}
            res.reason += "; since this run"
    return res


def _host_load(
    record: BenchmarkRecord, history: list[Run], out: list[MetricCheck], threshold_pct: float
) -> str | None:
    """When the candidate's step-time change against its baseline runs is their hosts' CPU load
    (`compare.host_load`: the run-queue delay changed by half the change or more, the CPU time
    by less), its timing metrics are not judged (said on each); the line, else None."""
    step = next((m for m in out if m.metric == "step_time_mean_ms"), None)
    load = host_load.load_of(record.details)
    if (
        step is None
        or step.value is None
        or load is None
        or not step.baseline_runs
        or step.baseline_level is None
    ):
        return None
    by_id = {r.id: r for r in history}
    loads = [host_load.load_of(by_id[i].platform) for i in step.baseline_runs if i in by_id]
    if not loads or any(x is None or x.get("threads") != load.get("threads") for x in loads):
        return None
    base = {
        "cpu_ms": float(np.mean([x["cpu_ms"] for x in loads if x is not None])),
        "cpu_wait_ms": float(np.mean([x["cpu_wait_ms"] for x in loads if x is not None])),
        "threads": load.get("threads"),
    }
    if not host_load.explained(step.baseline_level, step.value, base, load, threshold_pct):
        return None
    said = host_load.line(
        f"the baseline runs #{step.baseline_runs[0]}-#{step.baseline_runs[-1]}",
        record.label,
        step.baseline_level,
        step.value,
        base,
        load,
    )
    for m in out:
        family = metrics_registry.REGISTRY[m.metric].family
        if family in host_load.UNTIMED_FAMILIES or m.verdict == "not_judged":
            continue
        m.verdict = "not_judged"
        m.reason = f"not judged: {said}"
    return said


def _level_said(res: MetricCheck) -> str:
    """`this run 3530` or `the new level 3400 (geometric mean of runs #5-#7 and this run)`."""
    earlier = [i for i in res.level_runs if i is not None]
    if not earlier:
        return f"this run {value(res.level)}"
    return (
        f"the new level {value(res.level)} (geometric mean of runs #{earlier[0]}-#{earlier[-1]} and "
        f"this run, {value(res.value)})"
    )


def _positive(value: float | None) -> bool:
    return isinstance(value, (int, float)) and value > 0


def _changed(record: BenchmarkRecord, history: list[Run]) -> list[str]:
    """What differs between the candidate and the newest run of its history besides the result:
    versions, platform, commit, labels (and fields the user allowed to differ)."""
    if not history:
        return []
    last = history[-1]
    now = {
        "tool_version": record.tool_version,
        "framework_version": record.details.get("framework_version"),
        "os": record.details.get("os"),
        "hardware": record.hardware,
        "launcher": record.details.get("launcher"),
    }
    out = [
        f"{k}: {last.platform.get(k)} -> {v}"
        for k, v in now.items()
        if v is not None and last.platform.get(k) is not None and last.platform.get(k) != v
    ]
    fa, fb = last.fingerprint.get("fields") or {}, (record.fingerprint or {}).get("fields") or {}
    out += [f"{k}: {fa.get(k)} -> {fb.get(k)} (allowed)" for k in fb if fa.get(k) != fb.get(k)]
    return out
