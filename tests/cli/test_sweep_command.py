"""`minicluster sweep` in-process with a stand-in launcher: run configs, failures, exit codes.

The stand-in replays recorded rank files (a real 2-rank gloo run) instead of starting ranks, so
these tests need no torch; the real thing is tests/e2e/test_sweep_cli.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from minicluster.cli import build_parser, main
from minicluster.launchers.base import LaunchPlan
from minicluster.result.schema import validate_result

RECORDED = Path(__file__).resolve().parents[1] / "golden" / "run_2ranks" / "ranks"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cpu.yaml"
    path.write_text("workload: {name: mlp, per_rank_batch: 6}\nrun: {device: cpu}\n")
    return path


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch, fake_launch: Any) -> list[dict[str, Any]]:
    """Replace the local launcher: world size 2 replays the recorded run, any other size crashes."""
    calls: list[dict[str, Any]] = []

    def fake(plan: LaunchPlan) -> str | None:
        calls.append(
            {
                "nproc": plan.nproc_per_node,
                "run_id": plan.run_id,
                "threads": plan.threads_per_rank,
                "config": json.loads(plan.config_path.read_text()),
            }
        )
        if plan.nproc_per_node != 2:
            return "ranks failed: rank 0 exit code 1"
        shutil.copytree(RECORDED, plan.out_dir / "ranks")
        return None

    fake_launch(fake)
    return calls


def test_strong_runs_split_the_global_batch_and_keep_threads_per_rank(
    tmp_path: Path, config: Path, launches: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    code = main(
        ["sweep", "-c", str(config), "--world-sizes", "1,2,3", "--mode", "strong",
         "--global-batch", "12", "--out", str(out)]
    )  # fmt: skip
    assert [c["nproc"] for c in launches] == [1, 2, 3]
    assert [c["config"]["workload"]["per_rank_batch"] for c in launches] == [12, 6, 4]
    assert [c["config"]["run"]["nproc"] for c in launches] == [1, 2, 3]
    assert len({c["threads"] for c in launches}) == 1  # one thread count at every world size
    assert {c["config"]["run"]["threads_per_rank"] for c in launches} == {launches[0]["threads"]}
    assert launches[1]["run_id"].endswith("-n2-r1")
    for c, name in zip(launches, ["n1-r1", "n2-r1", "n3-r1"], strict=True):
        assert json.loads((out / name / "config.json").read_text()) == c["config"]
    # Sizes 1 and 3 crashed: the sweep goes on, writes its result, then exits 3 naming them.
    assert code == 3
    err = capsys.readouterr().err
    assert "sweep: [2/3] world size 2, round 1/1 -> " in err
    assert "minicluster: sweep: 2 of 3 runs failed: n1-r1, n3-r1" in err
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    assert result["status"] == "failed"
    assert result["scaling"]["mode"] == "strong" and result["scaling"]["global_batch"] == 12
    assert result["scaling"]["headline_run"]["dir"] == "n2-r1"  # the only size with a result
    p = {pt["world_size"]: pt for pt in result["scaling"]["points"]}
    assert p[1]["efficiency_pct"] is None and "no ok run at world size 1" in p[1]["reason"]
    assert p[2]["efficiency_pct"] is None and "(the baseline)" in p[2]["reason"]
    assert p[2]["step_time_p50_ms"] == pytest.approx(
        json.loads((out / "n2-r1" / "result.json").read_text())["metrics"]["latency_p50_ms"][
            "value"
        ]
    )
    assert result["metrics"]["scaling_efficiency_pct"]["status"] == "unavailable"
    assert [e for e in result["errors"] if e.startswith("sweep run ")] == [
        f"sweep run n{n}-r1 (world size {n}, round 1) failed: the launch failed before any "
        "rank recorded anything: ranks failed: rank 0 exit code 1"
        for n in (1, 3)
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--world-sizes", "1,2", "--global-batch", "8"],
            "--global-batch applies to --mode strong",
        ),
        (["--world-sizes", "1,2", "--repeats", "0"], "--repeats must be >= 1, got 0"),
        (["--world-sizes", "2,4", "--mode", "strong", "--global-batch", "6"], "size 4;"),
        (["--world-sizes", "1,5000"], "run.nproc is 5000"),
    ],
)
def test_bad_sweep_options_fail_before_any_rank_starts(
    tmp_path: Path,
    config: Path,
    launches: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    out = tmp_path / "sweep"
    assert main(["sweep", "-c", str(config), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("minicluster: error:") and message in err[0], err
    assert launches == [] and not out.exists()


def test_sweep_flags_and_defaults() -> None:
    parse = build_parser().parse_args
    args = parse(["sweep"])
    # Unset until run_sweep applies 1,2,4 / weak / 1: `--from` refuses the ones a user gave
    # and takes the mode from the runs' batches.
    assert (args.config, args.world_sizes, args.mode, args.repeats) == (None, None, None, None)
    assert [args.global_batch, args.out, args.md, args.html, args.require] == [None] * 4 + [[]]
    assert args.from_dirs is None
    assert parse(["sweep", "--from", "a", "b"]).from_dirs == [Path("a"), Path("b")]
    args = parse(
        "sweep -c x.yaml --world-sizes 2,4 --mode strong --repeats 3 --global-batch 64 "
        "--out d --md a.md --html a.html --require energy".split()
    )
    assert [args.config, args.world_sizes, args.mode, args.repeats, args.global_batch] == [
        Path("x.yaml"),
        "2,4",
        "strong",
        3,
        64,
    ]
    assert [args.out, args.md, args.html, args.require] == [
        Path("d"),
        Path("a.md"),
        Path("a.html"),
        ["energy"],
    ]


def test_interrupted_sweep_keeps_what_ran_and_aggregate_rebuilds_it(
    tmp_path: Path,
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_launch: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def fake(plan: LaunchPlan) -> str | None:
        if plan.nproc_per_node == 3:
            raise KeyboardInterrupt  # Ctrl-C while the second run is under way
        shutil.copytree(RECORDED, plan.out_dir / "ranks")
        return None

    fake_launch(fake)
    out = tmp_path / "sweep"
    code = main(["sweep", "-c", str(config), "--world-sizes", "2,3", "--out", str(out)])
    assert code == 130
    assert "sweep interrupted during n3-r1 (1 of 2 runs finished)" in capsys.readouterr().err
    first = json.loads((out / "result.json").read_text())
    validate_result(first)
    assert first["status"] == "incomplete"  # a planned run never finished
    # Only the baseline has a result: no efficiency of it against itself.
    eff = first["metrics"]["scaling_efficiency_pct"]
    assert eff["value"] is None and "no run above the baseline world size 2" in eff["reason"]
    points = {p["world_size"]: p for p in first["scaling"]["points"]}
    assert points[2]["efficiency_pct"] == 100.0 and points[2]["runs_ok"] == 1
    assert points[3]["efficiency_pct"] is None and points[3]["runs"] == []

    # The plan written before the first run lets `aggregate` re-build the sweep result alone.
    (out / "result.json").unlink()
    assert main(["aggregate", str(out)]) == 0
    again = json.loads((out / "result.json").read_text())
    validate_result(again)
    assert again["run_id"] == first["run_id"] and again["status"] == "incomplete"
    assert again["scaling"]["points"] == first["scaling"]["points"]
    assert json.loads((out / "n2-r1" / "result.json").read_text())["status"] == "ok"


def test_aggregate_refuses_a_broken_sweep_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sweep.json").write_text('{"mode": "weak"}')
    assert main(["aggregate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a sweep plan (missing sweep_id" in err and "Traceback" not in err


def test_an_earlier_run_in_the_output_directory_is_not_mixed_in(
    tmp_path: Path, config: Path, launches: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Old rank files beside new ones would pair runs of two sessions: refused before any run."""
    out = tmp_path / "sweep"
    assert main(["sweep", "-c", str(config), "--world-sizes", "2,3", "--out", str(out)]) == 3
    launched = len(launches)
    capsys.readouterr()
    assert main(["sweep", "-c", str(config), "--world-sizes", "2,3", "--out", str(out)]) == 2
    assert "already holds result.json of an earlier run" in capsys.readouterr().err
    (out / "result.json").unlink()
    (out / "sweep.json").unlink()
    assert main(["sweep", "-c", str(config), "--world-sizes", "2,3", "--out", str(out)]) == 2
    assert "holds other runs (the run n2-r1/)" in capsys.readouterr().err  # its runs are left
    run_dir = out / "n2-r1"  # a single run refuses a directory holding rank files too
    assert main(["run", "-c", str(config), "--out", str(run_dir)]) == 2
    assert "already holds ranks/ of an earlier run" in capsys.readouterr().err
    assert len(launches) == launched  # nothing started


def test_sweep_refuses_a_collectives_config(
    tmp_path: Path, launches: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = Path(__file__).resolve().parents[2] / "configs" / "collectives.yaml"
    assert main(["sweep", "-c", str(cfg), "--out", str(tmp_path / "s")]) == 2
    assert "run it with `minicluster collectives -c" in capsys.readouterr().err
    assert launches == []


def test_the_interrupted_run_counts_as_interrupted_live_and_when_re_aggregated(
    tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch, fake_launch: Any
) -> None:
    def fake(plan: LaunchPlan) -> str | None:
        if plan.out_dir.name == "n2-r2":
            # Ctrl-C came while the ranks ran: their steps so far, no summaries
            ignore = shutil.ignore_patterns("*.summary.*")
            shutil.copytree(RECORDED, plan.out_dir / "ranks", ignore=ignore)
            raise KeyboardInterrupt
        shutil.copytree(RECORDED, plan.out_dir / "ranks")  # every rank wrote all its steps
        return None

    fake_launch(fake)
    out = tmp_path / "sweep"
    args = ["sweep", "-c", str(config), "--world-sizes", "2,3", "--repeats", "2"]
    assert main([*args, "--out", str(out)]) == 130
    live = json.loads((out / "result.json").read_text())
    runs = {r["dir"]: r for p in live["scaling"]["points"] for r in p["runs"]}
    assert runs["n2-r2"]["status"] == "incomplete"  # interrupted, not failed
    assert runs["n2-r2"]["error"] == "interrupted by the user"
    assert live["status"] == "incomplete"
    (out / "result.json").unlink()
    # Aggregation worked: it exits by what the runs found, not with the 130 of the sweep that
    # was interrupted (a new user's finding: 130 here told a CI gate "interrupted"); one run
    # stopped before its planned steps ran: `incomplete`, 1 (the one exit-code policy).
    assert main(["aggregate", str(out)]) == 1
    again = json.loads((out / "result.json").read_text())

    def outline(result: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [
            (
                p["world_size"],
                p["efficiency_pct"],
                tuple((r["dir"], r["status"]) for r in p["runs"]),
            )
            for p in result["scaling"]["points"]
        ]

    assert outline(again) == outline(live)  # the same runs, statuses and efficiencies
    assert again["status"] == "incomplete"
    run = json.loads((out / "n2-r2" / "result.json").read_text())
    assert run["status"] == "incomplete" and run["interrupted"]  # kept in launcher.json
    assert any("interrupted by the user before the ranks finished" in e for e in run["errors"])


def test_ctrl_c_in_a_runs_teardown_keeps_its_world_size(
    tmp_path: Path, config: Path, fake_launch: Any
) -> None:
    """Every rank of n2-r2 wrote its ok summary, then Ctrl-C hit while they tore down: that run
    is ok and the sweep keeps it (it dropped the world size before)."""

    def fake(plan: LaunchPlan) -> str | None:
        shutil.copytree(RECORDED, plan.out_dir / "ranks")
        if plan.out_dir.name == "n2-r2":
            raise KeyboardInterrupt
        return None

    fake_launch(fake)
    out = tmp_path / "sweep"
    args = ["sweep", "-c", str(config), "--world-sizes", "2,3", "--repeats", "2"]
    assert main([*args, "--out", str(out)]) == 130
    live = json.loads((out / "result.json").read_text())
    runs = {r["dir"]: r for p in live["scaling"]["points"] for r in p["runs"]}
    assert runs["n2-r2"]["status"] == "ok"
    assert json.loads((out / "n2-r2" / "result.json").read_text())["status"] == "ok"


@pytest.mark.parametrize(
    ("field", "value"),
    [("repeats", "2"), ("world_sizes", "1,2"), ("world_sizes", [0, 2]), ("warnings", None)],
)
def test_aggregate_names_a_sweep_plan_field_of_the_wrong_type(
    tmp_path: Path, field: str, value: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = {
        "sweep_id": "s", "created_at": "2026-11-23T00:00:00+00:00", "mode": "weak",
        "world_sizes": [1, 2], "repeats": 1, "per_rank_batch": 8, "global_batch": None,
        "threads_per_rank": 1, "warnings": [],
    }  # fmt: skip
    plan[field] = value
    (tmp_path / "sweep.json").write_text(json.dumps(plan))
    assert main(["aggregate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"not a sweep plan ({field} has the wrong type)" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--world-sizes", "1,2"], "--world-sizes does not apply to --from"),
        (["--repeats", "2"], "--repeats does not apply to --from"),
        (["-c", "x.yaml"], "-c/--config does not apply to --from"),
    ],
)
def test_sweep_from_refuses_flags_of_a_live_sweep(
    tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["sweep", "--from", str(tmp_path / "a"), str(tmp_path / "b"), *extra]
    assert main([*args, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "s").exists()


def test_sweep_from_a_missing_run_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", "--from", str(tmp_path / "nope"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / "nope") in err[0]
