"""What every aggregated result has, whatever the job: platform, memory, failed ranks, top level.

Training runs (`aggregate`) and collective benchmarks (`collectives`) build their results
through these functions, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from minicluster.analysis.records import RankRecords
from minicluster.core import clock, config
from minicluster.core.config import RunConfig
from minicluster.core.errors import ConfigError, InputError
from minicluster.core.metrics import MetricValue, metric, unavailable
from minicluster.core.version import __version__
from minicluster.result.model import SCHEMA_VERSION


def memory_metrics(
    headers: list[dict[str, Any]], by_rank: dict[int, RankRecords], world_size: int
) -> dict[str, MetricValue]:
    """`memory_peak_mib` (max over ranks) and `memory_utilization_percent` (the fullest host or
    device), from the ranks' end-of-run summaries. Both are unavailable unless every one of the
    `world_size` ranks wrote its summary: a max or a per-host sum over the ranks that survived a
    crash is not the job's number (it would look better than the job was)."""
    summaries = [(r.header, r.summary) for r in by_rank.values() if r.header and r.summary]
    if len(summaries) < world_size:
        have = {r for r, rec in by_rank.items() if rec.header and rec.summary}
        missing = [r for r in range(world_size) if r not in have]
        shown = ", ".join(map(str, missing[:8])) + (", ..." if len(missing) > 8 else "")
        why = (
            "no rank wrote a summary"
            if not summaries
            else f"only {len(summaries)} of {world_size} ranks wrote a summary (not rank "
            f"{shown}): a peak over the others is not the job's"
        )
        return {
            "memory_utilization_percent": unavailable("memory_utilization_percent", why),
            "memory_peak_mib": unavailable("memory_peak_mib", why),
        }
    lacking = [
        h.get("rank", "?")
        for h, s in summaries
        if not _has_numbers(s.get("memory"), ("rss_peak_bytes", "host_total_bytes"))
        and not _has_numbers(s.get("memory"), ("cuda_max_allocated_bytes", "cuda_total_bytes"))
    ]
    if lacking:
        why = (
            f"rank {lacking[0]}'s summary has no memory figures (rss_peak_bytes and "
            "host_total_bytes, or the cuda pair): a peak over the others is not the job's"
        )
        return {
            "memory_utilization_percent": unavailable("memory_utilization_percent", why),
            "memory_peak_mib": unavailable("memory_peak_mib", why),
        }
    gpu = [s["memory"] for _, s in summaries if "cuda_max_allocated_bytes" in s["memory"]]
    if gpu:
        peak = max(g["cuda_max_allocated_bytes"] for g in gpu)
        pct = max(100.0 * g["cuda_max_allocated_bytes"] / g["cuda_total_bytes"] for g in gpu)
        how = "max over ranks of torch.cuda.max_memory_allocated"
        return {
            "memory_peak_mib": metric("memory_peak_mib", peak / 2**20, "measured", how),
            "memory_utilization_percent": metric(
                "memory_utilization_percent", pct, "derived", f"{how} / device total"
            ),
        }
    peak = max(s["memory"]["rss_peak_bytes"] for _, s in summaries)
    per_host: dict[str, int] = {}
    totals: dict[str, int] = {}
    for h, s in summaries:
        per_host[h["hostname"]] = per_host.get(h["hostname"], 0) + s["memory"]["rss_peak_bytes"]
        totals[h["hostname"]] = s["memory"]["host_total_bytes"]
    pct = max(100.0 * per_host[host] / totals[host] for host in per_host)
    return {
        "memory_peak_mib": metric(
            "memory_peak_mib",
            peak / 2**20,
            "measured",
            "max over ranks of process peak RSS (getrusage)",
        ),
        "memory_utilization_percent": metric(
            "memory_utilization_percent",
            pct,
            "derived",
            "max over hosts of (sum of ranks' peak RSS on the host) / host memory total",
        ),
    }


def _has_numbers(memory: Any, keys: tuple[str, ...]) -> bool:
    """True when `memory` is a mapping holding a positive number (not a bool) at each key."""
    if not isinstance(memory, dict):
        return False
    values = [memory.get(k) for k in keys]
    return all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in values)


def platform(headers: list[dict[str, Any]]) -> dict[str, Any]:
    nodes: dict[str, dict[str, Any]] = {}
    for h in sorted(headers, key=lambda h: h["rank"]):
        p = h.get("platform", {})
        node = nodes.setdefault(
            h["hostname"],
            {
                "hostname": h["hostname"],
                "cpu": p.get("cpu"),
                "cpu_count": p.get("cpu_count"),
                "host_memory_total_bytes": p.get("host_memory_total_bytes"),
                "os": p.get("os"),
                "gpus": [],
            },
        )
        if p.get("gpu") and p["gpu"] not in node["gpus"]:
            node["gpus"].append(p["gpu"])
    p0 = headers[0].get("platform", {})
    return {"nodes": list(nodes.values()), "torch": p0.get("torch"), "python": p0.get("python")}


def ray_section(headers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """`{version}` of the Ray the ranks ran on (the Ray launcher), else None; each rank's Ray
    node ID is in its `ranks[]` entry and its node's `nodes[]` entry."""
    versions = sorted(
        {
            str(h["ray"]["version"])
            for h in headers
            if isinstance(h.get("ray"), dict) and h["ray"].get("version") is not None
        }
    )
    if not versions:
        return None
    return {"version": ", ".join(versions)}


# what aggregation reads from the header it builds the run from (rank/header.py writes them
# all; a value may be null)
HEADER_NEEDS: dict[str, tuple[str, ...]] = {"config": (), "workload": ("per_rank_batch",)}


def rank0_header(records: list[RankRecords]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(rank 0's header, or the lowest rank's when rank 0 left none; every header)."""
    headers = [r.header for r in records if r.header is not None]
    if not headers:
        raise InputError("no rank wrote a header record: nothing to aggregate")
    head0 = next((h for h in headers if h["rank"] == 0), headers[0])
    for key, needed in HEADER_NEEDS.items():
        value = head0.get(key)
        missing = [k for k in needed if k not in value] if isinstance(value, dict) else None
        if missing is None or missing:
            what = f"no {', '.join(missing)} in it" if missing else f"it is {value!r:.30}"
            raise InputError(
                f"rank {head0['rank']}'s header has no usable {key} ({what}): its rank file was "
                "not written by minicluster's ranks as they write it, or was edited"
            )
    return head0, headers


def run_config(head0: dict[str, Any]) -> RunConfig:
    """The typed config the ranks ran with, rebuilt from the header (never a restated default)."""
    try:
        return config.from_dict(head0.get("config") or {}, source="rank 0's header config")
    except ConfigError as e:
        raise InputError(f"cannot read the config recorded by the ranks: {e}") from None


def top_level(
    head0: dict[str, Any],
    headers: list[dict[str, Any]],
    status: str,
    world_size: int,
    aggregated_at: str | None,
    nodes: list[dict[str, Any]],
) -> dict[str, Any]:
    """The first keys of every aggregated result, in the order `result.json` lists them;
    `nodes` is the per-node section (`analysis.nodes.nodes_section`)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": head0["run_id"],
        "created_at": head0.get("created_at") or clock.utc_now_iso(),
        "aggregated_at": aggregated_at or clock.utc_now_iso(),
        "status": status,
        "tool": {"name": "minicluster", "version": __version__},
        "launcher": head0.get("launcher", "outside"),
        "ray": ray_section(headers),
        "backend": head0.get("backend"),
        "world_size": world_size,
        "nodes": nodes,
        "config": head0.get("config", {}),
        "platform": platform(headers),
    }
