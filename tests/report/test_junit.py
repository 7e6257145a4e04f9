"""`--junit F` on compare, fleet, history check and run/validate: JUnit XML that a JUnit parser
(junitparser) reads, one test case per verdict, a finding as a failure."""

from __future__ import annotations

import json
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped

from minicluster.cli import main
from minicluster.report.junit import run_cases, to_xml
from minicluster.result.model import RunResult

FIX = Path(__file__).resolve().parents[1] / "fixtures"


def _cases(path: Path) -> dict[str, str]:
    """test case name -> outcome (passed, failure, skipped, error)."""
    out = {}
    for suite in JUnitXml.fromfile(str(path)):
        for case in suite:
            kinds = {type(r) for r in case.result}
            out[case.name] = (
                "failure"
                if Failure in kinds
                else "error"
                if Error in kinds
                else "skipped"
                if Skipped in kinds
                else "passed"
            )
    return out


def test_compare_junit_one_case_per_row(tmp_path: Path) -> None:
    case = FIX / "cases" / "23-thermal-drift-excused-by-spread"
    xml = tmp_path / "c.xml"
    assert (
        main(
            [
                "compare",
                str(case / "clean.result.json"),
                str(case / "drift.result.json"),
                "--junit",
                str(xml),
            ]
        )
        == 1
    )
    cases = _cases(xml)
    assert cases["step_time_mean_ms"] == "failure" and cases["latency_p50_ms"] == "failure"
    assert cases["tokens_per_sec"] == "skipped"  # not measured
    assert cases["memory_peak_mib"] == "passed"
    assert len(cases) == 21  # every metric row


def test_fleet_junit_names_the_outlier_node(tmp_path: Path) -> None:
    logs = sorted((FIX / "cases" / "21-nccl-tests-log-as-input" / "fleet").glob("*.log"))
    xml = tmp_path / "f.xml"
    assert main(["fleet", *map(str, logs), "--junit", str(xml)]) == 1
    cases = _cases(xml)
    assert cases == {
        "node1.log": "passed",
        "node2.log": "passed",
        "node3.log": "passed",
        "node4.log": "failure",
        "node5.log": "passed",
    }


def test_run_junit_from_a_recorded_result(tmp_path: Path) -> None:
    """The run/validate cases of a real failed run (the golden failed result) and an ok one."""
    failed = json.loads(
        (
            Path(__file__).resolve().parents[1] / "golden" / "reports" / "run_failed.result.json"
        ).read_text()
    )
    xml = tmp_path / "r.xml"
    xml.write_text(to_xml("minicluster run", run_cases(RunResult.from_json(failed), 3)))
    cases = _cases(xml)
    assert cases["status"] == "error" and cases["exit code"] == "failure"
    assert cases["rank 1"] == "failure"
    root = Path(__file__).resolve().parents[2]
    straggler = json.loads((root / "reports" / "straggler_run.result.json").read_text())
    xml.write_text(to_xml("minicluster run", run_cases(RunResult.from_json(straggler), 0)))
    assert _cases(xml)["straggler rank 1"] == "failure"
    ok = json.loads(
        (FIX / "cases" / "23-thermal-drift-excused-by-spread" / "clean.result.json").read_text()
    )
    xml.write_text(to_xml("minicluster run", run_cases(RunResult.from_json(ok), 0)))
    assert set(_cases(xml).values()) == {"passed"}


def test_user_text_is_escaped(tmp_path: Path) -> None:
    from minicluster.report.junit import Case

    xml = tmp_path / "x.xml"
    xml.write_text(to_xml("s", [Case("a<b", 'n"&', "failure", "<script>&")]))
    suite = next(iter(JUnitXml.fromfile(str(xml))))
    case = next(iter(suite))
    assert case.name == 'n"&' and case.result[0].message == "<script>&"


def test_isolate_junit_one_case_per_rank_the_bad_one_fails(tmp_path: Path) -> None:
    """`isolate --from DIR --junit F`: the recorded run named rank 1 bad (of 4)."""
    xml = tmp_path / "i.xml"
    assert main(["isolate", "--from", str(FIX / "isolate_v1_rundir"), "--junit", str(xml)]) == 1
    assert _cases(xml) == {
        "rank 0": "passed",
        "rank 1": "failure",
        "rank 2": "passed",
        "rank 3": "passed",
    }


def test_a_slow_link_with_no_rank_names_the_link_not_rank_none(tmp_path: Path) -> None:
    """The all-reduce's busbw names no rank; with 2 ranks the link is the one between them (the
    case was named "slow_link rank None")."""
    root = Path(__file__).resolve().parents[2]
    run = json.loads((root / "reports" / "straggler_run.result.json").read_text())
    slow = {"kind": "slow_link", "rank": None, "step": None, "evidence": "busbw 25% of 0.7"}
    run = {**run, "stragglers": [], "faults": {"injected": [], "detected": [slow]}}
    xml = tmp_path / "r.xml"
    xml.write_text(to_xml("minicluster run", run_cases(RunResult.from_json(run), 1)))
    cases = _cases(xml)
    assert cases["slow_link on the link between ranks 0 and 1"] == "failure"
    assert not any("None" in name for name in cases)


FLEET = FIX / "fleet"


def _skips(path: Path) -> dict[str, str]:
    """test case name -> the skipped element's message."""
    out = {}
    for suite in JUnitXml.fromfile(str(path)):
        for case in suite:
            for r in case.result:
                if isinstance(r, Skipped):
                    out[case.name] = str(r.message)
    return out


def test_fleet_junit_skips_the_nodes_it_could_not_judge(tmp_path: Path) -> None:
    """The new-user trial: `fleet` of 3 node checks exits 2 (not judged) but its JUnit said
    every node passed, `failures="0" skipped="0"`, `ok` (a green CI dashboard); so did 5 nodes
    with `--metric` of a metric none measured. Each node is skipped with its reason."""
    xml = tmp_path / "f.xml"
    nodes = [str(FLEET / f"node{i}") for i in (1, 2, 3)]
    assert main(["fleet", *nodes, "--junit", str(xml)]) == 2
    assert _cases(xml) == {"node1": "skipped", "node2": "skipped", "node3": "skipped"}
    assert "need 5 for the robust z" in _skips(xml)["node1"]
    assert 'skipped="3"' in xml.read_text() and ">ok<" not in xml.read_text()
    five = [str(FLEET / f"node{i}") for i in range(1, 6)]
    argv = ["fleet", *five, "--metric", "energy_per_step_joules", "--junit", str(xml)]
    assert main(argv) == 2
    assert set(_cases(xml).values()) == {"skipped"} and len(_cases(xml)) == 5
    assert "energy_per_step_joules" in _skips(xml)["node1"]


def test_fleet_junit_fails_a_node_whose_own_check_found_a_problem(tmp_path: Path) -> None:
    """node6 of the recorded fleet ran with a straggler: its own check names it (exit 1); its
    JUnit case fails, whatever the robust z says."""
    xml = tmp_path / "f.xml"
    nodes = [str(FLEET / f"node{i}") for i in range(1, 9)]
    assert main(["fleet", *nodes, "--junit", str(xml)]) == 1
    cases = _cases(xml)
    assert cases["node6"] == "failure"
    assert all(v == "passed" for k, v in cases.items() if k != "node6"), cases
