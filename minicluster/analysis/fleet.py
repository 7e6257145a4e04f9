"""Node-check results of many nodes side by side: per metric the fleet's distribution, each node's
robust z-score and relative score, and the outlier nodes, named only on the bad side of the
registry's direction. Never imports torch.

Input: one result per node (the same node-check job run on each, e.g. one `srun` job per node),
or one multi-node result, whose nodes are told apart by `nodes[].ranks` when `nodes` is a list
(schema 1.2: per node `node_rank`, `hostname`, `ranks`, `status`, `failed_ranks`, and its
medians), else by each rank's `node_rank` (when the launcher gave one) or host name
(`core.pairs.node_of`).
Rules (README "Validating a cluster"):
- per metric, over the nodes that measured it (status ok, at least `MIN_NODES`): z = robust z
  on the log scale (`analysis.robust`), the MAD floored at `MAD_FLOOR_FRAC`;
- a node is an outlier on a metric when its z is beyond `outlier_z` on the bad side (lower is
  better: above; higher is better: below); a metric without a direction is shown, never gated;
- relative score: median / value for lower-is-better metrics, value / median for higher-is-better
  ones (1 = a typical node, 0.8 = 20% worse);
- a node whose run failed is named as failed and left out of every distribution.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minicluster.analysis.robust import bad_side_z, spread
from minicluster.core import metrics as registry
from minicluster.core import pairs
from minicluster.core.errors import InputError

FORMAT = "minicluster-fleet/1"
# The step time p50, compute, all-reduce, busbw, memory peak and energy per step of a node check.
DEFAULT_METRICS = (
    "latency_p50_ms",
    "compute_ms",
    "allreduce_ms",
    "busbw_gbps",
    "memory_peak_mib",
    "energy_per_step_joules",
)
MIN_NODES = 3  # a median and a MAD of fewer values say nothing about a fleet
# The MAD of ln(value) never counts as less than this: a fleet tighter than it names nobody within
# exp(3.5 x 0.1) = +42% / -30% of its median. Measured on this project's loaded 2-core VM
# (scripts/check_fleet_false_positives.py, README "Validating a cluster"): 24 subsets of 7 clean
# node checks run together named a node 18 times without a floor, 4 with 0.05, never with 0.1
# (memory peaks agree within 1%: any 1% difference was dozens of MADs).
MAD_FLOOR_FRAC = 0.10
# Config keys that may differ between nodes of one fleet: the job's label, and the faults a test
# injects on purpose (the fleet must find them from the numbers).
CONFIG_KEYS_IGNORED = ("name", "faults")


@dataclass(frozen=True)
class NodeInput:
    """One node's figures: where they came from, its status and its value per metric."""

    label: str
    source: str
    run_id: str
    hosts: list[str]
    status: str
    values: dict[str, float | None]
    reasons: dict[str, str]  # why a value is None


def fleet(
    results: list[tuple[str, dict[str, Any]]],
    metric_names: list[str] | None = None,
    outlier_z: float = 3.5,
    mad_floor: float | None = None,
) -> dict[str, Any]:
    """The fleet report of `results` (`(source, result)` pairs, validated `result.json` dicts);
    `mad_floor` None: `MAD_FLOOR_FRAC`.

    InputError (exit 2) for too few nodes, a repeated run, a multi-node result among others,
    or nodes that ran different jobs (naming the odd one).
    """
    if outlier_z <= 0 or not math.isfinite(outlier_z):
        raise InputError(f"--outlier-z must be a positive number, got {outlier_z}")
    floor = MAD_FLOOR_FRAC if mad_floor is None else mad_floor
    if floor < 0 or not math.isfinite(floor):
        raise InputError(f"--mad-floor must be a number >= 0, got {floor}")
    names = _metric_names(metric_names)
    if len(results) == 1:
        nodes = _split_multinode(*results[0], names)
        mode = "one multi-node result"
    else:
        nodes = _one_per_result(results, names)
        mode = "one result per node"
    if len(nodes) < MIN_NODES:
        raise InputError(
            f"fleet needs the results of at least {MIN_NODES} nodes, got {len(nodes)}: give one "
            "result per node, or one result of a run across that many nodes"
        )
    if metric_names is None:  # energy and the like only when some node measured them
        names = [m for m in names if m != "energy_per_step_joules" or _any_value(nodes, m)]
    judged = [n for n in nodes if n.status == "ok"]
    per_metric = [_metric(m, judged, outlier_z, floor) for m in names]
    node_rows = [_node_row(n, per_metric) for n in nodes]
    node_rows.sort(
        key=lambda r: (
            r["status"] == "ok",
            -r["worst_bad_z"] if r["worst_bad_z"] is not None else math.inf,
        )
    )
    outliers = [r["label"] for r in node_rows if r["outlier_on"]]
    failed = [r["label"] for r in node_rows if r["status"] == "failed"]
    return {
        "format": FORMAT,
        "mode": mode,
        "outlier_z": outlier_z,
        "mad_floor_frac": floor,
        "min_nodes": MIN_NODES,
        "rule": "robust z on the log scale over the nodes that measured the metric (median, "
        "MAD x 1.4826 floored at mad_floor_frac); outlier: z beyond outlier_z on the bad side of "
        "the metric's direction (lower is better: above; higher is better: below)",
        "workload": _workload(results),
        "metrics": per_metric,
        "nodes": node_rows,
        "outliers": outliers,
        "failed": failed,
        "verdict": _verdict(len(nodes), per_metric, node_rows, outlier_z),
    }


def _metric_names(given: list[str] | None) -> list[str]:
    names = list(dict.fromkeys(given)) if given else list(DEFAULT_METRICS)
    for name in names:
        if registry.get(name) is None:
            allowed = ", ".join(sorted(registry.REGISTRY))
            raise InputError(f"--metric {name!r} is not a metric; allowed: {allowed}")
    return names


def _any_value(nodes: list[NodeInput], name: str) -> bool:
    return any(n.values.get(name) is not None for n in nodes)


def _label(source: str) -> str:
    """A short name for an input: its run directory's name, or the file's stem."""
    path = Path(source)
    if path.name == "result.json" or path.suffix != ".json":
        return (path.parent if path.name == "result.json" else path).name or source
    return path.stem


def _one_per_result(results: list[tuple[str, dict[str, Any]]], names: list[str]) -> list[NodeInput]:
    seen: dict[str, str] = {}
    for source, r in results:
        if r["run_id"] in seen:
            raise InputError(
                f"{source} is run {r['run_id']}, given twice (also {seen[r['run_id']]})"
            )
        seen[r["run_id"]] = source
        count = _node_count(r)
        if count is not None and count > 1:
            raise InputError(
                f"{source} spans {count} nodes: give one result per node, or that multi-node "
                "result alone"
            )
    _check_same_job(results)
    hosts = [_hosts(r) for _, r in results]
    host_labels = [", ".join(h) for h in hosts]
    unique_hosts = all(host_labels) and len(set(host_labels)) == len(host_labels)
    labels = host_labels if unique_hosts else [_label(s) for s, _ in results]
    if len(set(labels)) < len(labels):
        labels = [s for s, _ in results]
    nodes = []
    for (source, r), label, h in zip(results, labels, hosts, strict=True):
        values: dict[str, float | None] = {}
        reasons: dict[str, str] = {}
        for m in names:
            mv = (r.get("metrics") or {}).get(m) or {}
            v = mv.get("value")
            values[m] = float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None
            if values[m] is None:
                reasons[m] = str(mv.get("reason") or "not in this result")
        nodes.append(NodeInput(label, source, r["run_id"], h, r["status"], values, reasons))
    return nodes


def _node_count(r: dict[str, Any]) -> int | None:
    nodes = r.get("nodes")
    if isinstance(nodes, list):
        return len(nodes)
    return nodes if isinstance(nodes, int) else None


def _hosts(r: dict[str, Any]) -> list[str]:
    return [str(n.get("hostname")) for n in (r.get("platform") or {}).get("nodes") or []]


def _job(r: dict[str, Any]) -> dict[str, Any]:
    """What must match across a fleet: workload, world size, backend, the config but its label
    and injected faults."""
    config = {k: v for k, v in (r.get("config") or {}).items() if k not in CONFIG_KEYS_IGNORED}
    return {
        "workload": r.get("workload"),
        "world_size": r.get("world_size"),
        "backend": r.get("backend"),
        "config": config,
    }


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: data}


def _check_same_job(results: list[tuple[str, dict[str, Any]]]) -> None:
    """InputError naming the input whose job differs from the most common one (ties: the
    first input's), and the first field where it differs."""
    jobs = [_flat(_job(r)) for _, r in results]
    keys = [repr(sorted(j.items())) for j in jobs]
    counts = Counter(keys)
    top = max(counts.values())
    ref_key = next(k for k in keys if counts[k] == top)
    ref = jobs[keys.index(ref_key)]
    for (source, _), job, key in zip(results, jobs, keys, strict=True):
        if key == ref_key:
            continue
        field = next(f for f in sorted(set(job) | set(ref)) if job.get(f) != ref.get(f))
        raise InputError(
            f"{source} ran a different job from the other {counts[ref_key]} input(s): {field} "
            f"is {job.get(field)!r} there, {ref.get(field)!r} in the others (a fleet compares "
            "one node-check job across nodes)"
        )


def _split_multinode(source: str, r: dict[str, Any], names: list[str]) -> list[NodeInput]:
    """The nodes of one multi-node result. With `nodes` as a list (schema 1.2), each node's own
    figures (`step_time_ms_median`, `compute_ms_median`, `allreduce_ms_median`: per step the max
    over its ranks, then the median) and status; otherwise, or where a node lacks a figure, the
    median over its ranks of their per-rank figures. Run-level figures such as busbw and energy
    have no per-node value in one result."""
    ranks = {e["rank"]: e for e in r.get("ranks") or []}
    groups: dict[str, tuple[list[int], dict[str, Any]]] = {}
    if isinstance(r.get("nodes"), list):
        for i, node in enumerate(r["nodes"]):
            groups[_node_label(node, i)] = ([int(x) for x in node.get("ranks") or []], node)
    else:
        for rank, e in sorted(ranks.items()):
            groups.setdefault(pairs.node_of(e), ([], {}))[0].append(rank)
    failed = set(r.get("failed_ranks") or [])
    nodes = []
    for label, (members, node) in groups.items():
        entries = [ranks[x] for x in members if x in ranks]
        bad = set(node.get("failed_ranks") or []) | set(node.get("missing_ranks") or [])
        bad |= failed & set(members)
        status = str(node.get("status") or ("failed" if bad else r["status"]))
        if bad and status == "ok":
            status = "failed"
        values, reasons = _node_values(entries, names)
        for metric_name, key in _NODE_FIGURES.items():
            if metric_name in values and isinstance(node.get(key), (int, float)):
                values[metric_name] = float(node[key])
                reasons.pop(metric_name, None)
        hosts = sorted({str(e.get("hostname")) for e in entries} or {str(node.get("hostname"))})
        nodes.append(NodeInput(label, source, r["run_id"], hosts, status, values, reasons))
    return nodes


# A node's own figures in a 1.2 result's `nodes` list, for the metrics they stand for.
_NODE_FIGURES = {
    "latency_p50_ms": "step_time_ms_median",
    "compute_ms": "compute_ms_median",
    "allreduce_ms": "allreduce_ms_median",
}


def _node_label(node: dict[str, Any], index: int) -> str:
    if node.get("hostname") is not None or node.get("node_rank") is not None:
        return pairs.node_of(node)
    return str(node.get("name") or node.get("node") or f"node {index}")


# Per-rank figures of a result's `ranks[]` that stand for a metric on one node.
_RANK_FIGURES = {
    "latency_p50_ms": lambda e: (e.get("step_time_ms") or {}).get("p50"),
    "compute_ms": lambda e: e.get("compute_ms_median"),
    "allreduce_ms": lambda e: e.get("comm_ms_median"),
}


def _node_values(
    entries: list[dict[str, Any]], names: list[str]
) -> tuple[dict[str, float | None], dict[str, str]]:
    values: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    for m in names:
        figures: list[float] = []
        if m in _RANK_FIGURES:
            figures = [
                float(v) for e in entries if isinstance(v := _RANK_FIGURES[m](e), (int, float))
            ]
        elif m == "memory_peak_mib":
            figures = [
                float(v) / 2**20 for e in entries if isinstance(v := _peak_bytes(e), (int, float))
            ]
        if not figures:
            values[m] = None
            reasons[m] = (
                "no per-rank figure for it in the result"
                if m in _RANK_FIGURES or m == "memory_peak_mib"
                else "a run-level figure: one multi-node result has no per-node value of it"
            )
            continue
        figures.sort()
        mid = len(figures) // 2
        median = figures[mid] if len(figures) % 2 else (figures[mid - 1] + figures[mid]) / 2
        values[m] = max(figures) if m == "memory_peak_mib" else median
    return values, reasons


def _peak_bytes(e: dict[str, Any]) -> Any:
    mem = e.get("memory") or {}
    return mem.get("cuda_max_allocated_bytes", mem.get("rss_peak_bytes"))


def _metric(name: str, nodes: list[NodeInput], outlier_z: float, floor: float) -> dict[str, Any]:
    m = registry.get(name)
    assert m is not None
    have = [(n, n.values[name]) for n in nodes if n.values.get(name) is not None]
    out: dict[str, Any] = {
        "name": name,
        "unit": m.unit,
        "direction": m.direction,
        "gated": m.direction in ("lower", "higher"),
        "n": len(have),
        "median": None,
        "mad": None,
        "scale": None,
        "mad_floored": None,
        "log_scale": None,
        "min": None,
        "max": None,
        "outliers": [],
        "reason": None,
        "per_node": {},
    }
    if len(have) < MIN_NODES:
        out["gated"] = False
        out["reason"] = f"measured on {len(have)} node(s), fewer than {MIN_NODES}: not judged"
        return out
    values = [v for _, v in have]
    log = all(v > 0 for v in values)
    dist = spread(values, floor_frac=floor, log=log)
    out.update(
        median=dist.median,
        mad=dist.mad,
        scale=dist.scale,
        mad_floored=dist.floored,
        log_scale=log,
        min=dist.min,
        max=dist.max,
    )
    if m.direction == "none":
        out["reason"] = "no better or worse direction (registry): shown, not judged"
    for n, v in have:
        z = dist.z(v)
        bad = bad_side_z(z, m.direction)
        outlier = out["gated"] and not math.isnan(bad) and bad > outlier_z
        score = None
        if m.direction == "lower" and v > 0:
            score = dist.median / v
        elif m.direction == "higher" and dist.median > 0:
            score = v / dist.median
        out["per_node"][n.label] = {
            "value": v,
            "z": z,
            "bad_z": None if math.isnan(bad) else bad,
            "score": score,
            "outlier": outlier,
        }
        if outlier:
            out["outliers"].append(n.label)
    return out


def _node_row(n: NodeInput, per_metric: list[dict[str, Any]]) -> dict[str, Any]:
    values = {}
    outlier_on = []
    worst = None
    for m in per_metric:
        cell = m["per_node"].get(n.label)
        if cell is None:
            reason = n.reasons.get(m["name"]) or (
                f"its run {n.status}: not judged" if n.status != "ok" else m["reason"]
            )
            values[m["name"]] = {"value": n.values.get(m["name"]), "reason": reason}
            continue
        values[m["name"]] = cell
        if cell["outlier"]:
            outlier_on.append(m["name"])
        if m["gated"] and cell["bad_z"] is not None:
            worst = cell["bad_z"] if worst is None else max(worst, cell["bad_z"])
    return {
        "label": n.label,
        "source": n.source,
        "run_id": n.run_id,
        "hosts": n.hosts,
        "status": n.status,
        "outlier_on": outlier_on,
        "worst_bad_z": worst,
        "values": values,
    }


def _workload(results: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    r = results[0][1]
    wl = r.get("workload") or {}
    return {
        "name": wl.get("name"),
        "workload_type": wl.get("workload_type"),
        "world_size": r.get("world_size"),
        "backend": r.get("backend"),
    }


def _verdict(
    n_nodes: int, per_metric: list[dict[str, Any]], rows: list[dict[str, Any]], outlier_z: float
) -> str:
    failed = [r for r in rows if r["status"] == "failed"]
    bad = [r for r in rows if r["outlier_on"]]
    gated = [m["name"] for m in per_metric if m["gated"]]
    parts = []
    if bad:
        named = []
        for r in bad:
            zs = ", ".join(f"{name} z {r['values'][name]['z']:+.1f}" for name in r["outlier_on"])
            named.append(f"{r['label']} ({zs})")
        parts.append(f"{len(bad)} outlier node(s): " + "; ".join(named))
    if failed:
        parts.append(
            f"{len(failed)} node check(s) failed: " + ", ".join(r["label"] for r in failed)
        )
    if parts:
        return f"fleet of {n_nodes} nodes: " + "; ".join(parts)
    return (
        f"fleet of {n_nodes} nodes: no outlier on {', '.join(gated) or 'any metric'} (robust z "
        f"beyond {outlier_z:g} on the bad side)"
    )
