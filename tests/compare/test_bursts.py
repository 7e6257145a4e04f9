"""Bursts and tails (issue 26): a slowdown on the last steps of a run is named, is not excused by
the spread it causes, and is judged by the mean's and the tail's own tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from minicluster.compare import compare
from minicluster.interop.minicluster import to_record
from minicluster.result.model import RunResult

BURST = Path(__file__).resolve().parents[1] / "fixtures" / "compare" / "burst"


def _with_series(data: dict, step_ms: np.ndarray) -> dict:  # type: ignore[type-arg]
    """`data` with its step-time series replaced and the step-time metrics recomputed from it
    (so the series still reproduces them)."""
    d = json.loads(json.dumps(data))
    d["steps"]["series"]["step_time_ms"] = [round(float(v), 4) for v in step_ms]
    s = np.array(d["steps"]["series"]["step_time_ms"])
    gb = d["workload"]["global_batch"]
    values = {
        "latency_p50_ms": np.percentile(s, 50),
        "latency_p95_ms": np.percentile(s, 95),
        "latency_p99_ms": np.percentile(s, 99),
        "step_time_mean_ms": s.mean(),
        "throughput_samples_per_sec": s.size / np.sum(s / (gb * 1000.0)),
    }
    for name, v in values.items():
        if name in d["metrics"]:
            d["metrics"][name]["value"] = float(v)
    d["metrics"].pop("latency_p90_ms", None)
    return d


def test_the_recorded_burst_is_named() -> None:
    burst = to_record(
        RunResult.from_json(json.loads((BURST / "burst.result.json").read_text())), "burst"
    )
    clean = to_record(
        RunResult.from_json(json.loads((BURST / "clean.result.json").read_text())), "clean"
    )
    pair = compare([clean, burst]).pairs[0]
    s = pair.structure["burst"]
    assert s["kind"] == "shift" and s["change_pct"] > 50
    assert "measured steps 40-49 of 50" in s["text"]


def test_a_burst_on_the_last_ten_steps_is_a_regression_of_mean_and_tail() -> None:
    clean = json.loads((BURST / "clean.result.json").read_text())
    burst = json.loads((BURST / "burst.result.json").read_text())
    b = np.array(burst["steps"]["series"]["step_time_ms"])
    ratio = float(np.median(b[40:]) / np.median(b[:40]))  # the recorded burst: about 2.2x
    assert ratio > 1.8
    a = np.array(clean["steps"]["series"]["step_time_ms"])
    slowed = a.copy()
    slowed[40:] *= ratio
    rec_a = to_record(RunResult.from_json(clean), "clean")
    rec_b = to_record(RunResult.from_json(_with_series(clean, slowed)), "clean+burst")
    pair = compare([rec_a, rec_b]).pairs[0]
    rows = {r.metric: r for r in pair.rows}
    mean, thr = rows["step_time_mean_ms"], rows["throughput_samples_per_sec"]
    assert mean.delta_pct > 15 and mean.regression and mean.test == "welch-t"
    assert thr.regression and thr.verdict == mean.verdict
    p95 = rows["latency_p95_ms"]
    assert p95.test == "quantile-exceedance-fisher" and p95.regression
    # the median is untouched by 10 slow steps of 50: its own test says no change
    assert not rows["latency_p50_ms"].regression
    assert pair.structure["clean+burst"]["kind"] == "shift"
