"""`minicluster fleet --reference FILE [--floor-pct P]` on the recorded fleet fixtures
(tests/fixtures/fleet: one run per node, node6 with a straggler): each node's figures as % of the
reference, below the floor a finding (exit 1), the reference named at the top; a reference of
another platform judges nobody ("not judged: no reference for this platform"); bad input exit 2."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]  # the run_cli fixture (conftest)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fleet"
SHIPPED = Path(__file__).resolve().parents[2] / "minicluster" / "references"
CLEAN = [str(FIXTURES / f"node{i}") for i in (1, 2, 3, 4, 5, 7)]


def _site_reference(run_cli: RunCli, tmp_path: Path) -> Path:
    """A site reference recorded from four of the clean nodes (`reference record`)."""
    out = tmp_path / "site.yaml"
    proc = run_cli(
        "reference", "record", *CLEAN[:4], "--out", str(out), "--name", "site", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.mark.timeout(120)
def test_clean_nodes_at_the_reference_pass_and_the_json_names_it(
    run_cli: RunCli, tmp_path: Path
) -> None:
    ref = _site_reference(run_cli, tmp_path)
    out = tmp_path / "f.json"
    proc = run_cli("fleet", *CLEAN, "--reference", str(ref), "--json", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["reference"] == {
        "file": str(ref),
        "name": "site",
        "kind": "site",
        "platform": {"cpu_model": "AMD EPYC"},
        "floor_pct": 90.0,
    }
    assert report["below_reference"] == []
    for node in report["nodes"]:
        against = node["against_reference"]
        assert against["verdict"] == "ok" and against["file"] == str(ref)
        pct = {m["metric"]: m["pct_of_reference"] for m in against["metrics"]}
        assert pct["latency_p50_ms"] is not None and pct["latency_p50_ms"] >= 90.0
        assert node["verdict"] == "ok"
    flat = " ".join(proc.stdout.split())  # the terminal wraps long lines
    assert "6 node(s) at or above 90% of reference site" in flat
    assert f"Judged against reference site (site, {ref}" in flat


@pytest.mark.timeout(120)
def test_a_node_below_the_floor_is_a_finding_with_its_evidence(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """A reference step time of 180 ms (the clean nodes ran 181.7 to 203.5 ms): at floor 90 only
    the slowest node (node4, 203.5 ms: 88.5%) falls below it, named with its evidence."""
    ref = _site_reference(run_cli, tmp_path)
    data = yaml.safe_load(ref.read_text())
    for fig in data["figures"]:
        if fig["metric"] == "latency_p50_ms":
            fig["value"] = 180.0
    fast = tmp_path / "fast.yaml"
    fast.write_text(yaml.safe_dump(data, sort_keys=False))
    out, md, html, xml = (tmp_path / f"f.{e}" for e in ("json", "md", "html", "xml"))
    proc = run_cli(
        "fleet",
        *CLEAN,
        "--reference",
        str(fast),
        "--floor-pct",
        "90",
        "--json",
        str(out),
        "--md",
        str(md),
        "--html",
        str(html),
        "--junit",
        str(xml),
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["below_reference"] == ["node4"]
    node4 = next(n for n in report["nodes"] if n["label"] == "node4")
    assert node4["verdict"] == "below_reference"
    lat = next(m for m in node4["against_reference"]["metrics"] if m["metric"] == "latency_p50_ms")
    assert lat["verdict"] == "below_floor" and lat["reference_value"] == 180.0
    assert lat["pct_of_reference"] == pytest.approx(100 * 180.0 / lat["value"], abs=0.01)
    assert any(e.startswith(f"reference site ({fast}): latency_p50_ms") for e in node4["evidence"])
    assert "1 node(s) below 90% of reference site: node4" in " ".join(proc.stdout.split())
    assert "BELOW REFERENCE" in md.read_text()
    assert f"Judged against reference site (site, {fast}" in html.read_text()
    failures = {
        case.get("name"): case.find("failure").get("message")
        for case in ElementTree.parse(xml).iter("testcase")
        if case.find("failure") is not None
    }
    assert list(failures) == ["node4"] and "below the reference" in failures["node4"]


@pytest.mark.timeout(120)
def test_a_reference_of_another_platform_judges_nobody(run_cli: RunCli, tmp_path: Path) -> None:
    ref = SHIPPED / "nvidia-h100-sxm-8gpu.yaml"
    out = tmp_path / "f.json"
    proc = run_cli("fleet", *CLEAN, "--reference", str(ref), "--json", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["reference"]["name"] == "nvidia-h100-sxm-8gpu"
    for node in report["nodes"]:
        against = node["against_reference"]
        assert against["verdict"] == "not_judged"
        assert against["reason"] == "no reference for this platform"
        assert all(m["pct_of_reference"] is None for m in against["metrics"])
    flat = " ".join(proc.stdout.split())  # the terminal wraps long lines
    assert "6 not judged: no reference for this platform" in flat
    assert "| not judged: no reference for this platform |" in md_nodes(run_cli, tmp_path, ref)


def md_nodes(run_cli: RunCli, tmp_path: Path, ref: Path) -> str:
    md = tmp_path / "f.md"
    run_cli("fleet", *CLEAN, "--reference", str(ref), "--md", str(md), cwd=tmp_path)
    return md.read_text()


@pytest.mark.timeout(60)
def test_without_reference_the_json_says_none(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "f.json"
    proc = run_cli("fleet", *CLEAN, "--json", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["reference"] is None and report["below_reference"] == []
    assert all(n["against_reference"] is None for n in report["nodes"])


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("extra", "line"),
    [
        (
            ["--reference", "missing.yaml"],
            "minicluster: error: no such reference file: missing.yaml",
        ),
        (
            ["--reference", str(SHIPPED / "nvidia-h100-sxm-8gpu.yaml"), "--floor-pct", "0"],
            "minicluster: error: --floor-pct must be in (0, 100], got 0",
        ),
        (["--floor-pct", "80"], "minicluster: error: --floor-pct needs --reference FILE"),
    ],
)
def test_bad_reference_input_is_one_line_exit_2(
    run_cli: RunCli, tmp_path: Path, extra: list[str], line: str
) -> None:
    proc = run_cli("fleet", *CLEAN, *extra, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip() == line and proc.stdout == ""
