"""A node check's result from observations: a mocked H200 whose figures are the ones measured on
a real one (tests/fixtures/gpu) and whose NVML answers are the real trace's, judged against a
reference; a slow GEMM, a wrong element, a narrow link and throttling each get their finding, the
verdict and the exit code; no reference means reported, not judged; the result matches its
schema."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from minicluster.analysis import nodecheck, references
from minicluster.core.nodecheck_plan import for_level
from minicluster.result.node_check import validate_node_check

pytest.importorskip("pynvml")
_spec = importlib.util.spec_from_file_location(
    "nvml_replay", Path(__file__).resolve().parents[1] / "rank" / "nvml_replay.py"
)
assert _spec is not None and _spec.loader is not None
nvml_replay = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nvml_replay)

from minicluster.rank.nodecheck import gpu_state  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PROBE = json.loads((FIXTURES / "gpu" / "device_probe_h200.json").read_text())
REFERENCE = references.load(FIXTURES / "nodecheck" / "h200_site_reference.yaml")
PLAN = for_level("quick", checks=("gemm", "device_memory", "pcie", "gpu_state", "xid"))


def h200_obs(trace: dict[str, Any] | None = None, gemm_scale: float = 1.0) -> dict[str, Any]:
    """What `rank.nodecheck.run.measure` returns on the H200: the probe's figures, NVML replayed."""
    nv = nvml_replay.replay(trace or nvml_replay.load())
    snap = gpu_state.snapshot(nv, 0)
    gemm = []
    for g in PROBE["gemm"]:
        dtype = "tf32" if g["tf32"] else g["dtype"].removeprefix("torch.")
        tflops = g["tflops"] * gemm_scale
        gemm.append(
            {
                "kind": "gemm",
                "device": "cuda:0",
                "dtype": dtype,
                "n": g["n"],
                "tflops": tflops,
                "call_s": [2 * g["n"] ** 3 / tflops / 1e12] * 10,
                "checked": 64 * g["n"],
                "wrong": 0,
                "max_norm_err": g["max_rel_err"],
                "tolerance": 8e-3,
                "method": "probe",
                "error": None,
            }
        )
    mem = PROBE["mem"]

    def m(kind: str, gbps: float) -> dict[str, Any]:
        return {
            "kind": kind,
            "device": "cuda:0",
            "bytes": 2**30,
            "gbps": gbps,
            "best_gbps": gbps,
            "call_s": [0.001] * 10,
            "wrong": 0,
            "method": "probe",
            "error": None,
        }

    return {
        "platform": {
            "hostname": "h200-node",
            "cpu_model": "Intel Xeon",
            "gpu_model": "NVIDIA H200",
            "gpus_per_node": 1,
            "device": "cuda",
            "nvml_gpu_count": 1,
            "driver_version": "580.159.04",
        },
        "seconds": {"own_checks": 30.0},
        "nvml_index": {"cuda:0": 0},
        "gpu_state_before": [snap],
        "gpu_state_after": [snap],
        "gemm": gemm,
        "device_memory": [m("device_copy", mem["copy_GBps"]), m("device_triad", mem["triad_GBps"])],
        "pcie": [
            {
                "device": "cuda:0",
                "nvml_index": 0,
                "h2d": m("h2d", mem["h2d_pinned_GBps"]),
                "d2h": m("d2h", mem["d2h_pinned_GBps"]),
                "link_under_load": gpu_state.link(nv, 0),
            }
        ],
        "xid": {
            "nvml": {"events": [], "reason": None},
            "kernel_log": {"readable": True, "lines": [], "reason": None},
        },
    }


def build(obs: dict[str, Any], reference: Any = REFERENCE, plan: Any = PLAN) -> dict[str, Any]:
    result = nodecheck.build(
        obs, plan, reference, None, "nc-1", "2026-12-04T00:00:00+00:00", "0.1.0"
    )
    validate_node_check(result)
    return result


def by_id(result: dict[str, Any], prefix: str) -> dict[str, Any]:
    return next(c for c in result["checks"] if c["id"].startswith(prefix))


def test_the_healthy_h200_is_ok_and_judged_against_its_reference() -> None:
    r = build(h200_obs())
    assert r["verdict"] == "ok" and r["exit_code"] == 0, r["verdict_line"]
    g = by_id(r, "gemm cuda:0 bfloat16 n=8192")
    assert g["judged"]["pct_of_reference"] == pytest.approx(100.0, abs=0.1)
    assert g["judged"]["reference"] == "h200-lent-device"
    assert r["metrics"]["gemm_tflops"]["value"] == pytest.approx(798.6, abs=0.1)
    assert r["metrics"]["gemm_tflops"]["conditions"] == {"dtype": "bfloat16", "n": 8192}
    h2d = by_id(r, "h2d cuda:0")
    assert h2d["verdict"] == "ok" and "88% of the link (gen 5 x16: 63.0 GB/s raw)" in h2d["reason"]
    # a dtype the reference has no figure for is reported, not judged
    fp16 = by_id(r, "gemm cuda:0 float16 n=8192")
    assert fp16["verdict"] == "ok" and fp16["reason"].startswith("not judged: reference h200")
    assert r["workload"]["workload_type"] == "node_check"


def test_a_gemm_at_75_percent_of_the_reference_is_degraded() -> None:
    r = build(h200_obs(gemm_scale=0.75))
    assert r["verdict"] == "degraded" and r["exit_code"] == 1
    g = by_id(r, "gemm cuda:0 bfloat16 n=8192")
    assert g["verdict"] == "degraded"
    assert g["reason"].startswith("75.0% of the reference (798.6 TFLOP/s), below the 90% floor")
    assert "degraded gemm cuda:0" in r["verdict_line"]


def test_without_a_reference_rates_are_reported_not_judged() -> None:
    r = build(h200_obs(gemm_scale=0.5), reference=None)
    g = by_id(r, "gemm cuda:0 bfloat16 n=8192")
    assert g["verdict"] == "ok" and g["reason"] == "not judged: no reference for this platform"
    assert r["verdict"] == "ok"


def test_a_wrong_element_fails_the_node() -> None:
    obs = h200_obs()
    obs["gemm"][5]["wrong"] = 1
    r = build(obs)
    assert r["verdict"] == "failed" and r["exit_code"] == 1
    assert by_id(r, "gemm cuda:0 bfloat16 n=8192")["reason"] == (
        "1 wrong element(s) of 524,288 checked: the device returned wrong results"
    )


def test_an_x8_link_is_named_with_reseat() -> None:
    trace = nvml_replay.with_value(nvml_replay.load(), "nvmlDeviceGetCurrPcieLinkWidth", [0], 8)
    r = build(h200_obs(trace))
    link = by_id(r, "pcie_link gpu0")
    assert link["verdict"] == "degraded"
    assert "PCIe link trained at x8, expected x16 -> reseat the GPU" in r["verdict_line"]


def test_thermal_throttling_during_the_burn_in() -> None:
    obs = h200_obs()
    hot, cool = 0x40 | 0x4, 0x4
    obs["burn_in"] = {
        "kind": "burn_in",
        "dtype": "bfloat16",
        "n": 8192,
        "duration_s": 100.0,
        "interval_s": 10.0,
        "method": "x",
        "error": None,
        "check": {"cuda:0": {"wrong": 0, "checked": 524288}},
        "intervals": [
            {
                "t_s": 10.0 * (i + 1),
                "devices": {
                    "cuda:0": {
                        "calls": 100,
                        "seconds": 10.0,
                        "tflops": 800.0 - 12 * i,
                        "state": {
                            "throttle_reasons": hot if i >= 6 else cool,
                            "temperature_c": 70 + 2 * i,
                        },
                    }
                },
            }
            for i in range(10)
        ],
    }
    r = build(obs, plan=for_level("quick", checks=(*PLAN.checks, "burn_in")))
    throttle = by_id(r, "throttle gpu0")
    assert throttle["reason"] == "thermal throttling (hw_thermal_slowdown) for 40% of the burn-in"
    drift = by_id(r, "burn_in cuda:0")
    assert drift["verdict"] == "degraded"
    assert drift["reason"].startswith("GEMM rate drifts under load: fell 13.5% over the window")
    assert r["burn_in"]["drift"]["cuda:0"]["drifting"] is True


def test_no_check_deciding_is_exit_3() -> None:
    obs = h200_obs()
    for g in obs["gemm"]:
        g.update(tflops=None, error={"kind": "oom", "text": "OutOfMemoryError: CUDA out of memory"})
    obs["device_memory"], obs["pcie"] = [], []
    r = build(obs)
    assert r["status"] == "ok" and r["exit_code"] == 0  # NVML's checks still decided
    assert by_id(r, "gemm cuda:0")["verdict"] == "incomplete"
    cpu_only = {
        "platform": {
            "hostname": "n",
            "cpu_model": "c",
            "gpu_model": None,
            "gpus_per_node": 0,
            "device": "cpu",
            "cuda_reason": "no CUDA",
        },
        "gemm": obs["gemm"][:1],
    }
    r = build(cpu_only)
    assert r["status"] == "failed" and r["exit_code"] == 3 and r["verdict"] == "incomplete"


def test_a_device_error_is_failed_not_incomplete() -> None:
    obs = h200_obs()
    obs["gemm"][0].update(
        tflops=None,
        error={
            "kind": "device_error",
            "text": "RuntimeError: CUDA error: unspecified launch failure",
        },
    )
    r = build(obs)
    c = by_id(r, "gemm cuda:0 float32 n=2048")
    assert c["verdict"] == "failed" and "RMA candidate" in c["remediation"]
