"""Several runs a side: one record standing for K repeats of the same job, and the test that treats
runs as clusters.

Steps within a run are not independent and neither are runs: a whole run lands in a slow or a
fast phase of a shared host (identical runs here differ by 24-36% as a whole). So with several
runs a side the unit of the test is the run: each run's own statistic of the metric (its median,
p95, mean, ...) is one observation, and the difference of the sides' mean log-statistics is
tested with Student's t on the pooled between-run variance (the summary-statistics form of a
random-intercept model: a run's statistic carries its within-run noise and the run's own
offset). Its interval is the change this many runs can tell from noise: the smallest detectable
change (MDE) is stated. A bootstrap over runs has too few distinct resamples for K <= 5 (10 for
K = 3) to be trusted, which is why the t form is used.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from minicluster.core import rundir
from minicluster.core.errors import InputError
from minicluster.core.metrics import MetricValue
from minicluster.interop.record import BenchmarkRecord
from minicluster.result.fingerprint import key


@dataclass(frozen=True)
class GroupTest:
    """The run-level test of one metric: per-run values, p, the % interval of B vs A, the MDE."""

    values_a: tuple[float, ...]
    values_b: tuple[float, ...]
    p_value: float
    low_pct: float
    high_pct: float
    mde_pct: float
    df: int


def combine(records: Sequence[BenchmarkRecord], label: str) -> BenchmarkRecord:
    """One record for K runs of one job (`runs` keeps them). InputError when their fingerprints
    differ: repeats must have run the same thing."""
    if not records:
        raise InputError(f"{label}: no run")
    if len(records) == 1:
        return records[0]
    first = records[0]
    keys = {key(r.fingerprint or {}) for r in records}
    if len(keys) > 1:
        fa = (first.fingerprint or {}).get("fields") or {}
        for r in records[1:]:
            fb = (r.fingerprint or {}).get("fields") or {}
            diff = [f for f in fa if fa.get(f) != fb.get(f)]
            if diff:
                raise InputError(
                    f"{label}: {r.label} is not a repeat of {first.label} ({diff[0]}: "
                    f"{fa.get(diff[0])} vs {fb.get(diff[0])}): repeats must run the same job"
                )
    metrics: dict[str, MetricValue] = {}
    for name, mv in first.metrics.items():
        values = [
            float(m.value)
            for r in records
            if (m := r.measured(name)) is not None and m.value is not None
        ]
        if len(values) == len(records) and mv.value is not None:
            metrics[name] = MetricValue(
                float(np.median(values)),
                mv.unit,
                "derived",
                f"median over {len(records)} runs of: {mv.method}",
                None,
                mv.coverage,
            )
        else:
            metrics[name] = MetricValue(
                None,
                mv.unit,
                "unavailable",
                mv.method,
                f"measured in {len(values)} of {len(records)} runs",
            )
    warnings = [f"{r.label}: {w}" for r in records for w in r.warnings]
    unfinished = [r.details.get("run_status") for r in records]
    details = dict(first.details)
    details["run_status"] = next((s for s in unfinished if s not in (None, "ok")), "ok")
    # every run's own verdicts count, not the first's alone: one straggler run among the repeats
    # is a finding of the side (rule 13), one NOT JUDGED run leaves the side not judged
    details["own_verdicts"] = list(
        dict.fromkeys(v for r in records for v in r.details.get("own_verdicts") or [])
    )
    for own in ("own_findings", "own_not_judged"):
        details[own] = [f"{r.label}: {x}" for r in records for x in r.details.get(own) or []]
    details["host_cpu"] = _median_load(records)
    return replace(
        first,
        label=label,
        metrics=metrics,
        samples={},
        warnings=warnings,
        details=details,
        series=None,
        runs=list(records),
    )


def _median_load(records: Sequence[BenchmarkRecord]) -> dict[str, Any] | None:
    """The side's host CPU load as its metrics are: each figure's median over the runs (None
    unless every run records it, by the same threads): `compare.host_load` sets it beside the
    runs' median step time."""
    loads = [r.details.get("host_cpu") for r in records]
    if not all(isinstance(x, dict) for x in loads):
        return None
    if len({x.get("threads") for x in loads if isinstance(x, dict)}) != 1:
        return None
    first = loads[0]
    assert isinstance(first, dict)
    out = dict(first)
    for figure in ("cpu_ms", "cpu_wait_ms"):
        values = [x.get(figure) for x in loads if isinstance(x, dict)]
        if not all(isinstance(v, (int, float)) for v in values):
            return None
        out[figure] = float(np.median(np.asarray(values, dtype=float)))
    return out


def side_paths(spec: str) -> tuple[str, list[Path]] | None:
    """The runs one command-line input names when it names several (else None): `A1,A2,A3`
    (a path with a comma that exists is one path), or a `run --repeats` directory."""
    path = Path(spec)
    if not path.exists() and "," in spec:
        parts = [Path(p) for p in spec.split(",") if p.strip()]
        return spec, parts
    manifest = path / rundir.REPEATS_FILE
    if path.is_dir() and manifest.is_file():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            runs = [path / str(r["dir"]) for r in data["runs"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"cannot read {manifest}: {e}") from None
        kept = [r for r in runs if rundir.result_path(r).is_file()]
        if not kept:
            raise InputError(f"{path}: none of its {len(runs)} repeats has a result.json")
        return path.name, kept
    return None


def load_side(spec: str, fmt: str | None = None) -> BenchmarkRecord:
    """One side of a comparison: a single result, or several runs of one job (`A1,A2,A3`, a
    `run --repeats` directory, an SGLang file of appended runs that share a fingerprint)
    combined into one record whose `runs` are tested as clusters."""
    from minicluster.interop.detect import load_runs

    several = side_paths(spec)
    if several is None:
        runs = load_runs(Path(spec), fmt)
        label = Path(spec).name
        if len(runs) > 1 and len({key(r.fingerprint or {}) for r in runs}) > 1:
            raise InputError(
                f"{spec} holds {len(runs)} runs of different settings (their fingerprints "
                f"differ): pick one with {spec}#N (1..{len(runs)})"
            )
    else:
        label, paths = several
        runs = [r for p in paths for r in load_runs(p, fmt)]
    return combine(runs, label)


def run_values(rec: BenchmarkRecord, name: str) -> list[float]:
    """The metric's value in each run of `rec` (one run: its own value)."""
    runs = rec.runs or [rec]
    return [m.value for r in runs if (m := r.measured(name)) is not None and m.value is not None]


def group_test(
    name: str, a: BenchmarkRecord, b: BenchmarkRecord, confidence: float
) -> GroupTest | None:
    """Runs as clusters: Student's t on the log of each run's value, pooled between-run variance
    (df = K_a + K_b - 2). None when there are fewer than 3 runs in all, or a value <= 0."""
    from scipy.stats import t as student_t

    va, vb = run_values(a, name), run_values(b, name)
    if len(va) + len(vb) < 3 or min(len(va), len(vb)) < 1:
        return None
    if min(va + vb) <= 0:
        return None
    la, lb = np.log(va), np.log(vb)
    df = len(va) + len(vb) - 2
    ss = float(np.sum((la - la.mean()) ** 2) + np.sum((lb - lb.mean()) ** 2))
    se = math.sqrt(ss / df) * math.sqrt(1 / len(va) + 1 / len(vb))
    diff = float(lb.mean() - la.mean())
    crit = float(student_t.ppf(0.5 + confidence / 2, df))
    if se == 0:
        p = 1.0 if diff == 0 else 0.0
    else:
        p = float(2 * student_t.sf(abs(diff / se), df))
    return GroupTest(
        tuple(va),
        tuple(vb),
        p,
        _pct_of_log(diff - crit * se),
        _pct_of_log(diff + crit * se),
        _pct_of_log(crit * se),
        df,
    )


def _pct_of_log(x: float) -> float:
    """100 * (e^x - 1); inf where e^x overflows (runs whose values differ by hundreds of orders
    of magnitude give no finite interval)."""
    return 100 * (math.exp(x) - 1) if x < 700 else math.inf


def run_digest(rec: BenchmarkRecord) -> str:
    """A digest of what one run measured (its metrics, samples, series and details; not its
    label nor where it was read from): two inputs with one digest are the same run, a copy of
    it included."""
    content = {
        "metrics": {k: (v.value, v.unit, v.status) for k, v in sorted(rec.metrics.items())},
        "samples": rec.samples,
        "series": rec.series,
        "details": rec.details,
        "tool": rec.tool,
        "workload": (rec.workload_type, rec.workload_name),
    }
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def refuse_same_runs(specs: Sequence[str], records: Sequence[BenchmarkRecord]) -> None:
    """InputError (`both sides are the same run: ...`) when two inputs are, or share, one run:
    the same path after resolving, or the same content (a copy). Comparing a run with itself
    says "no change" over every row and would pass any gate. And when one side holds a run twice
    (`A,A B`, or A and its copy): two equal runs made the between-run spread zero, and a
    1-ms difference "significant" at p=0 (new-user trial, 2026-12-07)."""
    resolved = [Path(s).resolve() for s in specs]
    for i, path in enumerate(resolved):
        for j in range(i):
            if resolved[j] == path:
                raise InputError(
                    f"both sides are the same run: {specs[j]} and {specs[i]} are one path "
                    f"({path}); compare two different runs"
                )
    seen: dict[str, tuple[int, str]] = {}
    for i, rec in enumerate(records):
        for run in rec.runs or [rec]:
            d = run_digest(run)
            if d in seen and seen[d][0] == i:  # a run counted twice on one side
                raise InputError(
                    f"one side holds the same run twice: {seen[d][1]} and {run.label} "
                    f"({specs[i]}) hold the same content (digest {d[:12]}): a run counted twice "
                    "makes the between-run spread look smaller than it is; give each run once"
                )
            if d in seen:
                j, other = seen[d]
                raise InputError(
                    f"both sides are the same run: {other} ({specs[j]}) and {run.label} "
                    f"({specs[i]}) hold the same content (digest {d[:12]}); compare two "
                    "different runs"
                )
            seen.setdefault(d, (i, run.label))
