"""Provenance of a TrackIQ result's metrics from what the file declares: the collector that made
its latency and throughput (`tool_payload.collector_name`, with the estimation parameters in its
`config`) and the power reader (`power_profile.reader`).

What each known source does is taken from TrackIQ's own code (trackiq_core/collectors,
trackiq_core power readers): PsutilCollector and NVMLCollector *estimate* `latency_ms` and
`throughput_fps` from CPU or GPU utilisation plus Gaussian noise (their docstrings, and the
`base_latency_ms`/`latency_noise_std` parameters they export); SyntheticCollector makes every
number up; SimulatedPowerReader computes power and temperature from CPU utilisation and a TDP;
TegrastatsReader and RocmSmiReader read the hardware. An estimate becomes `estimated` (shown,
never compared with a measurement, never gated), a simulation `unavailable`. A source not in
these tables is taken as the file declares it (measured) and said so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minicluster.core.metrics import MetricValue
from minicluster.interop.record import BenchmarkRecord, mark_simulated

_TIMING = (
    "throughput_samples_per_sec",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_mean_ms",
)
_POWER = (
    "power_consumption_watts",
    "energy_per_step_joules",
    "energy_per_sample_joules",
    "performance_per_watt",
    "temperature_celsius",
)
# parameters of an estimation model: a collector config holding these declares its latency an
# estimate (base + (max - base) x utilisation + noise), whatever the collector's name
_ESTIMATE_PARAMS = ("base_latency_ms", "latency_noise_std")


@dataclass(frozen=True)
class Source:
    estimated: tuple[str, ...] = ()
    simulated: tuple[str, ...] = ()
    how: str = ""


COLLECTORS = {
    "PsutilCollector": Source(
        estimated=_TIMING,
        how="TrackIQ's PsutilCollector estimates latency_ms and throughput_fps from CPU "
        "utilisation plus Gaussian noise",
    ),
    "NVMLCollector": Source(
        estimated=_TIMING,
        how="TrackIQ's NVMLCollector estimates latency_ms and throughput_fps from GPU "
        "utilisation plus Gaussian noise",
    ),
    "SyntheticCollector": Source(
        simulated=_TIMING + _POWER + ("memory_utilization_percent",),
        how="TrackIQ's SyntheticCollector generates every sample",
    ),
}
READERS = {
    "SimulatedPowerReader": Source(
        simulated=_POWER,
        how="TrackIQ's SimulatedPowerReader computes power and temperature from CPU utilisation "
        "and a TDP",
    ),
    "TegrastatsReader": Source(how="reads Jetson board power from tegrastats"),
    "RocmSmiReader": Source(how="reads AMD GPU power from rocm-smi"),
}


def _walk(payload: dict[str, Any], keys: frozenset[str], depth: int = 5) -> list[tuple[str, Any]]:
    """(path, value) of every key in `keys` within `payload` (our own block excluded)."""
    found: list[tuple[str, Any]] = []

    def walk(obj: Any, path: str, left: int) -> None:
        if left == 0 or not isinstance(obj, dict):
            return
        for k, v in obj.items():
            if k == "minicluster":
                continue
            where = f"{path}.{k}"
            if k in keys:
                found.append((where, v))
            walk(v, where, left - 1)

    walk(payload, "tool_payload", depth)
    return found


def apply(record: BenchmarkRecord, payload: dict[str, Any]) -> None:
    """Set the provenance of `record`'s metrics from the sources `payload` declares."""
    for where, name in _walk(payload, frozenset({"collector_name", "collector"})):
        if not isinstance(name, str):
            continue
        source = COLLECTORS.get(name)
        if source is None:
            record.warnings.append(
                f"{where} = {name}: a collector minicluster does not know; its numbers are "
                "taken as the file declares them (measured)"
            )
            continue
        _estimated(record, source.estimated, f"{where} = {name}: {source.how}")
        if source.simulated:
            mark_simulated(record, source.simulated, f"{where} = {name}")
    for where, cfg in _walk(payload, frozenset({"config"})):
        if isinstance(cfg, dict) and all(p in cfg for p in _ESTIMATE_PARAMS):
            params = ", ".join(f"{p}={cfg[p]}" for p in _ESTIMATE_PARAMS)
            _estimated(record, _TIMING, f"{where} declares an estimation model ({params})")
    for where, name in _walk(payload, frozenset({"reader", "power_reader"})):
        if not isinstance(name, str):
            continue
        source = READERS.get(name)
        if source is None:
            record.warnings.append(
                f"{where} = {name}: a power reader minicluster does not know; its numbers are "
                "taken as the file declares them (measured)"
            )
        elif source.simulated:
            mark_simulated(record, source.simulated, f"{where} = {name}")
    for where, flag in _walk(payload, frozenset({"simulated", "is_simulated"})):
        if flag is True:  # inside the power profiler's block it speaks for the power numbers
            power = any(f".{k}." in f"{where}." for k in ("power_profile", "power_tool_payload"))
            mark_simulated(record, _POWER if power else tuple(record.metrics), f"{where} = true")


def _estimated(record: BenchmarkRecord, names: tuple[str, ...], why: str) -> None:
    hit = []
    for name in names:
        mv = record.metrics.get(name)
        if mv is None or mv.value is None or mv.status in ("estimated", "unavailable"):
            continue
        record.metrics[name] = MetricValue(
            mv.value,
            mv.unit,
            "estimated",
            f"{mv.method}; estimated in the source: {why}",
            None,
            mv.coverage,
        )
        record.samples.pop(name, None)
        hit.append(name)
    if hit:
        record.warnings.append(
            f"{', '.join(hit)}: estimated in the source ({why}): shown, never compared with a "
            "measurement nor gated"
        )
