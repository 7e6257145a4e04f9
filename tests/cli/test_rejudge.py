"""`minicluster aggregate DIR --straggler-threshold 30`: a finished run judged again by other
thresholds, beside its recorded result (never over it), saying what changed."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from fixtures import recorded

from minicluster.cli import main
from minicluster.result import fingerprint
from minicluster.result.model import RunResult
from minicluster.result.schema import validate_result


@pytest.fixture
def run_with_a_25pct_straggler(tmp_path: Path) -> Path:
    """Rank 1 computes 25% (5 ms) longer than rank 0 in every step: a straggler at the default
    20% threshold, none at 30%. Written by the recorder; result.json by `aggregate DIR`."""
    run = tmp_path / "run"
    compute = [[20.0 + (s % 3) * 0.1 for s in range(40)], [25.0 + (s % 3) * 0.1 for s in range(40)]]
    recorded.training_run(run, compute)
    assert main(["aggregate", str(run)]) == 1  # a straggler is a finding (one exit-code policy)
    result = json.loads((run / "result.json").read_text())
    assert [s["rank"] for s in result["stragglers"]] == [1]
    return run


def test_a_higher_threshold_clears_the_straggler_and_keeps_the_recorded_result(
    run_with_a_25pct_straggler: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_with_a_25pct_straggler
    recorded_bytes = (run / "result.json").read_bytes()
    capsys.readouterr()
    assert main(["aggregate", str(run), "--straggler-threshold", "30"]) == 0
    out = capsys.readouterr().out
    assert "checks.straggler_threshold_pct: 20 -> 30" in out
    assert "stragglers: rank 1 -> none" in out
    assert "no longer found: straggler rank 1" in out
    assert "exit code: 1 -> 0" in out  # the straggler was the run's only finding
    assert (run / "result.json").read_bytes() == recorded_bytes  # never overwritten
    (again,) = run.glob("result.rejudged-*.json")
    assert f"result: {again}" in out
    rejudged = json.loads(again.read_text())
    assert rejudged["stragglers"] == [] and rejudged["status"] == "ok"
    # it states the thresholds it was judged by (it said 20 beside a re-judgement at 30)
    config = rejudged["config"]
    thresholds = config["checks"] if "checks" in config else config["run"]
    assert thresholds["straggler_threshold_pct"] == 30
    # the same run judged otherwise: the thresholds are no part of what it ran (comparable)
    assert rejudged["fingerprint"] == json.loads(recorded_bytes)["fingerprint"]
    # read alone, the file says it is a re-judgement, not the run's own verdict
    mark = rejudged["rejudged"]
    assert (mark["by"], mark["recorded_result"]) == ("thresholds", "result.json")
    assert mark["overrides"] == {"straggler_threshold_pct": 30} and mark["at"].endswith("+00:00")
    assert "rejudged" not in json.loads(recorded_bytes)
    validate_result(rejudged)
    typed = RunResult.from_json(rejudged)
    assert typed.rejudged is not None and typed.rejudged.by == "thresholds"
    assert typed.to_json() == rejudged


def test_the_thresholds_are_no_part_of_the_fingerprint_wherever_the_config_keeps_them(
    run_with_a_25pct_straggler: Path,
) -> None:
    """Checks in their own section or under `run` (a result from before the section): the same
    fingerprint, whatever their values."""
    result = json.loads((run_with_a_25pct_straggler / "result.json").read_text())
    other = copy.deepcopy(result)
    other["config"]["checks"] = {"straggler_threshold_pct": 50.0, "expect_busbw_gbps": 3.0}
    older = copy.deepcopy(result)
    del older["config"]["checks"]
    older["config"]["run"]["straggler_threshold_pct"] = 35.0
    keys = {fingerprint.key(fingerprint.of_result(r)) for r in (result, other, older)}
    assert len(keys) == 1


def test_an_expected_busbw_judges_the_link_and_sets_the_exit_code(
    run_with_a_25pct_straggler: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_with_a_25pct_straggler
    capsys.readouterr()
    assert main(["aggregate", str(run), "--expect-busbw", "1e6"]) == 1  # nothing is that fast
    out = capsys.readouterr().out
    assert "checks.expect_busbw_gbps: none -> 1e+06" in out
    assert "link: not judged -> slow" in out
    assert "found: slow_link" in out and "exit code" not in out  # 1 for the straggler already


def test_an_unchanged_verdict_says_so(
    run_with_a_25pct_straggler: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["aggregate", str(run_with_a_25pct_straggler), "--straggler-threshold", "21"]) == 1
    assert "no verdict changed" in capsys.readouterr().out


def test_a_threshold_out_of_range_is_bad_input(
    run_with_a_25pct_straggler: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["aggregate", str(run_with_a_25pct_straggler), "--straggler-min-steps", "10"]) == 2
    err = capsys.readouterr().err
    assert (
        "--straggler-min-steps is 10.0; must be >= 50 (config checks.straggler_min_steps_pct)"
        in err
    )
    assert not list(run_with_a_25pct_straggler.glob("result.rejudged-*.json"))


def test_two_re_judgements_in_one_second_keep_both(
    run_with_a_25pct_straggler: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from minicluster.core import clock

    monkeypatch.setattr(clock, "utc_stamp", lambda: "20260101-000000")
    run = run_with_a_25pct_straggler
    assert main(["aggregate", str(run), "--straggler-threshold", "30"]) == 0
    assert main(["aggregate", str(run), "--straggler-threshold", "21"]) == 1  # still a straggler
    kept = sorted(p.name for p in run.glob("result.rejudged-*.json"))
    assert kept == [
        "result.rejudged-20260101-000000-2.json",
        "result.rejudged-20260101-000000.json",
    ]
    thresholds = [json.loads((run / k).read_text())["stragglers"] for k in kept]
    assert thresholds[0] != thresholds[1]  # the first (30%: none) was not overwritten by 21%


def test_concurrent_writers_in_one_second_each_get_their_own_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two re-judges at once (not one after the other): both saw no file of that second's name
    before either wrote; the name is claimed by an exclusive create, so none is lost."""
    import threading

    from minicluster.core import clock
    from minicluster.result import store

    monkeypatch.setattr(clock, "utc_stamp", lambda: "20260101-000000")
    start = threading.Barrier(8)

    def write(i: int) -> None:
        start.wait()
        store.write_fresh_result(tmp_path, "rejudged", {"writer": i})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    written = sorted(
        json.loads(p.read_text())["writer"] for p in tmp_path.glob("result.rejudged-*")
    )
    assert written == list(range(8))


RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded_runs"
H200_REF = (
    Path(__file__).resolve().parents[1] / "fixtures" / "nodecheck" / "h200_site_reference.yaml"
)


@pytest.fixture
def recorded_culprit_run(tmp_path: Path) -> Path:
    """The recorded run whose rank 1 costs it about 45% (a culprit, no straggler)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(RECORDED / "intermittent_straggler", run)
    assert main(["aggregate", str(run)]) == 1
    return run


def test_a_rejudge_says_the_finding_that_keeps_the_exit_at_1(
    recorded_culprit_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A higher straggler threshold changes nothing: the culprit keeps the exit at 1, and the
    re-judge says so (it printed 'no verdict changed' and exited 1 without a reason)."""
    capsys.readouterr()
    assert main(["aggregate", str(recorded_culprit_run), "--straggler-threshold", "50"]) == 1
    out = capsys.readouterr().out
    assert "no verdict changed" in out
    assert "exits 1 on: culprit rank 1 (intermittent, costs" in out


def test_aggregate_reference_writes_beside_the_recorded_result_and_checks_the_floor(
    recorded_culprit_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = recorded_culprit_run
    recorded_bytes = (run / "result.json").read_bytes()
    for bad in ("500", "0", "-5"):
        assert main(["aggregate", str(run), "--reference", str(H200_REF), "--floor-pct", bad]) == 2
        err = capsys.readouterr().err
        assert "--floor-pct must be in (0, 100]" in err and len(err.strip().splitlines()) == 1
    assert not list(run.glob("result.rejudged-*.json"))
    assert main(["aggregate", str(run), "--reference", str(H200_REF), "--floor-pct", "80"]) == 1
    out = capsys.readouterr().out
    assert (run / "result.json").read_bytes() == recorded_bytes  # never overwritten
    (judged,) = run.glob("result.rejudged-*.json")
    assert f"result: {judged}" in out and "the recorded result.json is kept" in out
    data = json.loads(judged.read_text())
    assert data["reference"]["floor_pct"] == 80 and "reference" not in json.loads(recorded_bytes)
    assert data["rejudged"]["by"] == "reference" and data["rejudged"]["overrides"] == {}
    assert "exits 1 on: culprit rank 1" in out
