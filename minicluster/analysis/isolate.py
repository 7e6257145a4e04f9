"""Merge the records of isolation by group testing into the `isolate` block of a result: the
recorded rounds replayed through the same decision code the ranks ran (`core.group_testing`),
so the verdict is a function of the recorded busbw alone: every round's groups with baseline, z
and verdict, every unit's status with its evidence, the bad units named. Never imports torch.
"""

from __future__ import annotations

import math
from typing import Any

from minicluster.analysis.collectives import benchmark_metrics, benchmark_result
from minicluster.analysis.frame import RunFrame
from minicluster.analysis.records import RankRecords
from minicluster.core import group_testing as gt
from minicluster.core.metrics import MetricValue, metric, unavailable

ALGORITHM = (
    "adaptive group testing: Li's s-stage algorithm (JASA 57, 1962) with halving at every stage "
    "as in Hwang's binary splitting (JASA 67, 1972); each stage's disjoint groups run at once "
    "(one round); a unit is named bad after 2 slow tests beside cleared partners"
)
ALGORITHM_SPRT = (
    "adaptive group testing: Li's s-stage algorithm (JASA 57, 1962) with halving at every stage "
    "as in Hwang's binary splitting (JASA 67, 1972); each stage's disjoint groups run at once "
    "(one round); every suspect group and unit is tested again round after round until Wald's "
    "sequential probability ratio test (1945) decides it, on a heavy-tailed noise model of "
    "healthy groups: a unit is named bad when its evidence beside cleared partners reaches "
    "ln((1 - beta) / alpha) (at least min_agree = 4 slow tests agreeing), cleared at "
    "ln(beta / (1 - alpha)); one undecided after max_tests gets up to stage2_tests more, judged "
    "by a fresh SPRT whose bad hypothesis is its own speed (the median of its first tests), and "
    "is left unresolved, never named, after them"
)
RULE = (
    "per group and round: mean per call over `iters` back-to-back all_reduce calls on each rank, "
    "the fastest of `passes` loops, max over the group's ranks (nccl-tests)"
)
FORMULAS = {
    "busbw_gbps": "size_bytes / time_s / 1e9 x 2(n-1)/n, n = the group's ranks (nccl-tests "
    "all_reduce)",
    "baseline": "per round and group size: the median busbw of that size's groups when there are "
    "2 x max_bad + 1 or more, else the fastest of them",
    "z": "ln(busbw / baseline) / scale; scale = max(MAD of ln(busbw / median) over this and the "
    "earlier rounds' median-judged pools x 1.4826, mad_floor) with a median baseline, else "
    "lone_scale",
}
PLAN, ROUND = "isolate_plan", "isolate_round"


def isolate_result(frame: RunFrame, aggregated_at: str | None = None) -> dict[str, Any]:
    """The canonical result of an isolation run (`aggregated_at` fixed for golden tests)."""
    block, errors = isolate_block(frame.records, frame.world_size)
    detected = [
        {
            "kind": "slow_link",
            "rank": u["ranks"][0],
            "peer": None,
            "step": None,
            "node": u["node"],
            "evidence": f"isolate: {u['name']} bad: {u['why']}",
        }
        for u in block["units"]
        if u["status"] == "bad"
    ]
    metrics = benchmark_metrics(frame, _metrics(block))
    return benchmark_result(frame, metrics, aggregated_at, {"isolate": block}, detected, errors)


def isolate_block(
    records: list[RankRecords], world_size: int, params: gt.Params | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The `isolate` block from the records (`params`: judge with these instead of the
    recorded ones: a re-judgement), and lines for the result's errors."""
    plan, rounds = _records(records)
    errors: list[str] = []
    if plan is None:
        errors.append("no rank wrote the isolation plan: nothing was measured")
        return _empty(world_size), errors
    who: list[int] = plan["participants"]
    nodes = [str(n) for n in plan.get("nodes") or []]
    per = plan.get("per", "rank")
    names = [(nodes[r] if per == "node" else f"rank {r}") for r in who]
    p = params or gt.params_from_record(plan["params"])
    measured = [
        [
            (tuple(units), bw, int(wrong))
            for units, bw, wrong in zip(rnd["groups"], rnd["busbw_gbps"], rnd["wrong"], strict=True)
        ]
        for rnd in rounds
    ]
    try:
        state = gt.replay(p, measured)
    except ValueError as e:
        errors.append(f"isolate: the recorded rounds do not replay: {e}")
        state = gt.replay(p, [])
    rows = [
        {
            "round": i + 1,
            "groups": [_group(g, who, names) for g in groups],
            "slow": [", ".join(names[u] for u in g.units) for g in groups if g.slow],
        }
        for i, groups in enumerate(state.rounds)
    ]
    units = [_unit(state, u, who, nodes, names) for u in range(p.n_units)]
    wrong_total = sum(g.wrong for groups in state.rounds for g in groups)
    if wrong_total:
        errors.append(f"isolate: {wrong_total} wrong elements in the group tests")
    complete = state.stop_reason == "nothing left to test" or state.more_than_max_bad
    block: dict[str, Any] = {
        "per": per,
        "transport": "all_reduce",
        "algorithm": ALGORITHM_SPRT if p.decision == gt.SPRT else ALGORITHM,
        "rule": RULE,
        "formulas": FORMULAS,
        "size_bytes": plan.get("size_bytes"),
        "dtype": plan.get("dtype"),
        "iters": plan.get("iters"),
        "warmup_iters": plan.get("warmup_iters"),
        "passes": plan.get("passes"),
        "params": {**p.__dict__, "first_group_size": p.first_group_size},
        "reference": plan.get("reference")
        or (
            f"floor {p.min_busbw_gbps:g} GB/s (--min-busbw): a group below it is slow"
            if p.min_busbw_gbps is not None
            else "none given: each group judged against its round's healthy groups only"
        ),
        "n_units": p.n_units,
        "pairwise_pairs": p.n_units * (p.n_units - 1) // 2,
        "complete": complete,
        "rounds": rows,
        "units": units,
        "bad": [names[u] for u in state.bad],
        "more_than_max_bad": state.more_than_max_bad,
        "unresolved": [names[u] for u in state.unresolved],
        "stop_reason": state.stop_reason,
        "rounds_run": len(state.rounds),
        "groups_tested": sum(len(r) for r in state.rounds),
        "wrong_total": wrong_total,
    }
    block["verdict"] = verdict(block)
    return block, errors


def _records(records: list[RankRecords]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The plan and rounds of the lowest rank that wrote the most rounds (every rank wrote the
    same numbers; a rank that died early wrote fewer)."""
    best: tuple[dict[str, Any] | None, list[dict[str, Any]]] = (None, [])
    for rec in sorted(records, key=lambda r: r.rank):
        plans = rec.other.get(PLAN, [])
        if not plans:
            continue
        rounds = rec.other.get(ROUND, [])
        if best[0] is None or len(rounds) > len(best[1]):
            best = (plans[0], rounds)
    return best


def _group(g: gt.Group, who: list[int], names: list[str]) -> dict[str, Any]:
    return {
        "units": list(g.units),
        "names": [names[u] for u in g.units],
        "ranks": [who[u] for u in g.units],
        "role": g.role,
        "subject": [names[u] for u in g.subject],
        "busbw_gbps": g.busbw_gbps,
        "wrong": g.wrong,
        "baseline_gbps": g.baseline_gbps,
        "pool": g.pool,
        "scale": g.scale,
        "ratio": (g.busbw_gbps / g.baseline_gbps)
        if g.busbw_gbps is not None and g.baseline_gbps
        else None,
        "z": g.z,
        **_llr(g),
        "slow": g.slow,
        "why": g.why,
    }


def _llr(g: gt.Group) -> dict[str, float]:
    """The test's SPRT evidence when it has a finite one (JSON has no infinity)."""
    return {"llr": g.llr} if g.llr is not None and math.isfinite(g.llr) else {}


def _unit(
    state: gt.State, u: int, who: list[int], nodes: list[str], names: list[str]
) -> dict[str, Any]:
    """One unit's status and the tests it was in (the evidence)."""
    evidence: list[dict[str, Any]] = []
    for r, i in state.tests.get(u, []):
        g = state.rounds[r][i]
        evidence.append(
            {
                "round": r + 1,
                "group": i,
                "role": g.role,
                "with": [names[x] for x in g.units if x != u],
                "subject": u in g.subject,
                "busbw_gbps": g.busbw_gbps,
                "ratio": (g.busbw_gbps / g.baseline_gbps)
                if g.busbw_gbps is not None and g.baseline_gbps
                else None,
                "z": g.z,
                **_llr(g),
                "slow": g.slow,
            }
        )
    status = state.status[u]
    leaf = [e for e in evidence if e["role"] in (gt.LEAF, gt.CONFIRM)]
    sprt = state.params.decision == gt.SPRT
    if status == "bad" and sprt:
        why = (
            f"evidence {gt.evidence([state.rounds[e['round'] - 1][e['group']] for e in leaf]):.1f}"
            f" >= {gt.thresholds(state.params, unit=True)[0]:.1f} over {len(leaf)} tests beside "
            f"cleared units ({sum(e['slow'] for e in leaf)} slow): "
            + "; ".join(
                f"round {e['round']} ({', '.join(e['with'])}): {e['ratio']:.0%} of its baseline"
                for e in leaf
                if e["ratio"] is not None
            )
        )
    elif status == "bad":
        why = (
            f"slow in {sum(e['slow'] for e in leaf)} of {len(leaf)} tests beside cleared units: "
            + (
                "; ".join(
                    f"round {e['round']} ({e['role']} with {', '.join(e['with'])}): "
                    f"{e['ratio']:.0%} of its baseline"
                    for e in leaf
                    if e["slow"] and e["ratio"] is not None
                )
            )
        )
    elif status == "cleared":
        last = next((e for e in reversed(evidence) if not e["slow"] and e["subject"]), None)
        why = f"normal in round {last['round']} ({last['role']})" if last else "normal in its tests"
    elif sprt and u not in {x[0] for k, x in state.pending if k == "unit"} and leaf:
        why = (
            f"not resolved: undecided after {len(leaf)} tests beside cleared units (evidence "
            f"{gt.evidence([state.rounds[e['round'] - 1][e['group']] for e in leaf]):.1f}, "
            "between the bounds): the noise here hides it; not named bad"
        )
    else:
        why = "not resolved: " + (state.stop_reason or "the search stopped")
    return {
        "unit": u,
        "name": names[u],
        "ranks": [who[u]],
        "node": nodes[who[u]] if who[u] < len(nodes) else None,
        "status": status,
        "why": why,
        "evidence": evidence,
    }


def verdict(block: dict[str, Any]) -> str:
    """One line: the bad units with why, more than k bad, or that all is well."""
    cost = (
        f"[{block['rounds_run']} round(s), {block['groups_tested']} group tests; the pairwise "
        f"test: {block['pairwise_pairs']} pairs]"
    )
    parts = []
    if block["bad"]:
        named = "; ".join(
            f"{u['name']} ({u['why']})" for u in block["units"] if u["status"] == "bad"
        )
        parts.append(f"BAD: {named}")
    if block["more_than_max_bad"]:
        parts.append(f"MORE THAN {block['params']['max_bad']} BAD: {block['stop_reason']}")
    if block["unresolved"]:
        parts.append(
            f"UNRESOLVED (not named bad): {', '.join(block['unresolved'])} "
            f"({block['stop_reason']}; rerun, or more --passes)"
        )
    if block["wrong_total"]:
        parts.append(f"WRONG: {block['wrong_total']} elements")
    if parts:
        return "isolate: " + "; ".join(parts) + " " + cost
    return f"isolate: ok: none of {block['n_units']} units bad {cost}"


def _empty(world_size: int) -> dict[str, Any]:
    block: dict[str, Any] = {
        "per": "rank",
        "transport": "all_reduce",
        "algorithm": ALGORITHM,
        "rule": RULE,
        "formulas": FORMULAS,
        "n_units": 0,
        "pairwise_pairs": 0,
        "complete": False,
        "rounds": [],
        "units": [],
        "bad": [],
        "more_than_max_bad": False,
        "unresolved": [],
        "stop_reason": "no plan recorded",
        "rounds_run": 0,
        "groups_tested": 0,
        "wrong_total": 0,
    }
    block["verdict"] = f"isolate: nothing measured (world of {world_size} ranks)"
    return block


def _metrics(block: dict[str, Any]) -> dict[str, MetricValue]:
    """busbw: the median of round 1's groups (the whole job's screen)."""
    first = block["rounds"][0]["groups"] if block["rounds"] else []
    bws = sorted(g["busbw_gbps"] for g in first if g["busbw_gbps"] is not None)
    if not bws:
        return {"busbw_gbps": unavailable("busbw_gbps", "no group was measured")}
    median = (
        bws[len(bws) // 2] if len(bws) % 2 else (bws[len(bws) // 2 - 1] + bws[len(bws) // 2]) / 2
    )
    return {
        "busbw_gbps": metric(
            "busbw_gbps",
            median,
            "measured",
            "isolate: median busbw of round 1's all_reduce groups",
        )
    }
