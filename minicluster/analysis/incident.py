"""The incident class of a failed or slow run, after Alibaba C4 (HPCA'25): comm hang, non-comm
hang, comm slow, non-comm slow, or a crash/kill (a rank died), with the rank, node or link.

C4 sorts incidents by where the time stopped or went: inside communication (the collective
itself hangs or transfers slowly: a link, the transport, the library) or outside it (a rank
stuck or slow in its own work, which its peers then wait for in their next collective). Decided
from what the run recorded, never from the injected fault:

- every rank raised the very same exception (a bug in the model, its input or configuration):
  `crash` with every rank, and their node only when they all ran on one (which wrote first is a
  matter of microseconds);
- ranks that stopped recording in the same step with nothing to tell why (no exit code, signal
  or peer error: the launcher died with them): `crash` with all of them, no first one;
- a rank died (`failure_order`'s first cause is a kill, crash, exception or a rank that left no
  records): `kill` or `crash`, that rank (the failure order decides who was first);
- a hang (`failure_order`'s first cause is `hang` or `timeout`), in order of evidence:
  Flight Recorder dumps, when the run has them: ranks that never entered the collective the
  others are inside are stuck outside communication (`non_comm_hang`, those ranks); every rank
  inside the same collective, none retired, is a `comm_hang` (the collective hangs). Without
  dumps, the per-rank ends: a rank that stopped recording while its peers' collectives timed
  out waiting for it was not in that collective (`non_comm_hang`, that rank); every rank timing
  out inside its own collective, none stopped first, is a `comm_hang`;
- slow, no rank failed: the gradient all-reduce's wait-free busbw below the link's expectation
  (the transfer itself is slow, whoever arrived last) is `comm_slow` (the job's interconnect: one
  link is named by `collectives --pattern pairwise`); a straggler (the highest compute, slowest
  in most steps: its own work, not its collectives) is `non_comm_slow`, that rank and node; so
  is the top culprit (`analysis.cost`: a rank whose late arrivals cost the run, in some steps
  only: intermittent, onset, drift).

A healthy run has no incident (None), nor has a run its user's input stopped (`bad_input`).
"""

from __future__ import annotations

from typing import Any

from minicluster.analysis import rank_status

COMM_HANG, NON_COMM_HANG, COMM_SLOW, NON_COMM_SLOW, CRASH, KILL = (
    "comm_hang",
    "non_comm_hang",
    "comm_slow",
    "non_comm_slow",
    "crash",
    "kill",
)
KINDS = (COMM_HANG, NON_COMM_HANG, COMM_SLOW, NON_COMM_SLOW, CRASH, KILL)
_HANGS = ("hang", "timeout")
# failure_order kinds of a rank that died of its own (not a hang, not a victim)
_DEATHS = ("kill", "crash", "exception", "missing", "rank_failure")


def classify(result: dict[str, Any], dumps: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The incident of an assembled run result (`failure_order`, `stragglers`, `link`), or None
    for a healthy run. `dumps`: the run's Flight Recorder diagnosis
    (`analysis.flight_recorder.diagnose`), when it left dumps."""
    if result.get("bad_input"):
        return None  # the user's input stopped the ranks (exit 2): no rank, node or link failed
    causes = [e for e in result.get("failure_order") or [] if e.get("cause")]
    if causes:
        first = causes[0]
        # every rank raised the same exception, or ranks stopped together with nothing to tell
        # why: an incident of all of them, none failed first
        where = {(c.get("node_rank"), c.get("hostname")) for c in causes}
        same = _same_exception(causes, result.get("world_size"))
        evidence = (
            f"every rank ({len(causes)} of {len(causes)}) {same}: "
            + rank_status.blame(len(where) > 1)
            if same is not None
            else _stopped_together(causes)
        )
        if evidence is not None:
            return _incident(
                CRASH,
                sorted(c["rank"] for c in causes),
                _node(first) if len(where) == 1 else None,
                None,
                evidence,
                "failure_order",
            )
        if first["kind"] in _DEATHS:
            return _incident(
                KILL if first["kind"] == "kill" else CRASH,
                [first["rank"]],
                _node(first),
                None,
                f"rank {first['rank']} failed first ({first['kind']}): {first['evidence']}",
                "failure_order",
            )
        if first["kind"] in _HANGS:
            return _hang(causes, dumps)
    link = result.get("link") or {}
    if link.get("slow"):
        kind = link.get("kind")
        what = f"the {kind} calls'" if kind else "the gradient all-reduce's"
        return _incident(
            COMM_SLOW,
            [],
            None,
            f"the job's {'collective' if kind else 'gradient all-reduce'} links (which one: "
            "collectives --pattern pairwise)",
            f"{what} {'wait-free ' if kind else ''}busbw "
            f"{link.get('judged_busbw_gbps', link['measured_busbw_gbps']):.3g} GB/s is "
            f"{100 * link['ratio']:.0f}% of the expected {link['expected_busbw_gbps']:.3g} GB/s: "
            "the transfer itself is slow, not a wait for a late rank",
            "link",
        )
    stragglers = result.get("stragglers") or []
    if stragglers:
        s = stragglers[0]
        return _incident(
            NON_COMM_SLOW,
            [s["rank"]],
            _node(s),
            None,
            f"rank {s['rank']}'s own compute is {s['excess_pct']:.0f}% above the others' median "
            f"({s['compute_ms_median']:.1f} vs {s['others_compute_ms_median']:.1f} ms), slowest in "
            f"{s['slowest_in_steps']} of {s['steps_compared']} steps: the others wait for it in "
            "their collectives",
            "stragglers",
        )
    culprit = next((c for c in result.get("culprits") or [] if c.get("rank") is not None), None)
    if culprit is not None:  # late in some steps only (intermittent, onset, drift): its own work
        return _incident(
            NON_COMM_SLOW,
            [culprit["rank"]],
            _node(culprit),
            None,
            f"rank {culprit['rank']} cost the run {culprit['cost_pct']:.0f}% "
            f"({culprit['kind']}) by arriving late to its collectives: {culprit['evidence']}",
            "culprits",
        )
    return None


def _hang(causes: list[dict[str, Any]], dumps: dict[str, Any] | None) -> dict[str, Any]:
    group = next((g for g in (dumps or {}).get("groups") or [] if g.get("seq") is not None), None)
    if group is not None and group["never_entered"] and not group["mismatch"]:
        stuck = list(group["never_entered"])
        return _incident(
            NON_COMM_HANG,
            stuck,
            _node(next((c for c in causes if c["rank"] in stuck), causes[0])),
            None,
            f"Flight Recorder: {group['verdict']}: rank(s) {_list(stuck)} hung outside "
            "communication",
            "flight_recorder",
        )
    groups = (dumps or {}).get("groups") or []
    # every member dumped and they agree: a rank without a dump could be the one stuck outside
    if groups and not (dumps or {}).get("desync") and not any(g.get("no_dump") for g in groups):
        inside = sorted({r for g in groups for r in g.get("in_flight") or []})
        if inside:
            return _incident(
                COMM_HANG,
                inside,
                None,
                "the collective's links or transport",
                f"Flight Recorder: every rank entered the same last collective and rank(s) "
                f"{_list(inside)} never completed it: the collective itself hangs",
                "flight_recorder",
            )
    hung = [c for c in causes if c["kind"] == "hang"]
    if hung:
        first = hung[0]
        return _incident(
            NON_COMM_HANG,
            [c["rank"] for c in hung],
            _node(first),
            None,
            f"rank {first['rank']} stopped recording (last step {first.get('step')}) while its "
            "peers' collectives timed out waiting for it: it hung outside communication",
            "failure_order",
        )
    ranks = sorted(c["rank"] for c in causes)
    return _incident(
        COMM_HANG,
        ranks,
        None,
        "the collective's links or transport",
        f"rank(s) {_list(ranks)} each timed out inside a collective and none stopped first: the "
        "collective itself hangs",
        "failure_order",
    )


def _same_exception(causes: list[dict[str, Any]], world_size: Any) -> str | None:
    """`raised E` (with the step, when one) when every rank of the job (2 or more) raised the
    very same exception of its own, else None: which one wrote first is a matter of
    microseconds, and naming it would blame a rank or node for the code's fault."""
    if not isinstance(world_size, int):
        return None
    errors = [c.get("evidence") if c["kind"] == "exception" else None for c in causes]
    same = rank_status.same_error(errors, world_size)
    if same is None:
        return None
    steps = {c.get("step") for c in causes}
    step = steps.pop() if len(steps) == 1 else None
    return same + (f" at step {step}" if step is not None else "")


def _stopped_together(causes: list[dict[str, Any]]) -> str | None:
    """The evidence when 2 or more ranks stopped recording in the same step and nothing tells
    why (`rank_failure`: no exit code, signal or peer error, as when the launcher died with
    them: the job's process group or its node killed from outside), else None: which one wrote
    its last record first is a matter of milliseconds, and naming it would blame one rank for
    what stopped them all."""
    if len(causes) < 2 or any(c["kind"] != "rank_failure" for c in causes):
        return None
    steps = {c.get("step") for c in causes}
    if len(steps) != 1:
        return None
    step = steps.pop()
    at = f" in step {step}" if step is not None else ""
    return (
        f"ranks {_list(sorted(c['rank'] for c in causes))} stopped recording together{at}, "
        "with no exit code, signal or peer error to tell why: stopped from outside at once "
        "(the launcher left no record: the job's processes or their node killed together?); "
        "no rank failed first"
    )


def _node(entry: dict[str, Any]) -> dict[str, Any] | None:
    if entry.get("node_rank") is None and entry.get("hostname") is None:
        return None
    return {"node_rank": entry.get("node_rank"), "hostname": entry.get("hostname")}


def _incident(
    kind: str,
    ranks: list[int],
    node: dict[str, Any] | None,
    link: str | None,
    evidence: str,
    decided_from: str,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "ranks": ranks,
        "node": node,
        "link": link,
        "evidence": evidence,
        "decided_from": decided_from,
    }


def _list(ranks: list[int]) -> str:
    return ", ".join(str(r) for r in ranks)
