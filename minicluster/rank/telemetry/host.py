"""Per-rank host memory: resident set size peak over the window (psutil) and host total."""

from __future__ import annotations

import time
from typing import Any

import psutil

from minicluster.rank.telemetry.reading import Reading


class HostMemoryMeter:
    """RSS of this process polled at the sampler interval; the peak includes the window edges."""

    source = "host_memory"
    available = True

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self.total_bytes = int(psutil.virtual_memory().total)
        self._peak = 0

    def begin(self) -> None:
        self._peak = 0
        self.sample(time.time())

    def sample(self, t_unix_s: float) -> None:
        rss = self._proc.memory_info().rss
        if rss > self._peak:
            self._peak = rss

    def end(self, t_unix_s: float | None = None) -> list[dict[str, Any]]:
        self.sample(time.time())
        method = "max of polled psutil Process.memory_info().rss"
        readings = {
            "rss_peak_bytes": Reading(float(self._peak), "B", "measured", "host", method),
            "host_total_bytes": Reading(
                float(self.total_bytes), "B", "measured", "host", "psutil.virtual_memory().total"
            ),
            "rss_peak_percent": Reading(
                100.0 * self._peak / self.total_bytes,
                "%",
                "derived",
                "host",
                "rss_peak_bytes / host_total_bytes",
            ),
        }
        return [
            {
                "source": "host_memory",
                "scope": "host",
                "id": f"pid {self._proc.pid}",
                "available": True,
                "reason": None,
                "readings": {k: r.to_dict() for k, r in readings.items()},
                "series": [],
            }
        ]

    def close(self) -> None:
        pass
