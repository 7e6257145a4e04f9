"""A GPU's health state read through NVML and judged: the real H200 trace replayed into an autospec'd
pynvml (healthy), and faulty GPUs derived from it one answer at a time (retired pages, a row-remap
failure, a PCIe link at x8, thermal throttling, uncorrected ECC errors, a query the driver does not
support)."""

from __future__ import annotations

from typing import Any

import pytest

pynvml = pytest.importorskip("pynvml")

import nvml_replay  # noqa: E402  (tests/rank is on sys.path: pytest prepends it)

from minicluster.analysis import nodecheck_rules as rules  # noqa: E402
from minicluster.rank.nodecheck import gpu_state  # noqa: E402

ECC = "nvmlDeviceGetTotalEccErrors"
NOT_SUPPORTED = 3


def state(trace: dict[str, Any]) -> dict[str, Any]:
    return gpu_state.snapshot(nvml_replay.replay(trace), 0)


def test_the_replay_answers_what_the_h200_driver_said() -> None:
    snap = state(nvml_replay.load())
    v = snap["values"]
    assert v["name"] == "NVIDIA H200" and v["pci_bus_id"] == "00000000:00:06.0"
    assert (v["pcie_gen"], v["pcie_width"], v["pcie_max_width"]) == (5, 16, 16)
    assert v["ecc_mode"] == [1, 1] and v["remapped_rows"] == [0, 0, 0, 0]
    assert v["throttle_reasons"] == 1  # GPU idle
    assert v["temperature_c"] == 28 and v["power_w"] == pytest.approx(86.182)
    # Hopper has no page retirement (row remapping replaced it): the driver's own words kept
    assert snap["errors"]["retired_pages_sbe"] == "nvmlDeviceGetRetiredPages: Not Supported"
    assert not any("not in the recorded trace" in e for e in snap["errors"].values())


def test_the_healthy_h200_passes_every_state_check() -> None:
    snap = state(nvml_replay.load())
    verdicts = {
        "ecc": rules.ecc(snap),
        "rows": rules.memory_retirement(snap),
        "link": rules.pcie_link([snap, snap], None),
        "replays": rules.pcie_replays(snap, snap, 1.0),
        "throttle": rules.throttling("gpu0", [snap["values"]["throttle_reasons"]], "x", 5.0),
    }
    assert {k: c["verdict"] for k, c in verdicts.items()} == dict.fromkeys(verdicts, "ok")
    assert (
        verdicts["rows"]["reason"] == "0 correctable, 0 uncorrectable rows remapped, none pending"
    )
    assert verdicts["link"]["reason"].startswith("PCIe x16 of x16")


def test_a_link_trained_at_x8_is_degraded_with_reseat() -> None:
    trace = nvml_replay.with_value(nvml_replay.load(), "nvmlDeviceGetCurrPcieLinkWidth", [0], 8)
    snap = state(trace)
    c = rules.pcie_link([snap, snap], None)
    assert c["verdict"] == "degraded"
    assert c["reason"] == "PCIe link trained at x8, expected x16"
    assert c["remediation"].startswith("reseat the GPU")


def test_a_lower_generation_counts_only_under_load() -> None:
    snap = state(
        nvml_replay.with_value(nvml_replay.load(), "nvmlDeviceGetCurrPcieLinkGeneration", [0], 1)
    )
    assert rules.pcie_link([snap, snap], None)["verdict"] == "ok"  # idle GPUs train down
    loaded = {"values": {"pcie_gen": 3, "pcie_width": 16}, "errors": {}}
    c = rules.pcie_link([snap, snap], loaded)
    assert c["verdict"] == "degraded" and "gen 3 under load, gen 5 possible" in c["reason"]


def test_a_row_remapping_failure_is_an_rma_candidate() -> None:
    trace = nvml_replay.with_value(
        nvml_replay.load(), "nvmlDeviceGetRemappedRows", [0], [0, 3, 0, 1]
    )
    c = rules.memory_retirement(state(trace))
    assert c["verdict"] == "failed"
    assert c["remediation"] == "RMA candidate: row-remapping failure"


def test_a_pending_row_remap_asks_for_a_reset() -> None:
    trace = nvml_replay.with_value(
        nvml_replay.load(), "nvmlDeviceGetRemappedRows", [0], [2, 0, 1, 0]
    )
    c = rules.memory_retirement(state(trace))
    assert c["verdict"] == "degraded" and "reset the GPU" in c["remediation"]


def _pre_ampere(sbe: int, dbe: int, pending: int) -> dict[str, Any]:
    """The H200 answered as a pre-Ampere GPU would: no row remapping, page retirement instead."""
    trace = nvml_replay.with_error(
        nvml_replay.load(), "nvmlDeviceGetRemappedRows", [0], NOT_SUPPORTED
    )
    for cause, n in (
        ("NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS", sbe),
        ("NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR", dbe),
    ):
        pages = [0x1000 * (i + 1) for i in range(n)]
        trace = nvml_replay.with_value(trace, "nvmlDeviceGetRetiredPages", [0, cause], pages)
    return nvml_replay.with_value(trace, "nvmlDeviceGetRetiredPagesPendingStatus", [0], pending)


def test_retired_pages_over_the_limit_are_an_rma_candidate() -> None:
    c = rules.memory_retirement(state(_pre_ampere(sbe=52, dbe=9, pending=0)))
    assert c["verdict"] == "failed"
    assert c["remediation"] == "RMA candidate: 61 retired pages (DCGM's limit: 60)"


def test_retired_pages_pending_ask_for_a_reboot() -> None:
    c = rules.memory_retirement(state(_pre_ampere(sbe=2, dbe=1, pending=1)))
    assert c["verdict"] == "degraded"
    assert c["reason"] == "page retirement pending (3 retired)"
    assert "reboot" in c["remediation"]


def test_uncorrected_ecc_errors_fail_the_gpu() -> None:
    trace = nvml_replay.with_value(
        nvml_replay.load(),
        ECC,
        [0, "NVML_MEMORY_ERROR_TYPE_UNCORRECTED", "NVML_VOLATILE_ECC"],
        3,
    )
    c = rules.ecc(state(trace))
    assert c["verdict"] == "failed"
    assert c["reason"] == "3 uncorrected ECC error(s) since the driver loaded"
    assert "RMA candidate" in c["remediation"]


def test_a_query_the_driver_does_not_support_is_incomplete_with_its_words() -> None:
    trace = nvml_replay.with_error(nvml_replay.load(), "nvmlDeviceGetEccMode", [0], NOT_SUPPORTED)
    c = rules.ecc(state(trace))
    assert c["verdict"] == "incomplete"
    assert c["reason"] == "ECC mode unknown: nvmlDeviceGetEccMode: Not Supported"


def test_thermal_throttling_names_the_share_and_cooling() -> None:
    trace = nvml_replay.with_value(
        nvml_replay.load(), "nvmlDeviceGetCurrentClocksEventReasons", [0], 0x40 | 0x4
    )
    hot = state(trace)["values"]["throttle_reasons"]
    idle = state(nvml_replay.load())["values"]["throttle_reasons"]
    c = rules.throttling("gpu0", [hot, hot, idle, idle, idle], "the burn-in", 5.0)
    assert c["verdict"] == "degraded"
    assert c["reason"] == "thermal throttling (hw_thermal_slowdown) for 40% of the burn-in"
    assert c["remediation"].startswith("check cooling")


def test_a_power_cap_alone_is_said_not_judged() -> None:
    c = rules.throttling("gpu0", [0x4, 0x4, 0x0], "the burn-in", 5.0)
    assert c["verdict"] == "ok" and "power-capped in 67%" in c["reason"]


def test_pcie_replays_above_dcgms_rate() -> None:
    before = state(nvml_replay.load())
    after = state(
        nvml_replay.with_value(nvml_replay.load(), "nvmlDeviceGetPcieReplayCounter", [0], 40)
    )
    c = rules.pcie_replays(before, after, 2.0)
    assert c["verdict"] == "degraded" and "20.0/min" in c["reason"]
    assert rules.pcie_replays(before, after, 10.0)["verdict"] == "ok"  # 4/min


def test_xid_events_from_nvml_during_the_check() -> None:
    nv = nvml_replay.replay(nvml_replay.load())
    event_set = object()
    nv.nvmlEventSetCreate.side_effect = None
    nv.nvmlEventSetCreate.return_value = event_set
    nv.nvmlDeviceRegisterEvents.side_effect = None
    nv.nvmlEventSetFree.side_effect = None
    handle = nv.nvmlDeviceGetHandleByIndex(0)
    event = type("Event", (), {"eventData": 79, "device": handle})()
    nv.nvmlEventSetWait_v2.side_effect = [event, pynvml.NVMLError(pynvml.NVML_ERROR_TIMEOUT)]
    watch = gpu_state.XidWatch(nv, [0])
    got = watch.drain()
    assert got == {"events": [{"xid": 79, "pci_bus_id": "00000000:00:06.0"}], "reason": None}
    c = rules.xid({"nvml": got, "kernel_log": {"readable": False, "reason": "x"}}, True)
    assert c is not None and c["verdict"] == "failed"
    assert "GPU has fallen off the bus" in c["reason"] and "RMA candidate" in c["remediation"]


def test_xid_watch_says_why_when_the_driver_refuses() -> None:
    nv = nvml_replay.replay(nvml_replay.load())  # the trace never recorded event sets
    watch = gpu_state.XidWatch(nv, [0])
    assert watch.drain()["reason"].startswith("NVML XID events unavailable:")


def test_a_gpu_missing_from_cuda_is_failed_unless_the_scheduler_hid_it() -> None:
    platform = {"gpus_per_node": 7, "nvml_gpu_count": 8, "cuda_reason": None}
    [c] = rules.gpu_count(platform, None)
    assert c["verdict"] == "failed" and c["reason"] == "NVML lists 8 GPUs, torch sees 7"
    [c] = rules.gpu_count({**platform, "cuda_visible_devices": "0,1,2,3,4,5,6"}, None)
    assert c["verdict"] == "ok" and "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6" in c["reason"]
    [c] = rules.gpu_count({**platform, "cuda_visible_devices": "0,1,2,3,4,5,6"}, 8)
    assert c["verdict"] == "failed" and c["reason"].startswith("7 GPU(s) visible, 8 expected")
