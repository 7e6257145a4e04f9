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


def test_record_refuses_a_run_given_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`reference record d1 d1 d3` (or a copied directory): one run would count twice; refused
    in one line, exit 2, as `fleet` does."""
    from minicluster.cli import main

    d1, d3 = FIXTURES / "node1", FIXTURES / "node3"
    with pytest.raises(InputError, match="given twice"):
        reference_site.record(_results([1, 1, 3]), "x")
    out = tmp_path / "ref.yaml"
    assert main(["reference", "record", str(d1), str(d1), str(d3), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "given twice" in err and len(err.strip().splitlines()) == 1 and not out.exists()
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "result.json").write_bytes((d1 / "result.json").read_bytes())
    assert main(["reference", "record", str(d1), str(copy), str(d3), "--out", str(out)]) == 2
    assert "given twice" in capsys.readouterr().err


NODECHECK = Path(__file__).resolve().parents[1] / "fixtures" / "nodecheck" / "trial_nc1.result.json"


def test_a_cpu_node_check_incomplete_only_for_absent_devices_is_recorded() -> None:
    """The recorded CPU node check: verdict incomplete only because there is no GPU, no
    InfiniBand and no DCGM on the host: its measured figures make a reference."""
    data = json.loads(NODECHECK.read_text())
    assert data["verdict"] == "incomplete"
    ref = reference_site.record([(str(NODECHECK), data)], "cpu-site", today="2026-12-05")
    assert any(f.metric == "gemm_tflops" for f in ref.figures)


def test_a_genuinely_incomplete_node_check_is_still_refused() -> None:
    """A measurement that could not run, or GPUs NVML lists that torch cannot use: refused."""
    data = json.loads(NODECHECK.read_text())
    gemm = next(c for c in data["checks"] if c["family"] == "gemm")
    gemm["verdict"], gemm["reason"] = "incomplete", "out of memory"
    with pytest.raises(InputError, match="out of memory"):
        reference_site.record([(str(NODECHECK), data)], "x")
    data = json.loads(NODECHECK.read_text())
    data["platform"]["nvml_gpu_count"] = 8  # GPUs there, torch sees none: not an absent device
    with pytest.raises(InputError, match="gpu node"):
        reference_site.record([(str(NODECHECK), data)], "x")
    data = json.loads(NODECHECK.read_text())
    data["verdict"] = "degraded"
    with pytest.raises(InputError, match="not a healthy result"):
        reference_site.record([(str(NODECHECK), data)], "x")


def test_an_isolate_result_is_refused_as_not_a_reference() -> None:
    """An isolate result is no measurement of a job: said so, with the right article."""
    path = (
        Path(__file__).resolve().parents[1] / "fixtures" / "results" / "newer" / "isolate.i27.json"
    )
    with pytest.raises(InputError) as e:
        reference_site.record([(str(path), json.loads(path.read_text()))], "x")
    msg = str(e.value)
    assert "an isolate result" in msg and "not references" in msg and "a isolate" not in msg
    assert "healthy" not in msg
