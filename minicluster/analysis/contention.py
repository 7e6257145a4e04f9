"""Host CPU contention: lateness that is the rank's threads waiting for a CPU other processes held.

Each step record carries the rank process's threads' CPU time (`cpu_ms`) and the time they were
runnable but waited on a run queue for a CPU (`cpu_wait_ms`, Linux schedstat's run_delay:
`rank.telemetry.schedstat`), and since rank format 1.8 the training-loop thread's own wait
(`main_cpu_wait_ms`). A rank that is late because the host's other processes held its core is
late through no fault of its own or of its link; the measurement says so directly.

The rule for a rank named late (a culprit, on the steps it arrived last; a straggler, on its
measured steps): its *lateness* is its own work (host + compute; a straggler: compute) above the
median of the other ranks' in those steps, ms per step; its *CPU wait excess* its `cpu_wait_ms`
above the others' median, its *CPU excess* its `cpu_ms` above theirs. The wait is the loop
thread's (`main_cpu_wait_ms`) where every rank recorded it: that thread is the one that arrives
late at the collective. The sum over all threads (1.7 files) also counts gloo's and the intra-op
pool's threads, runnable while the loop thread sleeps: beside the test suite a rank whose loop
thread slept 40 ms a step showed 30.8 ms a step more summed wait than its peer and was NOT JUDGED
(BENCHMARKS.md). The CPU excess stays every thread's: a busy thread of the rank's own process
that keeps the loop thread off its core is the rank's fault. The lateness is host CPU
contention when

- the CPU wait excess covers at least `checks.contention_share_pct` (50%) of the lateness, and
- the CPU excess is below that share of the lateness: its own threads did not use more CPU than
  its peers' by as much (a busy thread inside the rank's own process raises its `cpu_ms`: that
  stays the rank's fault, as does a sleep in its code, which raises neither).

The lateness the CPU wait does not explain is not judged on its own: on this project's 2-vCPU
VM, with busy loops beside a clean run, the measured wait covered 55-77% of a contended rank's
lateness and the rest (2-4 ms a step: shared caches and core, threads the run queue does not
show) passed the culprit and straggler floors, naming a healthy rank in 3 of 12 clean runs
(new-user trial, 2026-12-07). A real fault whose lateness is mostly CPU wait on a busy host (a
40 ms sleep beside 23 ms of CPU wait a step) is then NOT JUDGED, not named: on a contended
host that is the honest answer (exit 2: rerun on a quiet host), a healthy rank named is not.

Then the rank is not named; it is NOT JUDGED (`host_contention` in the result, exit 2). One
rank, one cause: a rank whose culprit role is NOT JUDGED so is not named a straggler either, nor
a culprit when its straggler role is (`one_cause`). A straggler that stands carries its figures
(`cpu`), as a culprit's cost does.

A slow link on a CPU (gloo) run is host CPU contention when, over the judged steps, some rank's
median `cpu_wait_ms` (every thread's: gloo's transfer runs on its own threads) is at least
`checks.contention_slow_link_pct` (20%) of its median step time and at least the transfer's
shortfall (the judged transfer time, at the p75 busbw, less the time at the expected busbw: the
wait is the whole step's, so all of the shortfall, not a share): the transfer runs on the
ranks' own threads, and a thread waiting for a CPU moves no bytes. A delay in the transfer (a
sleep, a slow wire) makes a shortfall the host's load does not cover: still a slow link (on a
loaded 2-core host the ranks' threads wait for a CPU 20-95% of a small step whatever the link
does, so the share of the step alone would excuse every slow link there).

Records without the fields (before rank format 1.7, or a host without schedstat) make no
contention judgement: the verdicts stand as before.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from minicluster.analysis.accounting import Accounting, field_matrices
from minicluster.analysis.records import RankRecords
from minicluster.analysis.steps import r4
from minicluster.core.checks import ChecksSection

FIELDS = ("cpu_ms", "cpu_wait_ms")
MAIN_WAIT = "main_cpu_wait_ms"  # rank format 1.8: the loop thread's run-queue delay
LOOP_THREAD, ALL_THREADS = "loop_thread", "all_threads"  # whose wait the rule took


@dataclass
class CpuSteps:
    """[rank x step] `cpu_ms` and `cpu_wait_ms` of `ranks` at `steps` (NaN: not recorded), and
    `main_cpu_wait_ms` where every rank recorded it (None: a 1.7 file, or not readable)."""

    ranks: list[int]
    steps: np.ndarray
    cpu: np.ndarray
    wait: np.ndarray
    main_wait: np.ndarray | None = None

    @property
    def late_wait(self) -> tuple[np.ndarray, str]:
        """The wait the culprit and straggler rules judge lateness by, and whose it is."""
        if self.main_wait is not None:
            return self.main_wait, LOOP_THREAD
        return self.wait, ALL_THREADS


def cpu_steps(records: list[RankRecords], ranks: list[int], steps: np.ndarray) -> CpuSteps | None:
    """The ranks' CPU time and wait at `steps`; None when a rank recorded neither (older records,
    no schedstat: null in every step) or there is no step."""
    by_rank = {r.rank: r for r in records}
    if not steps.size or any(r not in by_rank for r in ranks):
        return None
    columns = [by_rank[r].columns for r in ranks]
    if not all(k in c for c in columns for k in FIELDS):
        return None
    mats = field_matrices(columns, steps, FIELDS, prev=False)
    cpu = np.asarray(mats["cpu_ms"], dtype=np.float64)
    wait = np.asarray(mats["cpu_wait_ms"], dtype=np.float64)
    if np.isnan(wait).all(axis=1).any() or np.isnan(cpu).all(axis=1).any():
        return None
    main = None
    if all(MAIN_WAIT in c for c in columns):
        main = np.asarray(
            field_matrices(columns, steps, (MAIN_WAIT,), prev=False)[MAIN_WAIT], dtype=np.float64
        )
        if np.isnan(main).all(axis=1).any():  # a rank without it: every rank's sum, as in 1.7
            main = None
    return CpuSteps(list(ranks), steps, cpu, wait, main)


def others_median(matrix: np.ndarray, row: int) -> np.ndarray:
    """Per step (column) the median of the other rows (NaN ignored; all NaN: NaN)."""
    others = np.delete(matrix, row, axis=0)
    with warnings.catch_warnings():  # a column of NaN only: NaN, said by the caller's None
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(others, axis=0)


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def is_contention(
    late_ms: float, wait_excess_ms: float, cpu_excess_ms: float, share_pct: float
) -> bool:
    """The module's rule on one rank's figures (ms per step)."""
    if not late_ms > 0:
        return False
    share = share_pct / 100.0
    return wait_excess_ms >= share * late_ms and cpu_excess_ms < share * late_ms


def judge_rank(
    own: np.ndarray, cpu: CpuSteps, row: int, cols: np.ndarray, share_pct: float
) -> dict[str, Any] | None:
    """The evidence for rank row `row` over the step columns `cols` (a bool mask): `own` is its
    [rank x step] own work (aligned with `cpu`); None when the CPU figures are missing on those
    steps. Only those columns are taken (a few steps of a [16,384 x 1,000] matrix)."""
    idx = np.flatnonzero(cols)
    late_wait, whose = cpu.late_wait
    own, wait, used = own[:, idx], late_wait[:, idx], cpu.cpu[:, idx]
    others_wait = others_median(wait, row)
    late = _mean(own[row] - others_median(own, row))
    wait_x = _mean(wait[row] - others_wait)
    cpu_x = _mean(used[row] - others_median(used, row))
    if late is None or wait_x is None or cpu_x is None:
        return None
    ev: dict[str, Any] = {
        "late_ms_per_step": r4(late),
        "cpu_wait_excess_ms_per_step": r4(wait_x),
        "cpu_excess_ms_per_step": r4(cpu_x),
        "cpu_wait_ms_mean": r4(_mean(wait[row]) or 0.0),
        "others_cpu_wait_ms_mean": r4(_mean(others_wait) or 0.0),
        # the lateness the CPU wait does not explain: judged by the rule that named the rank
        "unexplained_ms_per_step": r4(late - max(wait_x, 0.0)),
        "steps_judged": int(idx.size),
        "share_pct": share_pct,
        "wait_of": whose,
    }
    if whose == LOOP_THREAD:  # every thread's, beside it: what a 1.7 file's rule would take
        every = cpu.wait[:, idx]
        every_x = _mean(every[row] - others_median(every, row))
        ev["all_threads_cpu_wait_excess_ms_per_step"] = None if every_x is None else r4(every_x)
    ev["contention"] = is_contention(late, wait_x, cpu_x, share_pct)
    return ev


def rule_text(share_pct: float, slow_link_pct: float) -> str:
    return (
        "a late rank is host CPU contention (NOT JUDGED) when its training-loop thread's "
        "run-queue delay (every thread's in records before rank format 1.8) above the other "
        f"ranks' median covers >= {share_pct:g}% of its lateness (own work above theirs, on the "
        f"steps it was late) while its threads' CPU time above theirs is < {share_pct:g}% of it; "
        "such a rank is not named in its other role (culprit, straggler) either; a slow link on "
        "a CPU (gloo) run is, when a rank's median run-queue delay (every thread's) is >= "
        f"{slow_link_pct:g}% of its median step time and >= the transfer's shortfall against "
        "the expected busbw"
    )


def culprit_contention(
    acc: Accounting, cpu: CpuSteps | None, rank: int, share_pct: float
) -> dict[str, Any] | None:
    """A culprit's evidence on the steps it arrived last (with some lateness)."""
    if cpu is None or rank not in acc.ranks or list(cpu.ranks) != list(acc.ranks):
        return None
    row = acc.ranks.index(rank)
    cols = (acc.last == row) & (acc.lateness > 0)
    if not cols.any():
        return None
    return judge_rank(acc.own, cpu, row, cols, share_pct)


def gate_culprits(
    costs: dict[int, dict[str, Any]], judged: dict[int, dict[str, Any] | None]
) -> dict[int, dict[str, Any]]:
    """Each rank the cost rule named gets its CPU figures (`cpu` in its cost entry, from
    `judged`: `culprits_cpu` of these ranks, or of more); one whose lateness was host CPU
    contention (the share rule) is set not a culprit (`host_contention` true).
    The evidence of those, by rank."""
    out: dict[int, dict[str, Any]] = {}
    for rank, c in costs.items():
        ev = judged[rank] if c["culprit"] else None
        if ev is None:
            continue
        c["cpu"] = {k: v for k, v in ev.items() if k != "contention"}
        if ev["contention"]:  # waited for a CPU: not its fault
            c["culprit"] = False
            c["host_contention"] = True
            out[rank] = ev
    return out


def culprits_cpu(
    acc: Accounting,
    costs: dict[int, dict[str, Any]],
    records: list[RankRecords],
    checks: ChecksSection,
) -> dict[int, dict[str, Any] | None]:
    """`culprit_contention` of each rank the cost rule names (so far), by rank."""
    if not any(c["culprit"] for c in costs.values()):
        return {}
    cpu = cpu_steps(records, acc.ranks, acc.steps)
    return {
        rank: culprit_contention(acc, cpu, rank, checks.contention_share_pct)
        for rank, c in costs.items()
        if c["culprit"]
    }


def straggler_contention(
    compute: np.ndarray, cpu: CpuSteps | None, rank: int, share_pct: float
) -> dict[str, Any] | None:
    """A straggler's evidence over the measured steps (`compute`: [rank x step], aligned with
    `cpu`)."""
    if cpu is None or rank not in cpu.ranks:
        return None
    row = cpu.ranks.index(rank)
    return judge_rank(compute, cpu, row, np.ones(compute.shape[1], dtype=bool), share_pct)


def straggler_evidence(
    s: dict[str, Any], records: list[RankRecords], cpu: CpuSteps | None, checks: ChecksSection
) -> dict[str, Any] | None:
    """The evidence of straggler `s` (a `stragglers.find_stragglers` entry, judged on
    `records`): the share rule on its compute over `cpu`'s steps (`contention` true: it was host
    CPU contention); None when not measured. Aggregation and watch's live window call this one
    rule."""
    if cpu is None or s["rank"] not in cpu.ranks:
        return None
    by_rank = {r.rank: r for r in records}
    if any(rank not in by_rank for rank in cpu.ranks):
        return None
    columns = [by_rank[rank].columns for rank in cpu.ranks]
    compute = field_matrices(columns, cpu.steps, ("compute_ms",), prev=False)["compute_ms"]
    return straggler_contention(
        np.asarray(compute, dtype=np.float64), cpu, s["rank"], checks.contention_share_pct
    )


def gate_stragglers(
    stragglers: list[dict[str, Any]],
    records: list[RankRecords],
    cpu: CpuSteps | None,
    checks: ChecksSection,
) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """(the stragglers that stand, each with its CPU figures in `cpu` where measured; the
    evidence of those that were host CPU contention, by rank): `straggler_evidence` on each."""
    kept: list[dict[str, Any]] = []
    cleared: dict[int, dict[str, Any]] = {}
    for s in stragglers:
        ev = straggler_evidence(s, records, cpu, checks)
        if ev is not None and ev["contention"]:
            cleared[s["rank"]] = ev
            continue
        if ev is not None:
            s["cpu"] = {k: v for k, v in ev.items() if k != "contention"}
        kept.append(s)
    return kept, cleared


def one_cause(
    stragglers: list[dict[str, Any]],
    straggler_cleared: dict[int, dict[str, Any]],
    costs: dict[int, dict[str, Any]],
    culprit_cleared: dict[int, dict[str, Any]],
) -> list[dict[str, Any]]:
    """One rank, one cause: the stragglers that stand once a rank whose culprit role was host
    CPU contention (`culprit_cleared`, from `gate_culprits`) is no straggler either; a culprit
    whose straggler role was (`straggler_cleared`, from `gate_stragglers`) is set not a culprit
    in `costs` (`host_contention` true). The evidence kept says so (`also_not_judged`); its
    line names both roles (`rank_line`). The same lateness judged over other steps (a
    straggler's compute over all steps, a culprit's work on the steps it was last) can fall
    either side of the share: the rank is late for one cause, and the host's load was
    measured to be it. A rank NOT JUDGED in both roles gets one entry, the culprit's, naming
    both (its straggler entry is taken out of `straggler_cleared`): two lines for one rank read
    as two findings (new-user trial, 2026-12-07)."""
    for rank in [r for r in straggler_cleared if r in culprit_cleared]:
        culprit_cleared[rank]["also_not_judged"] = "straggler"
        del straggler_cleared[rank]
    for rank, ev in straggler_cleared.items():
        c = costs.get(rank)
        if c is not None and c.get("culprit"):
            c["culprit"] = False
            c["host_contention"] = True
            ev["also_not_judged"] = "culprit"
    kept: list[dict[str, Any]] = []
    for s in stragglers:
        culprit_ev = culprit_cleared.get(s["rank"])
        if culprit_ev is None:
            kept.append(s)
        else:
            culprit_ev["also_not_judged"] = "straggler"
    return kept


def link_contention(
    cpu: CpuSteps | None,
    step_time: np.ndarray | None,
    shortfall_ms: float | None,
    slow_link_pct: float,
) -> dict[str, Any] | None:
    """Whether a slow link was the ranks' threads waiting for a CPU: the rank with the largest
    median `cpu_wait_ms` against its median step time waited `slow_link_pct` of it or more, and
    at least the transfer's `shortfall_ms` (the judged transfer time less the time at the
    expected busbw, ms per step). The evidence, or None when not measured."""
    if cpu is None or step_time is None or step_time.shape != cpu.wait.shape:
        return None
    if shortfall_ms is None or not shortfall_ms > 0:
        return None
    shares = []
    for row in range(len(cpu.ranks)):
        wait = cpu.wait[row][np.isfinite(cpu.wait[row])]
        period = step_time[row][np.isfinite(step_time[row])]
        if wait.size and period.size and float(np.median(period)) > 0:
            shares.append((100.0 * float(np.median(wait)) / float(np.median(period)), row))
    if not shares:
        return None
    pct, row = max(shares)
    wait_ms = float(np.nanmedian(cpu.wait[row]))
    return {
        "rank": cpu.ranks[row],
        "cpu_wait_ms_median": r4(wait_ms),
        "step_time_ms_median": r4(float(np.nanmedian(step_time[row]))),
        "cpu_wait_pct": r4(pct),
        "threshold_pct": slow_link_pct,
        "transfer_shortfall_ms": r4(shortfall_ms),
        "steps_judged": int(cpu.steps.size),
        "contention": pct >= slow_link_pct and wait_ms >= shortfall_ms,
    }


def rank_line(finding: str, rank: int, ev: dict[str, Any], host: str | None) -> str:
    """The one line a NOT JUDGED rank gets."""
    where = f" on {host}" if host else ""
    what = "late" if finding == "culprit" else "slow in compute"
    late, wait = ev["late_ms_per_step"], ev["cpu_wait_excess_ms_per_step"]
    role = finding
    if ev.get("also_not_judged"):  # one rank, one cause: its other role not named either
        role += f", nor {ev['also_not_judged']}"
    whose = "its training thread's " if ev.get("wait_of") == LOOP_THREAD else ""
    held = f"for a CPU that other processes held ({whose}run-queue delay{where})"
    if wait < late:
        return (
            f"rank {rank} not judged ({role}): {what} {late:.1f} ms a step, {wait:.1f} of them "
            f"waiting {held}; rerun on a quiet host"
        )
    # the wait can exceed the lateness: never "10.6 of" 6.9 ms, nor "all of them (10.6 more)"
    return (
        f"rank {rank} not judged ({role}): {what} {late:.1f} ms a step, and it waited "
        f"{wait:.1f} ms a step more than the others {held}, more than its lateness; rerun on a "
        "quiet host"
    )


def link_line(ev: dict[str, Any], host: str | None) -> str:
    """The one line a slow link judged as host CPU contention gets."""
    where = f" on host {host}" if host else ""
    return (
        f"link not judged (slow link): rank {ev['rank']}'s threads waited for a CPU "
        f"{ev['cpu_wait_ms_median']:.1f} ms of its {ev['step_time_ms_median']:.1f} ms median "
        f"step ({ev['cpu_wait_pct']:.0f}%, run-queue delay{where}), more than the transfer's "
        f"{ev['transfer_shortfall_ms']:.2f} ms shortfall against the expected busbw: starved of "
        "CPU, not slowed by the link; rerun on a quiet host"
    )
