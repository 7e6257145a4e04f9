"""Isolation by group testing on one rank: round after round, all_reduce at one size on the
groups `core.group_testing` plans (torch.distributed subgroups of the same job), the measured
busbw gathered so that every rank plans the next round from the same numbers.

Per group: one checked all_reduce (SUM of each rank's rank + 1: every element must come back
as the group's sum), `warmup_iters` untimed calls, then per pass a barrier of the group and
`iters` calls back to back timed with the host clock (on CUDA the device is synchronized before
the clock is read), as nccl-tests times its loop: time = mean per call on each rank, max over
the group's ranks, the fastest of `passes` loops (a slow link is slow every time; a busy host
slows a healthy group now and then). busbw = size / time x 2(n-1)/n (nccl-tests all_reduce).
A round's disjoint groups run at once; every rank meets at a barrier between rounds.

Runs inside an initialized process group; the worker owns set-up, records and teardown.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as tdist

from minicluster.core import group_testing as gt
from minicluster.core.collective_defs import busbw_gbps
from minicluster.core.config import CollectivesSection
from minicluster.core.errors import ConfigError
from minicluster.core.rank_format import IsolatePlan, IsolateRound
from minicluster.rank.collectives import TORCH_DTYPES
from minicluster.rank.pairwise import element_count, gather_participants

log = logging.getLogger(__name__)

Emit = Callable[[IsolatePlan | IsolateRound], None]


def params_of(section: CollectivesSection, n_units: int) -> gt.Params:
    """The search's parameters from the config (ConfigError when they do not fit the units)."""
    try:
        return gt.Params(
            n_units=n_units,
            max_bad=section.max_bad,
            group_size=section.group_size,
            z=section.isolate_z,
            mad_floor=section.isolate_mad_floor,
            lone_scale=section.isolate_lone_scale,
            min_busbw_gbps=section.min_busbw_gbps,
            max_rounds=section.max_rounds,
        )
    except ValueError as e:
        raise ConfigError(f"collectives (pattern isolate): {e}") from None


def run_isolate(
    section: CollectivesSection,
    rank: int,
    world_size: int,
    node: str,
    device: torch.device,
    emit: Emit,
    progress: bool = False,
) -> None:
    """The whole search; `emit` gets the plan, then one record per round."""
    nodes, who = gather_participants(section, world_size, node, "group testing")
    params = params_of(section, len(who))
    elem, count = element_count(section)
    emit(
        IsolatePlan(
            per=section.per,
            participants=who,
            nodes=nodes,
            size_bytes=count * elem,
            nominal_bytes=section.pair_bytes,
            count=count,
            dtype=section.dtype,
            iters=section.iters,
            warmup_iters=section.warmup_iters,
            passes=section.passes,
            params=dataclasses.asdict(params),
            reference=section.reference,
        )
    )
    bench = _GroupBench(section, rank, count, device)
    state = gt.start(params)
    while (groups := gt.plan(state)) is not None:
        ranks = [[who[u] for u in g.units] for g in groups]
        handles = [tdist.new_group(r) for r in ranks]  # every rank creates every group, in order
        mine = [(i, h) for i, (r, h) in enumerate(zip(ranks, handles, strict=True)) if rank in r]
        # [time_us, wrong] of each group, filled by the group's first rank, summed over the world
        table = torch.zeros(len(groups), 2, dtype=torch.float64, device=device)
        for i, handle in mine:
            time_us, wrong = bench.measure(handle, ranks[i])
            if rank == ranks[i][0]:
                table[i, 0], table[i, 1] = time_us, wrong
        tdist.all_reduce(table)  # also the barrier between rounds
        bench.sync()
        rows = table.cpu().tolist()
        for g, r, (time_us, wrong) in zip(groups, ranks, rows, strict=True):
            g.busbw_gbps = busbw_gbps("all_reduce", count * elem, time_us, len(r))
            g.wrong = int(wrong)
        gt.record(state, groups)
        emit(
            IsolateRound(
                round=len(state.rounds),
                groups=[list(g.units) for g in groups],
                roles=[g.role for g in groups],
                time_us=[row[0] for row in rows],
                busbw_gbps=[g.busbw_gbps for g in groups],
                wrong=[g.wrong for g in groups],
                t_unix_s=time.time(),
            )
        )
        if progress and rank == 0:
            slow = [g.units for g in groups if g.slow]
            log.info("isolate: round %d: %d groups, slow: %s", len(state.rounds), len(groups), slow)
        for handle in handles:
            if handle is not None and handle != tdist.GroupMember.NON_GROUP_MEMBER:
                tdist.destroy_process_group(handle)


class _GroupBench:
    """This rank's buffers and the timed all_reduce on one group at a time."""

    def __init__(self, section: CollectivesSection, rank: int, count: int, device: torch.device):
        self.s = section
        self.rank = rank
        self.device = device
        self.sync = torch.cuda.synchronize if device.type == "cuda" else _no_sync
        dt = TORCH_DTYPES[section.dtype]
        self.check = torch.empty(count, dtype=dt, device=device)
        # zeros stay zeros under SUM however many calls run (a pattern would overflow)
        self.timed = torch.zeros(count, dtype=dt, device=device)

    def measure(self, group: Any, ranks: list[int]) -> tuple[float, int]:
        """Check, warm up and time the all_reduce on `group` (this rank is in `ranks`):
        (time in us, max over the group's ranks of the fastest pass's mean; #wrong here)."""
        self.check.fill_(self.rank + 1)
        tdist.all_reduce(self.check, group=group)
        expected = float(sum(r + 1 for r in ranks))
        wrong = int((self.check != expected).sum().item())
        for _ in range(self.s.warmup_iters):
            tdist.all_reduce(self.timed, group=group)
        best = float("inf")
        for _ in range(self.s.passes):
            tdist.barrier(group=group)
            self.sync()
            t0 = time.perf_counter_ns()
            for _ in range(self.s.iters):
                tdist.all_reduce(self.timed, group=group)
            self.sync()  # NCCL returns once queued: the device finishes before the clock is read
            best = min(best, (time.perf_counter_ns() - t0) / self.s.iters / 1e3)
        out = torch.tensor([best, float(wrong)], dtype=torch.float64, device=self.device)
        tdist.all_reduce(out, op=tdist.ReduceOp.MAX, group=group)
        time_us, wrong_max = out.tolist()
        return time_us, int(wrong_max)


def _no_sync() -> None:
    pass
