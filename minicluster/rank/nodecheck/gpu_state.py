"""A GPU's health state as NVML reports it: ECC counts, retired pages and remapped rows, PCIe link
and replay counter, clock event (throttle) reasons, temperature, clocks and power; XID events
during the check. Every query keeps its value or the error the driver gave (a query the driver
answers "Not Supported" is said so, never read as 0). No torch.

`nvml` is the pynvml module (nvidia-ml-py), or an autospec'd stand-in in tests.
"""

from __future__ import annotations

from typing import Any

# Clock event reason bits (nvml.h `nvmlClocksEventReason*`, formerly ClocksThrottleReason*).
THROTTLE_BITS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}


class Reader:
    """Runs NVML queries, keeping each value or error under a name."""

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml
        self.values: dict[str, Any] = {}
        self.errors: dict[str, str] = {}

    def read(self, key: str, fn: str, *args: Any) -> Any:
        func = getattr(self.nvml, fn, None)
        if func is None:
            self.errors[key] = f"{fn}: not in this nvidia-ml-py"
            return None
        try:
            value = func(*args)
        except self.nvml.NVMLError as e:
            self.errors[key] = f"{fn}: {e}"
            return None
        value = plain(value)
        self.values[key] = value
        return value


def plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    fields = getattr(value, "_fields_", None)
    if fields:
        return {name: plain(getattr(value, name)) for name, *_ in fields}
    if hasattr(value, "__dict__"):  # a test's SimpleNamespace standing for a struct
        return {k: plain(v) for k, v in vars(value).items() if not k.startswith("_")}
    return repr(value)


def snapshot(nvml: Any, index: int) -> dict[str, Any]:
    """Every health query of GPU `index` (the NVML index): `values` and, per query that failed,
    `errors` with the driver's words."""
    r = Reader(nvml)
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
    except nvml.NVMLError as e:
        return {"index": index, "values": {}, "errors": {"handle": f"{e}"}}
    r.read("name", "nvmlDeviceGetName", handle)
    r.read("uuid", "nvmlDeviceGetUUID", handle)
    pci = r.read("pci", "nvmlDeviceGetPciInfo", handle)
    if isinstance(pci, dict):
        r.values["pci_bus_id"] = pci.get("busId") or pci.get("busIdLegacy")
    r.read("memory", "nvmlDeviceGetMemoryInfo", handle)
    for key, fn in (
        ("pcie_gen", "nvmlDeviceGetCurrPcieLinkGeneration"),
        ("pcie_width", "nvmlDeviceGetCurrPcieLinkWidth"),
        ("pcie_max_gen", "nvmlDeviceGetMaxPcieLinkGeneration"),
        ("pcie_max_width", "nvmlDeviceGetMaxPcieLinkWidth"),
        ("pcie_gpu_max_gen", "nvmlDeviceGetGpuMaxPcieLinkGeneration"),
        ("pcie_replay_counter", "nvmlDeviceGetPcieReplayCounter"),
        ("persistence_mode", "nvmlDeviceGetPersistenceMode"),
        ("compute_capability", "nvmlDeviceGetCudaComputeCapability"),
        ("ecc_mode", "nvmlDeviceGetEccMode"),
        ("remapped_rows", "nvmlDeviceGetRemappedRows"),
        ("retired_pages_pending", "nvmlDeviceGetRetiredPagesPendingStatus"),
        ("power_limit_mw", "nvmlDeviceGetEnforcedPowerLimit"),
    ):
        r.read(key, fn, handle)
    read_throttle(r, handle)
    r.read("supported_throttle_reasons", "nvmlDeviceGetSupportedClocksThrottleReasons", handle)
    for err in ("CORRECTED", "UNCORRECTED"):
        for counter in ("VOLATILE", "AGGREGATE"):
            r.read(
                f"ecc_{counter.lower()}_{err.lower()}",
                "nvmlDeviceGetTotalEccErrors",
                handle,
                getattr(nvml, f"NVML_MEMORY_ERROR_TYPE_{err}"),
                getattr(nvml, f"NVML_{counter}_ECC"),
            )
    for cause, key in (
        ("MULTIPLE_SINGLE_BIT_ECC_ERRORS", "retired_pages_sbe"),
        ("DOUBLE_BIT_ECC_ERROR", "retired_pages_dbe"),
    ):
        pages = r.read(
            key,
            "nvmlDeviceGetRetiredPages",
            handle,
            getattr(nvml, f"NVML_PAGE_RETIREMENT_CAUSE_{cause}"),
        )
        if isinstance(pages, list):
            r.values[key] = len(pages)  # the addresses are not needed, their count is
    r.values.update(sample(nvml, handle))
    return {"index": index, "values": r.values, "errors": r.errors}


def read_throttle(r: Reader, handle: Any) -> Any:
    """Clock event reasons (driver 535+), else the older throttle-reasons query."""
    bits = r.read("throttle_reasons", "nvmlDeviceGetCurrentClocksEventReasons", handle)
    if bits is None and hasattr(r.nvml, "nvmlDeviceGetCurrentClocksThrottleReasons"):
        bits = r.read("throttle_reasons", "nvmlDeviceGetCurrentClocksThrottleReasons", handle)
        if bits is not None:
            r.errors.pop("throttle_reasons", None)
    return bits


def sample(nvml: Any, handle: Any) -> dict[str, Any]:
    """What changes under load: clock event reasons, temperature, SM clock and power (None where
    the driver does not answer)."""
    r = Reader(nvml)
    bits = read_throttle(r, handle)
    temp = r.read("temperature_c", "nvmlDeviceGetTemperature", handle, nvml.NVML_TEMPERATURE_GPU)
    sm = r.read("sm_clock_mhz", "nvmlDeviceGetClockInfo", handle, nvml.NVML_CLOCK_SM)
    sm_max = r.read("sm_clock_max_mhz", "nvmlDeviceGetMaxClockInfo", handle, nvml.NVML_CLOCK_SM)
    power = r.read("power_mw", "nvmlDeviceGetPowerUsage", handle)
    return {
        "throttle_reasons": bits,
        "temperature_c": temp,
        "sm_clock_mhz": sm,
        "sm_clock_max_mhz": sm_max,
        "power_w": None if power is None else power / 1000.0,
    }


def link(nvml: Any, index: int) -> dict[str, Any]:
    """The PCIe link's current generation and width (read right after a copy: an idle GPU may
    train its link down to save power)."""
    r = Reader(nvml)
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    r.read("pcie_gen", "nvmlDeviceGetCurrPcieLinkGeneration", handle)
    r.read("pcie_width", "nvmlDeviceGetCurrPcieLinkWidth", handle)
    r.read("pcie_replay_counter", "nvmlDeviceGetPcieReplayCounter", handle)
    return {"values": r.values, "errors": r.errors}


class XidWatch:
    """XID events NVML delivers while the check runs (critical XIDs on every GPU registered).
    `reason` says why there is no watch (the driver refused the event set or the registration)."""

    def __init__(self, nvml: Any, indices: list[int]) -> None:
        self.nvml = nvml
        self.reason: str | None = None
        self.events: list[dict[str, Any]] = []
        self._set: Any = None
        try:
            self._set = nvml.nvmlEventSetCreate()
            for i in indices:
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                nvml.nvmlDeviceRegisterEvents(handle, nvml.nvmlEventTypeXidCriticalError, self._set)
        except nvml.NVMLError as e:
            self.reason = f"NVML XID events unavailable: {e}"
        except AttributeError as e:
            self.reason = f"NVML XID events unavailable in this nvidia-ml-py: {e}"

    def drain(self) -> dict[str, Any]:
        """The events delivered so far (waits 0 ms for more), then frees the set."""
        if self.reason is None and self._set is not None:
            wait = getattr(self.nvml, "nvmlEventSetWait_v2", None) or self.nvml.nvmlEventSetWait
            while True:
                try:
                    data = wait(self._set, 0)
                except self.nvml.NVMLError:
                    break  # NVML_ERROR_TIMEOUT: nothing more
                self.events.append(
                    {
                        "xid": int(getattr(data, "eventData", 0)),
                        "pci_bus_id": _bus_id(self.nvml, getattr(data, "device", None)),
                    }
                )
            try:
                self.nvml.nvmlEventSetFree(self._set)
            except self.nvml.NVMLError:
                pass
            self._set = None
        return {"events": self.events, "reason": self.reason}


def _bus_id(nvml: Any, handle: Any) -> str | None:
    if handle is None:
        return None
    try:
        info = plain(nvml.nvmlDeviceGetPciInfo(handle))
    except nvml.NVMLError:
        return None
    return info.get("busId") if isinstance(info, dict) else None


def driver(nvml: Any) -> dict[str, Any]:
    """Driver version and GPU count, or the error."""
    r = Reader(nvml)
    r.read("driver_version", "nvmlSystemGetDriverVersion")
    r.read("count", "nvmlDeviceGetCount")
    return {"values": r.values, "errors": r.errors}
