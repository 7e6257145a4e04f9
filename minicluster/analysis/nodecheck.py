"""A node check's result: every measurement and hardware reading judged into one verdict per check
(ok / failed / degraded / incomplete, with the measured value, the reference it was judged
against and a remediation hint), the node's headline metrics for `fleet`, and the exit code.
Never imports torch.

Verdicts:
- failed: the hardware did something wrong or is past a hard limit (a wrong GEMM element, a
  device error, uncorrected ECC errors, a row-remapping failure, a port down, a DCGM failure);
- degraded: it works, but below what it should (a rate under the reference's floor, a PCIe link
  trained narrow, thermal throttling, a drifting burn-in, pending retirements);
- incomplete: the check could not run or decide (no GPU, a query the driver does not support, no
  DCGM, out of memory); said with the reason, never counted as a pass or a failure;
- ok: checked and fine. A rate with no reference for this platform is reported and "not judged",
  its check ok when its result was right.

The node's verdict is the worst check's. Exit code (the one policy of every command): 1 on any
failed or degraded check (a finding); 3 when no check could run or decide at all; else 0, also when
some checks were incomplete: an operator's health check must not drain every node of a cluster
that has no DCGM or no InfiniBand, and the JSON says `verdict: incomplete` with the list, for
whoever wants to decide otherwise. A node that must have its GPUs says so with `--expect-gpus`
(fewer is failed).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from minicluster.analysis import nodecheck_rules as rules
from minicluster.analysis import references, trend
from minicluster.analysis.nodecheck_rules import DEGRADED, FAILED, INCOMPLETE, OK, check
from minicluster.core import metrics as registry
from minicluster.core.errors import EXIT_FAILED_CHECK, EXIT_OK, EXIT_RUN_FAILED
from minicluster.core.nodecheck_plan import HEADLINE_DTYPE, Plan

FORMAT = "minicluster-node-check/1"
WORKLOAD_TYPE = "node_check"
VERDICTS = (OK, FAILED, DEGRADED, INCOMPLETE)
_METRIC = {
    "gemm": "gemm_tflops",
    "device_copy": "device_copy_gbps",
    "device_triad": "device_triad_gbps",
    "host_triad": "host_triad_gbps",
    "h2d": "h2d_gbps",
    "d2h": "d2h_gbps",
    "busbw": "busbw_gbps",
}


def _error_verdict(err: dict[str, Any]) -> tuple[str, str | None]:
    if err.get("kind") == "device_error":
        return (
            FAILED,
            "the device failed the work: drain, reset the GPU; RMA candidate if it recurs",
        )
    return INCOMPLETE, None


def _rate_check(
    family: str,
    obs: dict[str, Any],
    value_key: str,
    conditions: dict[str, Any],
    reference: references.Reference | None,
    floor_pct: float,
) -> dict[str, Any]:
    """A measured rate's check: failed on an error of the device or a wrong element, incomplete on
    an error that decides nothing, degraded below the reference's floor, else ok (judged or not)."""
    metric = _METRIC[family]
    unit = registry.get(metric).unit  # type: ignore[union-attr]
    device = str(obs.get("device", "node"))
    dev_label = str(obs.get("label") or device)
    value = obs.get(value_key)
    err = obs.get("error")
    base: dict[str, Any] = {
        "metric": metric,
        "value": value,
        "unit": unit,
        "conditions": conditions,
        "method": obs.get("method"),
        "judged": None,
    }
    ev: dict[str, Any] = {
        k: obs.get(k) for k in ("wrong", "checked", "max_norm_err", "tolerance") if k in obs
    }
    calls = obs.get("call_s") or []
    if calls:
        ev["calls"] = len(calls)
        ev["call_s_min"], ev["call_s_median"] = min(calls), statistics.median(calls)
        ev["call_s_max"] = max(calls)
    if err:
        verdict, hint = _error_verdict(err)
        return check(family, device, verdict, f"{err.get('text')}", hint, ev, dev_label, **base)
    wrong = obs.get("wrong")
    if isinstance(wrong, int) and wrong > 0:
        checked = obs.get("checked")
        of = f" of {checked:,} checked" if isinstance(checked, int) else ""
        return check(
            family,
            device,
            FAILED,
            f"{wrong} wrong element(s){of}: the device returned wrong results",
            "silent data corruption: drain the node; reset the GPU; RMA candidate if it recurs",
            ev,
            dev_label,
            **base,
        )
    judged = references.judge(reference, metric, value, floor_pct, conditions)
    base["judged"] = judged
    if judged["verdict"] == references.VERDICT_BELOW:
        return check(
            family,
            device,
            DEGRADED,
            str(judged["reason"]),
            _slow_hint(family),
            ev,
            dev_label,
            **base,
        )
    if judged["verdict"] == references.VERDICT_OK:
        reason = (
            f"{judged['pct_of_reference']:.0f}% of the reference ({_fmt(judged['reference_value'], unit)}"
            f", {judged['reference']}), at or above the {floor_pct:g}% floor"
        )
    else:
        reason = f"not judged: {judged['reason']}"
    return check(family, device, OK, reason, None, ev, dev_label, **base)


def _slow_hint(family: str) -> str:
    return {
        "gemm": "slow compute: look at the throttle check (clocks, power cap, cooling); compare "
        "with the node's peers (`minicluster fleet`)",
        "host_triad": "slow host memory: check the DIMM population and the BIOS memory settings; "
        "other processes using the memory bus",
        "h2d": "slow host-to-device copies: check the PCIe link check, the NUMA placement of the "
        "process and the IOMMU settings",
        "d2h": "slow device-to-host copies: check the PCIe link check and NUMA placement",
        "busbw": "slow intra-node collectives: check NVLink/NVSwitch state and the topology "
        "(`nvidia-smi topo -m`)",
    }.get(family, "below the reference: compare with the node's peers (`minicluster fleet`)")


def _size_text(n: int) -> str:
    for unit, scale in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return f"{n} B"


def _fmt(value: Any, unit: str) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    return f"{value:,.4g} {unit}"


def measurement_checks(
    obs: dict[str, Any],
    plan: Plan,
    reference: references.Reference | None,
    collectives: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    out = []
    for g in obs.get("gemm") or []:
        cond = {"dtype": g["dtype"], "n": g["n"]}
        g = {**g, "label": f"{g['device']} {g['dtype']} n={g['n']}"}
        out.append(_rate_check("gemm", g, "tflops", cond, reference, plan.floor_pct))
    for m in obs.get("device_memory") or []:
        out.append(_rate_check(m["kind"], m, "gbps", {}, reference, plan.floor_pct))
    host = obs.get("host_memory")
    if host is not None:
        out.append(_rate_check("host_triad", host, "gbps", {}, reference, plan.floor_pct))
    for p in obs.get("pcie") or []:
        for kind in ("h2d", "d2h"):
            c = _rate_check(kind, p[kind], "gbps", {}, reference, plan.floor_pct)
            out.append(_against_link(c, p, obs))
    if plan.runs("busbw"):
        out.append(busbw_check(collectives, obs.get("platform") or {}, reference, plan.floor_pct))
    return out


def _against_link(c: dict[str, Any], copy: dict[str, Any], obs: dict[str, Any]) -> dict[str, Any]:
    """A copy rate set beside its PCIe link's raw rate (the width and gen read right after it):
    under `LINK_EFFICIENCY_FLOOR_PCT` of the link is degraded when no reference judged it."""
    link = (copy.get("link_under_load") or {}).get("values") or {}
    rate = rules.link_gbps(link.get("pcie_gen"), link.get("pcie_width"))
    c["evidence"]["link"] = {"gen": link.get("pcie_gen"), "width": link.get("pcie_width")}
    c["evidence"]["link_gbps"] = rate
    if rate is None or c["verdict"] != OK or not isinstance(c.get("value"), (int, float)):
        if rate is None and c["verdict"] == OK:
            c["reason"] += "; PCIe link not read: no expected rate"
        return c
    pct = 100.0 * c["value"] / rate
    c["evidence"]["pct_of_link"] = pct
    expected = f"gen {link['pcie_gen']} x{link['pcie_width']}: {rate:.1f} GB/s raw"
    judged = c.get("judged") or {}
    if (
        judged.get("verdict") == references.VERDICT_NOT_JUDGED
        and pct < rules.LINK_EFFICIENCY_FLOOR_PCT
    ):
        c["verdict"] = DEGRADED
        c["reason"] = (
            f"{pct:.0f}% of the link ({expected}), under the "
            f"{rules.LINK_EFFICIENCY_FLOOR_PCT:g}% a healthy link reaches"
        )
        c["remediation"] = _slow_hint(c["family"])
    else:
        c["reason"] += f"; {pct:.0f}% of the link ({expected})"
    return c


def busbw_check(
    collectives: dict[str, Any] | None,
    platform: dict[str, Any],
    reference: references.Reference | None,
    floor_pct: float,
) -> dict[str, Any]:
    """Intra-node all_reduce busbw at the largest size `minicluster collectives` ran, from its
    result (`collectives`: the result, or {"error": why} when it could not run)."""
    if collectives is None or collectives.get("error"):
        why = (collectives or {}).get("error") or "not run"
        verdict = FAILED if (collectives or {}).get("failed") else INCOMPLETE
        hint = (
            "the collectives run failed on this node: see its directory"
            if verdict == FAILED
            else None
        )
        return check("busbw", "node", verdict, f"intra-node collectives: {why}", hint)
    coll = collectives.get("collectives") or {}
    rows = [r for r in coll.get("results") or [] if r.get("op") == "all_reduce"]
    world = int(collectives.get("world_size") or 0)
    if collectives.get("status") != "ok":
        errs = "; ".join(str(e) for e in (collectives.get("errors") or [])[:2])
        return check(
            "busbw",
            "node",
            FAILED,
            f"the intra-node collectives run {collectives.get('status')}: {errs}",
            "a rank of the collectives run failed: see its directory; check the devices",
        )
    wrong = int(coll.get("wrong_total") or 0)
    top = max(rows, key=lambda r: r["size_bytes"]) if rows else None
    cond = {"op": "all_reduce", "scope": "intra_node", "world_size": world}
    if top is not None:
        cond["size_bytes"] = top["size_bytes"]
    size = _size_text(top["size_bytes"]) if top else "?"
    obs = {
        "device": "node",
        "label": f"all_reduce {world} ranks ({collectives.get('backend')}) {size}",
        "busbw_gbps": top.get("busbw_gbps") if top else None,
        "wrong": wrong,
        "method": "minicluster collectives all_reduce, nccl-tests busbw at the largest size",
        "error": None,
    }
    if top is None or top.get("busbw_gbps") is None:
        why = (top or {}).get("reason") or "no all_reduce row"
        return check("busbw", "node", INCOMPLETE, f"no busbw: {why}")
    c = _rate_check("busbw", obs, "busbw_gbps", cond, reference, floor_pct)
    c["evidence"]["run_id"] = collectives.get("run_id")
    return c


def hardware_checks(obs: dict[str, Any], plan: Plan) -> list[dict[str, Any]]:
    platform = obs.get("platform") or {}
    out = rules.gpu_count(platform, plan.expect_gpus)
    before = obs.get("gpu_state_before") or []
    after = obs.get("gpu_state_after") or before
    minutes = float((obs.get("seconds") or {}).get("own_checks") or 0.0) / 60.0
    under_load = {p.get("nvml_index"): p.get("link_under_load") for p in obs.get("pcie") or []}
    burn = obs.get("burn_in") or {}
    for snap_b, snap_a in zip(before, after, strict=False):
        out.append(rules.ecc(snap_a))
        out.append(rules.memory_retirement(snap_a))
        out.append(rules.pcie_link([snap_b, snap_a], under_load.get(snap_b["index"])))
        out.append(rules.pcie_replays(snap_b, snap_a, minutes))
        samples = [snap_a["values"].get("throttle_reasons")]
        what = "the check (read right after the load)"
        burn_samples = _burn_samples(burn, obs.get("nvml_index") or {}, snap_b["index"])
        if burn_samples:
            samples, what = burn_samples, "the burn-in"
        out.append(rules.throttling(f"gpu{snap_b['index']}", samples, what, plan.throttle_min_pct))
    x = rules.xid(obs.get("xid"), bool(platform.get("gpus_per_node")))
    if x is not None:
        out.append(x)
    out.extend(rules.infiniband(obs.get("infiniband")))
    d = rules.dcgm(obs.get("dcgm"))
    if d is not None:
        out.append(d)
    return out


def _burn_samples(burn: dict[str, Any], nvml_index: dict[str, Any], index: int) -> list[int | None]:
    devs = [dev for dev, i in nvml_index.items() if i == index]
    out = []
    for interval in burn.get("intervals") or []:
        for dev in devs:
            state = (interval["devices"].get(dev) or {}).get("state") or {}
            out.append(state.get("throttle_reasons"))
    return out


def burn_in_checks(
    burn: dict[str, Any] | None, plan: Plan
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Per device: the burn-in's drift finding on its per-interval GEMM rate, and its last result
    checked; and the burn-in section of the result (per-interval figures)."""
    if burn is None:
        return [], None
    label = f"{burn['dtype']} n={burn['n']}"
    if burn.get("error"):
        verdict, hint = _error_verdict(burn["error"])
        return [check("burn_in", label, verdict, str(burn["error"].get("text")), hint)], {
            **burn,
            "drift": {},
        }
    out = []
    drifts: dict[str, Any] = {}
    devices = sorted({d for iv in burn["intervals"] for d in iv["devices"]})
    for dev in devices:
        rates = [iv["devices"][dev].get("tflops") for iv in burn["intervals"]]
        times = [iv["t_s"] for iv in burn["intervals"]]
        pairs = [(t, r) for t, r in zip(times, rates, strict=True) if isinstance(r, (int, float))]
        finding = trend.drift(
            [r for _, r in pairs],
            [t for t, _ in pairs],
            direction="higher",
            min_change_pct=plan.drift_min_change_pct,
        )
        drifts[dev] = finding
        chk = (burn.get("check") or {}).get(dev) or {}
        ev = {"intervals": len(pairs), "drift": finding, **chk}
        rate_text = (
            f"{statistics.median([r for _, r in pairs]):,.4g} TFLOP/s median over {len(pairs)} "
            f"intervals of {burn['interval_s']:.3g} s"
            if pairs
            else "no rate"
        )
        dev_label = f"{dev} {label}"
        if chk.get("wrong"):
            out.append(
                check(
                    "burn_in",
                    dev,
                    FAILED,
                    f"{chk['wrong']} wrong element(s) after {burn['duration_s']:g} s of load",
                    "errors under sustained load: drain; check cooling and power; RMA candidate",
                    ev,
                    dev_label,
                )
            )
        elif finding["drifting"]:
            out.append(
                check(
                    "burn_in",
                    dev,
                    DEGRADED,
                    f"GEMM rate drifts under load: {finding['reason']}",
                    "check cooling and power delivery (see the throttle check)",
                    ev,
                    dev_label,
                )
            )
        elif not finding["judged"]:
            out.append(
                check(
                    "burn_in",
                    dev,
                    INCOMPLETE,
                    f"{rate_text}; {finding['reason']}",
                    None,
                    ev,
                    dev_label,
                )
            )
        else:
            out.append(
                check("burn_in", dev, OK, f"{rate_text}; {finding['reason']}", None, ev, dev_label)
            )
    return out, {**burn, "drift": drifts}


def headline_metrics(checks: list[dict[str, Any]], platform: dict[str, Any]) -> dict[str, Any]:
    """One value per node-check metric for `fleet`: at the conditions that stand for the node (the
    largest GEMM size of the device kind's headline dtype; busbw at the largest size), the
    slowest device's (a synchronous job runs at its slowest device's pace)."""
    kind = platform.get("device") or "cpu"
    out: dict[str, Any] = {}
    for family, metric in _METRIC.items():
        cands = [
            c
            for c in checks
            if c["family"] == family and c.get("metric") == metric and c["verdict"] != INCOMPLETE
        ]
        if family == "gemm":
            cands = [c for c in cands if c["conditions"].get("dtype") == HEADLINE_DTYPE.get(kind)]
            top = max((c["conditions"]["n"] for c in cands), default=None)
            cands = [c for c in cands if c["conditions"]["n"] == top]
        values = [c for c in cands if isinstance(c.get("value"), (int, float))]
        m = registry.get(metric)
        assert m is not None
        if not values:
            continue
        slowest = min(values, key=lambda c: c["value"])
        entry = registry.metric(
            metric, slowest["value"], "measured", slowest.get("method") or ""
        ).to_dict()
        entry["conditions"] = slowest.get("conditions") or {}
        entry["device"] = slowest["device"]
        entry["devices"] = len(values)
        out[metric] = entry
    return out


def verdict_of(checks: list[dict[str, Any]]) -> str:
    return rules.worst([c["verdict"] for c in checks])


def _device_absent(c: dict[str, Any], platform: dict[str, Any]) -> bool:
    """Whether incomplete check `c` is incomplete only because the node has no such device or
    tool to check: no GPU at all (neither torch nor NVML sees one), no InfiniBand adapter, no
    DCGM installed. A device that is there but could not be read is not absent."""
    family = c.get("family")
    if family == "gpu":
        return not platform.get("gpus_per_node") and not platform.get("nvml_gpu_count")
    if family == "infiniband":
        return c.get("device") == "node"  # the one check said when no adapter is present
    if family == "dcgm":
        return str(c.get("reason") or "").startswith("DCGM is not installed")
    return False


def genuinely_incomplete(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The incomplete checks of a node-check result that are not explained by a device the node
    does not have (`_device_absent`): a measurement that could not run, a GPU that is there but
    unreadable. Empty: the result is as whole as this node allows."""
    platform = result.get("platform") or {}
    return [
        c
        for c in result.get("checks") or []
        if isinstance(c, dict)
        and c.get("verdict") == INCOMPLETE
        and not _device_absent(c, platform)
    ]


def exit_code(result: dict[str, Any]) -> int:
    """1 on a finding (failed or degraded), 3 when no check could run or decide, else 0
    (incomplete included: see the module docstring)."""
    if result["verdict"] in (FAILED, DEGRADED):
        return EXIT_FAILED_CHECK
    if result["status"] == "failed":
        return EXIT_RUN_FAILED
    return EXIT_OK


def verdict_line(result: dict[str, Any]) -> str:
    """The one line an operator reads first: the verdict, the findings, what was incomplete."""
    counts = result["counts"]
    host = (result.get("platform") or {}).get("hostname") or "this node"
    head = f"node check {result['level']} on {host}: {result['verdict'].upper()}"
    parts = []
    findings = [c for c in result["checks"] if c["verdict"] in (FAILED, DEGRADED)]
    for c in sorted(findings, key=lambda c: -rules.SEVERITY[c["verdict"]])[:3]:
        hint = f" -> {c['remediation']}" if c.get("remediation") else ""
        value = f"{_fmt(c['value'], c.get('unit', ''))}, " if c.get("value") is not None else ""
        parts.append(f"{c['verdict']} {c['id']}: {value}{c['reason']}{hint}")
    if len(findings) > 3:
        parts.append(f"{len(findings) - 3} more finding(s)")
    tally = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts.get(v))
    line = f"{head} ({tally})"
    if parts:
        line += "; " + "; ".join(parts)
    elif counts.get(INCOMPLETE):
        line += f"; nothing failed; {counts[INCOMPLETE]} check(s) could not decide (listed below)"
    return line


def build(
    obs: dict[str, Any],
    plan: Plan,
    reference: references.Reference | None,
    collectives: dict[str, Any] | None,
    run_id: str,
    created_at: str,
    tool_version: str,
    seconds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The node-check result (format `FORMAT`) from the observations of `rank.nodecheck.run`,
    the intra-node collectives result and the reference (None: none matched this platform)."""
    platform = obs.get("platform") or {}
    checks = measurement_checks(obs, plan, reference, collectives)
    burn_checks, burn_section = burn_in_checks(obs.get("burn_in"), plan)
    checks.extend(burn_checks)
    checks.extend(hardware_checks(obs, plan))
    counts = {v: sum(1 for c in checks if c["verdict"] == v) for v in VERDICTS}
    decided = any(c["verdict"] != INCOMPLETE for c in checks)
    result: dict[str, Any] = {
        "schema_version": FORMAT,
        "run_id": run_id,
        "created_at": created_at,
        "tool": {"name": "minicluster", "version": tool_version},
        # whether the check ran (its findings are in `verdict`): failed when no check could decide
        "status": "ok" if decided else "failed",
        "verdict": verdict_of(checks),
        "level": plan.level,
        "workload": {"name": "node-check", "workload_type": WORKLOAD_TYPE, "level": plan.level},
        "plan": plan.to_dict(),
        "floor_pct": plan.floor_pct,
        "reference": None,
        "platform": platform,
        "metrics": headline_metrics(checks, platform),
        "checks": checks,
        "counts": counts,
        "findings": [c["id"] for c in checks if c["verdict"] in (FAILED, DEGRADED)],
        "incomplete": [
            {"check": c["id"], "reason": c["reason"]} for c in checks if c["verdict"] == INCOMPLETE
        ],
        "burn_in": burn_section,
        "collectives": _collectives_summary(collectives),
        "observations": _trimmed(obs),
        "seconds": seconds or dict(obs.get("seconds") or {}),
        "errors": [] if decided else ["no check could run or decide on this node"],
    }
    if reference is not None:
        result["reference"] = {
            "name": reference.name,
            "kind": reference.kind,
            "path": reference.path,
            "platform": dict(reference.platform),
        }
    result["exit_code"] = exit_code(result)
    result["verdict_line"] = verdict_line(result)
    return result


def _collectives_summary(coll: dict[str, Any] | None) -> dict[str, Any] | None:
    if coll is None:
        return None
    if coll.get("error"):
        return {"error": coll["error"], "dir": coll.get("dir")}
    c = coll.get("collectives") or {}
    return {
        "run_id": coll.get("run_id"),
        "dir": coll.get("dir"),
        "status": coll.get("status"),
        "backend": coll.get("backend"),
        "world_size": coll.get("world_size"),
        "wrong_total": c.get("wrong_total"),
        "results": [
            {
                k: r.get(k)
                for k in ("op", "size_bytes", "time_us", "algbw_gbps", "busbw_gbps", "wrong")
            }
            for r in c.get("results") or []
        ],
    }


def _trimmed(obs: dict[str, Any]) -> dict[str, Any]:
    """The observations kept in the result: everything but the burn-in's intervals (in
    `burn_in`) and the raw per-call times beyond 100 per measurement."""
    out = {k: v for k, v in obs.items() if k not in ("burn_in", "platform")}
    for key in ("gemm", "device_memory"):
        out[key] = [{**g, "call_s": (g.get("call_s") or [])[:100]} for g in obs.get(key) or []]
    return out
