"""`reference_site.record` on real recorded results (the fleet fixtures: one run per node): the
figures are each metric's median, MAD and count, and what is written reads back."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from minicluster.analysis import reference_site, references
from minicluster.core.errors import InputError
from minicluster.result.model import RunResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fleet"


def _results(nodes: list[int]) -> list[tuple[str, dict]]:
    return [
        (str(p), json.loads(p.read_text()))
        for p in (FIXTURES / f"node{i}" / "result.json" for i in nodes)
    ]


def test_record_takes_the_median_and_reads_back(tmp_path: Path) -> None:
    results = _results([1, 2, 3, 4, 5])
    ref = reference_site.record(results, "site-test", today="2026-12-05")
    fig = ref.figure(
        "latency_p50_ms", reference_site.run_conditions(RunResult.from_json(results[0][1]))
    )
    assert fig is not None and fig.samples == 5 and fig.date == "2026-12-05"
    values = [r["metrics"]["latency_p50_ms"]["value"] for _, r in results]
    assert fig.value == pytest.approx(statistics.median(values), rel=1e-6)
    assert fig.direction == "lower" and fig.spread is not None and fig.spread >= 0
    path = tmp_path / "site.json"
    references.save(ref, path)
    back = references.load(path)
    assert back.to_dict() == ref.to_dict()
    # a result of the same job judged against it: a % for each metric the reference holds
    judged = reference_site.judge_run(RunResult.from_json(results[0][1]), back, 90.0)
    assert judged["verdict"] in ("ok", "below_floor")
    assert all(m["pct_of_reference"] is not None for m in judged["metrics"] if m["reference_value"])


def test_record_refuses_a_failed_run() -> None:
    results = _results([1, 2])
    results[1][1]["status"] = "failed"
    with pytest.raises(InputError, match="not a healthy result"):
        reference_site.record(results, "x")
