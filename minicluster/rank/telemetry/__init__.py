"""Telemetry sources: what this machine can measure (energy, power, heat, memory), and why not."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

from minicluster.core.choices import REQUIRABLE_MEASUREMENTS
from minicluster.core.errors import ConfigError
from minicluster.rank.telemetry.nvml import load_nvml
from minicluster.rank.telemetry.rapl import POWERCAP_ROOT, RaplMeter
from minicluster.rank.telemetry.thermal import SYSFS_CLASS_ROOT, ThermalMeter

REQUIRABLE = REQUIRABLE_MEASUREMENTS


@dataclass(frozen=True)
class SourceStatus:
    """Whether one telemetry source can be read here, and why not when it cannot."""

    name: str
    available: bool
    reason: str | None = None
    detail: str | None = None


def probe_nvml() -> SourceStatus:
    return probe_nvml_devices()[0]


def probe_nvml_devices() -> list[SourceStatus]:
    """One row for NVML itself, then one per GPU (energy counter, power, temperature)."""
    nvml, why = load_nvml()
    if nvml is None:
        return [SourceStatus("nvml", False, why)]
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as e:  # the library or driver may be absent entirely
        return [SourceStatus("nvml", False, f"NVML init failed: {e}")]
    try:
        count = nvml.nvmlDeviceGetCount()
        if count == 0:
            return [SourceStatus("nvml", False, "NVML found no GPU")]
        rows = [
            SourceStatus(
                "nvml",
                True,
                detail=f"{count} GPU(s), driver {_s(nvml.nvmlSystemGetDriverVersion())}",
            )
        ]
        for i in range(count):
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            label = f"gpu {i} {_s(nvml.nvmlDeviceGetName(h))} {_s(nvml.nvmlDeviceGetUUID(h))}"
            parts = []
            for what, fn, args in (
                ("energy counter", nvml.nvmlDeviceGetTotalEnergyConsumption, ()),
                ("power", nvml.nvmlDeviceGetPowerUsage, ()),
                ("temperature", nvml.nvmlDeviceGetTemperature, (nvml.NVML_TEMPERATURE_GPU,)),
            ):
                try:
                    fn(h, *args)
                    parts.append(f"{what}: yes")
                except nvml.NVMLError as e:
                    parts.append(f"{what}: no ({e})")
            rows.append(SourceStatus(label, True, detail="; ".join(parts)))
        return rows
    except nvml.NVMLError as e:
        return [SourceStatus("nvml", False, f"NVML query failed: {e}")]
    finally:
        nvml.nvmlShutdown()


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe_rapl(root: Path = POWERCAP_ROOT) -> SourceStatus:
    meter = RaplMeter(root)
    if not meter.available:
        return SourceStatus("rapl", False, meter.reason)
    return SourceStatus("rapl", True, detail=", ".join(z.name for z in meter.zones))


def probe_thermal(root: Path = SYSFS_CLASS_ROOT) -> SourceStatus:
    meter = ThermalMeter(root)
    if not meter.available:
        return SourceStatus("thermal", False, meter.reason)
    return SourceStatus(
        "thermal", True, detail=f"{len(meter.sensors)} sensor(s), now {meter.read_max_c()} °C max"
    )


def probe_host_memory() -> SourceStatus:
    try:
        import psutil

        total = psutil.virtual_memory().total
        rss = psutil.Process().memory_info().rss
    except (ImportError, OSError) as e:
        return SourceStatus("host memory (psutil)", False, str(e))
    return SourceStatus(
        "host memory (psutil)",
        True,
        detail=f"host total {total / 2**30:.1f} GiB, this process RSS {rss / 2**20:.0f} MiB",
    )


def probe_cuda() -> SourceStatus:
    """Whether torch sees a GPU (imports torch: for doctor only, never on the analysis path)."""
    try:
        import torch
    except ImportError:
        return SourceStatus("cuda (torch)", False, "torch not installed")
    if not torch.cuda.is_available():
        return SourceStatus("cuda (torch)", False, f"torch {torch.__version__} sees no CUDA GPU")
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return SourceStatus("cuda (torch)", True, detail=names)


def doctor_rows() -> list[SourceStatus]:
    """Everything `minicluster doctor` reports, in display order."""
    return [
        probe_cuda(),
        *probe_nvml_devices(),
        probe_rapl(),
        probe_thermal(),
        probe_host_memory(),
    ]


def check_required(require: list[str] | tuple[str, ...], on_gpu: bool) -> None:
    """Raise ConfigError, before any rank starts, when a required measurement is impossible here."""
    for what in require:
        if what not in REQUIRABLE:
            raise ConfigError(
                f"telemetry.require: unknown {what!r}; allowed: {', '.join(REQUIRABLE)}"
            )
    if not require:
        return
    nvml = probe_nvml() if on_gpu else SourceStatus("nvml", False, "the ranks run on CPU")
    if "energy" in require:
        rapl = probe_rapl()
        if not (nvml.available or rapl.available):
            raise ConfigError(
                "energy measurement was required but is impossible on this machine: "
                f"nvml: {nvml.reason}; rapl: {rapl.reason}. Run on a GPU node with "
                "'minicluster[gpu]' installed or grant read access to "
                "/sys/class/powercap/intel-rapl:*/energy_uj, or drop the requirement "
                "(see `minicluster doctor`)"
            )
    if "temperature" in require:
        thermal = probe_thermal()
        if not (nvml.available or thermal.available):
            raise ConfigError(
                "temperature measurement was required but is impossible on this machine: "
                f"nvml: {nvml.reason}; thermal: {thermal.reason} (see `minicluster doctor`)"
            )


def host_memory_total_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def process_rss_peak_bytes() -> int:
    """Peak resident set size of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
