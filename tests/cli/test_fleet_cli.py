"""`minicluster fleet` on eight real node checks (tests/fixtures/fleet: seven clean, node6 run with
a straggler): the straggler is named, the clean ones alone name nobody; outputs and bad input."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]  # the run_cli fixture (conftest)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fleet"
ALL = [str(FIXTURES / f"node{i}") for i in range(1, 9)]
CLEAN = [p for p in ALL if not p.endswith("node6")]


@pytest.mark.timeout(60)
def test_the_straggler_node_is_named_by_its_own_check_exit_1(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """node6's own run named its straggler: the fleet says so (never "ok"), keeps node6 out of the
    distributions it would skew, and still shows where its figures sit against the others'."""
    out_json, md, html = tmp_path / "f.json", tmp_path / "f.md", tmp_path / "f.html"
    proc = run_cli(
        "fleet", *ALL, "--json", str(out_json), "--md", str(md), "--html", str(html), cwd=tmp_path
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first == (
        "fleet of 8 nodes: 1 node(s) whose own check found a problem: node6 (its run named "
        "straggler rank 1 (compute +154%))"
    )
    report = json.loads(out_json.read_text())
    assert report["findings"] == ["node6"] and report["outliers"] == [] and report["failed"] == []
    assert report["nodes"][0]["label"] == "node6"  # worst first
    compute = next(m for m in report["metrics"] if m["name"] == "compute_ms")
    assert compute["outliers"] == [] and compute["n"] == 7  # node6 is not in the distribution
    cell = compute["per_node"]["node6"]
    assert cell["bad_z"] > report["outlier_z"] and cell["excluded"].startswith("its run named")
    # energy is left out by default when no node measured it (this VM has no RAPL)
    names = [m["name"] for m in report["metrics"]]
    assert names == [
        "latency_p50_ms",
        "compute_ms",
        "allreduce_ms",
        "busbw_gbps",
        "memory_peak_mib",
    ]
    assert report["groups"][0]["label"] == "no GPU, AMD EPYC" and report["groups"][0]["judged"]
    md_text = md.read_text()
    assert "**fleet of 8 nodes: 1 node(s) whose own check found a problem: node6" in md_text
    assert "## compute_ms (ms)" in md_text and "| **node6** |" in md_text
    html_text = html.read_text()
    assert 'data-plot="fleet-compute_ms"' in html_text and "node6: " in html_text
    assert html_text.index('data-plot="fleet-') < html_text.index("<table")  # plots first


@pytest.mark.timeout(60)
def test_the_seven_clean_nodes_name_nobody_exit_0(run_cli: RunCli, tmp_path: Path) -> None:
    proc = run_cli("fleet", *CLEAN, "--json", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)  # stdout carries the JSON; the tables went to stderr
    assert report["outliers"] == [] and report["failed"] == []
    assert all(m["outliers"] == [] for m in report["metrics"])
    assert "fleet of 7 nodes: no outlier on latency_p50_ms" in proc.stderr


@pytest.mark.timeout(60)
def test_one_metric_only(run_cli: RunCli, tmp_path: Path) -> None:
    proc = run_cli("fleet", *ALL, "--metric", "memory_peak_mib", cwd=tmp_path)
    # node6's straggler does not move its memory, but its own check named it: not "ok"
    assert proc.returncode == 1, proc.stdout
    assert "1 node(s) whose own check found a problem: node6" in proc.stdout
    assert "outlier node" not in proc.stdout


def _edited(tmp_path: Path, name: str, edit: Callable[[dict], None]) -> str:
    data = json.loads((FIXTURES / "node6" / "result.json").read_text())
    edit(data)
    path = tmp_path / name / "result.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    return str(path.parent)


def test_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from minicluster.cli import main

    def steps(d: dict) -> None:
        d["config"]["steps"]["measured"] = 5
        d["run_id"] = "other"

    odd = _edited(tmp_path, "odd-node", steps)
    cases = [
        ([*CLEAN, odd], "odd-node ran a different job from the other 7 input(s): "
         "config.steps.measured is 5 there, 30 in the others"),
        (CLEAN[:2], "fleet needs the results of at least 3 nodes, got 2"),
        ([*CLEAN[:3], CLEAN[0]], "given twice"),
        ([*CLEAN, "--metric", "speed"], "--metric 'speed' is not a metric"),
        ([*CLEAN, str(tmp_path / "missing")], "no such file"),
        ([*CLEAN, "--outlier-z", "0"], "--outlier-z must be a positive number"),
        ([*CLEAN, "--json", "-", "--md", "-"], "only one of --json, --md, --html can be '-'"),
    ]  # fmt: skip
    for args, message in cases:
        assert main(["fleet", *args]) == 2, args
        captured = capsys.readouterr()
        lines = [ln for ln in captured.err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("minicluster: error:"), lines
        assert message in lines[0], (message, lines)
        assert captured.out == ""  # nothing printed before the input was refused


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_fresh_straggler_run_among_the_recorded_fleet(run_cli: RunCli, tmp_path: Path) -> None:
    """A real node check with a straggler, run now, among the seven recorded clean ones: named.

    It runs alone while the recorded ones ran eight at a time (their steps ~190 ms), so only a
    node far off them could be told apart here; a 600 ms straggler is.
    """
    pytest.importorskip("torch")
    out = tmp_path / "fresh"
    proc = run_cli(
        "run",
        "-c",
        str(FIXTURES / "node_check.yaml"),
        "--fault",
        "straggler:rank=1,delay_ms=600",
        "--out",
        str(out),
        cwd=tmp_path,
        timeout=220,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]  # a straggler is a finding (exit policy)
    fleet = run_cli("fleet", *CLEAN, str(out), "--metric", "compute_ms", cwd=tmp_path)
    assert fleet.returncode == 1, fleet.stdout
    # The recorded nodes ran on one CPU model; a host of another model is judged in its own
    # platform group, and its own check's verdict is named either way.
    assert re.match(
        r"fleet of 8 nodes( in 2 platform groups)?: 1 node\(s\) whose own check found a "
        r"problem: fresh \(its run named straggler rank 1",
        fleet.stdout.splitlines()[0],
    ), fleet.stdout


def test_fleet_flags_are_frozen() -> None:
    """The command's flags are its interface: a change here is a change for every user."""
    import argparse

    from minicluster.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = {s for s in sub.choices["fleet"]._option_string_actions if s.startswith("--")}
    assert flags == {
        "--help",
        "--metric",
        "--outlier-z",
        "--mad-floor",
        "--md",
        "--html",
        "--json",
        "--junit",
        "--reference",
        "--floor-pct",
    }
    args = parser.parse_args(["fleet", "a", "b", "c"])
    assert (args.metric, args.outlier_z, args.mad_floor) == (None, 3.5, None)


def test_wording_a_link_is_named_by_its_run_and_too_few_nodes_says_five(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The new-user trial: a node given as `runs/latest-node-check` was shown as
    `latest-node-check`, not the run it resolves to; a metric none of 5 nodes measured said
    "measured on 0 node(s), fewer than 3", though the robust z needs 5."""
    from minicluster.cli import main

    link = tmp_path / "latest-node-check"
    link.symlink_to(FIXTURES / "node1")
    nodes = [str(link), *ALL[1:5]]
    out = tmp_path / "f.json"
    assert main(["fleet", *nodes, "--json", str(out)]) == 0
    labels = [n["label"] for n in json.loads(out.read_text())["nodes"]]
    assert "node1" in labels and "latest-node-check" not in labels
    said = capsys.readouterr().out
    assert "latest-node-check" not in said
    argv = ["fleet", *nodes, "--metric", "energy_per_step_joules"]
    assert main(argv) == 2
    said = capsys.readouterr().out
    assert "fewer than 3" not in said and "fewer than the 5 the robust z needs" in said
