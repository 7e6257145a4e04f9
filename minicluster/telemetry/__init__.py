"""Telemetry sources: what this machine can measure (energy, power, temperature, memory) and why not."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SourceStatus:
    """Whether one telemetry source can be read here, and why not when it cannot."""

    name: str
    available: bool
    reason: str | None = None


def probe_nvml() -> SourceStatus:
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return SourceStatus(
            "nvml", False, "nvidia-ml-py not installed (pip install minicluster[gpu])"
        )
    try:
        pynvml.nvmlInit()
    except Exception as e:  # pynvml.NVMLError subclasses; the library may be absent entirely
        return SourceStatus("nvml", False, f"NVML init failed: {e}")
    try:
        count = pynvml.nvmlDeviceGetCount()
    finally:
        pynvml.nvmlShutdown()
    if count == 0:
        return SourceStatus("nvml", False, "NVML found no GPU")
    return SourceStatus("nvml", True)


def probe_rapl(root: Path = Path("/sys/class/powercap")) -> SourceStatus:
    zones = sorted(root.glob("intel-rapl:*")) if root.is_dir() else []
    if not zones:
        return SourceStatus("rapl", False, f"no RAPL zones under {root}")
    readable = [z for z in zones if os.access(z / "energy_uj", os.R_OK)]
    if not readable:
        return SourceStatus("rapl", False, "RAPL not readable: permission")
    return SourceStatus("rapl", True)


def host_memory_total_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def process_rss_peak_bytes() -> int:
    """Peak resident set size of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
