"""The hardware-state checks of a node check, judged from what NVML, the kernel log, sysfs and
DCGM said: ECC counts, retired pages and remapped rows, the PCIe link and its replays, clock
throttling, XID errors, InfiniBand ports and `dcgmi diag`. Each gives one verdict with the
evidence and a remediation hint; a query the driver could not answer makes the check incomplete
with the driver's words, never ok. Never imports torch.

Limits with their sources:
- DCGM's hardware limits (NVIDIA/DCGM `dcgmlib/src/DcgmGpuHardwareLimits.h`): at most 8 PCIe
  replays per minute ("the maximum recommended by RM"), 60 retired pages (15 as a soft limit).
- Page retirement and row remapping: NVIDIA's "Dynamic Page Retirement" and "A100 GPU memory
  error management: row remapping" documents: pending retirements and remaps take effect at the
  next GPU reset; a row-remapping failure is an RMA criterion.
- XID meanings: NVIDIA's XID catalog (docs.nvidia.com/deploy/xid-errors).
"""

from __future__ import annotations

import re
from typing import Any

OK, FAILED, DEGRADED, INCOMPLETE = "ok", "failed", "degraded", "incomplete"
SEVERITY = {OK: 0, INCOMPLETE: 1, DEGRADED: 2, FAILED: 3}

MAX_PCIE_REPLAYS_PER_MIN = 8
RETIRED_PAGES_RMA = 60
RETIRED_PAGES_SOFT = 15
# Pinned copies on a healthy link reach 75-90% of the link's raw rate (87.6% measured on an H200
# at gen 5 x16: 55.2 of 63.0 GB/s, tests/fixtures/gpu/device_probe_h200.json); under 60% the
# link or the host's memory path is not doing its job.
LINK_EFFICIENCY_FLOOR_PCT = 60.0
# Per lane, GB/s after line coding (PCI-SIG base specifications): gen 1-2 8b/10b, gen 3-5
# 128b/130b, gen 6 PAM4 with FLIT (242/256).
PCIE_LANE_GBPS = {1: 0.25, 2: 0.5, 3: 0.9846, 4: 1.9692, 5: 3.9385, 6: 7.5625}

THERMAL_BITS = {0x8: "hw_slowdown", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown"}
POWER_BRAKE_BIT = 0x80
POWER_CAP_BIT = 0x4

# XID -> (verdict, what it means, remediation). Unlisted XIDs are degraded: look them up.
XIDS: dict[int, tuple[str, str, str]] = {
    13: (OK, "graphics engine exception (an application fault)", "check the application"),
    31: (OK, "GPU memory page fault (an application fault)", "check the application"),
    43: (OK, "GPU stopped processing (an application fault)", "check the application"),
    45: (OK, "preemptive cleanup after an earlier error", "see the XID before it"),
    48: (FAILED, "double-bit ECC error", "drain, reset the GPU; RMA candidate if it recurs"),
    61: (DEGRADED, "internal micro-controller breakpoint", "reset the GPU"),
    62: (DEGRADED, "internal micro-controller halt", "reset the GPU"),
    63: (DEGRADED, "page retirement or row remap recorded", "reset the GPU to apply it"),
    64: (FAILED, "page retirement or row remapper recording failure", "RMA candidate"),
    74: (FAILED, "NVLink error", "drain; check the NVLink/NVSwitch; reset"),
    79: (FAILED, "GPU has fallen off the bus", "drain, reboot; reseat; RMA candidate if it recurs"),
    92: (DEGRADED, "high single-bit ECC error rate", "watch it; RMA candidate if it rises"),
    94: (DEGRADED, "contained ECC error", "reset the GPU (the error was contained)"),
    95: (FAILED, "uncontained ECC error", "drain, reset the GPU; RMA candidate if it recurs"),
    119: (FAILED, "GSP RPC timeout", "drain, reset the GPU or reboot"),
    120: (FAILED, "GSP error", "drain, reset the GPU or reboot"),
    140: (FAILED, "unrecovered ECC error", "drain, reset the GPU; RMA candidate"),
}
_XID_LINE = re.compile(r"NVRM: Xid \(PCI:([^)]*)\): (\d+),?\s*(.*)")


def check(
    family: str,
    device: str,
    verdict: str,
    reason: str,
    remediation: str | None = None,
    evidence: dict[str, Any] | None = None,
    label: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One check's entry in the result: `id` is the family and `label` (default: the device);
    `extra`: metric, value, unit, conditions, judged."""
    out: dict[str, Any] = {
        "id": f"{family} {label or device}",
        "family": family,
        "device": device,
        "verdict": verdict,
        "reason": reason,
        "remediation": remediation,
        "evidence": evidence or {},
    }
    out.update(extra)
    return out


def worst(verdicts: list[str]) -> str:
    return max(verdicts, key=SEVERITY.__getitem__) if verdicts else OK


def _gpu(snap: dict[str, Any]) -> str:
    name = snap["values"].get("name")
    return f"gpu{snap['index']}" + (f" ({name})" if name else "")


def _missing(snap: dict[str, Any], keys: tuple[str, ...]) -> str:
    errors = snap.get("errors") or {}
    said = sorted({errors[k] for k in keys if k in errors})
    return "; ".join(said) or "not read"


def gpu_count(platform: dict[str, Any], expect: int | None) -> list[dict[str, Any]]:
    """GPUs torch sees against NVML's count and the count expected (`--expect-gpus`)."""
    seen = int(platform.get("gpus_per_node") or 0)
    nvml_count = platform.get("nvml_gpu_count")
    ev = {"torch": seen, "nvml": nvml_count, "expected": expect}
    if expect is not None and seen < expect:
        why = platform.get("cuda_reason") or ""
        return [
            check(
                "gpu_count",
                "node",
                FAILED,
                f"{seen} GPU(s) visible, {expect} expected" + (f" ({why})" if why else ""),
                "a GPU is missing: check `nvidia-smi`, the kernel log for XID 79, reseat or RMA",
                ev,
            )
        ]
    visible = platform.get("cuda_visible_devices")
    if isinstance(nvml_count, int) and nvml_count > seen and seen > 0 and visible is not None:
        return [
            check(
                "gpu_count",
                "node",
                OK,
                f"{seen} GPU(s) visible of the {nvml_count} NVML lists "
                f"(CUDA_VISIBLE_DEVICES={visible}: the GPUs given to this process are checked)",
                None,
                ev,
            )
        ]
    if isinstance(nvml_count, int) and nvml_count > seen and seen > 0:
        return [
            check(
                "gpu_count",
                "node",
                FAILED,
                f"NVML lists {nvml_count} GPUs, torch sees {seen}",
                "a GPU is not usable by CUDA: check CUDA_VISIBLE_DEVICES, `nvidia-smi`, the "
                "kernel log",
                ev,
            )
        ]
    if seen == 0 and isinstance(nvml_count, int) and nvml_count > 0:
        return [
            check(
                "gpu",
                "node",
                INCOMPLETE,
                f"NVML lists {nvml_count} GPU(s) but torch sees none "
                f"({platform.get('cuda_reason') or 'CUDA unavailable'}): the GPUs' compute and "
                "memory were not checked",
                "install a CUDA build of torch to check them; --expect-gpus makes this a failure",
                ev,
            )
        ]
    if seen == 0:
        reasons = [r for r in (platform.get("cuda_reason"), platform.get("nvml_reason")) if r]
        return [
            check(
                "gpu",
                "node",
                INCOMPLETE,
                "no GPU to check (" + "; NVML: ".join(reasons) + ")"
                if reasons
                else "no GPU to check",
                None,
                ev,
            )
        ]
    return [check("gpu_count", "node", OK, f"{seen} GPU(s) visible", None, ev)]


def ecc(snap: dict[str, Any]) -> dict[str, Any]:
    v = snap["values"]
    dev = _gpu(snap)
    keys = (
        "ecc_volatile_uncorrected",
        "ecc_aggregate_uncorrected",
        "ecc_volatile_corrected",
        "ecc_aggregate_corrected",
    )
    ev = {k: v.get(k) for k in ("ecc_mode", *keys)}
    mode = v.get("ecc_mode")
    if mode is None:
        return check(
            "ecc", dev, INCOMPLETE, f"ECC mode unknown: {_missing(snap, ('ecc_mode',))}", None, ev
        )
    current, pending = (list(mode) + [None, None])[:2]
    if not current:
        hint = (
            "reboot to apply the pending mode" if pending else "enable it (nvidia-smi -e 1), reboot"
        )
        return check("ecc", dev, DEGRADED, "ECC is disabled", hint, ev)
    vol, agg = v.get("ecc_volatile_uncorrected"), v.get("ecc_aggregate_uncorrected")
    if isinstance(vol, int) and vol > 0:
        return check(
            "ecc",
            dev,
            FAILED,
            f"{vol} uncorrected ECC error(s) since the driver loaded",
            "drain, reset the GPU; RMA candidate if they recur",
            ev,
        )
    if vol is None and agg is None:
        return check(
            "ecc",
            dev,
            INCOMPLETE,
            f"ECC counts not readable: {_missing(snap, keys[:2])}",
            None,
            ev,
        )
    if isinstance(agg, int) and agg > 0:
        return check(
            "ecc",
            dev,
            DEGRADED,
            f"{agg} uncorrected ECC error(s) in the GPU's lifetime, none since the driver loaded",
            "watch it: RMA candidate if they recur",
            ev,
        )
    corrected = v.get("ecc_volatile_corrected")
    note = f"; {corrected} corrected since the driver loaded" if corrected else ""
    return check("ecc", dev, OK, f"ECC on, 0 uncorrected errors{note}", None, ev)


def memory_retirement(snap: dict[str, Any]) -> dict[str, Any]:
    """Row remapping (Ampere and later) or page retirement (earlier GPUs)."""
    v = snap["values"]
    dev = _gpu(snap)
    rows = v.get("remapped_rows")
    if isinstance(rows, list) and len(rows) >= 4:
        corr, unc, pending, failure = rows[:4]
        ev = {"correctable_rows": corr, "uncorrectable_rows": unc, "pending": bool(pending)}
        ev["failure"] = bool(failure)
        if failure:
            return check(
                "memory_retirement",
                dev,
                FAILED,
                "row remapping failed (a bank ran out of spare rows)",
                "RMA candidate: row-remapping failure",
                ev,
            )
        if pending:
            return check(
                "memory_retirement",
                dev,
                DEGRADED,
                f"row remap pending ({corr} correctable, {unc} uncorrectable rows remapped)",
                "reset the GPU (nvidia-smi -r) or reboot to apply the pending remap",
                ev,
            )
        return check(
            "memory_retirement",
            dev,
            OK,
            f"{corr} correctable, {unc} uncorrectable rows remapped, none pending",
            None,
            ev,
        )
    sbe, dbe = v.get("retired_pages_sbe"), v.get("retired_pages_dbe")
    pending = v.get("retired_pages_pending")
    if isinstance(sbe, int) or isinstance(dbe, int):
        total = (sbe or 0) + (dbe or 0)
        ev = {"retired_pages_sbe": sbe, "retired_pages_dbe": dbe, "pending": pending}
        if total >= RETIRED_PAGES_RMA:
            return check(
                "memory_retirement",
                dev,
                FAILED,
                f"{total} retired pages ({sbe} single-bit, {dbe} double-bit)",
                f"RMA candidate: {total} retired pages (DCGM's limit: {RETIRED_PAGES_RMA})",
                ev,
            )
        if pending:
            return check(
                "memory_retirement",
                dev,
                DEGRADED,
                f"page retirement pending ({total} retired)",
                "reboot or reset the GPU to retire the pending pages",
                ev,
            )
        if total >= RETIRED_PAGES_SOFT:
            return check(
                "memory_retirement",
                dev,
                DEGRADED,
                f"{total} retired pages (DCGM's soft limit {RETIRED_PAGES_SOFT})",
                f"watch it: RMA candidate at {RETIRED_PAGES_RMA} retired pages",
                ev,
            )
        return check("memory_retirement", dev, OK, f"{total} retired pages, none pending", None, ev)
    why = _missing(snap, ("remapped_rows", "retired_pages_sbe", "retired_pages_pending"))
    return check(
        "memory_retirement",
        dev,
        INCOMPLETE,
        f"neither row remapping nor page retirement readable: {why}",
        None,
        {},
    )


def link_gbps(gen: int | None, width: int | None) -> float | None:
    """The raw rate of a PCIe link per direction, GB/s (decimal), or None for an unknown gen."""
    if not isinstance(gen, int) or not isinstance(width, int) or gen not in PCIE_LANE_GBPS:
        return None
    return PCIE_LANE_GBPS[gen] * width


def pcie_link(snaps: list[dict[str, Any]], under_load: dict[str, Any] | None) -> dict[str, Any]:
    """Width and generation against the maximum the GPU and slot allow (`nvmlDeviceGetMax*`:
    the lesser of both). The generation is judged only on a reading taken right after a copy (an
    idle GPU may lower it to save power); the width on the widest reading."""
    first = snaps[0]
    dev = _gpu(first)
    readings = [s["values"] for s in snaps] + ([under_load["values"]] if under_load else [])
    widths = [r["pcie_width"] for r in readings if isinstance(r.get("pcie_width"), int)]
    max_w, max_g = first["values"].get("pcie_max_width"), first["values"].get("pcie_max_gen")
    load_gen = (under_load or {}).get("values", {}).get("pcie_gen")
    ev = {
        "width": max(widths) if widths else None,
        "max_width": max_w,
        "gen_under_load": load_gen,
        "gen_idle": first["values"].get("pcie_gen"),
        "max_gen": max_g,
    }
    if not widths or not isinstance(max_w, int):
        why = _missing(first, ("pcie_width", "pcie_max_width"))
        return check("pcie_link", dev, INCOMPLETE, f"PCIe link not readable: {why}", None, ev)
    width = max(widths)
    if width < max_w:
        return check(
            "pcie_link",
            dev,
            DEGRADED,
            f"PCIe link trained at x{width}, expected x{max_w}",
            "reseat the GPU; check its slot, riser and retimer",
            ev,
        )
    if isinstance(load_gen, int) and isinstance(max_g, int) and load_gen < max_g:
        return check(
            "pcie_link",
            dev,
            DEGRADED,
            f"PCIe link at gen {load_gen} under load, gen {max_g} possible",
            "check the BIOS PCIe settings, the slot and riser; reseat the GPU",
            ev,
        )
    gen_text = f"gen {load_gen}" if isinstance(load_gen, int) else "generation not read under load"
    return check("pcie_link", dev, OK, f"PCIe x{width} of x{max_w}, {gen_text}", None, ev)


def pcie_replays(before: dict[str, Any], after: dict[str, Any], minutes: float) -> dict[str, Any]:
    dev = _gpu(before)
    a, b = before["values"].get("pcie_replay_counter"), after["values"].get("pcie_replay_counter")
    if not isinstance(a, int) or not isinstance(b, int):
        why = _missing(before, ("pcie_replay_counter",))
        return check("pcie_replays", dev, INCOMPLETE, f"replay counter not readable: {why}")
    delta = b - a
    rate = delta / minutes if minutes > 0 else 0.0
    ev = {"counter": b, "during_check": delta, "minutes": minutes, "per_minute": rate}
    if rate > MAX_PCIE_REPLAYS_PER_MIN:
        return check(
            "pcie_replays",
            dev,
            DEGRADED,
            f"{delta} PCIe replays in {minutes:.1f} min ({rate:.1f}/min; DCGM's limit "
            f"{MAX_PCIE_REPLAYS_PER_MIN}/min)",
            "a marginal link: reseat the GPU, check the riser and retimer",
            ev,
        )
    return check(
        "pcie_replays", dev, OK, f"{delta} replays during the check ({b} since boot)", None, ev
    )


def throttling(dev: str, samples: list[int | None], what: str, min_pct: float) -> dict[str, Any]:
    """Clock event reasons over `samples` (bit masks; None: not read): thermal or hardware
    slowdown, or the power brake, in at least `min_pct` % of them is degraded; a power cap is
    said (normal under full load), not a finding."""
    read = [s for s in samples if s is not None]
    if not read:
        return check("throttle", dev, INCOMPLETE, f"clock event reasons not read during {what}")
    n = len(read)
    thermal = sum(1 for s in read if any(s & bit for bit in THERMAL_BITS))
    brake = sum(1 for s in read if s & POWER_BRAKE_BIT)
    capped = sum(1 for s in read if s & POWER_CAP_BIT)
    seen = sorted({name for s in read for bit, name in THERMAL_BITS.items() if s & bit})
    ev = {
        "samples": n,
        "thermal_or_hw_slowdown_pct": 100.0 * thermal / n,
        "power_brake_pct": 100.0 * brake / n,
        "power_cap_pct": 100.0 * capped / n,
        "reasons_seen": seen,
    }
    if 100.0 * thermal / n >= min_pct:
        return check(
            "throttle",
            dev,
            DEGRADED,
            f"thermal throttling ({', '.join(seen)}) for {100.0 * thermal / n:.0f}% of {what}",
            "check cooling: fans, airflow, inlet temperature, heat-sink contact",
            ev,
        )
    if 100.0 * brake / n >= min_pct:
        return check(
            "throttle",
            dev,
            DEGRADED,
            f"hardware power brake for {100.0 * brake / n:.0f}% of {what}",
            "check the power supplies and the chassis power-brake signal",
            ev,
        )
    note = f"; power-capped in {100.0 * capped / n:.0f}% (normal at full load)" if capped else ""
    return check("throttle", dev, OK, f"no thermal throttling in {n} sample(s){note}", None, ev)


def parse_xid(line: str) -> dict[str, Any] | None:
    m = _XID_LINE.search(line)
    if m is None:
        return None
    return {"pci": m.group(1), "xid": int(m.group(2)), "text": m.group(3).strip()[:200]}


def xid(obs: dict[str, Any] | None, has_gpu: bool) -> dict[str, Any] | None:
    """XIDs from NVML events during the check and from the kernel log (since boot)."""
    if obs is None:
        return None
    log = obs.get("kernel_log") or {}
    nvml = obs.get("nvml")
    found: list[dict[str, Any]] = []
    for line in log.get("lines") or []:
        parsed = parse_xid(line)
        if parsed is not None:
            found.append({**parsed, "source": "kernel log"})
    for e in (nvml or {}).get("events") or []:
        found.append(
            {"pci": e.get("pci_bus_id"), "xid": e.get("xid"), "text": "", "source": "NVML"}
        )
    sources = []
    if log.get("readable"):
        sources.append("the kernel log since boot")
    if nvml is not None and nvml.get("reason") is None:
        sources.append("NVML events during the check")
    unread = [
        r for r in (log.get("reason"), (nvml or {}).get("reason")) if r and not log.get("readable")
    ]
    if not found:
        if not sources:
            if not has_gpu:
                return None  # no GPU and no log: nothing to say that `gpu` does not
            return check("xid", "node", INCOMPLETE, "no XID source readable: " + "; ".join(unread))
        return check("xid", "node", OK, "no NVIDIA XID in " + " or ".join(sources))
    verdicts = []
    parts = []
    hints = []
    for x in found:
        verdict, meaning, hint = XIDS.get(
            int(x["xid"]),
            (DEGRADED, "not in minicluster's table", "look it up in NVIDIA's XID catalog"),
        )
        verdicts.append(verdict)
        parts.append(f"XID {x['xid']} on {x['pci'] or '?'} ({meaning}, {x['source']})")
        if verdict != OK:
            hints.append(f"XID {x['xid']}: {hint}")
    verdict = worst(verdicts)
    shown = list(dict.fromkeys(parts))
    more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
    return check(
        "xid",
        "node",
        verdict,
        f"{len(found)} XID event(s): " + "; ".join(shown[:5]) + more,
        "; ".join(dict.fromkeys(hints)) or None,
        {"events": found[-50:]},
    )


def infiniband(obs: dict[str, Any] | None) -> list[dict[str, Any]]:
    if obs is None:
        return []
    if not obs.get("present"):
        return [check("infiniband", "node", INCOMPLETE, f"no InfiniBand to check: {obs['reason']}")]
    out = []
    for p in obs["ports"]:
        dev = f"{p['device']}/{p['port']}"
        state, phys = p.get("state") or "?", p.get("phys_state") or "?"
        counters = {k: v for k, v in (p.get("counters") or {}).items() if v}
        ev = {k: p.get(k) for k in ("state", "phys_state", "rate", "link_layer")}
        ev["counters"] = p.get("counters")
        if "ACTIVE" not in state.upper():
            out.append(
                check(
                    "infiniband",
                    dev,
                    FAILED,
                    f"port {dev} is {state.split(':')[-1].strip()} (physical {phys})",
                    "check the cable, the transceiver and the switch port; `ibstat`",
                    ev,
                )
            )
        elif counters:
            shown = ", ".join(f"{k} {v}" for k, v in counters.items())
            out.append(
                check(
                    "infiniband",
                    dev,
                    DEGRADED,
                    f"port {dev} active at {p.get('rate')}, error counters: {shown}",
                    "link errors since the counters were cleared: check the cable and "
                    "transceiver; clear them (perfquery -x) and check again",
                    ev,
                )
            )
        else:
            out.append(
                check(
                    "infiniband",
                    dev,
                    OK,
                    f"port {dev} active at {p.get('rate')}, no errors",
                    None,
                    ev,
                )
            )
    return out


def dcgm(obs: dict[str, Any] | None) -> dict[str, Any] | None:
    """`dcgmi diag -j` (DCGM 3.x `test_categories`, or 4.x top-level `tests`): a failed test is
    failed, a warning degraded, passes and skips ok."""
    if obs is None:
        return None
    if not obs.get("ran"):
        return check("dcgm", "node", INCOMPLETE, str(obs.get("reason")))
    doc = obs.get("json")
    tests = _dcgm_tests(doc) if isinstance(doc, dict) else []
    if not tests:
        why = obs.get("reason") or "no test result in its JSON"
        return check(
            "dcgm",
            "node",
            INCOMPLETE,
            f"{obs.get('command')} (exit {obs.get('returncode')}): {why}",
            None,
            {"stderr": obs.get("stderr")},
        )
    failed = [t for t in tests if t["status"] == "fail"]
    warned = [t for t in tests if t["status"] == "warn"]
    ev = {"tests": tests, "returncode": obs.get("returncode")}
    if failed:
        names = ", ".join(f"{t['name']} (gpu {t['gpu']})" for t in failed)
        notes = "; ".join(w for t in failed for w in t["warnings"])[:500]
        return check(
            "dcgm",
            "node",
            FAILED,
            f"dcgmi diag failed: {names}" + (f": {notes}" if notes else ""),
            "follow DCGM's guidance for the failed test (its warning names the fix)",
            ev,
        )
    if warned:
        names = ", ".join(t["name"] for t in warned)
        return check("dcgm", "node", DEGRADED, f"dcgmi diag warned: {names}", None, ev)
    unrun = [t for t in tests if t["status"] == "not_run"]
    if unrun:
        names = ", ".join(sorted({t["name"] for t in unrun}))
        return check("dcgm", "node", INCOMPLETE, f"dcgmi diag did not run: {names}", None, ev)
    return check("dcgm", "node", OK, f"dcgmi diag: {len(tests)} result(s) pass or skip", None, ev)


# DCGM's spellings across versions; anything else ("not run", a new word) decides nothing.
_DCGM_STATUS = {
    "pass": "pass",
    "passed": "pass",
    "fail": "fail",
    "failed": "fail",
    "error": "fail",
    "warn": "warn",
    "warning": "warn",
    "skip": "skip",
    "skipped": "skip",
    "not applicable": "skip",
}


def _dcgm_tests(doc: dict[str, Any]) -> list[dict[str, Any]]:
    root = doc.get("DCGM GPU Diagnostic") or doc.get("DCGM Diagnostic") or doc
    tests: list[Any] = []
    for cat in root.get("test_categories") or []:
        if isinstance(cat, dict):
            tests.extend(cat.get("tests") or [])
    tests.extend(root.get("tests") or [])
    out = []
    for t in tests:
        if not isinstance(t, dict):
            continue  # DCGM 3.x writes nulls between tests
        for r in t.get("results") or []:
            if not isinstance(r, dict):
                continue
            raw = " ".join(str(r.get("status", "")).lower().split())
            status = _DCGM_STATUS.get(raw, "not_run")
            warnings = r.get("warnings") or []
            out.append(
                {
                    "name": str(t.get("name") or t.get("test_name") or "?"),
                    "gpu": r.get("gpu_ids", r.get("gpu_id", r.get("entity_id"))),
                    "status": status,
                    "warnings": [
                        str(w.get("warning", w) if isinstance(w, dict) else w) for w in warnings
                    ],
                }
            )
    return out
