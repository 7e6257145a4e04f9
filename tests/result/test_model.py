"""The typed result: every example result, golden and fixture (schema 1.0 to 1.5) reads into the
model and writes back the same JSON, bytes included; keys of a newer minor version survive; a
newer major version is refused in one line."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from minicluster.cli import main
from minicluster.core.errors import InputError
from minicluster.core.io import atomic_write_json
from minicluster.result import parse, read
from minicluster.result.model import (
    FaultKind,
    Finding,
    NodeEntry,
    RankEntry,
    RunResult,
    StepsSection,
)
from minicluster.result.section import MetricMap, same_json

REPO = Path(__file__).resolve().parents[2]
REPORTS = sorted((REPO / "reports").glob("*.result.json"))


def _results() -> list[Path]:
    """Every result in the checkout: reports, goldens and fixtures of every schema version."""
    found = []
    for folder in (REPO / "reports", REPO / "tests" / "golden", REPO / "tests" / "fixtures"):
        for path in sorted(folder.rglob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                continue
            if isinstance(data, dict) and str(data.get("schema_version")).startswith(
                "minicluster/"
            ):
                found.append(path)
    return found


RESULTS = _results()


def _id(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_the_examples_span_every_schema_version_and_kind() -> None:
    versions = {json.loads(p.read_text())["schema_version"] for p in RESULTS}
    assert {
        "minicluster/1",
        "minicluster/1.1",
        "minicluster/1.2",
        "minicluster/1.3",
        "minicluster/1.4",
    } <= versions
    kinds = {read(p).kind for p in RESULTS}
    assert kinds == {"run", "sweep", "collectives", "pairwise", "isolate"}
    assert len(REPORTS) >= 7


@pytest.mark.parametrize("path", RESULTS, ids=_id)
def test_every_result_reads_and_writes_back_the_same_json(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    result = read(path)
    back = result.to_json()
    assert back == data
    assert same_json(back, data)  # the key order too


@pytest.mark.parametrize("path", REPORTS, ids=_id)
def test_every_example_report_is_written_back_byte_for_byte(path: Path, tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "result.json", read(path).to_json())
    assert (tmp_path / "result.json").read_bytes() == path.read_bytes()


def test_schema_1_0_reads_as_the_model() -> None:
    """A 1.0 result: the node count instead of the per-node section, no series, no timing."""
    result = read(REPO / "tests" / "fixtures" / "results" / "default_run.v1.0.json")
    assert result.schema_version == "minicluster/1"
    assert result.nodes == 1 and result.node_count == 1 and result.node_entries == []
    assert result.series is None and result.timing_method is None
    assert result.interrupted is False and result.aborted_ranks == []
    assert isinstance(result.ranks[0], RankEntry) and result.ranks[0].step_time_ms is not None
    assert result.metric_value("throughput_samples_per_sec") is not None
    assert "timing_method" not in result.to_json()  # absent stays absent


def test_schema_1_2_nodes_are_typed() -> None:
    result = read(REPO / "tests" / "golden" / "reports" / "run_2nodes.result.json")
    assert result.schema_version == "minicluster/1.2"
    assert [type(n) for n in result.node_entries] == [NodeEntry, NodeEntry]
    assert result.node_count == 2
    assert isinstance(result.steps, StepsSection) and result.series is not None


def test_schema_1_4_fingerprint_is_typed() -> None:
    from minicluster.result import fingerprint
    from minicluster.result.model import Fingerprint

    data = json.loads((REPO / "tests/golden/run_2ranks.result.json").read_text())
    result = RunResult.from_json(data)
    assert isinstance(result.fingerprint, Fingerprint)
    assert result.fingerprint.fields["workload_type"] == "training"
    assert result.fingerprint.to_json() == fingerprint.of_result(data)


def _newer_minor(data: dict[str, Any]) -> dict[str, Any]:
    """`data` as a newer minor version would write it: keys this version does not know, at the
    top, in a rank, a node, a metric, a finding and the steps section."""
    newer = copy.deepcopy(data)
    newer["schema_version"] = "minicluster/1.9"
    newer["what_if"] = [{"rank": 1, "cost_ms": 12.5, "cost_pct": 3.1}]
    newer["ranks"][0]["accounting_ms"] = {"compute": 1.0, "other": 0.1}
    newer["nodes"][0]["fingerprint"] = "abc"
    name = next(iter(newer["metrics"]))
    newer["metrics"][name]["interval"] = [1.0, 2.0]
    newer["faults"]["detected"].append(
        {"kind": "culprit", "rank": 1, "step": 3, "evidence": "slowest", "cost_ms": 1.5}
    )
    newer["steps"]["accounting"] = {"tolerance_ms": 0.5}
    return newer


def test_keys_of_a_newer_minor_version_survive_a_round_trip() -> None:
    data = _newer_minor(json.loads((REPO / "tests/golden/run_2ranks.result.json").read_text()))
    result = parse(data)  # the shipped schema accepts additive keys
    assert same_json(result.to_json(), data)
    assert result.extra["what_if"][0]["cost_ms"] == 12.5
    assert result.ranks[0].extra == {"accounting_ms": {"compute": 1.0, "other": 0.1}}
    assert result.node_entries[0].extra == {"fingerprint": "abc"}
    finding = result.faults.detected[-1]
    assert finding.kind == "culprit" and finding.fault_kind is FaultKind.UNKNOWN
    assert not finding.gates and finding.extra == {"cost_ms": 1.5}
    name = next(iter(data["metrics"]))
    assert isinstance(result.metrics, MetricMap)
    assert result.metrics[name].value == data["metrics"][name]["value"]  # still a MetricValue


NEWER = sorted((REPO / "tests" / "fixtures" / "results" / "newer").glob("*.json"))


@pytest.mark.parametrize(
    ("name", "top", "per_rank"),
    [
        (
            "culprit_run.i25.json",
            # culprits, culprit_rule, accounting, time_structure, ranks[].cost and incident
            # are typed now (the fixture's incident null comes back in place)
            set(),
            set(),
        ),
        (
            "layout_ep.i24.json",
            # layout, precision, compile and comm are typed now (result.model.LayoutSection,
            # CommSection), bad_input too (a custom model's code that fails: exit 2): they still
            # come back byte for byte
            {"pipeline"},
            set(),
        ),
        # `isolate` is typed now (Isolate): the earlier branch's output reads as that section
        ("isolate.i27.json", set(), set()),
    ],
)
def test_results_of_work_not_yet_merged_validate_and_come_back_byte_for_byte(
    name: str, top: set[str], per_rank: set[str], tmp_path: Path
) -> None:
    """Results that other branches' producers wrote (tests/fixtures/results/README.md): their
    keys are unknown here, pass the shipped schema, and are written back in place."""
    path = REPO / "tests" / "fixtures" / "results" / "newer" / name
    result = read(path)  # validated against the shipped schema
    assert set(result.extra) == top
    assert {k for rank in result.ranks for k in rank.extra} == per_rank
    atomic_write_json(tmp_path / "result.json", result.to_json())
    assert (tmp_path / "result.json").read_bytes() == path.read_bytes()


def test_the_sections_other_work_adds_survive_at_the_top_and_in_each_rank(
    tmp_path: Path,
) -> None:
    """Every section the issues still open plan to add, unknown to this version, at the top of
    the result and in each rank (a nested `comm.kinds` too): valid, and the same bytes back."""
    data = json.loads((REPO / "tests/golden/run_2ranks.result.json").read_text())
    layout_run = json.loads((REPO / "tests/fixtures/results/newer/layout_ep.i24.json").read_text())
    planned = {
        "comm": layout_run["comm"],
        "pipeline": {"schedule": "1F1B", "stages": 2, "bubble_pct": 33.3},
        "layout": layout_run["layout"],
    }
    typed = {"comm", "layout"}  # result.model's CommSection and LayoutSection read them
    per_rank = {"accounting": {"other_ms": 0.2}, "layout": {"tp": 0}}
    for key, value in planned.items():
        data[key] = value
    for rank in data["ranks"]:
        rank.update(copy.deepcopy(per_rank))
    path = tmp_path / "in.json"
    atomic_write_json(path, data)
    result = read(path)  # validated against the shipped schema
    assert list(result.extra) == [k for k in planned if k not in typed]
    assert all(list(rank.extra) == list(per_rank) for rank in result.ranks)
    atomic_write_json(tmp_path / "out.json", result.to_json())
    assert (tmp_path / "out.json").read_bytes() == path.read_bytes()


def test_incident_reads_typed_and_comes_back_byte_for_byte(tmp_path: Path) -> None:
    """`incident` (issue 25, after Alibaba C4): the class of a failed or slow run's incident."""
    data = json.loads((REPO / "tests/golden/run_2ranks.result.json").read_text())
    data["incident"] = {
        "kind": "non_comm_hang",
        "ranks": [1],
        "node": {"node_rank": 0, "hostname": "vm"},
        "link": None,
        "evidence": "rank 1 stopped recording while its peers timed out",
        "decided_from": "failure_order",
    }
    path = tmp_path / "in.json"
    atomic_write_json(path, data)
    result = read(path)
    assert result.incident is not None and result.incident.kind == "non_comm_hang"
    assert result.incident.node is not None and result.incident.node.hostname == "vm"
    atomic_write_json(tmp_path / "out.json", result.to_json())
    assert (tmp_path / "out.json").read_bytes() == path.read_bytes()
    data["incident"]["kind"] = "slow"
    atomic_write_json(path, data)
    with pytest.raises(InputError, match="incident"):
        read(path)


def test_failure_order_reads_typed_and_comes_back_byte_for_byte(tmp_path: Path) -> None:
    """`failure_order` (issue 25): each failed rank's failure, the first one first."""
    data = json.loads((REPO / "tests/golden/run_2ranks.result.json").read_text())
    data["failure_order"] = [
        {
            "rank": 1,
            "node_rank": 0,
            "hostname": "vm",
            "kind": "kill",
            "cause": True,
            "signal": 9,
            "signal_name": "SIGKILL",
            "exit_code": -9,
            "t_unix_s": 1796457633.1,
            "step": 36,
            "evidence": "killed by signal 9 (SIGKILL) from outside the launcher",
        },
        {"rank": 0, "kind": "aborted", "cause": False, "evidence": "its collective failed"},
    ]
    path = tmp_path / "in.json"
    atomic_write_json(path, data)
    result = read(path)
    assert result.failure_order is not None
    first, victim = result.failure_order
    assert (first.rank, first.kind, first.signal, first.cause) == (1, "kill", 9, True)
    assert (victim.kind, victim.cause, victim.t_unix_s) == ("aborted", False, None)
    assert not result.extra
    atomic_write_json(tmp_path / "out.json", result.to_json())
    assert (tmp_path / "out.json").read_bytes() == path.read_bytes()


def test_schema_1_4_threads_and_the_checks_the_run_was_judged_by() -> None:
    """ranks[].threads (1.4) reads as an int; `checks` is the config's checks section, or the
    same keys under `run` in a result from before that section; None without either."""
    from minicluster.core.checks import ChecksSection

    data = json.loads((REPO / "tests/golden/run_2ranks.result.json").read_text())
    result = RunResult.from_json(data)
    assert [r.threads for r in result.ranks] == [1, 1]
    assert "checks" not in data["config"] and data["config"]["run"]["straggler_threshold_pct"] == 20
    assert result.checks == ChecksSection(straggler_threshold_pct=20.0)
    judged = copy.deepcopy(data)
    judged["config"]["checks"] = {"straggler_threshold_pct": 30.0, "expect_busbw_gbps": 2.5}
    checks = RunResult.from_json(judged).checks
    assert checks is not None
    assert (checks.straggler_threshold_pct, checks.expect_busbw_gbps) == (30.0, 2.5)
    assert checks.slow_link_below_pct == ChecksSection().slow_link_below_pct  # not in the config
    older = read(REPO / "tests/fixtures/results/collectives_run.v1.0.json")
    assert older.checks is None and all(r.threads is None for r in older.ranks)
    assert all("threads" not in r for r in older.to_json()["ranks"])  # absent stays absent


def test_a_replaced_metric_is_written_from_its_new_value() -> None:
    data = _newer_minor(json.loads((REPO / "tests/golden/run_2ranks.result.json").read_text()))
    result = RunResult.from_json(data)
    name = next(iter(data["metrics"]))
    mv = result.metrics[name]
    result.metrics[name] = type(mv)(42.0, mv.unit, "derived", "recomputed")
    written = result.to_json()["metrics"][name]
    assert written == {
        "value": 42.0,
        "unit": mv.unit,
        "status": "derived",
        "method": "recomputed",
        "reason": None,
    }


def test_a_newer_major_version_is_refused_in_one_line(tmp_path: Path, capsys: Any) -> None:
    data = json.loads((REPO / "tests/golden/run_2ranks.result.json").read_text())
    data["schema_version"] = "minicluster/9.0"
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"minicluster/9\.0 is from a newer minicluster"):
        read(path)
    with pytest.raises(InputError, match="newer minicluster"):
        RunResult.from_json(data)
    for command in (["report", str(path)], ["compare", str(path), str(path)]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "newer minicluster" in err
        assert "Traceback" not in err


def test_not_a_result_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a minicluster result"):
        RunResult.from_json({"schema_version": "trackiq/1.1"})
    with pytest.raises(InputError, match="not a minicluster result: result: missing"):
        RunResult.from_json({"schema_version": "minicluster/1.3"})


def test_sections_built_in_code_write_their_keys_in_declaration_order() -> None:
    finding = Finding(kind="crash", rank=1, step=7, evidence="exit code 86")
    assert finding.to_json() == {"kind": "crash", "rank": 1, "step": 7, "evidence": "exit code 86"}
    assert list(finding.to_json()) == ["kind", "rank", "step", "evidence"]  # None left out
    placed = Finding(kind="crash", rank=1, step=7, evidence="x", node_rank=0, hostname="vm")
    assert list(placed.to_json())[-2:] == ["node_rank", "hostname"]
    assert Finding.from_json(placed.to_json()) == placed


def test_a_field_set_after_reading_is_written_and_an_absent_one_stays_absent() -> None:
    data = json.loads((REPO / "tests/fixtures/results/default_run.v1.0.json").read_text())
    result = RunResult.from_json(data)
    assert "ray" not in result.to_json()
    result.timing_method = "comm_hook_host_clock"
    written = result.to_json()
    assert written["timing_method"] == "comm_hook_host_clock"
    assert list(written)[: len(data)] == list(data)  # the keys read keep their places


def test_to_json_gives_fresh_containers() -> None:
    result = read(REPO / "tests/golden/run_2ranks.result.json")
    first = result.to_json()
    first["ranks"][0]["rank"] = 99
    first["config"]["run"]["nproc"] = 99
    assert result.ranks[0].rank == 0 and result.to_json()["config"]["run"]["nproc"] != 99


@pytest.mark.parametrize(
    ("kind", "correctness", "link", "death", "gates"),
    [
        ("crash", False, False, True, False),
        ("hang", False, False, True, False),
        ("rank_failure", False, False, True, False),
        ("node_lost", False, False, False, False),
        ("straggler", False, False, False, False),
        ("corrupt_grad", True, False, False, True),
        ("replica_divergence", True, False, False, True),
        ("slow_link", False, True, False, True),
        ("a_kind_from_a_newer_version", False, False, False, False),
    ],
)
def test_fault_kinds_say_what_gates(
    kind: str, correctness: bool, link: bool, death: bool, gates: bool
) -> None:
    k = FaultKind.of(kind)
    assert (k.correctness, k.link, k.death, k.gates) == (correctness, link, death, gates)
    assert Finding(kind=kind, rank=0, step=None, evidence="e").gates is gates


def test_the_exit_code_follows_the_kind_of_each_finding() -> None:
    from minicluster.analysis.verdicts import exit_code

    data = json.loads((REPO / "tests/golden/run_2ranks.result.json").read_text())
    assert exit_code(RunResult.from_json(data)) == 0
    for kind, code in (("straggler", 0), ("corrupt_grad", 1), ("slow_link", 1), ("new", 0)):
        edited = copy.deepcopy(data)
        edited["faults"]["detected"] = [{"kind": kind, "rank": 1, "step": 2, "evidence": "e"}]
        assert exit_code(RunResult.from_json(edited)) == code, kind
