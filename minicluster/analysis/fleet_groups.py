"""What a fleet must know of each input besides its numbers: the platform group it is judged in
(GPU model and count, CPU model: nodes of different hardware are never each other's yardstick),
and the node's own verdict (a node whose own check failed or named a straggler is not "ok" in the
fleet, whatever its numbers). Never imports torch."""

from __future__ import annotations

from typing import Any

NODE_CHECK = "node_check"
# The node-check metrics a fleet of node checks judges by default (the ones some node measured).
NODE_CHECK_METRICS = (
    "gemm_tflops",
    "device_copy_gbps",
    "device_triad_gbps",
    "h2d_gbps",
    "d2h_gbps",
    "host_triad_gbps",
    "busbw_gbps",
)
# Node-check plan fields that only judge a result (not what ran): may differ across a fleet.
PLAN_KEYS_IGNORED = ("floor_pct", "expect_gpus", "throttle_min_pct", "drift_min_change_pct")


def is_node_check(r: dict[str, Any]) -> bool:
    return (r.get("workload") or {}).get("workload_type") == NODE_CHECK


def platform_key(r: dict[str, Any], hostname: str | None = None) -> tuple[str, int, str]:
    """(GPU model, GPUs per node, CPU model) of a node-check result, or of the node `hostname`
    (default: the first) of a run result's `platform.nodes`; "unknown" where not recorded."""
    p = r.get("platform") or {}
    if is_node_check(r):
        return (
            str(p.get("gpu_model") or "no GPU"),
            int(p.get("gpus_per_node") or 0),
            str(p.get("cpu_model") or "unknown CPU"),
        )
    nodes = p.get("nodes") or []
    node = next((n for n in nodes if hostname is not None and n.get("hostname") == hostname), None)
    node = node or (nodes[0] if nodes else {})
    gpus = node.get("gpus") or []
    names = sorted({str(g.get("name") if isinstance(g, dict) else g) for g in gpus})
    return (
        ", ".join(names) or "no GPU",
        len(gpus),
        str(node.get("cpu") or "unknown CPU"),
    )


def group_label(key: tuple[str, int, str]) -> str:
    gpu, count, cpu = key
    return f"{count} x {gpu}, {cpu}" if count else f"{gpu}, {cpu}"


def own_finding(r: dict[str, Any]) -> str | None:
    """What the node's own result found (None: nothing): a node check's failed or degraded checks;
    a run's named stragglers, detected faults, wrong collective elements, failed validation or
    figures below its reference's floor (`aggregate --reference`)."""
    if is_node_check(r):
        if r.get("verdict") in ("failed", "degraded"):
            found = r.get("findings") or []
            more = f" and {len(found) - 3} more" if len(found) > 3 else ""
            return f"its node check is {r['verdict']}: " + ", ".join(found[:3]) + more
        return None
    parts = []
    for s in r.get("stragglers") or []:
        parts.append(
            f"straggler rank {s.get('rank')} (compute +{float(s.get('excess_pct') or 0):.0f}%)"
        )
    for d in (r.get("faults") or {}).get("detected") or []:
        if d.get("kind") != "straggler":
            parts.append(f"{d.get('kind')} on rank {d.get('rank')}")
    if ((r.get("collectives") or {}).get("wrong_total") or 0) > 0:
        parts.append("wrong collective elements")
    if ((r.get("pairwise") or {}).get("wrong_total") or 0) > 0:
        parts.append("wrong elements on a link")
    validation = r.get("validation") or {}
    if isinstance(validation, dict) and validation.get("passed") is False:
        parts.append("validation failed")
    ref = r.get("reference")
    if isinstance(ref, dict) and ref.get("verdict") == "below_floor":
        parts.append(f"below the floor of reference {ref.get('name')}")
    return ("its run named " + "; ".join(parts)) if parts else None


def job_of_node_check(r: dict[str, Any]) -> dict[str, Any]:
    """What must match across a fleet of node checks: the level and the plan (sizes, dtypes,
    checks), not the thresholds that only judge."""
    plan = {k: v for k, v in (r.get("plan") or {}).items() if k not in PLAN_KEYS_IGNORED}
    return {"workload": r.get("workload"), "plan": plan}
