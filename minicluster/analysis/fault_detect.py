"""Find faults in what the ranks recorded: dead or hung ranks, stragglers, diverged replicas.

Analysis layer (no torch). Every detection comes from evidence in the records (step lines,
summaries, the launcher's exit codes and signals, read in `failure_order`), never from the list
of injected faults, so `injected` and `detected` in the result can be checked against each other.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from minicluster.analysis.failure_order import DEATHS, FailureEvent
from minicluster.analysis.steps import r4
from minicluster.core.checks import ChecksSection
from minicluster.core.config import RunSection
from minicluster.result.model import FaultKind

CHECKSUM_KEYS = ("param_checksum", "optim_checksum")


def detect(
    records: list[Any],
    stragglers: list[dict[str, Any]],
    failures: list[FailureEvent],
    groups: list[list[int]] | None = None,
) -> list[dict[str, Any]]:
    """Detected faults, each `{kind, rank, step, evidence}` (`step` None when it has none): the
    ranks that stopped recording of their own or were killed from outside (`failures`, from
    `analysis.failure_order`, first failure first; its victims are no fault of their own),
    diverged replicas (`groups`: the ranks that hold the same state, `Layout.replica_groups`;
    None: every rank, as under DDP), stragglers."""
    found = [
        {"kind": e.kind, "rank": e.rank, "step": e.step, "evidence": e.evidence}
        for e in failures
        if e.kind in DEATHS
    ]
    found += _divergence(records, groups)
    for s in stragglers:
        found.append(
            {
                "kind": "straggler",
                "rank": s["rank"],
                "step": None,
                "attributed_to": s.get("attributed_to", "compute"),
                "evidence": f"median compute {s['compute_ms_median']:.2f} ms vs "
                f"{s['others_compute_ms_median']:.2f} ms on the other ranks "
                f"(+{s['excess_pct']:.1f}%)",
            }
        )
    return found


# The faster steps' busbw: CPU load slows transfers, it never speeds one up. The upper quartile,
# not p90: measured under 2 busy loops on the 2-core host (BENCHMARKS.md "Verdict checks"), a
# clean run's p90 interval spans 2x (a few lucky steps), a 40 ms slow link's p75 stays tight.
LINK_QUANTILE = 75.0
LINK_CONFIDENCE = 0.95
LINK_RESAMPLES = 2000
LINK_MIN_STEPS = 4


def link_check(
    busbw: dict[str, Any],
    checks: ChecksSection,
    world_size: int,
    per_step: np.ndarray | None = None,
) -> dict[str, Any]:
    """The gradient all-reduce's busbw against the expected figure: a slow link when even the
    fast steps are below `slow_link_below_pct` percent of it. Without an expectation the link
    is not judged.

    Judged on the p75 (LINK_QUANTILE) of the per-step busbw (`per_step`, the run's series), with a bootstrap
    interval over the steps: the link is slow only when the interval's upper bound is below the
    threshold. Load on the host (other jobs on the cores, a rank descheduled mid-transfer)
    lengthens some transfers and lowers the median, not the fast steps; a slow link delays every
    transfer. Without per-step figures the run's busbw metric (`busbw`, the median) is judged
    alone. `measured_busbw_gbps` stays the metric; `judged_busbw_gbps` is what was judged."""
    expected = checks.expect_busbw_gbps
    measured = busbw.get("value")
    out: dict[str, Any] = {
        "judged": False,
        "slow": False,
        "expected_busbw_gbps": expected,
        "measured_busbw_gbps": measured,
        "ratio": None,
        "below_pct": checks.slow_link_below_pct,
        "reason": None,
    }
    if world_size < 2:
        out["reason"] = "one rank: no link to judge"
    elif expected is None:
        out["reason"] = (
            "no expected busbw (checks.expect_busbw_gbps / --expect-busbw): the link is not judged"
        )
    elif measured is None:
        out["reason"] = f"the gradient all-reduce's busbw was not measured: {busbw.get('reason')}"
    else:
        steps = np.array([] if per_step is None else per_step, dtype=float)
        steps = steps[np.isfinite(steps)]
        if steps.size >= LINK_MIN_STEPS:
            fast, low, high = _fast_busbw(steps)
            out.update(
                judged_busbw_gbps=r4(fast),
                judged_busbw_interval=[r4(low), r4(high)],
                judged_statistic=f"p{LINK_QUANTILE:g} of the per-step busbw "
                f"({steps.size} steps, {100 * LINK_CONFIDENCE:g}% bootstrap interval)",
            )
            ratio = fast / expected
            slow = 100.0 * high / expected < checks.slow_link_below_pct
        else:
            ratio = float(measured) / expected
            slow = ratio * 100.0 < checks.slow_link_below_pct
        out.update(judged=True, ratio=ratio, slow=slow)
    return out


def _fast_busbw(steps: np.ndarray) -> tuple[float, float, float]:
    """The LINK_QUANTILE of the per-step busbw and its bootstrap interval (percentile, seeded)."""
    fast = float(np.percentile(steps, LINK_QUANTILE))
    if float(steps.max()) == float(steps.min()):
        return fast, fast, fast
    from scipy.stats import bootstrap  # lazily: scipy.stats takes a while to import

    res = bootstrap(
        (steps,),
        lambda x, axis=-1: np.percentile(x, LINK_QUANTILE, axis=axis),
        vectorized=True,
        n_resamples=LINK_RESAMPLES,
        confidence_level=LINK_CONFIDENCE,
        method="percentile",
        random_state=np.random.default_rng(steps.size),
    )
    return fast, float(res.confidence_interval.low), float(res.confidence_interval.high)


def slow_link_fault(link: dict[str, Any]) -> list[dict[str, Any]]:
    """The detected-fault entry for a slow link (none when the link was fine or not judged)."""
    if not link["slow"]:
        return []
    judged = link.get("judged_busbw_gbps", link["measured_busbw_gbps"])
    fast = f" (p{LINK_QUANTILE:g} of the steps)" if "judged_busbw_gbps" in link else ""
    interval = link.get("judged_busbw_interval")
    bound = f", even the interval's upper bound {interval[1]:.3g} GB/s" if interval else ""
    return [
        {
            "kind": "slow_link",
            "rank": None,
            "step": None,
            "attributed_to": "communication",
            "evidence": f"gradient all-reduce busbw {judged:.3g} GB/s{fast} is "
            f"{100 * link['ratio']:.0f}% of the expected {link['expected_busbw_gbps']:.3g} GB/s "
            f"(a slow link below {link['below_pct']:g}%{bound}); which link: "
            "`minicluster collectives --pattern pairwise`",
        }
    ]


def layout_link_check(records: list[Any], checks: ChecksSection, world_size: int) -> dict[str, Any]:
    """`link_check` under FSDP2 or TP (dp_shard or tp alone on every rank, so every collective
    kind runs on the one group of all ranks): each kind's calls judged by their wait-free busbw
    against the expected figure, slow when every kind the link carries is.

    A call's wait-free transfer is the least time any rank was blocked in it (`Step.syncs_ms`,
    in issue order): the rank that arrived last waited for nobody, so its time is the transfer
    itself. A straggler makes the others wait, not the last one; a slow link holds every rank in
    every call for the late data. Judged per kind on the p75 (LINK_QUANTILE) of the per-call
    busbw (bytes x busbw factor / wait-free time) with a bootstrap interval over the calls, as
    the DDP link is over steps. Every kind, not any: a slow link carries all of them, while one
    kind alone below the figure is an expectation that does not fit it (gloo's all-gather,
    reduce-scatter and all-reduce differ several-fold at one size; BENCHMARKS.md)."""
    expected = checks.expect_busbw_gbps
    out: dict[str, Any] = {
        "judged": False,
        "slow": False,
        "expected_busbw_gbps": expected,
        "measured_busbw_gbps": None,
        "ratio": None,
        "below_pct": checks.slow_link_below_pct,
        "reason": None,
    }
    if world_size < 2:
        out["reason"] = "one rank: no link to judge"
        return out
    series, ranks = call_busbw(records)
    per_kind = []
    for kind, values in series.items():
        entry: dict[str, Any] = {"kind": kind, "calls": int(values.size)}
        if values.size < LINK_MIN_STEPS:
            entry.update(judged=False, slow=False)
        else:
            # measured with or without an expectation: a clean run's figures are a known-good
            # expectation for the next
            fast, low, high = _fast_busbw(values)
            entry.update(
                judged=expected is not None,
                slow=expected is not None and 100.0 * high / expected < checks.slow_link_below_pct,
                measured_busbw_gbps=_sig(float(np.median(values))),
                judged_busbw_gbps=_sig(fast),
                judged_busbw_interval=[_sig(low), _sig(high)],
                ratio=None if expected is None else fast / expected,
            )
        per_kind.append(entry)
    if expected is None:
        out["reason"] = (
            "no expected busbw (checks.expect_busbw_gbps / --expect-busbw): the link is not "
            "judged (per_kind: this run's figures)"
        )
        if per_kind:
            out["per_kind"] = per_kind
        return out
    judged = [k for k in per_kind if k["judged"]]
    if not judged:
        out["reason"] = (
            f"fewer than {LINK_MIN_STEPS} collective calls of any kind have a wait-free time "
            "from every rank (steps' syncs_ms, sync_kinds, sync_bus_bytes): the link is not judged"
        )
        out["per_kind"] = per_kind or None
        return out
    worst = min(judged, key=lambda k: k["ratio"])
    out.update(
        judged=True,
        slow=all(k["slow"] for k in judged),
        measured_busbw_gbps=worst["measured_busbw_gbps"],
        ratio=worst["ratio"],
        judged_busbw_gbps=worst["judged_busbw_gbps"],
        judged_busbw_interval=worst["judged_busbw_interval"],
        judged_statistic=f"p{LINK_QUANTILE:g} of the per-call wait-free busbw of each kind "
        f"({100 * LINK_CONFIDENCE:g}% bootstrap interval over its calls); slow when every kind is",
        kind=worst["kind"],
        ranks=ranks,
        per_kind=per_kind,
    )
    return out


def _sig(x: float) -> float:
    """4 significant digits (a slow gloo link's busbw is far below 1e-4 GB/s)."""
    return float(f"{x:.4g}")


def call_busbw(records: list[Any]) -> tuple[dict[str, np.ndarray], list[int]]:
    """Per kind, the wait-free busbw (GB/s) of every collective call of the measured steps that
    every rank recorded alike (same kinds, groups and bytes in the same order), and the ranks
    whose calls they are. A step where the ranks' calls differ is left out."""
    by_rank = {rec.rank: _sync_rows(rec) for rec in records}
    ranks = sorted(by_rank)
    out: dict[str, list[float]] = {}
    if len(ranks) < 2:
        return {}, ranks
    steps = set.intersection(*(set(rows) for rows in by_rank.values()))
    for step in sorted(steps):
        lists = [by_rank[r][step] for r in ranks]
        ms0, groups0, kinds0, bus0 = lists[0]
        if any(
            (len(ms), groups, kinds, bus) != (len(ms0), groups0, kinds0, bus0)
            for ms, groups, kinds, bus in lists
        ):
            continue  # the ranks' k-th calls are not one collective
        blocked = np.array([ms for ms, _, _, _ in lists], dtype=np.float64).min(axis=0)
        for kind, bus, t_ms in zip(kinds0, bus0, blocked.tolist(), strict=True):
            if _present(bus) and t_ms > 0:
                out.setdefault(kind, []).append(float(bus) / (t_ms / 1e3) / 1e9)
    return {k: np.array(v) for k, v in out.items()}, ranks


def _sync_rows(rec: Any) -> dict[int, tuple[list[Any], list[Any], list[Any], list[Any]]]:
    """Measured step -> its (syncs_ms, sync_groups, sync_kinds, sync_bus_bytes), where the rank
    recorded all four alike in length."""
    cols = rec.columns
    keys = ("syncs_ms", "sync_groups", "sync_kinds", "sync_bus_bytes")
    if "step" not in cols or not all(k in cols for k in keys):
        return {}
    warm = cols["warmup"].tolist() if "warmup" in cols else None
    rows = {}
    for j, step in enumerate(cols["step"].tolist()):
        if warm is not None and warm[j] is True:
            continue
        got = [_as_list(cols[k][j]) for k in keys]
        if all(v is not None for v in got) and len({len(v) for v in got if v is not None}) == 1:
            ms, groups, kinds, bus = (v or [] for v in got)
            rows[int(step)] = (ms, groups, kinds, bus)
    return rows


def _as_list(value: Any) -> list[Any] | None:
    """A list field as read back (a list, or a row of a 2-D object column); None without it."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return list(value) if isinstance(value, (list, tuple)) else None


def layout_slow_link_fault(link: dict[str, Any]) -> list[dict[str, Any]]:
    """The detected-fault entry for a slow link judged per kind (`layout_link_check`)."""
    if not link["slow"]:
        return []
    ranks = link.get("ranks") or []
    kinds = "; ".join(
        f"{k['kind']} {k['judged_busbw_gbps']:.3g} GB/s ({100 * k['ratio']:.0f}%, interval "
        f"upper bound {k['judged_busbw_interval'][1]:.3g}, {k['calls']} calls)"
        for k in link.get("per_kind") or []
        if k.get("judged")
    )
    where = (
        f"the link between ranks {ranks[0]} and {ranks[1]}"
        if len(ranks) == 2
        else f"a link among ranks {', '.join(map(str, ranks))} (which one: "
        "`minicluster collectives --pattern pairwise`)"
    )
    return [
        {
            "kind": "slow_link",
            "rank": None,
            "ranks": ranks,
            "step": None,
            "attributed_to": "communication",
            "evidence": f"every collective kind's wait-free busbw (p{LINK_QUANTILE:g} of its calls, "
            f"the least any rank was blocked in each) is below {link['below_pct']:g}% of the "
            f"expected {link['expected_busbw_gbps']:.3g} GB/s: {kinds}; {where}",
        }
    ]


_CHECKSUM_ROW_KEYS = (*CHECKSUM_KEYS, "grad_reduced_checksum", "grad_applied_checksum")


def _checksum_rows(rec: Any) -> dict[int, dict[str, Any]]:
    """Step -> that step's checksums, for the steps where the rank recorded them."""
    cols = rec.columns
    if not all(k in cols for k in CHECKSUM_KEYS):
        return {}
    keys = [k for k in _CHECKSUM_ROW_KEYS if k in cols]
    values = {k: cols[k].tolist() for k in keys}
    rows = {}
    for i, step in enumerate(cols["step"].tolist()):
        row = {k: values[k][i] for k in keys}
        if all(_present(row[k]) for k in CHECKSUM_KEYS):
            rows[step] = {k: v for k, v in row.items() if _present(v)}
    return rows


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _divergence(records: list[Any], groups: list[list[int]] | None = None) -> list[dict[str, Any]]:
    """The first step where a rank's state is found wrong, and the rank(s) to blame.

    Within a replica group of two or more ranks (all ranks under DDP; the replicas of a shard
    under HSDP), the group's checksums differ. Blame: a rank whose applied gradient differs from
    what the all-reduce delivered to it; failing that, the minority when there is a majority; else
    every rank of the group, said to be ambiguous. A rank no other rank replicates (FSDP2, TP,
    PP, EP: its own shard) has only itself to compare with: its applied gradient differs from the
    one its collectives delivered (reduce-scatter, all-reduces), taken when the optimizer began.
    """
    per_step: dict[int, dict[int, dict[str, Any]]] = {}
    for rec in records:
        for step, row in _checksum_rows(rec).items():
            per_step.setdefault(step, {})[rec.rank] = row
    for step in sorted(per_step):
        found: list[dict[str, Any]] = []
        for group in _groups(groups, per_step[step]):
            found += _group_divergence(step, group)
        if found:
            return found
    return []


def _groups(
    groups: list[list[int]] | None, lines: dict[int, dict[str, Any]]
) -> list[dict[int, dict[str, Any]]]:
    """The step's checksum rows split by replica group (ranks without a row left out)."""
    if groups is None:
        return [lines]
    return [{r: lines[r] for r in g if r in lines} for g in groups if any(r in lines for r in g)]


def _self_mismatch(row: dict[str, Any]) -> bool:
    reduced = row.get("grad_reduced_checksum")
    return reduced is not None and row.get("grad_applied_checksum") != reduced


def _group_divergence(step: int, lines: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    if len(lines) == 1:
        ((rank, row),) = lines.items()
        if not _self_mismatch(row):
            return []
        return [
            {
                "kind": "corrupt_grad",
                "rank": rank,
                "step": step,
                "evidence": f"rank {rank}'s applied gradient differs at step {step} from the "
                "one its collectives delivered to it (no other rank holds its shard)",
            }
        ]
    sums = {r: tuple(s[k] for k in CHECKSUM_KEYS) for r, s in lines.items()}
    if len(set(sums.values())) == 1:
        return []
    bad_grad = sorted(r for r, s in lines.items() if _self_mismatch(s))
    kind = "replica_divergence"
    if bad_grad:
        blamed = bad_grad
        kind = "corrupt_grad"
        why = "its applied gradient differs from the all-reduced gradient"
    else:
        counts = Counter(sums.values())
        top, n_top = counts.most_common(1)[0]
        if n_top > len(sums) / 2:
            blamed = sorted(r for r, v in sums.items() if v != top)
            why = "its checksum differs from the majority"
        else:
            blamed = sorted(sums)
            why = "no majority: cannot tell which replica is wrong"
    return [
        {
            "kind": kind,
            "rank": r,
            "step": step,
            "evidence": f"replica checksums differ at step {step} across ranks "
            f"{sorted(sums)}; {why}",
        }
        for r in blamed
    ]


def steps_checked(records: list[Any], groups: list[list[int]] | None = None) -> set[int]:
    """The steps some check compared: two or more ranks of one replica group recorded
    checksums, or a rank alone in its group recorded both its delivered and applied gradient."""
    per_step: dict[int, dict[int, dict[str, Any]]] = {}
    for rec in records:
        for step, row in _checksum_rows(rec).items():
            per_step.setdefault(step, {})[rec.rank] = row
    out = set()
    for step, lines in per_step.items():
        for group in _groups(groups, lines):
            alone = len(group) == 1 and next(iter(group.values())).get("grad_reduced_checksum")
            if len(group) >= 2 or alone is not None:
                out.add(step)
    return out


def validation_section(
    records: list[Any],
    run: RunSection,
    detected: list[dict[str, Any]],
    groups: list[list[int]] | None = None,
) -> dict[str, Any] | None:
    """The verdict of the correctness checks the run was configured for (None: none were).

    `reason` is one line naming the first failed check, the rank and the step where known.
    """
    every = run.replica_check_every
    checks: list[dict[str, Any]] = []
    if every:
        steps = steps_checked(records, groups)
        bad = [d for d in detected if FaultKind.of(d["kind"]).correctness]
        check: dict[str, Any] = {
            "name": "replica_consistency",
            "passed": not bad and bool(steps),
            "every": every,
            "steps_checked": len(steps),
            "divergence": None,
        }
        if bad:
            check["divergence"] = {"step": bad[0]["step"], "ranks": [d["rank"] for d in bad]}
            check["reason"] = (
                f"replicas diverged at step {bad[0]['step']}, rank(s) "
                f"{', '.join(str(d['rank']) for d in bad)}: {bad[0]['evidence']}"
            )
        elif not steps:
            check["reason"] = (
                "no step has replica checksums from two or more ranks of one replica group, "
                "nor a delivered gradient to check a lone shard against"
            )
        checks.append(check)
    if run.check_ddp_equivalence:
        rank0 = next((r for r in records if r.rank == 0), None)
        result = (rank0.summary or {}).get("validation") if rank0 is not None else None
        if result is None:
            checks.append(
                {
                    "name": "ddp_equivalence",
                    "passed": False,
                    "reason": "rank 0 did not finish the DDP equivalence check (the run failed)",
                }
            )
        else:
            check = dict(result)
            if not check["passed"]:
                check["reason"] = (
                    f"DDP parameters differ from the single-process reference after "
                    f"{check['steps']} steps: max relative L2 diff {check['max_rel_diff']:.3g} "
                    f"> {check['rel_tolerance']} (max abs diff {check['max_abs_diff']:.3g})"
                )
            checks.append(check)
    if not checks:
        return None
    failed = [c for c in checks if not c["passed"]]
    return {
        "passed": not failed,
        "reason": failed[0]["reason"] if failed else None,
        "checks": checks,
    }
