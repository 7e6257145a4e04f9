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
from minicluster.core.nodecheck_plan import for_level
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
    assert report["groups"][0]["judged"] and report["groups"][1]["judged"]
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
        "2 node(s) to judge in this platform group, fewer than 3: too small to judge"
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
