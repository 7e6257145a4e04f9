"""One rank's telemetry window: its meters, begun after warm-up and ended after the last step."""

from __future__ import annotations

import statistics
import time
from typing import Any, Protocol

from minicluster.rank.telemetry.host import HostMemoryMeter
from minicluster.rank.telemetry.nvml import NvmlMeter
from minicluster.rank.telemetry.rapl import RaplMeter
from minicluster.rank.telemetry.reading import Scope, unavailable_source
from minicluster.rank.telemetry.sampler import Sampler
from minicluster.rank.telemetry.thermal import ThermalMeter


class Meter(Protocol):
    source: str

    def begin(self) -> None: ...
    def sample(self, t_unix_s: float) -> None: ...
    def end(self, t_unix_s: float | None = None) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


class TelemetrySession:
    """Begin/end window over a set of meters with one background sampler."""

    def __init__(
        self, meters: list[Meter], interval_s: float, notes: list[dict[str, Any]] | None = None
    ) -> None:
        self.meters = meters
        self.interval_s = interval_s
        self.notes = notes or []  # sources this rank does not read, and why
        self._sampler = Sampler(meters, interval_s)
        self._t0: float | None = None

    def begin(self) -> None:
        for m in self.meters:
            m.begin()
        self._t0 = time.time()
        self._sampler.start()

    def end(self, measured_steps: int) -> dict[str, Any]:
        """Stop sampling and return the window's record for the rank summary."""
        self._sampler.stop()
        t1 = time.time()
        t0 = t1 if self._t0 is None else self._t0
        sources = [e for m in self.meters for e in m.end(t1)] if self._t0 is not None else []
        busy = self._sampler.busy_ns
        return {
            "sample_interval_ms": self.interval_s * 1000.0,
            "window": {
                "t_begin_unix_s": t0,
                "t_end_unix_s": t1,
                "duration_s": t1 - t0,
                "measured_steps": measured_steps,
            },
            "sampler": {
                "samples": self._sampler.samples,
                "poll_cost_ms_median": statistics.median(busy) / 1e6 if busy else None,
            },
            "series_columns": ["t_unix_s", "power_w", "temp_c"],
            "sources": sources + self.notes,
        }

    def close(self) -> None:
        self._sampler.stop()
        for m in self.meters:
            m.close()


def for_rank(local_rank: int, cuda_index: int | None, interval_s: float) -> TelemetrySession:
    """GPU meters on the rank that owns the device; node-level sources on local rank 0 only."""
    meters: list[Meter] = [HostMemoryMeter()]
    notes: list[dict[str, Any]] = []
    if cuda_index is not None:
        meters.append(NvmlMeter(cuda_index, interval_s))
    elif local_rank == 0:
        notes.append(unavailable_source("nvml", "gpu", "the ranks run on CPU: no GPU to read"))
    if local_rank == 0:
        node_meters: list[tuple[RaplMeter | ThermalMeter, Scope]] = [
            (RaplMeter(), "cpu_package"),
            (ThermalMeter(), "host"),
        ]
        for meter, scope in node_meters:
            if meter.available:
                meters.append(meter)
            else:
                notes.append(unavailable_source(meter.source, scope, meter.reason or "unavailable"))
    return TelemetrySession(meters, interval_s, notes)
