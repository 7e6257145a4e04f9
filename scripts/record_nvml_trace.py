"""Record what NVML answers on this machine, for replay in tests (no GPU needed to replay).

Calls each query the node check and the telemetry use, on every GPU, and writes one JSON file:
per call its arguments and either the value (structs as dicts of their fields) or the NVML error
(code and text). Tests load such a file into an autospec'd pynvml (tests/rank/nvml_replay.py), so
the mocked answers are what a real driver said, not what we imagine it says.

Usage: python scripts/record_nvml_trace.py OUT.json
"""

from __future__ import annotations

import ctypes
import json
import sys
import time
from typing import Any


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, ctypes.Array):
        return [_plain(v) for v in value]
    fields = getattr(value, "_fields_", None)
    if fields:
        return {name: _plain(getattr(value, name)) for name, *_ in fields}
    return repr(value)


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: record_nvml_trace.py OUT.json", file=sys.stderr)
        return 2
    import pynvml as n

    n.nvmlInit()
    calls: list[dict[str, Any]] = []

    def call(name: str, *args: Any, label: list[Any] | None = None) -> Any:
        fn = getattr(n, name, None)
        entry: dict[str, Any] = {"fn": name, "args": label if label is not None else []}
        if fn is None:
            entry["missing"] = True
            calls.append(entry)
            return None
        try:
            value = fn(*args)
            entry["value"] = _plain(value)
        except n.NVMLError as e:
            entry["error"] = {"code": int(e.value), "text": str(e)}
            value = None
        calls.append(entry)
        return value

    call("nvmlSystemGetDriverVersion")
    call("nvmlSystemGetNVMLVersion")
    call("nvmlSystemGetCudaDriverVersion")
    count = call("nvmlDeviceGetCount") or 0
    for i in range(count):
        h = n.nvmlDeviceGetHandleByIndex(i)
        d = [i]
        for name in (
            "nvmlDeviceGetName",
            "nvmlDeviceGetUUID",
            "nvmlDeviceGetSerial",
            "nvmlDeviceGetPciInfo",
            "nvmlDeviceGetMemoryInfo",
            "nvmlDeviceGetTotalEnergyConsumption",
            "nvmlDeviceGetPowerUsage",
            "nvmlDeviceGetEnforcedPowerLimit",
            "nvmlDeviceGetPowerManagementLimit",
            "nvmlDeviceGetCurrPcieLinkGeneration",
            "nvmlDeviceGetCurrPcieLinkWidth",
            "nvmlDeviceGetMaxPcieLinkGeneration",
            "nvmlDeviceGetMaxPcieLinkWidth",
            "nvmlDeviceGetGpuMaxPcieLinkGeneration",
            "nvmlDeviceGetPcieReplayCounter",
            "nvmlDeviceGetCurrentClocksThrottleReasons",
            "nvmlDeviceGetCurrentClocksEventReasons",
            "nvmlDeviceGetSupportedClocksThrottleReasons",
            "nvmlDeviceGetEccMode",
            "nvmlDeviceGetRemappedRows",
            "nvmlDeviceGetPerformanceState",
            "nvmlDeviceGetComputeMode",
            "nvmlDeviceGetPersistenceMode",
            "nvmlDeviceGetCudaComputeCapability",
            "nvmlDeviceGetArchitecture",
            "nvmlDeviceGetBoardPartNumber",
            "nvmlDeviceGetVbiosVersion",
            "nvmlDeviceGetRetiredPagesPendingStatus",
            "nvmlDeviceGetMultiGpuBoard",
        ):
            call(name, h, label=d)
        call(
            "nvmlDeviceGetTemperature", h, n.NVML_TEMPERATURE_GPU, label=[i, "NVML_TEMPERATURE_GPU"]
        )
        for clk in ("NVML_CLOCK_SM", "NVML_CLOCK_MEM", "NVML_CLOCK_GRAPHICS"):
            call("nvmlDeviceGetClockInfo", h, getattr(n, clk), label=[i, clk])
            call("nvmlDeviceGetMaxClockInfo", h, getattr(n, clk), label=[i, clk])
        for err in ("NVML_MEMORY_ERROR_TYPE_CORRECTED", "NVML_MEMORY_ERROR_TYPE_UNCORRECTED"):
            for cnt in ("NVML_VOLATILE_ECC", "NVML_AGGREGATE_ECC"):
                call(
                    "nvmlDeviceGetTotalEccErrors",
                    h,
                    getattr(n, err),
                    getattr(n, cnt),
                    label=[i, err, cnt],
                )
        for cause in (
            "NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS",
            "NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR",
        ):
            call("nvmlDeviceGetRetiredPages", h, getattr(n, cause), label=[i, cause])
        for link in range(18):
            state = call("nvmlDeviceGetNvLinkState", h, link, label=[i, link])
            if state is None:
                break
        for ctr in ("NVML_PCIE_UTIL_TX_BYTES", "NVML_PCIE_UTIL_RX_BYTES"):
            if hasattr(n, ctr):
                call("nvmlDeviceGetPcieThroughput", h, getattr(n, ctr), label=[i, ctr])
    n.nvmlShutdown()
    out = {
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "pynvml": getattr(n, "__version__", None),
        "calls": calls,
    }
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=1)
    print(f"record_nvml_trace: {len(calls)} calls on {count} GPU(s) -> {sys.argv[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
