"""`minicluster sweep --project` in-process with a stand-in launcher (recorded rank files, no
torch): bad flags are one line and exit 2 before any rank starts; the projection lands in the
sweep result, from the plan, and `aggregate DIR` re-builds it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from minicluster.cli import main
from minicluster.launchers.base import LaunchPlan
from minicluster.result.schema import validate_result

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
RECORDED = GOLDEN / "run_2ranks" / "ranks"
COLLECTIVES = GOLDEN / "reports" / "collectives.result.json"
RUN = GOLDEN / "reports" / "run_ok.result.json"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cpu.yaml"
    path.write_text("workload: {name: mlp, per_rank_batch: 6}\nrun: {device: cpu}\n")
    return path


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch, fake_launch: Any) -> list[int]:
    """World size 2 replays a recorded 2-rank run; any other size crashes."""
    calls: list[int] = []

    def fake(plan: LaunchPlan) -> str | None:
        calls.append(plan.nproc_per_node)
        if plan.nproc_per_node != 2:
            return "ranks failed: rank 0 exit code 1"
        shutil.copytree(RECORDED, plan.out_dir / "ranks")
        return None

    fake_launch(fake)
    return calls


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--collectives", str(COLLECTIVES)], "--collectives apply with --project SIZES"),
        (["--ranks-per-node", "8"], "--ranks-per-node apply with --project SIZES"),
        (["--project", "0"], "--project: 0 is not a positive number of ranks"),
        (["--project", "8,x"], "--project: 'x' is not a whole number"),
        (["--project", "8", "--link-gbps", "10"], "--link-gbps and --link-latency-us go together"),
        (
            ["--project", "8", "--link-gbps", "10,1", "--link-latency-us", "5"],
            "go together",
        ),
        (
            ["--project", "8", "--link-gbps", "100,10", "--link-latency-us", "2,5"],
            "two --link-gbps values are INTRA,INTER: give --ranks-per-node too",
        ),
        (["--project", "8", "--ranks-per-node", "8"], "give the inter-node link"),
        (
            ["--project", "8,12", "--link-gbps", "100,10", "--link-latency-us", "2,5",
             "--ranks-per-node", "8"],
            "--project: 12 ranks do not fill whole nodes of 8 ranks",
        ),
        (
            ["--project", "8", "--link-gbps", "fast", "--link-latency-us", "5"],
            "--link-gbps: 'fast' is not a number",
        ),
        (
            ["--project", "8", "--link-gbps", "0", "--link-latency-us", "5"],
            "the bandwidth must be > 0 GB/s",
        ),
        (["--project", "8", "--collectives", "missing.json"], "no such file: "),
        (["--project", "8", "--collectives", str(RUN)], "not a collectives result"),
        (
            ["--project", "8", "--collectives", str(COLLECTIVES), "--link-gbps", "1",
             "--link-latency-us", "5"],
            "both give the same link",
        ),
    ],
)  # fmt: skip
def test_bad_projection_flags_fail_before_any_rank_starts(
    tmp_path: Path,
    config: Path,
    launches: list[int],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sweep"
    code = main(["sweep", "-c", str(config), "--world-sizes", "2,4", "--out", str(out), *args])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("minicluster: error:") and message in err[0], err
    assert launches == [] and not out.exists()


def test_projection_with_a_given_link_lands_in_the_result_and_aggregate_rebuilds_it(
    tmp_path: Path, config: Path, launches: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    code = main(
        ["sweep", "-c", str(config), "--world-sizes", "2,4", "--out", str(out),
         "--project", "8,64", "--link-gbps", "12.5", "--link-latency-us", "5"]
    )  # fmt: skip
    assert code == 3  # world size 4 crashed in the stand-in
    assert launches == [2, 4]  # no all_reduce probe: the link was given
    plan = json.loads((out / "sweep.json").read_text())
    assert plan["projection"] == {
        "world_sizes": [8, 64],
        "link_gbps": [12.5],
        "link_latency_us": [5.0],
        "ranks_per_node": None,
        "collectives": None,
        "probe_world_size": None,
    }
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    proj = result["scaling"]["projection"]
    # One measured size: nothing to check the model against, so its error is unknown and the
    # projection is refused, saying so (the link and the check are kept).
    assert proj["status"] == "unavailable" and "its error is unknown" in proj["reason"]
    assert proj["link"]["link"]["alpha_us"] == 5.0 and proj["link"]["link"]["beta_gbps"] == 12.5
    assert (
        "given (--link-gbps/--link-latency-us: 12.5 GB/s, 5 us)" in proj["link"]["link"]["source"]
    )
    assert [p["world_size"] for p in proj["points"]] == [8, 64]
    assert all(
        p["status"] == "unavailable" and p["reason"] == proj["reason"] for p in proj["points"]
    )
    (entry,) = proj["check"]["entries"]
    assert entry["status"] == "unavailable" and entry["reason"] == "no other measured size"
    printed = capsys.readouterr().out
    assert "Projection (estimated)" in printed and "Projection check" in printed

    (out / "result.json").unlink()
    main(["aggregate", str(out)])  # n4-r1 left no rank files: counted as never run
    again = json.loads((out / "result.json").read_text())
    assert again["scaling"]["projection"] == proj


def test_projection_fitted_to_a_collectives_result(
    tmp_path: Path, config: Path, launches: list[int]
) -> None:
    out = tmp_path / "sweep"
    main(
        ["sweep", "-c", str(config), "--world-sizes", "2,4", "--out", str(out),
         "--project", "16", "--collectives", str(COLLECTIVES)]
    )  # fmt: skip
    assert launches == [2, 4]
    link = json.loads((out / "result.json").read_text())["scaling"]["projection"]["link"]["link"]
    assert link["fit"]["world_size"] == 2 and link["alpha_us"] >= 0 and link["beta_gbps"] > 0
    assert "fitted to the all_reduce times of collectives run" in link["source"]


def test_aggregate_keeps_the_sweep_when_its_collectives_file_is_gone(
    tmp_path: Path, config: Path, launches: list[int]
) -> None:
    coll = tmp_path / "coll.json"
    shutil.copy(COLLECTIVES, coll)
    out = tmp_path / "sweep"
    main(
        ["sweep", "-c", str(config), "--world-sizes", "2,4", "--out", str(out),
         "--project", "16", "--collectives", str(coll)]
    )  # fmt: skip
    coll.unlink()
    (out / "result.json").unlink()
    main(["aggregate", str(out)])
    proj = json.loads((out / "result.json").read_text())["scaling"]["projection"]
    assert proj["status"] == "unavailable" and f"no such file: {coll}" in proj["reason"]


def test_the_probe_runs_at_the_largest_size_with_its_own_cores(
    tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch, fake_launch: Any
) -> None:
    """4 ranks would share the 2 cores: the all_reduce probe runs at 2, after the runs."""
    calls: list[dict[str, Any]] = []

    def fake(plan: LaunchPlan) -> str | None:
        cfg = json.loads(plan.config_path.read_text())
        calls.append({"nproc": plan.nproc_per_node, "dir": plan.out_dir.name, **cfg})
        if plan.nproc_per_node != 2 or cfg.get("job") == "collectives":
            return "ranks failed: rank 0 exit code 1"
        shutil.copytree(RECORDED, plan.out_dir / "ranks")
        return None

    fake_launch(fake)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    out = tmp_path / "sweep"
    code = main(
        ["sweep", "-c", str(config), "--world-sizes", "1,2,4", "--out", str(out),
         "--project", "8"]
    )  # fmt: skip
    assert code == 3
    probe = calls[-1]
    assert (
        probe["dir"] == "allreduce-n2" and probe["nproc"] == 2 and probe.get("job") == "collectives"
    )
    assert probe["collectives"]["ops"] == ["all_reduce"]
    assert [c["dir"] for c in calls[:-1]] == ["n1-r1", "n2-r1", "n4-r1"]
    result = json.loads((out / "result.json").read_text())
    proj = result["scaling"]["projection"]
    assert proj["status"] == "unavailable"
    assert "the sweep's all_reduce probe left no result" in proj["reason"]
