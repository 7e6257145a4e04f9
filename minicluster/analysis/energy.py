"""Merge the ranks' telemetry windows into run energy, power and temperature metrics (no torch).

Each rank reports the sources it read over its measured window (worker.py: GPU by the rank that
owns the device, RAPL and thermal zones by local rank 0). A GPU shared by several ranks appears
once per rank: it is counted once, by UUID.
"""

from __future__ import annotations

from typing import Any

from minicluster.core.metrics import MetricValue, metric, unavailable

ENERGY_SOURCES = ("nvml", "rapl")
SERIES_POINTS_MAX = 5_000  # per source in result.json: an hour at 100 ms is kept 1 in 8
METRIC_NAMES = (
    "power_consumption_watts",
    "energy_per_step_joules",
    "energy_per_sample_joules",
    "performance_per_watt",
    "temperature_celsius",
)


def collect_sources(summaries: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every distinct source over all ranks, each tagged with its host, rank and window.

    `summaries` holds (header, summary) per rank, in rank order; the lowest rank wins a duplicate.
    """
    seen: set[tuple[str, ...]] = set()
    out = []
    for header, summary in summaries:
        tele = summary.get("telemetry")
        if not tele:
            continue
        host = header["hostname"]
        for src in tele.get("sources", []):
            if src["source"] == "nvml" and src.get("id"):
                key: tuple[str, ...] = ("nvml", src["id"])
            else:
                key = (src["source"], host, str(src.get("id")), src["scope"])
            if key in seen:
                continue
            seen.add(key)
            out.append(
                {
                    **src,
                    "hostname": host,
                    "rank": header["rank"],
                    "window": tele.get("window", {}),
                    "sample_interval_ms": tele.get("sample_interval_ms"),
                }
            )
    return out


def _reading(src: dict[str, Any], name: str) -> dict[str, Any] | None:
    r: dict[str, Any] | None = src.get("readings", {}).get(name)
    return r


def _why(sources: list[dict[str, Any]], reading: str, kinds: tuple[str, ...]) -> str:
    reasons = []
    for s in sources:
        if s["source"] not in kinds:
            continue
        r = _reading(s, reading)
        why = s.get("reason") or (r or {}).get("reason") or f"no {reading} reading"
        label = f"{s['source']} {s['id']}" if s.get("id") else s["source"]
        reasons.append(f"{label}: {why}")
    return "; ".join(dict.fromkeys(reasons)) or "no rank reported telemetry"


def energy_metrics(
    sources: list[dict[str, Any]], throughput_sps: float | None, global_batch: int
) -> dict[str, MetricValue]:
    """power, energy per step and per sample, performance per watt, max temperature."""
    m: dict[str, MetricValue] = {}
    measured: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for s in sources:
        r = _reading(s, "energy_j")
        if s["source"] in ENERGY_SOURCES and r is not None and r.get("value") is not None:
            measured.append((s, r))
    if measured:
        energy_j = sum(r["value"] for _, r in measured)
        power_w = sum(
            r["value"] / s["window"]["duration_s"]
            for s, r in measured
            if s["window"].get("duration_s")
        )
        steps = min(s["window"]["measured_steps"] for s, _ in measured)
        parts = ", ".join(f"{s['scope']} {s['id']} ({r['status']})" for s, r in measured)
        used = [s for s, _ in measured]
        missing = _why([s for s in sources if s not in used], "energy_j", ENERGY_SOURCES)
        excluded = "" if missing == "no rank reported telemetry" else f"; not included: {missing}"
        how = f"sum over sources: {parts}{excluded}"
        m["power_consumption_watts"] = metric(
            "power_consumption_watts",
            power_w,
            "derived",
            f"sum of window energy / window duration per source; {how}",
        )
        per_step = energy_j / steps if steps else None
        m["energy_per_step_joules"] = metric(
            "energy_per_step_joules", per_step, "derived", f"window energy / measured steps; {how}"
        )
        m["energy_per_sample_joules"] = metric(
            "energy_per_sample_joules",
            None if per_step is None else per_step / global_batch,
            "derived",
            f"energy per step / global batch; {how}",
        )
        if throughput_sps is not None and power_w > 0:
            m["performance_per_watt"] = metric(
                "performance_per_watt",
                throughput_sps / power_w,
                "derived",
                "throughput_samples_per_sec / power_consumption_watts",
            )
        else:
            m["performance_per_watt"] = unavailable(
                "performance_per_watt", "no throughput or no power over the window"
            )
    else:
        why = _why(sources, "energy_j", ENERGY_SOURCES)
        for name in METRIC_NAMES[:4]:
            m[name] = unavailable(name, why)
    temps: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for s in sources:
        r = _reading(s, "temperature_max_c")
        if r is not None and r.get("value") is not None:
            temps.append((s, r))
    if temps:
        hottest_src, hottest = max(temps, key=lambda t: t[1]["value"])
        scopes = ", ".join(sorted({f"{s['source']} ({s['scope']})" for s, _ in temps}))
        m["temperature_celsius"] = metric(
            "temperature_celsius",
            hottest["value"],
            "measured",
            f"max over the measured window of {scopes}; hottest: {hottest_src['source']} "
            f"{hottest_src['id']} on {hottest_src['hostname']}",
        )
    else:
        m["temperature_celsius"] = unavailable(
            "temperature_celsius", _why(sources, "temperature_max_c", ("nvml", "thermal"))
        )
    return m


def telemetry_section(
    sources: list[dict[str, Any]], metrics: dict[str, MetricValue]
) -> dict[str, Any]:
    """Per-node and per-device breakdowns, totals, and the power/temperature series for reports."""
    nodes: dict[str, dict[str, Any]] = {}
    devices = []
    series = []
    ranks = []
    for s in sources:
        if s["source"] == "host_memory":  # per rank, not a node or device source
            ranks.append(
                {
                    "rank": s["rank"],
                    "hostname": s["hostname"],
                    "id": s["id"],
                    "readings": s["readings"],
                }
            )
            continue
        entry = {
            k: v
            for k, v in s.items()
            if k not in ("series", "hostname", "window", "sample_interval_ms")
        }
        nodes.setdefault(s["hostname"], {"hostname": s["hostname"], "sources": []})
        nodes[s["hostname"]]["sources"].append(entry)
        if s["source"] == "nvml" and s.get("available"):
            devices.append(
                {
                    "uuid": s["id"],
                    "name": s.get("name"),
                    "hostname": s["hostname"],
                    "rank": s["rank"],
                    "readings": s["readings"],
                    "throttle_reasons": s.get("throttle_reasons", []),
                }
            )
        if s.get("series"):
            every = max(1, -(-len(s["series"]) // SERIES_POINTS_MAX))  # ceil division
            series.append(
                {
                    "hostname": s["hostname"],
                    "source": s["source"],
                    "id": s["id"],
                    "scope": s["scope"],
                    "columns": ["t_unix_s", "power_w", "temp_c"],
                    "every_nth_sample": every,
                    "points": [[_r(v) for v in p] for p in s["series"][::every]],
                }
            )
    for node in nodes.values():
        energies = [
            (_reading(x, "energy_j") or {}).get("value")
            for x in node["sources"]
            if x["source"] in ENERGY_SOURCES
        ]
        known = [e for e in energies if e is not None]
        node["energy_j"] = sum(known) if known else None
    intervals = {float(s["sample_interval_ms"]) for s in sources if s.get("sample_interval_ms")}
    totals = {name: metrics[name].to_dict() for name in METRIC_NAMES if name in metrics}
    return {
        "sample_interval_ms": min(intervals) if intervals else None,
        "totals": totals,
        "nodes": list(nodes.values()),
        "devices": devices,
        "ranks": sorted(ranks, key=lambda r: r["rank"]),
        "series": series,
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)
