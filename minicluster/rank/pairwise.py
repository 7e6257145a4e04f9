"""The pairwise link test on one rank: every pair of ranks (or of nodes) exchanges one fixed-size
buffer in both directions, checked element by element, then timed, in round-robin rounds of
disjoint pairs (`core.pairs`).

Per pair (a, b), a < b: one checked exchange (a sends its pattern to b, then b to a; each
receiver counts the elements that differ from the sender's closed-form pattern), `warmup_iters`
untimed exchanges, then per direction a barrier of the two and `iters` transfers back to back,
timed together with the host clock (`time.perf_counter_ns`; on CUDA the device is synchronized
before the clock is read), as nccl-tests times its loop: time = mean per transfer on each rank,
then the max of the two ranks' means (max across ranks). The bytes travel by
`torch.distributed.isend`/`irecv` (`TRANSPORT`); busbw = algbw for send/recv (nccl-tests'
sendrecv). After every round, every rank meets at a barrier, so rounds never overlap. The whole
schedule runs `passes` times; each pass records its own time (the analysis keeps the fastest).
Then every pair the passes flag slow (the times gathered from every rank, judged by
`core.pair_recheck.flagged`, the analysis's rule) is measured again, alone, in
`recheck_rounds` rounds, each beside a healthy pair (warm-up and timed loop as above, no check),
every rank at a barrier after each measurement: one `pair_recheck` record per measurement.

Runs inside an initialized process group; the worker owns set-up, records and teardown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as tdist

from minicluster.core import pair_recheck, pairs
from minicluster.core.collective_defs import DTYPE_BYTES, RANK_STEP, algbw_gbps
from minicluster.core.config import CollectivesSection
from minicluster.core.errors import ConfigError
from minicluster.core.rank_format import Pair, PairPlan, PairRecheck
from minicluster.rank.collectives import (
    MOVE_PRIME,
    NOT_WRITTEN,
    TORCH_DTYPES,
    count_wrong,
    pattern,
)

log = logging.getLogger(__name__)

TRANSPORT = "send_recv"
Emit = Callable[[PairPlan | Pair | PairRecheck], None]


def participants(per: str, nodes: list[str]) -> list[int]:
    """The ranks that take part: every rank, or per node the lowest rank on it (in node order of
    first appearance). `nodes[r]` is rank r's node."""
    if per == "rank":
        return list(range(len(nodes)))
    first: dict[str, int] = {}
    for rank, node in enumerate(nodes):
        first.setdefault(node, rank)
    return list(first.values())


def gather_participants(
    section: CollectivesSection, world_size: int, node: str, test: str
) -> tuple[list[Any], list[int]]:
    """Every rank's node (gathered) and the ranks that take part (`participants`); ConfigError
    when a per-node `test` finds all ranks on one node."""
    nodes: list[Any] = [None] * world_size
    tdist.all_gather_object(nodes, node)
    who = participants(section.per, nodes)
    if len(who) < 2:
        # every rank sees the same nodes, so every rank stops here alike
        raise ConfigError(
            f"collectives.per is node but all {world_size} ranks are on one node ({node}): "
            f"{test} per node needs ranks on two nodes or more"
        )
    return nodes, who


def element_count(section: CollectivesSection) -> tuple[int, int]:
    """(bytes per element, elements) of `pair_bytes` in the section's dtype; ConfigError when
    it is below one element."""
    elem = DTYPE_BYTES[section.dtype]
    count = section.pair_bytes // elem
    if count == 0:
        raise ConfigError(
            f"collectives.pair_bytes is {section.pair_bytes} B, below one {section.dtype} element"
        )
    return elem, count


def run_pairwise(
    section: CollectivesSection,
    rank: int,
    world_size: int,
    node: str,
    device: torch.device,
    emit: Emit,
    progress: bool = False,
) -> None:
    """Every scheduled pair this rank is in; `emit` gets the plan, then one record per pair."""
    nodes, who = gather_participants(section, world_size, node, "a link test")
    rounds = pairs.round_robin(who)
    if section.schedule == "serial":
        rounds = pairs.serial(rounds)
    elem, count = element_count(section)
    emit(
        PairPlan(
            per=section.per,
            schedule=section.schedule,
            transport=TRANSPORT,
            participants=who,
            nodes=nodes,
            size_bytes=count * elem,
            nominal_bytes=section.pair_bytes,
            count=count,
            dtype=section.dtype,
            iters=section.iters,
            warmup_iters=section.warmup_iters,
            passes=section.passes,
        )
    )
    link = _Link(section, rank, count, device)
    mine = [(i, p) for i, r in enumerate(rounds) for p in r if rank in p]
    total = section.passes * len(rounds)
    measured: list[Pair] = []
    for n_pass in range(section.passes):
        next_pair = 0
        for i in range(len(rounds)):
            if next_pair < len(mine) and mine[next_pair][0] == i:
                record = link.pair(n_pass, i, mine[next_pair][1])
                measured.append(record)
                emit(record)
                next_pair += 1
            link.barrier()  # the next round starts when every pair of this one is done
            done = n_pass * len(rounds) + i + 1
            if progress and rank == 0 and done % max(1, total // 5) == 0:
                log.info("pairwise: round %d/%d done", done, total)
    if section.recheck_rounds > 0:
        scheduled = [p for r in rounds for p in r]
        of = {r: str(n) for r, n in enumerate(nodes)}
        recheck(section, rank, world_size, scheduled, measured, link, emit, of)


def best_busbw(records: list[list[Any]], size: int) -> dict[pairs.Pair, float]:
    """Each pair's busbw as the analysis takes it: per direction the fastest pass of the max over
    the pair's ranks, the pair's time the slower direction's. records: [a, b, pass, ab, ba]."""
    by_pass: dict[pairs.Pair, dict[int, list[float]]] = {}
    for a, b, n_pass, ab, ba in records:
        cur = by_pass.setdefault((a, b), {}).setdefault(n_pass, [0.0, 0.0])
        cur[0], cur[1] = max(cur[0], ab), max(cur[1], ba)
    out = {}
    for p, passes in by_pass.items():
        time_us = max(min(t[0] for t in passes.values()), min(t[1] for t in passes.values()))
        if time_us > 0:
            out[p] = algbw_gbps(size, time_us)
    return out


def recheck(
    section: CollectivesSection,
    rank: int,
    world_size: int,
    scheduled: list[pairs.Pair],
    measured: list[Pair],
    link: _Link,
    emit: Emit,
    nodes: dict[int, str] | None = None,
) -> None:
    """Re-measure every pair the passes flag slow beside healthy pairs (`core.pair_recheck`):
    every rank gathers every pair's times, judges them alike and takes part in the barriers
    (`nodes`: every rank's node, for the slow-node rule)."""
    mine = [
        [m.a, m.b, m.pass_, m.time_us_ab_max, m.time_us_ba_max]
        for m in measured
        if m.status == "measured" and m.time_us_ab_max and m.time_us_ba_max
    ]
    gathered: list[Any] = [None] * world_size
    tdist.all_gather_object(gathered, mine)
    busbw = best_busbw([r for g in gathered for r in g], link.size)
    ordered = {p: busbw[p] for p in scheduled if p in busbw}
    slow = pair_recheck.flagged(
        ordered, section.outlier_z, section.min_busbw_gbps, section.pair_mad_floor, nodes
    )
    healthy = [p for p in ordered if p not in slow]
    for flagged in slow:
        plan = pair_recheck.schedule(flagged, healthy, section.recheck_rounds)
        if rank == 0 and plan:
            log.info(
                "pairwise: pair %d-%d flagged slow: re-measured in %d rounds beside healthy pairs",
                *flagged,
                section.recheck_rounds,
            )
        elif rank == 0:  # one pair (2 ranks), or every pair flagged: nothing to stand beside
            log.info(
                "pairwise: pair %d-%d flagged slow: not re-measured, no healthy pair to measure "
                "it beside (the passes decide)",
                *flagged,
            )
        for k, role, p in plan:
            if rank in p:
                emit(link.remeasure(k, role, flagged, p))
            link.barrier()


class _Link:
    """This rank's buffers and the exchanges with one peer at a time."""

    def __init__(self, section: CollectivesSection, rank: int, count: int, device: torch.device):
        self.s = section
        self.rank = rank
        self.device = device
        self.sync = torch.cuda.synchronize if device.type == "cuda" else _no_sync
        self.prime = MOVE_PRIME[section.dtype]
        dt = TORCH_DTYPES[section.dtype]
        p = self.prime
        # rank s sends (s + i) % p at element i: a value from the wrong rank or offset differs
        self.send_buf = pattern(count, lambda i: (rank * RANK_STEP + i) % p, dt, device)
        self.recv_buf = torch.full((count,), NOT_WRITTEN, dtype=dt, device=device)
        self.size = count * DTYPE_BYTES[section.dtype]

    def pair(self, n_pass: int, round_index: int, pair: pairs.Pair) -> Pair:
        """Check, warm up and time the pair (a, b) this rank is in: its `pair` record."""
        a, b = pair
        peer = b if self.rank == a else a
        p = self.prime
        self.recv_buf.fill_(NOT_WRITTEN)
        self._transfer(a, b)
        self._transfer(b, a)
        wrong = count_wrong(self.recv_buf, lambda i: (peer * RANK_STEP + i) % p)
        own, both = self._warm_and_time(a, b, peer)
        return Pair(
            pass_=n_pass,
            round=round_index,
            a=a,
            b=b,
            status="measured",
            time_us_ab=own[0],
            time_us_ba=own[1],
            time_us_ab_max=both[0],
            time_us_ba_max=both[1],
            wrong=wrong,
            t_unix_s=time.time(),
        )

    def remeasure(
        self, round_index: int, role: str, flagged: pairs.Pair, pair: pairs.Pair
    ) -> PairRecheck:
        """Warm up and time the pair (a, b) this rank is in again, as `pair` does (no check):
        its `pair_recheck` record for the re-measure of `flagged`."""
        a, b = pair
        own, both = self._warm_and_time(a, b, b if self.rank == a else a)
        return PairRecheck(
            fa=flagged[0],
            fb=flagged[1],
            round=round_index,
            role=role,
            a=a,
            b=b,
            status="measured",
            time_us_ab=own[0],
            time_us_ba=own[1],
            time_us_ab_max=both[0],
            time_us_ba_max=both[1],
            t_unix_s=time.time(),
        )

    def _warm_and_time(self, a: int, b: int, peer: int) -> tuple[list[float], list[float]]:
        """Warm up, then time a -> b and b -> a: this rank's mean times (us) and the larger of
        its and its peer's, each as [a->b, b->a]."""
        for _ in range(self.s.warmup_iters):
            self._transfer(a, b)
            self._transfer(b, a)
        mine = torch.tensor(
            [self._timed_mean_us(a, b, peer), self._timed_mean_us(b, a, peer)],
            dtype=torch.float64,
            device=self.device,
        )
        theirs = self._exchange(peer, mine.clone())
        return mine.tolist(), torch.maximum(mine, theirs).tolist()

    def _transfer(self, src: int, dst: int) -> None:
        """One transfer src -> dst (this rank is one of them)."""
        if self.rank == src:
            _wait(tdist.isend(self.send_buf, dst))
        else:
            _wait(tdist.irecv(self.recv_buf, src))

    def _timed_mean_us(self, src: int, dst: int, peer: int) -> float:
        """`iters` transfers src -> dst back to back after a barrier of the two: the mean per
        transfer here, in us."""
        self._exchange(peer, torch.zeros(2, dtype=torch.float64, device=self.device))
        t0 = time.perf_counter_ns()
        for _ in range(self.s.iters):
            self._transfer(src, dst)
        self.sync()  # NCCL returns once queued: the device finishes before the clock is read
        return (time.perf_counter_ns() - t0) / self.s.iters / 1e3

    def _exchange(self, peer: int, mine: torch.Tensor) -> torch.Tensor:
        """Swap a small tensor with `peer` (the lower rank sends first): theirs comes back."""
        theirs = torch.empty_like(mine)
        if self.rank < peer:
            _wait(tdist.isend(mine, peer))
            _wait(tdist.irecv(theirs, peer))
        else:
            _wait(tdist.irecv(theirs, peer))
            _wait(tdist.isend(mine, peer))
        self.sync()
        return theirs

    def barrier(self) -> None:
        """Every rank of the world (an all_reduce, then the device drained)."""
        tdist.all_reduce(torch.ones(1, device=self.device))
        self.sync()


def _wait(work: tdist.Work | None) -> None:
    """Wait for a point-to-point transfer (torch types isend/irecv as maybe returning None)."""
    assert work is not None, "isend/irecv returned no work object"
    work.wait()


def _no_sync() -> None:
    pass
