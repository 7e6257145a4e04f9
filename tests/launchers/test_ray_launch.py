"""The Ray launcher's parts that need no Ray: options, where ranks go, how a job's outcome is
read back, the CLI's checks of the Ray flags, and Ctrl-C through the orchestration path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fixtures import recorded

from minicluster.cli import main, orchestrate
from minicluster.core import rundir
from minicluster.core.config import RunConfig
from minicluster.core.errors import InputError
from minicluster.core.rank_format import RankLog
from minicluster.launchers import ray_launch
from minicluster.launchers.base import LaunchOutcome, RecordsAt
from minicluster.launchers.ray_launch import RayOptions, check_options, layout
from minicluster.result.schema import validate_result

RECORDED = Path(__file__).resolve().parents[1] / "golden" / "run_2ranks" / "ranks"


def test_layout_puts_the_drivers_node_first_and_ranks_contiguous_per_node() -> None:
    # Bundles 0 and 2 on node a, 1 and 3 on node b; the driver runs on node b.
    placed = layout(["a", "b", "a", "b"], first_node="b")
    assert [(p.rank, p.bundle, p.node_id, p.node_rank, p.local_rank) for p in placed] == [
        (0, 1, "b", 0, 0),
        (1, 3, "b", 0, 1),
        (2, 0, "a", 1, 0),
        (3, 2, "a", 1, 1),
    ]
    assert {p.local_world_size for p in placed} == {2}


def test_layout_without_the_drivers_node_keeps_the_bundle_order() -> None:
    placed = layout(["x", "y", "y"], first_node="driver")
    assert [(p.rank, p.node_id, p.node_rank, p.local_rank, p.local_world_size) for p in placed] == [
        (0, "x", 0, 0, 1),
        (1, "y", 1, 0, 2),
        (2, "y", 1, 1, 2),
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (RayOptions(address="nohost"), "--ray-address: expected HOST:PORT"),
        (RayOptions(address="h:99999"), "--ray-address: port 99999"),
        (RayOptions(cpus_per_worker=0), "--cpus-per-worker must be > 0"),
        (RayOptions(gpus_per_worker=-1), "--gpus-per-worker must be >= 0"),
        (RayOptions(placement="strict"), "--placement must be one of pack, spread"),
    ],
)
def test_bad_ray_options_name_the_flag(options: RayOptions, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_options(options)


def test_good_ray_options_pass_and_size_the_workers() -> None:
    options = check_options(RayOptions(address="10.0.0.1:6379", cpus_per_worker=2.5))
    assert options.threads_per_rank() == 2
    assert options.local_cpus(3) == 8
    assert check_options(RayOptions(address="auto")).address == "auto"


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--ray-address", "auto"],  # a Ray flag without --launcher ray
        ["collectives", "--placement", "spread"],
        ["run", "--launcher", "ray", "--cpus-per-worker", "0"],
        ["run", "--launcher", "ray", "--nnodes", "2", "--rdzv-endpoint", "h:1"],
        ["sweep", "--launcher", "ray", "--from", "a", "b"],
    ],
)
def test_bad_ray_flags_exit_2_before_anything_runs(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("minicluster: error: ")
    assert not rundir.ranks_dir(out).exists()


def test_outcome_keeps_the_exit_codes_and_raises_on_bad_input(tmp_path: Path) -> None:
    failed = json.dumps({"error": "ranks failed: rank 1", "exit_codes": {"1": -9}}).encode()
    outcome = ray_launch.read_outcome(failed, 0, tmp_path)
    assert outcome.error == "ranks failed: rank 1" and outcome.exit_codes == {1: -9}
    assert outcome.records == RecordsAt(tmp_path)  # after a failure: the files here
    assert not outcome.interrupted

    with pytest.raises(InputError, match="the Ray cluster has 1 CPUs"):
        ray_launch.read_outcome(b'{"input_error": "the Ray cluster has 1 CPUs"}', 0, tmp_path)
    stopped = ray_launch.read_outcome(b'{"interrupted": true, "exit_codes": {}}', 0, tmp_path)
    assert stopped.interrupted and stopped.records == RecordsAt(tmp_path)
    lost = ray_launch.read_outcome(b"", -9, tmp_path)
    assert lost.error is not None and "exited with code -9" in lost.error
    done = ray_launch.read_outcome(
        b'{"error": null, "exit_codes": {}, "gathered": []}', 0, tmp_path
    )
    assert done.ok and done.records.in_band == []  # every rank finished: the in-band records


def test_in_band_records_over_the_drivers_pipe_aggregate_as_the_files_do(tmp_path: Path) -> None:
    """Rank 0's gathered logs cross the driver's pipe as `RankLog.to_wire` JSON: the outcome
    hands them on decoded (`RecordsAt.in_band`, RankLog), and `collect` makes the result the
    rank files make (a timer switch included: 'mixed', as the files say)."""
    files = tmp_path / "files"
    compute = [[10.0 + (s % 3) for s in range(12)], [11.0 + (s % 2) for s in range(12)]]
    logs = recorded.training_run(files, compute, switch_at=5)
    out = tmp_path / "ray"
    out.mkdir()
    document = {"error": None, "exit_codes": {}, "gathered": [log.to_wire() for log in logs]}
    outcome = ray_launch.read_outcome(json.dumps(document).encode(), 0, out)
    assert outcome.ok and outcome.records.in_band is not None
    assert all(isinstance(log, RankLog) for log in outcome.records.in_band)
    plan = ray_launch.RayLauncher(RayOptions()).plan(RunConfig(), out, "r1")
    found = orchestrate.collect(plan, outcome)
    assert found is not None
    result, path = found
    assert path == rundir.result_path(out) and json.loads(path.read_text()) == result.to_json()
    assert result.timing_method == "mixed"
    from_files, _ = orchestrate.aggregate_dir_to(files)
    in_band, read = result.to_json(), from_files.to_json()
    for r in (in_band, read):
        r.pop("aggregated_at")
    assert in_band == read


def test_ctrl_c_under_ray_keeps_the_recorded_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(request: dict[str, object], out_dir: Path) -> LaunchOutcome:
        # What the ranks wrote before Ctrl-C stopped them: their steps, no summaries yet.
        shutil.copytree(RECORDED, out_dir / "ranks", ignore=shutil.ignore_patterns("*.summary.*"))
        return LaunchOutcome(RecordsAt(out_dir), "the Ray job was stopped", interrupted=True)

    monkeypatch.setattr(ray_launch, "ray_installed", lambda: None)
    monkeypatch.setattr(ray_launch, "launch", interrupted)
    out = tmp_path / "run"
    assert main(["run", "--launcher", "ray", "--out", str(out)]) == 130
    assert "keeping what the ranks recorded" in capsys.readouterr().err
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    assert result["status"] == "incomplete" and result["interrupted"] is True
    assert not result["failed_ranks"] and min(r["steps_recorded"] for r in result["ranks"]) > 0


def test_files_sent_back_by_failed_ranks_are_kept_and_never_replace_ones_here(
    tmp_path: Path,
) -> None:
    here = rundir.rank_jsonl(tmp_path, 0)
    here.parent.mkdir(parents=True)
    here.write_text("rank 0's own file\n")
    ray_launch.keep_files(
        tmp_path,
        {
            "0": {here.name: "sent back\n"},
            "1": {"rank_00001.jsonl": "header\nstep\n", "rank_00001.summary.json": "{}"},
            "2": {"rank_00001.jsonl": "not rank 2's file", "../escape.json": "x"},
        },
    )
    assert here.read_text() == "rank 0's own file\n"
    assert rundir.rank_jsonl(tmp_path, 1).read_text() == "header\nstep\n"
    assert rundir.rank_summary(tmp_path, 1).read_text() == "{}"
    assert sorted(p.name for p in rundir.ranks_dir(tmp_path).iterdir()) == [
        "rank_00000.jsonl",
        "rank_00001.jsonl",
        "rank_00001.summary.json",
    ]
    assert not (tmp_path / "escape.json").exists()
