"""The fleet's rules on real node-check results (the fixtures) and edits of them: the direction
decides the bad side, mismatched jobs are named, one multi-node result is split by node."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from minicluster.analysis import reference_site, references
from minicluster.analysis.fleet import MAD_FLOOR_FRAC, fleet
from minicluster.core.errors import InputError
from minicluster.result.model import RunResult
from minicluster.result.schema import validate_result

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fleet"
CLEAN = [1, 2, 3, 4, 5, 7, 8]


def _load(i: int) -> tuple[str, dict[str, Any]]:
    path = FIXTURES / f"node{i}" / "result.json"
    return str(path), json.loads(path.read_text())


def _clean() -> list[tuple[str, dict[str, Any]]]:
    return [_load(i) for i in CLEAN]


def _scaled(item: tuple[str, dict[str, Any]], name: str, factor: float, run_id: str) -> Any:
    source, r = item
    r = copy.deepcopy(r)
    r["run_id"] = run_id
    r["metrics"][name]["value"] *= factor
    return source.replace("node", f"edited-{run_id}-"), r


def test_only_the_bad_side_of_the_direction_counts() -> None:
    """busbw is higher-is-better: a node with 5x the bandwidth is no outlier, one with a fifth
    is; step time is lower-is-better: 5x slower is, 5x faster is not."""
    base = _clean()[:6]
    fast = _scaled(_load(7), "busbw_gbps", 5.0, "fast-link")
    slow = _scaled(_load(8), "busbw_gbps", 0.2, "slow-link")
    report = fleet([*base, fast, slow], ["busbw_gbps", "latency_p50_ms"])
    (busbw, latency) = report["metrics"]
    assert busbw["direction"] == "higher" and busbw["outliers"] == ["edited-slow-link-8"]
    assert busbw["per_node"]["edited-fast-link-7"]["z"] > 3.5  # far off, on the good side
    assert busbw["per_node"]["edited-fast-link-7"]["outlier"] is False
    assert busbw["per_node"]["edited-slow-link-8"]["score"] < 0.3  # value / median
    assert latency["outliers"] == []
    assert report["outliers"] == ["edited-slow-link-8"]
    assert report["nodes"][0]["label"] == "edited-slow-link-8"  # worst first
    assert "edited-slow-link-8 (busbw_gbps z +" in report["verdict"]  # bad-side z, as the table


def test_the_mad_floor_keeps_a_tight_fleet_from_naming_normal_spread() -> None:
    """Seven nodes within 1% of each other and one 10% off: without a floor the 10% is dozens
    of MADs away; with the default floor it is within exp(3.5 x floor) of the median."""
    nodes = []
    for k, (source, r) in enumerate(_clean()):
        r = copy.deepcopy(r)
        r["metrics"]["memory_peak_mib"]["value"] = 350.0 * (1 + 0.001 * k)
        nodes.append((source, r))
    source, r = _load(6)
    r = copy.deepcopy(r)
    r["stragglers"], r["faults"]["detected"] = [], []  # a node like the others but its memory
    r["metrics"]["memory_peak_mib"]["value"] = 385.0  # +10%
    nodes.append((source, r))
    unfloored = fleet(nodes, ["memory_peak_mib"], mad_floor=0.0)
    assert unfloored["outliers"] == ["node6"]
    floored = fleet(nodes, ["memory_peak_mib"])
    assert floored["mad_floor_frac"] == MAD_FLOOR_FRAC and floored["metrics"][0]["mad_floored"]
    assert floored["outliers"] == []


def test_a_different_job_is_named_with_the_field_that_differs() -> None:
    nodes = _clean()
    source, r = _load(6)
    r = copy.deepcopy(r)
    r["config"]["steps"]["measured"] = 99
    with pytest.raises(InputError, match=r"node6/result.json ran a different job from the other"):
        fleet([*nodes, (source, r)])
    with pytest.raises(InputError, match="config.steps.measured is 99 there, 30 in the others"):
        fleet([*nodes, (source, r)])
    # the injected fault and the job's name may differ: the fleet finds faults from numbers
    source, r = _load(6)
    r = copy.deepcopy(r)
    r["config"]["name"] = "renamed"
    assert fleet([*nodes, (source, r)])["workload"]["name"] == "mlp"


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([1, 2], "needs the results of at least 3 nodes, got 2"),
        ([1, 2, 2], "given twice"),
    ],
)
def test_too_few_or_repeated_inputs(inputs: list[int], message: str) -> None:
    with pytest.raises(InputError, match=message):
        fleet([_load(i) for i in inputs])


def test_an_unknown_metric_is_refused() -> None:
    with pytest.raises(InputError, match="--metric 'speed' is not a metric"):
        fleet(_clean(), ["speed"])


def test_a_failed_node_check_is_named_and_left_out_of_the_distribution() -> None:
    source, r = _load(6)
    r = copy.deepcopy(r)
    r["status"] = "failed"
    report = fleet([*_clean(), (source, r)], ["latency_p50_ms"])
    assert report["failed"] == ["node6"] and report["outliers"] == []
    assert report["metrics"][0]["n"] == 7
    assert report["nodes"][0]["label"] == "node6"
    assert "1 node check(s) failed: node6" in report["verdict"]


def _multinode(nodes_as_list: bool, hosts: int = 4) -> dict[str, Any]:
    """One result on `hosts` hosts, two ranks each, made from a real 2-rank result; host
    h2's ranks compute 10x longer."""
    _, r = _load(1)
    r = copy.deepcopy(r)
    template = r["ranks"][0]
    ranks = []
    for rank in range(2 * hosts):
        e = copy.deepcopy(template)
        e.update(rank=rank, hostname=f"h{rank // 2}", local_rank=rank % 2)
        if rank // 2 == 2:
            e["compute_ms_median"] *= 10
        ranks.append(e)
    r.update(ranks=ranks, world_size=2 * hosts, run_id="multi")
    if nodes_as_list:  # schema 1.2: the node's own medians win over its ranks'
        r["nodes"] = [
            {
                "hostname": f"h{k}",
                "node_rank": k,
                "ranks": [2 * k, 2 * k + 1],
                "status": "ok",
                "failed_ranks": [],
                "missing_ranks": [],
                "performance_score": None,
                "compute_ms_median": 50.0 if k == 3 else 5.0 + 0.1 * k,
            }
            for k in range(hosts)
        ]
    else:
        r["nodes"] = hosts
    validate_result(r)
    return r


@pytest.mark.parametrize("nodes_as_list", [False, True])
def test_one_multi_node_result_is_split_by_node(nodes_as_list: bool) -> None:
    report = fleet([("multi.json", _multinode(nodes_as_list, hosts=5))])
    assert report["mode"] == "one multi-node result"
    labels = [n["label"] for n in report["nodes"]]
    expected = (
        [f"node {k} (h{k})" for k in range(5)] if nodes_as_list else [f"h{k}" for k in range(5)]
    )
    assert sorted(labels) == expected
    compute = next(m for m in report["metrics"] if m["name"] == "compute_ms")
    assert compute["outliers"] == [expected[3] if nodes_as_list else expected[2]]
    busbw = next(m for m in report["metrics"] if m["name"] == "busbw_gbps")
    assert busbw["n"] == 0 and "fewer than the 5 the robust z needs" in busbw["reason"]
    row = next(n for n in report["nodes"] if n["label"] == expected[0])
    assert "no per-node value" in row["values"]["busbw_gbps"]["reason"]


def test_four_nodes_are_not_judged_by_the_robust_z() -> None:
    """Over 3 or 4 values the MAD is one or two other nodes' distances, not a spread: the z rule
    judges nothing and says how many nodes it needs (even beside a 10x node: exit 2, the node
    named by its own checks or --reference only)."""
    report = fleet([("multi.json", _multinode(False, hosts=4))])
    compute = next(m for m in report["metrics"] if m["name"] == "compute_ms")
    assert compute["outliers"] == [] and not compute["gated"]
    assert compute["reason"] == "not judged: 4 nodes, need 5 for the robust z"
    assert not report["judged"] and report["outliers"] == []
    assert "outliers not judged: 4 nodes, need 5" in report["verdict"]
    assert {n["verdict"] for n in report["nodes"]} == {"not_judged"}


def test_a_multi_node_result_among_single_node_ones_is_refused() -> None:
    with pytest.raises(InputError, match="spans 4 nodes"):
        fleet([*_clean()[:3], ("multi.json", _multinode(False))])


def test_each_node_row_carries_its_verdict_evidence_and_reference() -> None:
    """`fleet --json` per node: a verdict (ok, outlier, finding, failed), the evidence behind it
    and the reference its own result was judged against (`aggregate --reference`)."""
    base = _clean()[:6]
    slow = _scaled(_load(8), "busbw_gbps", 0.2, "slow-link")
    judged = copy.deepcopy(base[0])
    judged[1]["reference"] = {
        "file": "site.yaml",
        "name": "site",
        "kind": "site",
        "platform": {"cpu_model": "x"},
        "floor_pct": 90.0,
        "verdict": "below_floor",
        "reason": "latency_p50_ms 70.0% of the reference (40 ms), below the 90% floor",
        "metrics": [{"metric": "latency_p50_ms", "pct_of_reference": 70.0}],
    }
    report = fleet([judged, *base[1:], slow], ["busbw_gbps"])
    rows = {r["label"]: r for r in report["nodes"]}
    out = rows["edited-slow-link-8"]
    assert out["verdict"] == "outlier" and out["reference"] is None
    assert out["evidence"][0].startswith("busbw_gbps ") and "robust z" in out["evidence"][0]
    ref = rows[judged[0].split("/")[-2]]
    assert ref["verdict"] == "finding"
    assert ref["reference"]["pct_of_reference"] == {"latency_p50_ms": 70.0}
    assert any("below the 90% floor" in e for e in ref["evidence"])
    assert all(
        rows[label]["verdict"] == "ok"
        for label in rows
        if label not in (out["label"], ref["label"])
    )


def test_a_multi_node_results_nodes_are_judged_on_their_own_step_time() -> None:
    multi = _multinode(True)
    cpu = multi["platform"]["nodes"][0]["cpu"]
    cond = reference_site.run_conditions(RunResult.from_json(multi))
    fig = references.Figure("latency_p50_ms", 1.0, "ms", "lower", cond, "test", "2026-12-06")
    ref = references.Reference("multi-ref", "site", {"cpu_model": cpu}, (fig,), path="m.yaml")
    report = fleet([("multi.json", multi)], reference=ref)
    for row in report["nodes"]:
        lat = row["against_reference"]["metrics"]
        assert [m["metric"] for m in lat] == ["latency_p50_ms"]
        value = row["values"]["latency_p50_ms"]["value"]
        assert lat[0]["pct_of_reference"] == pytest.approx(100.0 / value, abs=0.01)


def test_a_reference_of_another_job_judges_nothing_and_says_why() -> None:
    """A reference recorded from 2-rank runs has no figure for the 8-rank job: not judged."""
    fleet_dir = Path(__file__).resolve().parents[1] / "fixtures" / "fleet"
    two = [(str(p), json.loads(p.read_text())) for p in [fleet_dir / "node1" / "result.json"]]
    ref = reference_site.record(two, "two-ranks", today="2026-12-06")
    report = fleet([("multi.json", _multinode(True))], reference=ref)
    for row in report["nodes"]:
        against = row["against_reference"]
        assert against["verdict"] == "not_judged"
        assert against["reason"].startswith("reference two-ranks has no figure for this job")
    assert (
        report["below_reference"] == [] and "not judged: reference two-ranks" in report["verdict"]
    )


def test_three_node_checks_run_one_after_another_name_nobody() -> None:
    """The new-user trial's three node checks of one VM, run one after another (recorded files):
    busbw 0.44 / 1.06 / 0.93 GB/s from the host's load alone named nc1 at z +4.1. Three values
    cannot tell that from an outlier: not judged, and the headline says how many it needs."""
    nodecheck = FIXTURES.parent / "nodecheck"
    results = [
        (f"nc{i}", json.loads((nodecheck / f"seq_nc{i}.result.json").read_text()))
        for i in (1, 2, 3)
    ]
    report = fleet(results)
    assert report["outliers"] == [] and report["judged"] is False
    assert report["verdict"].startswith("fleet of 3 nodes: outliers not judged: 3 nodes, need 5")
    busbw = next(m for m in report["metrics"] if m["name"] == "busbw_gbps")
    assert busbw["per_node"]["nc1"]["bad_z"] > 3.5  # what the old rule named, still shown


def test_a_slow_node_among_five_is_still_named_by_its_numbers() -> None:
    """node6 (a real run with rank 1 200 ms late every step), its own finding removed so only the
    numbers tell, beside every 4 of the 7 clean recorded nodes: named alone each time; no 5 of
    the clean ones name anybody."""
    import itertools

    slow = copy.deepcopy(_load(6)[1])
    slow["stragglers"], slow["faults"]["detected"] = [], []
    for four in itertools.combinations(_clean(), 4):
        report = fleet([*four, ("node6", slow)])
        assert report["outliers"] == ["node6"], report["verdict"]
    for five in itertools.combinations(_clean(), 5):
        assert fleet(list(five))["outliers"] == []


def test_a_missing_job_field_is_not_recorded_and_the_kind_of_job_comes_first() -> None:
    """The trial's `fleet nc1 nc2 h1` said "backend is 'gloo' there, None in the others": a
    training run among node checks is said as such first, and a missing field is "not
    recorded", never None (recorded node checks and a recorded run)."""
    nodecheck = FIXTURES.parent / "nodecheck"
    checks = [
        (f"nc{i}", json.loads((nodecheck / f"seq_nc{i}.result.json").read_text()))
        for i in (1, 2, 3)
    ]
    with pytest.raises(InputError) as e:
        fleet([*checks[:2], _load(1)])
    assert "workload.workload_type is 'training' there, 'node_check' in the others" in str(e.value)
    source, odd = _load(4)
    odd = copy.deepcopy(odd)
    odd["backend"] = None
    with pytest.raises(InputError) as e:
        fleet([*_clean()[:3], (source, odd)])
    assert "backend is not recorded there, 'gloo' in the others" in str(e.value)
    assert "None" not in str(e.value)
