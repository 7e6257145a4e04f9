"""`minicluster sweep` end to end: real torchrun runs at world sizes 1 and 2, one sweep result."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]  # the run_cli fixture (conftest)

from minicluster.result.schema import validate_result  # noqa: E402


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_weak_sweep_over_1_and_2_ranks(run_cli: RunCli, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        "workload: {name: mlp, per_rank_batch: 16, input_dim: 64, hidden_dim: 128, num_layers: 2}\n"
        "steps: {warmup: 1, measured: 5}\nrun: {collective_timeout_s: 60}\n"
    )
    md, html = tmp_path / "sweep.md", tmp_path / "sweep.html"
    proc = run_cli(
        "sweep", "-c", str(cfg), "--world-sizes", "1,2", "--md", str(md), "--html", str(html),
        "--project", "4,64", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "runs" / "latest"
    assert out.is_symlink()
    runs = {}
    for n in (1, 2):
        sub = json.loads((out / f"n{n}-r1" / "result.json").read_text())
        validate_result(sub)
        assert sub["status"] == "ok" and sub["world_size"] == n
        assert sub["workload"]["per_rank_batch"] == 16  # weak: the config's per-rank batch
        runs[n] = sub
    assert "sweep: [1/2] world size 1, round 1/1 -> runs/" in proc.stderr
    assert "sweep: n2-r1: ok, " in proc.stderr and " samples/s, step p50 " in proc.stderr

    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    s = result["scaling"]
    assert result["run_id"] == out.resolve().name and result["status"] == "ok"
    assert s["mode"] == "weak" and [p["world_size"] for p in s["points"]] == [1, 2]
    # The efficiency comes from the runs' own measurements: recompute it from their files.
    x1 = runs[1]["metrics"]["throughput_samples_per_sec"]["value"]
    x2 = runs[2]["metrics"]["throughput_samples_per_sec"]["value"]
    assert s["baseline"]["value"] == x1
    assert s["points"][0]["efficiency_pct"] == 100.0
    assert s["points"][1]["efficiency_pct"] == pytest.approx(100.0 * x2 / (2 * x1))
    assert s["points"][1]["throughput_samples_per_sec"] == x2
    assert s["points"][1]["allreduce_ms"] == runs[2]["metrics"]["allreduce_ms"]["value"]
    eff = result["metrics"]["scaling_efficiency_pct"]
    assert eff["status"] == "derived" and eff["value"] == s["points"][1]["efficiency_pct"]
    # The per-rank sections are the 2-rank run's.
    assert s["headline_run"]["dir"] == "n2-r1" and result["world_size"] == 2
    assert result["ranks"] == runs[2]["ranks"]
    assert f"result: runs/{result['run_id']}/result.json" in proc.stdout
    assert "Scaling" in proc.stdout and "E = X_N / (N * X_1)" in proc.stdout

    # Where the lost step time went: parts from the runs' series, adding up to the loss.
    lost = s["points"][1]["breakdown"]["loss"]
    assert sum(lost["parts_ms"].values()) == pytest.approx(lost["lost_ms"], abs=1e-9)
    assert lost["lost_pct"] == pytest.approx(100 - s["points"][1]["efficiency_pct"], abs=1e-2)
    assert "why: 2 ranks: " in proc.stdout
    # The projection: the sweep's own all_reduce probe at 2 ranks gave alpha and beta.
    assert "sweep: all_reduce probe for the projection's alpha and beta: world size 2" in (
        proc.stderr
    )
    probe = json.loads((out / "allreduce-n2" / "result.json").read_text())
    assert probe["workload"]["workload_type"] == "collectives" and probe["world_size"] == 2
    proj = s["projection"]
    assert proj["link"]["link"]["fit"]["world_size"] == 2
    assert [p["world_size"] for p in proj["points"]] == [4, 64]
    # Every projected figure carries the fit error; past 50% the projection is refused. Which
    # one a 1-to-2-rank fit gives depends on the host's load (66% in one run here): both are
    # checked for what they must say.
    error = proj["fit_error_pct"]
    assert all(p["fit_error_pct"] == error and p["fit_on"] for p in proj["points"])
    if error <= 50:
        assert proj["status"] == "estimated", proj["reason"]
        assert all(p["status"] == "estimated" and p["step_time_ms"] > 0 for p in proj["points"])
    else:
        assert proj["status"] == "unavailable" and "more than 50%" in proj["reason"]
        assert all(p["status"] == "unavailable" for p in proj["points"])
    (entry,) = proj["check"]["entries"]  # two sizes: the largest from the smaller one
    assert abs(entry["error_pct"]) == pytest.approx(error)
    assert entry["world_size"] == 2 and entry["fit_sizes"] == [1]
    assert entry["error_pct"] == pytest.approx(
        100
        * (entry["predicted_step_time_ms"] - entry["measured_step_time_ms"])
        / entry["measured_step_time_ms"]
    )

    md_text = md.read_text()
    assert md_text.startswith(f"# minicluster sweep {result['run_id']}")
    assert "## Scaling" in md_text and "| world size | runs ok |" in md_text
    html_text = html.read_text()
    assert '<table data-table="Scaling">' in html_text
    assert 'data-plot="scaling"' in html_text and 'data-plot="scaling_loss"' in html_text
    assert "## Where the efficiency went" in md_text and "## Projection (estimated)" in md_text


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ("1,1", "--world-sizes: 1 is given twice"),
        ("0,2", "--world-sizes: 0 is not a positive number of ranks"),
        ("one,2", "--world-sizes: 'one' is not a whole number"),
        ("4", "--world-sizes needs at least two sizes"),
    ],
)
def test_bad_world_sizes_is_one_line_and_exit_2(
    run_cli: RunCli, tmp_path: Path, sizes: str, message: str
) -> None:
    proc = run_cli("sweep", "--world-sizes", sizes, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"minicluster: error: {message}"), lines
    assert not (tmp_path / "runs").exists()  # nothing started
