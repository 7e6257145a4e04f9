"""Fleets of node checks judged within platform groups: 5 H100 nodes and 3 A100 nodes must name
the sick H100 (80% of its peers' GEMM rate) and no healthy A100; a group too small to judge says
so; a node whose own check failed is named for it, never "ok"; inputs of different levels are
different jobs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from minicluster.analysis import nodecheck
from minicluster.analysis.fleet import fleet
from minicluster.core.errors import InputError
from minicluster.core.nodecheck_plan import LEVELS, for_level
from minicluster.result.node_check import validate_node_check

PLAN = for_level("quick", checks=("gemm", "busbw"))
H100 = ("NVIDIA H100 80GB HBM3", "Intel Xeon Platinum 8480+")
A100 = ("NVIDIA A100-SXM4-80GB", "AMD EPYC 7763")


def node_check(
    host: str, gpu: tuple[str, str], tflops: float, level: str = "quick"
) -> dict[str, Any]:
    """A node-check result built the way the command builds it, from 8 GPUs' GEMM figures."""
    obs = {
        "platform": {
            "hostname": host,
            "gpu_model": gpu[0],
            "gpus_per_node": 8,
            "cpu_model": gpu[1],
            "device": "cuda",
            "nvml_gpu_count": 8,
        },
        "seconds": {},
        "gemm": [
            {
                "kind": "gemm",
                "device": f"cuda:{i}",
                "dtype": "bfloat16",
                "n": 8192,
                "tflops": tflops * (1 + 0.002 * i),
                "call_s": [0.002] * 10,
                "checked": 524288,
                "wrong": 0,
                "max_norm_err": 2e-3,
                "tolerance": 8e-3,
                "method": "m",
                "error": None,
            }
            for i in range(8)
        ],
    }
    coll = {
        "run_id": f"c-{host}",
        "status": "ok",
        "world_size": 8,
        "backend": "nccl",
        "errors": [],
        "collectives": {
            "wrong_total": 0,
            "results": [
                {
                    "op": "all_reduce",
                    "size_bytes": 2**28,
                    "busbw_gbps": 470.0 if gpu is H100 else 230.0,
                    "time_us": 1.0,
                    "algbw_gbps": 1.0,
                    "wrong": 0,
                }
            ],
        },
    }
    plan = PLAN if level == "quick" else for_level(level, checks=("gemm", "busbw"))
    r = nodecheck.build(obs, plan, None, coll, f"nc-{host}", "2026-12-04T00:00:00+00:00", "0.1.0")
    validate_node_check(r)
    return r


def mixed_fleet() -> list[tuple[str, dict[str, Any]]]:
    h100 = [660.0, 668.0, 655.0, 672.0, 0.8 * 664.0]  # h100-5 at 80% of its peers
    a100 = [270.0, 262.0, 276.0]
    return [
        (f"h100-{i + 1}.json", node_check(f"h100-{i + 1}", H100, t)) for i, t in enumerate(h100)
    ] + [(f"a100-{i + 1}.json", node_check(f"a100-{i + 1}", A100, t)) for i, t in enumerate(a100)]


def test_the_sick_h100_is_named_and_no_healthy_a100() -> None:
    report = fleet(mixed_fleet())
    assert report["outliers"] == ["h100-5"], report["verdict"]
    assert [g["label"] for g in report["groups"]] == [
        "8 x NVIDIA H100 80GB HBM3, Intel Xeon Platinum 8480+",
        "8 x NVIDIA A100-SXM4-80GB, AMD EPYC 7763",
    ]
    # 3 A100s are too few for the robust z (MIN_Z_NODES): said, nobody named among them
    assert report["groups"][0]["judged"] and not report["groups"][1]["judged"]
    assert "fewer than 5: too small to judge" in report["groups"][1]["reason"]
    gemm = [m for m in report["metrics"] if m["name"] == "gemm_tflops"]
    assert [m["outliers"] for m in gemm] == [["h100-5"], []]
    assert report["verdict"].startswith(
        "fleet of 8 nodes in 2 platform groups: 1 outlier node(s): h100-5 (gemm_tflops z +"
    )
    assert report["mad_floor_frac"] == 0.05  # a fleet of node checks


def test_one_pool_misjudges_the_same_fleet() -> None:
    """The same numbers with the platform hidden (every node 'the same hardware'): the pooled
    median lands between the two models and the sick H100 is not named, which is the defect the
    groups remove."""
    pooled = []
    for source, r in mixed_fleet():
        r = copy.deepcopy(r)
        r["platform"].update(gpu_model="GPU", cpu_model="CPU")
        pooled.append((source, r))
    report = fleet(pooled)
    assert "h100-5" not in report["outliers"]


def test_a_group_too_small_to_judge_says_so() -> None:
    results = mixed_fleet()[:5] + mixed_fleet()[5:7]  # 5 H100s, 2 A100s
    report = fleet(results)
    small = report["groups"][1]
    assert small["judged"] is False
    assert small["reason"] == (
        "2 node(s) to judge in this platform group, fewer than 5: too small to judge"
    )
    assert (
        "group 8 x NVIDIA A100-SXM4-80GB, AMD EPYC 7763 (2 node(s)): too small to judge"
        in (report["verdict"])
    )
    a100_gemm = [m for m in report["metrics"] if m["group"] == small["label"]][0]
    assert a100_gemm["gated"] is False and a100_gemm["outliers"] == []


def test_a_failed_node_check_is_named_for_its_own_finding() -> None:
    results = mixed_fleet()[:4]
    bad = copy.deepcopy(results[0][1])
    bad["run_id"], bad["platform"]["hostname"] = "nc-h100-9", "h100-9"
    bad["verdict"], bad["findings"] = "failed", ["ecc gpu3 (NVIDIA H100 80GB HBM3)"]
    report = fleet([*results, ("h100-9.json", bad)])
    assert report["findings"] == ["h100-9"] and report["outliers"] == []
    row = next(r for r in report["nodes"] if r["label"] == "h100-9")
    assert row["finding"] == "its node check is failed: ecc gpu3 (NVIDIA H100 80GB HBM3)"
    gemm = next(m for m in report["metrics"] if m["name"] == "gemm_tflops")
    assert gemm["n"] == 4  # left out of the distribution


def test_node_checks_of_different_levels_are_different_jobs() -> None:
    results = mixed_fleet()[:4]
    results.append(("h100-9.json", node_check("h100-9", H100, 660.0, level="medium")))
    with pytest.raises(InputError, match="ran a different job"):
        fleet(results)


def test_a_metric_no_node_measured_is_nothing_judged_never_ok() -> None:
    """The trial's `fleet nc1 nc2 nc3 --metric latency_p50_ms`: node checks do not measure it, so
    nothing is judged: the headline says so and why, no node reads ok."""
    from minicluster.report.fleet import nodes_table

    fleet_in = [(f"h{i}.json", node_check(f"h{i}", H100, 660.0 + i)) for i in range(3)]
    report = fleet(fleet_in, ["latency_p50_ms"])
    assert report["judged"] is False
    assert report["verdict"] == (
        "fleet of 3 nodes: nothing judged: no metric measured on enough nodes to judge "
        "(latency_p50_ms: measured on 0 node(s), fewer than the 5 the robust z needs)"
    )
    assert {row[2] for row in nodes_table(report).rows} == {"not judged"}
    assert {r["verdict"] for r in report["nodes"]} == {"not_judged"}
    five = [(f"h{i}.json", node_check(f"h{i}", H100, 660.0 + i)) for i in range(5)]
    assert fleet(five)["judged"] is True
    assert fleet(fleet_in)["judged"] is False  # 3 nodes: too few for the robust z


def test_one_node_check_counts_as_one_node() -> None:
    with pytest.raises(InputError, match="at least 3 nodes, got 1:"):
        fleet([("h1.json", node_check("h1", H100, 660.0))])


def test_three_different_jobs_name_how_many_others_there_are() -> None:
    """No majority job: the message must not say 'the other 1 input(s)' with 2 others."""
    jobs = [node_check(f"h{i}", H100, 660.0, level) for i, level in enumerate(LEVELS)]
    with pytest.raises(InputError) as e:
        fleet([(f"h{i}.json", r) for i, r in enumerate(jobs)])
    assert "the other 1 input(s)" not in str(e.value)
    assert "different job from h0.json (1 of the other 2 input(s) ran that one)" in str(e.value)


def test_the_scale_column_shows_the_floor_z_used() -> None:
    from minicluster.report.fleet import distribution_table

    fleet_in = [(f"h{i}.json", node_check(f"h{i}", H100, 660.0 + i)) for i in range(4)]
    report = fleet(fleet_in, ["gemm_tflops"])
    (m,) = report["metrics"]
    assert m["mad_floored"] and m["mad"] < m["scale"] == 0.05
    (row,) = distribution_table(report).rows
    assert row[5] == "0.05 floor"


def test_fleet_exits_2_when_nothing_was_judged(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from minicluster.cli import main

    paths = []
    for i in range(5):
        path = tmp_path / f"h{i}.json"
        path.write_text(json.dumps(node_check(f"h{i}", H100, 660.0 + i)))
        paths.append(str(path))
    assert main(["fleet", *paths[:3], "--metric", "latency_p50_ms"]) == 2
    assert "nothing judged" in capsys.readouterr().out
    assert main(["fleet", *paths[:3]]) == 2  # 3 nodes: too few for the robust z
    assert "outliers not judged: 3 nodes, need 5 for the robust z" in capsys.readouterr().out
    assert main(["fleet", *paths]) == 0
