"""`minicluster isolate` end to end: real torchrun, 4 gloo ranks, one slow link (the slow_link
fault) named in fewer rounds than the pairwise test's pairs; a clean run names nobody; the
recorded rounds give the same verdict again (`--from`)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]  # the run_cli fixture (conftest)

# Small and quick; a slow link of 60 ms per call leaves its groups at a few % of a healthy
# group's busbw, far below the 47% the lone scale needs (README, "Isolating bad nodes").
QUICK = ["--size", "64K", "--iters", "3", "--warmup-iters", "1", "--passes", "2"]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_isolate_names_the_slow_rank_and_rejudges_the_same(run_cli: RunCli, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "iso"
    proc = run_cli(
        "isolate",
        "--nproc",
        "4",
        *QUICK,
        "--fault",
        "slow_link:rank=2,delay_ms=60",
        "--out",
        str(out),
    )
    assert proc.returncode == 1, proc.stderr
    assert "round 1:" in proc.stdout and "isolate: BAD: rank 2" in proc.stdout
    block = json.loads((out / "result.json").read_text())["isolate"]
    assert block["bad"] == ["rank 2"]
    assert block["rounds_run"] < block["pairwise_pairs"] == 6
    bad = [u for u in block["units"] if u["status"] == "bad"]
    assert [u["ranks"] for u in bad] == [[2]] and bad[0]["evidence"]
    again = run_cli("isolate", "--from", str(out), "--json")
    assert again.returncode == 1, again.stderr
    assert json.loads(again.stdout)["verdict"] == block["verdict"]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_isolate_clean_run_names_nobody(run_cli: RunCli, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    proc = run_cli("isolate", "--nproc", "4", *QUICK, "--out", str(tmp_path / "clean"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "isolate: ok: none of 4 units bad" in proc.stdout


def test_isolate_bad_input_is_one_line_exit_2(run_cli: RunCli, tmp_path: Path) -> None:
    for args in (
        ["--nproc", "1"],
        ["--nproc", "2"],  # one group: nothing to judge it against without --min-busbw
        ["--from", str(tmp_path / "nope")],
        ["--k", "0"],
    ):
        proc = run_cli("isolate", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def _site_reference(tmp_path: Path, busbw_gbps: float) -> Path:
    """A site reference for this machine's CPU with one all_reduce busbw figure."""
    from minicluster.rank.header import cpu_model

    path = tmp_path / "site.yaml"
    path.write_text(
        "format: minicluster-reference/1\nname: site-test\nkind: site\n"
        f"platform: {{cpu_model: {json.dumps(cpu_model())}}}\n"
        "figures:\n"
        f"  - {{metric: busbw_gbps, value: {busbw_gbps:.9f}, unit: GB/s, "
        "conditions: {op: all_reduce}, samples: 5, spread: 0.01}\n"
    )
    return path


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_isolate_judges_every_group_against_a_site_reference(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """A reference far above what this host does: every group is below its floor, nobody can be
    cleared, and the run says so (exit 1) with the reference named; one far below: clean."""
    pytest.importorskip("torch")
    high = _site_reference(tmp_path, 1e6)
    proc = run_cli(
        "isolate", "--nproc", "4", *QUICK, "--reference", str(high), "--out", str(tmp_path / "h")
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    block = json.loads((tmp_path / "h" / "result.json").read_text())["isolate"]
    assert block["reference"].startswith("site-test: all_reduce busbw 1e+06 GB/s")
    assert block["more_than_max_bad"] and len(block["unresolved"]) == 4
    assert all("< floor" in (g["why"] or "") for g in block["rounds"][0]["groups"])
    # 0.001 GB/s: a floor of 9e-07 is read back from config.json as a string (YAML 1.1 floats)
    low = _site_reference(tmp_path, 0.001)
    proc = run_cli(
        "isolate", "--nproc", "4", *QUICK, "--reference", str(low), "--out", str(tmp_path / "l")
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
