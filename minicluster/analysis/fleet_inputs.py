"""The inputs of a fleet: one node per result (checked to be one job), or the nodes of one
multi-node result, each with its value per metric and, where it has none, why. Never imports
torch.

A multi-node result's nodes are told apart by `nodes[].ranks` when `nodes` is a list (schema
1.2: per node `node_rank`, `hostname`, `ranks`, `status`, `failed_ranks`, `missing_ranks`, and its
medians `step_time_ms_median`, `compute_ms_median`, `allreduce_ms_median`), else by each rank's
`node_rank` (when the launcher gave one) or host name (`core.pairs.node_of`).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minicluster.analysis import fleet_groups
from minicluster.core import pairs
from minicluster.core.checks import CHECK_KEYS
from minicluster.core.errors import InputError

# Config keys that may differ between nodes of one fleet: the job's label, the faults a test
# injects on purpose (the fleet must find them from the numbers), and the verdict thresholds
# (`checks`: they only decide how a result is judged afterwards, not what the ranks ran).
CONFIG_KEYS_IGNORED = ("name", "faults", "checks")
# The same thresholds where results from before the `checks` section keep them, under `run`.
RUN_KEYS_IGNORED = CHECK_KEYS


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
    group: tuple[str, int, str] = ("unknown", 0, "unknown")  # fleet_groups.platform_key
    finding: str | None = None  # what the node's own check found (fleet_groups.own_finding)
    # the reference the node's own result was judged against (a node check's `reference`, a
    # run's `reference` section from `aggregate --reference`), None when none
    reference: dict[str, Any] | None = None


def nodes_of(
    results: list[tuple[str, dict[str, Any]]], names: list[str]
) -> tuple[list[NodeInput], str]:
    """The nodes of `results` (`(source, result)` pairs) with their values of metrics `names`,
    and how they were read (`one result per node` or `one multi-node result`). InputError for
    a repeated run, a multi-node result among others, or results of different jobs."""
    if len(results) == 1:
        return _split_multinode(*results[0], names), "one multi-node result"
    return _one_per_result(results, names), "one result per node"


def _reference_used(r: dict[str, Any]) -> dict[str, Any] | None:
    """The reference a node's result was judged against: name, kind, file and, for a run judged
    by `aggregate --reference`, its verdict, floor and per-metric % of reference."""
    ref = r.get("reference")
    if not isinstance(ref, dict):
        return None
    out = {k: ref.get(k) for k in ("name", "kind") if ref.get(k) is not None}
    where = ref.get("file") or ref.get("path")
    if where is not None:
        out["file"] = where
    for key in ("verdict", "floor_pct", "reason"):
        if ref.get(key) is not None:
            out[key] = ref[key]
    if isinstance(ref.get("metrics"), list):
        out["pct_of_reference"] = {
            m["metric"]: m.get("pct_of_reference") for m in ref["metrics"] if isinstance(m, dict)
        }
    if r.get("floor_pct") is not None and "floor_pct" not in out:  # a node check's floor
        out["floor_pct"] = r["floor_pct"]
    return out


def _label(source: str) -> str:
    """A short name for an input: its run directory's name, or the file's stem; a link
    (`runs/latest-node-check`) is named by the run it resolves to."""
    path = Path(source)
    if path.name == "result.json" or path.suffix != ".json":
        run = path.parent if path.name == "result.json" else path
        return Path(os.path.realpath(run)).name or run.name or source
    return Path(os.path.realpath(path)).stem or path.stem


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
        nodes.append(
            NodeInput(
                label,
                source,
                r["run_id"],
                h,
                r["status"],
                values,
                reasons,
                fleet_groups.platform_key(r),
                fleet_groups.own_finding(r),
                _reference_used(r),
            )
        )
    return nodes


def _node_count(r: dict[str, Any]) -> int | None:
    nodes = r.get("nodes")
    if isinstance(nodes, list):
        return len(nodes)
    return nodes if isinstance(nodes, int) else None


def _hosts(r: dict[str, Any]) -> list[str]:
    platform = r.get("platform") or {}
    if fleet_groups.is_node_check(r):
        return [str(platform.get("hostname"))] if platform.get("hostname") else []
    return [str(n.get("hostname")) for n in platform.get("nodes") or []]


def _job(r: dict[str, Any]) -> dict[str, Any]:
    """What must match across a fleet: workload, world size, backend, the config but its label,
    injected faults and the thresholds that only judge a result."""
    if fleet_groups.is_node_check(r):
        return fleet_groups.job_of_node_check(r)
    config = {k: v for k, v in (r.get("config") or {}).items() if k not in CONFIG_KEYS_IGNORED}
    if isinstance(config.get("run"), dict):
        config["run"] = {k: v for k, v in config["run"].items() if k not in RUN_KEYS_IGNORED}
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
        # what kind of job first (a training run among node checks), then the rest in order
        fields = sorted(set(job) | set(ref), key=lambda f: (_KIND_RANK.get(f, len(_KIND_RANK)), f))
        field = next(f for f in fields if job.get(f) != ref.get(f))
        others = len(results) - 1
        if counts[ref_key] == others:
            whom, there = f"the other {others} input(s)", "in the others"
        else:  # no majority job: name the input it was compared with
            first = results[keys.index(ref_key)][0]
            whom = f"{first} ({counts[ref_key]} of the other {others} input(s) ran that one)"
            there = f"in {first}"
        raise InputError(
            f"{source} ran a different job from {whom}: {field} is {_said(job.get(field))} "
            f"there, {_said(ref.get(field))} {there} (a fleet compares one node-check job across "
            "nodes)"
        )


_KIND_RANK = {"workload.workload_type": 0, "workload.name": 1}


def _said(value: Any) -> str:
    """A job field's value as a message says it: a missing one is "not recorded", never None."""
    return "not recorded" if value is None else repr(value)


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
        nodes.append(
            NodeInput(
                label,
                source,
                r["run_id"],
                hosts,
                status,
                values,
                reasons,
                fleet_groups.platform_key(r, hosts[0] if hosts else None),
                _rank_findings(r, set(members)),
                _reference_used(r),
            )
        )
    return nodes


def _rank_findings(r: dict[str, Any], members: set[int]) -> str | None:
    """The stragglers and detected faults of a multi-node result that name a rank of this node."""
    parts = [
        f"straggler rank {s.get('rank')} (compute +{float(s.get('excess_pct') or 0):.0f}%)"
        for s in r.get("stragglers") or []
        if s.get("rank") in members
    ]
    parts += [
        f"{d.get('kind')} on rank {d.get('rank')}"
        for d in (r.get("faults") or {}).get("detected") or []
        if d.get("kind") != "straggler" and d.get("rank") in members
    ]
    return ("its run named " + "; ".join(parts)) if parts else None


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
