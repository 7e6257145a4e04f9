"""Node-check results of many nodes side by side: per metric the fleet's distribution, each node's
robust z-score and relative score, and the outlier nodes, named only on the bad side of the
registry's direction. Never imports torch.

Input: one result per node (the same node-check job run on each, e.g. one `srun` job per node),
or one multi-node result (read by `analysis.fleet_inputs`).

Rules (README "Validating a cluster"):
- per metric, over the nodes that measured it (status ok, at least `MIN_Z_NODES`): z = robust z
  on the log scale (`analysis.robust`), the MAD floored at `MAD_FLOOR_FRAC`; over fewer (the
  input needs `MIN_NODES`) the z is shown, never gated: "not judged: N nodes, need 5";
- a node is an outlier on a metric when its z is beyond `outlier_z` on the bad side (lower is
  better: above; higher is better: below); a metric without a direction is shown, never gated;
- relative score: median / value for lower-is-better metrics, value / median for higher-is-better
  ones (1 = a typical node, 0.8 = 20% worse);
- a node whose run failed is named as failed and left out of every distribution; so is a node
  whose own check found something (a node check failed or degraded, a run that named a straggler
  or detected a fault): it is named with its own finding, never "ok";
- nodes are judged within their platform group (GPU model and count, CPU model;
  `analysis.fleet_groups`): a healthy A100 node is never an outlier among H100s; a group of fewer
  than `MIN_Z_NODES` judged nodes is not judged, and says so.
"""

from __future__ import annotations

import math
from typing import Any

from minicluster.analysis import fleet_groups, fleet_reference, references
from minicluster.analysis.fleet_inputs import NodeInput, nodes_of
from minicluster.analysis.robust import bad_side_z, spread
from minicluster.core import metrics as registry
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
# The robust z names outliers only over this many nodes. Over 3 values the MAD is the smaller of
# the two other nodes' distances from the median, not a spread: whichever node is 5x farther than
# the other is "an outlier" (a new-user trial: three node checks of one VM run one after another,
# busbw 0.44 / 0.93 / 1.06 GB/s, named the first at z +4.1; three clean runs, compute 36-61 ms,
# named one at z +4.6). Over 4 values two that agree by chance still set the scale. From 5 on,
# the scale is the median of 4 other distances. Fewer nodes are judged by their own checks and
# against --reference only.
MIN_Z_NODES = 5
# The MAD of ln(value) never counts as less than this: a fleet tighter than it names nobody within
# exp(3.5 x 0.1) = +42% / -30% of its median. Measured on this project's loaded 2-core VM
# (scripts/check_fleet_false_positives.py, README "Validating a cluster"): 24 subsets of 7 clean
# node checks run together named a node 18 times without a floor (15 on memory peaks, which agree
# within 1%), 4 with 0.05 (all-reduce time), never with 0.1.
MAD_FLOOR_FRAC = 0.10
# A fleet of node checks measures each device alone (no rank waits for another, no whole-run
# offsets of a training job), so its floor is half that: a group tighter than 5% names a node
# beyond exp(-3.5 x 0.05) = 84% of its median (issue 29: a node at 80% of its peers' GEMM rate
# is named). The group's own MAD still rules when it is wider (BENCHMARKS.md, node checks).
NODE_CHECK_MAD_FLOOR_FRAC = 0.05
VERDICT_BELOW_REFERENCE = "below_reference"


def fleet(
    results: list[tuple[str, dict[str, Any]]],
    metric_names: list[str] | None = None,
    outlier_z: float = 3.5,
    mad_floor: float | None = None,
    reference: references.Reference | None = None,
    floor_pct: float = references.DEFAULT_FLOOR_PCT,
) -> dict[str, Any]:
    """The fleet report of `results` (`(source, result)` pairs, validated `result.json` dicts or
    node-check results); `mad_floor` None: `MAD_FLOOR_FRAC` (`NODE_CHECK_MAD_FLOOR_FRAC` for a
    fleet of node checks); `reference`: each node also judged against it (`fleet_reference`),
    below `floor_pct` % a finding.

    InputError (exit 2) for too few nodes, a repeated run, a multi-node result among others,
    or nodes that ran different jobs (naming the odd one).
    """
    if outlier_z <= 0 or not math.isfinite(outlier_z):
        raise InputError(f"--outlier-z must be a positive number, got {outlier_z}")
    all_node_checks = all(fleet_groups.is_node_check(r) for _, r in results)
    default_floor = NODE_CHECK_MAD_FLOOR_FRAC if all_node_checks else MAD_FLOOR_FRAC
    floor = default_floor if mad_floor is None else mad_floor
    if floor < 0 or not math.isfinite(floor):
        raise InputError(f"--mad-floor must be a number >= 0, got {floor}")
    names = _metric_names(metric_names, all_node_checks)
    nodes, mode = nodes_of(results, names)
    if len(nodes) < MIN_NODES:
        # one single-node result (a node check has no ranks to split by node) is one node
        got = max(len(nodes), len(results))
        raise InputError(
            f"fleet needs the results of at least {MIN_NODES} nodes, got {got}: give one "
            "result per node, or one result of a run across that many nodes"
        )
    if metric_names is None:  # energy, GPU figures and the like only when some node measured them
        optional = (
            fleet_groups.NODE_CHECK_METRICS if all_node_checks else ("energy_per_step_joules",)
        )
        names = [m for m in names if m not in optional or _any_value(nodes, m)]
    judged = [n for n in nodes if n.status == "ok" and n.finding is None]
    per_metric: list[dict[str, Any]] = []
    groups = []
    by_group: dict[tuple[str, int, str], list[NodeInput]] = {}
    for n in nodes:
        by_group.setdefault(n.group, []).append(n)
    for key, members in sorted(by_group.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        label = fleet_groups.group_label(key)
        in_group = [n for n in judged if n.group == key]
        flagged = [n for n in members if n.status == "ok" and n.finding is not None]
        metrics = [_metric(m, in_group, outlier_z, floor, flagged) for m in names]
        for m in metrics:
            m["group"] = label
        per_metric.extend(metrics)
        enough = len(in_group) >= MIN_Z_NODES
        groups.append(
            {
                "label": label,
                "gpu_model": key[0],
                "gpus_per_node": key[1],
                "cpu_model": key[2],
                "nodes": [n.label for n in members],
                "judged_nodes": len(in_group),
                "judged": enough,
                "reason": None
                if enough
                else f"{len(in_group)} node(s) to judge in this platform group, fewer than "
                f"{MIN_Z_NODES}: too small to judge",
            }
        )
    against = (
        fleet_reference.judge_nodes(results, nodes, reference, floor_pct)
        if reference is not None
        else {}
    )
    node_rows = [
        _node_row(
            n,
            [m for m in per_metric if m["group"] == fleet_groups.group_label(n.group)],
            against.get(n.label),
        )
        for n in nodes
    ]
    node_rows.sort(
        key=lambda r: (
            r["status"] == "ok" and r["finding"] is None,
            -r["worst_bad_z"] if r["worst_bad_z"] is not None else math.inf,
        )
    )
    outliers = [r["label"] for r in node_rows if r["outlier_on"]]
    failed = [r["label"] for r in node_rows if r["status"] == "failed"]
    findings = [
        r["label"] for r in node_rows if r["finding"] is not None and r["status"] != "failed"
    ]
    below = [r["label"] for r in node_rows if _below(r)]
    return {
        "format": FORMAT,
        "mode": mode,
        "outlier_z": outlier_z,
        "mad_floor_frac": floor,
        "min_nodes": MIN_NODES,
        "min_z_nodes": MIN_Z_NODES,
        "rule": "robust z on the log scale over the nodes that measured the metric (median, "
        "MAD x 1.4826 floored at mad_floor_frac), within each platform group (GPU model and "
        "count, CPU model); outlier: z beyond outlier_z on the bad side of the metric's "
        "direction (lower is better: above; higher is better: below)",
        "workload": _workload(results),
        "groups": groups,
        "metrics": per_metric,
        "nodes": node_rows,
        "outliers": outliers,
        "failed": failed,
        "findings": findings,
        # `--reference`: the file judged against (None without one), the nodes below its floor
        "reference": None if reference is None else fleet_reference.used(reference, floor_pct),
        "below_reference": below,
        # no metric measured on enough nodes with a direction, and no node judged against a
        # reference: nothing was judged (exit 2)
        "judged": any(m["gated"] for m in per_metric)
        or any(
            (a or {}).get("verdict") in (references.VERDICT_OK, references.VERDICT_BELOW)
            for a in against.values()
        ),
        "verdict": _verdict(len(nodes), per_metric, node_rows, outlier_z, groups),
    }


def _metric_names(given: list[str] | None, node_checks: bool = False) -> list[str]:
    default = fleet_groups.NODE_CHECK_METRICS if node_checks else DEFAULT_METRICS
    names = list(dict.fromkeys(given)) if given else list(default)
    for name in names:
        if registry.get(name) is None:
            allowed = ", ".join(sorted(registry.REGISTRY))
            raise InputError(f"--metric {name!r} is not a metric; allowed: {allowed}")
    return names


def _any_value(nodes: list[NodeInput], name: str) -> bool:
    return any(n.values.get(name) is not None for n in nodes)


def _metric(
    name: str,
    nodes: list[NodeInput],
    outlier_z: float,
    floor: float,
    shown: list[NodeInput] | None = None,
) -> dict[str, Any]:
    """Metric `name` over `nodes`; `shown`: nodes whose own check found a problem, placed against
    that distribution (their z) but never part of it nor named an outlier."""
    m = registry.get(name)
    assert m is not None
    have = [(n, v) for n in nodes if (v := n.values.get(name)) is not None]
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
        out["reason"] = (
            f"measured on {len(have)} node(s), fewer than the {MIN_Z_NODES} the robust z needs: "
            "not judged"
        )
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
    elif len(have) < MIN_Z_NODES:
        out["gated"] = False
        out["reason"] = too_few_for_z(len(have))
    own = {n.label for n in shown or []}
    extra = [(n, v) for n in shown or [] if (v := n.values.get(name)) is not None and v > 0]
    for n, v in have + extra:
        z = dist.z(v)
        bad = bad_side_z(z, m.direction)
        outlier = out["gated"] and not math.isnan(bad) and bad > outlier_z and n.label not in own
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
        if n.label in own:
            out["per_node"][n.label]["excluded"] = n.finding
        if outlier:
            out["outliers"].append(n.label)
    return out


def too_few_for_z(n: int) -> str:
    """Why the robust z does not judge `n` nodes (MIN_NODES <= n < MIN_Z_NODES; the module's
    docstring and MIN_Z_NODES say why)."""
    return f"not judged: {n} nodes, need {MIN_Z_NODES} for the robust z"


def _node_row(
    n: NodeInput, per_metric: list[dict[str, Any]], against: dict[str, Any] | None = None
) -> dict[str, Any]:
    values = {}
    outlier_on = []
    worst = None
    for m in per_metric:
        cell = m["per_node"].get(n.label)
        if cell is None:
            reason = n.reasons.get(m["name"]) or (
                f"its run {n.status}: not judged"
                if n.status != "ok"
                else f"{n.finding}: not judged"
                if n.finding
                else m["reason"]
            )
            values[m["name"]] = {"value": n.values.get(m["name"]), "reason": reason}
            continue
        values[m["name"]] = cell
        if cell.get("excluded"):
            continue
        if cell["outlier"]:
            outlier_on.append(m["name"])
        if m["gated"] and cell["bad_z"] is not None:
            worst = cell["bad_z"] if worst is None else max(worst, cell["bad_z"])
    evidence = [n.finding] if n.finding else []
    for m in per_metric:
        cell = m["per_node"].get(n.label)
        if m["name"] in outlier_on and cell is not None:
            evidence.append(
                f"{m['name']} {cell['value']:.4g} {m['unit']}: robust z {cell['z']:+.1f} against "
                f"the group's median {m['median']:.4g}"
            )
    ref = n.reference
    if ref is not None and ref.get("verdict") == "below_floor" and ref.get("reason"):
        evidence.append(f"reference {ref.get('name')}: {ref['reason']}")
    below = against is not None and against["verdict"] == references.VERDICT_BELOW
    if below:
        assert against is not None
        evidence.append(f"reference {against['name']} ({against['file']}): {against['reason']}")
    if n.status == "failed":
        verdict = "failed"
    elif n.finding is not None:
        verdict = "finding"
    elif outlier_on:
        verdict = "outlier"
    elif below:
        verdict = VERDICT_BELOW_REFERENCE
    elif worst is None:  # no gated metric measured on enough nodes to place it
        verdict = "not_judged"
    else:
        verdict = "ok"
    return {
        "label": n.label,
        "source": n.source,
        "run_id": n.run_id,
        "hosts": n.hosts,
        "status": n.status,
        "group": fleet_groups.group_label(n.group),
        "verdict": verdict,
        "evidence": evidence,
        "reference": ref,
        # `--reference`: the node's figures as % of the fleet's reference, and its verdict
        "against_reference": against,
        "finding": n.finding,
        "outlier_on": outlier_on,
        "worst_bad_z": worst,
        "values": values,
    }


def _below(row: dict[str, Any]) -> bool:
    return bool((row.get("against_reference") or {}).get("verdict") == references.VERDICT_BELOW)


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
    n_nodes: int,
    per_metric: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    outlier_z: float,
    groups: list[dict[str, Any]],
) -> str:
    failed = [r for r in rows if r["status"] == "failed"]
    found = [r for r in rows if r["finding"] is not None and r["status"] != "failed"]
    bad = [r for r in rows if r["outlier_on"]]
    below = [r for r in rows if _below(r)]
    gated = list(dict.fromkeys(m["name"] for m in per_metric if m["gated"]))
    head = f"fleet of {n_nodes} nodes" + (
        f" in {len(groups)} platform groups" if len(groups) > 1 else ""
    )
    parts = []
    if bad:
        named = []
        for r in bad:
            # the bad-side z, as the nodes table shows it (+ is worse whatever the direction)
            zs = ", ".join(
                f"{name} z {r['values'][name]['bad_z']:+.1f}" for name in r["outlier_on"]
            )
            within = f" among {r['group']}" if len(groups) > 1 else ""
            named.append(f"{r['label']} ({zs}{within})")
        parts.append(f"{len(bad)} outlier node(s): " + "; ".join(named))
    if found:
        parts.append(
            f"{len(found)} node(s) whose own check found a problem: "
            + "; ".join(f"{r['label']} ({r['finding']})" for r in found)
        )
    if below:
        ref = below[0]["against_reference"]
        parts.append(
            f"{len(below)} node(s) below {ref['floor_pct']:g}% of reference {ref['name']}: "
            + "; ".join(f"{r['label']} ({r['against_reference']['reason']})" for r in below)
        )
    if failed:
        parts.append(
            f"{len(failed)} node check(s) failed: " + ", ".join(r["label"] for r in failed)
        )
    small = [g for g in groups if not g["judged"]]
    if small and len(groups) > 1:
        parts.append(
            "; ".join(
                f"group {g['label']} ({len(g['nodes'])} node(s)): too small to judge" for g in small
            )
        )
    if bad or found or failed or below:
        return f"{head}: " + "; ".join(parts) + _reference_tail(rows)
    most = max((m["n"] for m in per_metric if m["direction"] != "none"), default=0)
    if not gated and MIN_NODES <= most < MIN_Z_NODES:
        return (
            f"{head}: outliers not judged: {most} nodes, need {MIN_Z_NODES} for the robust z "
            "(run the node check on more nodes, or judge each against --reference)"
            + _reference_tail(rows)
        )
    if not gated:
        why = "; ".join(
            dict.fromkeys(
                f"{m['name']}: " + (m["reason"] or "not judged").removesuffix(": not judged")
                for m in per_metric
            )
        )
        return (
            f"{head}: nothing judged: no metric measured on enough nodes to judge ({why})"
            + _reference_tail(rows)
        )
    tail = f"; {parts[0]}" if parts else ""
    tail += _reference_tail(rows)
    return (
        f"{head}: no outlier on {', '.join(gated) or 'any metric'} (robust z "
        f"beyond {outlier_z:g} on the bad side){tail}"
    )


def _reference_tail(rows: list[dict[str, Any]]) -> str:
    """`--reference` with no node below its floor: how many nodes it judged ok, and why the others
    were not judged ("" without --reference)."""
    judged = [r["against_reference"] for r in rows if r.get("against_reference") is not None]
    if not judged:
        return ""
    ok = sum(1 for a in judged if a["verdict"] == references.VERDICT_OK)
    out = f"; {ok} node(s) at or above {judged[0]['floor_pct']:g}% of reference {judged[0]['name']}"
    why = [a["reason"] for a in judged if a["verdict"] == references.VERDICT_NOT_JUDGED]
    for reason, count in dict.fromkeys((w, why.count(w)) for w in why):
        out += f"; {count} not judged: {reason}"
    return out
