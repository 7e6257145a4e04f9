"""All-reduce timing per step, one definition for every method: `comm_ms` is the time with at least
one gradient all-reduce in flight (the union of bucket spans).

- `HostClockCommTimer` (gloo): a DDP comm hook; host clock at hook entry and in the future's
  callback, which gloo runs only when the data is reduced.
- `CudaEventCommTimer` (NCCL): the same hook with CUDA events, because NCCL futures complete when
  the kernel is enqueued; every event is taken relative to a step-start event, so bucket spans
  can be unioned (queued buckets overlap: summing them would count time twice).
- `DdpStatsCommTimer`: DDP's own C++ timers through the guarded reader in `ddp_stats`; a span
  from the first all-reduce start to the last end (its method text says so).

A step whose figures cannot be trusted gets `comm_ms = None` and a reason, never 0.
"""

# No `from __future__ import annotations` here: DDP.register_comm_hook compares the hook's
# annotations with dist.GradBucket and Future[Tensor] at runtime, and strings fail that check.

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from minicluster.core import comm_methods
from minicluster.rank import ddp_stats

HOST_CLOCK = comm_methods.HOOK_HOST_CLOCK
CUDA_EVENTS = comm_methods.HOOK_CUDA_EVENTS


@dataclass
class StepComm:
    """One step's communication figures in ms; None (with `reason`) when not measured."""

    comm_ms: float | None  # time with at least one all-reduce in flight
    exposed_comm_ms: float | None  # end of backward compute (last bucket ready) to end of last
    buckets: int | None
    bytes: int | None
    reason: str | None = None


NO_ALLREDUCE = StepComm(None, None, 0, 0, "no gradient all-reduce ran in this step")


def union_ms(spans: list[tuple[float, float]]) -> float:
    """Total length of the union of [start, end) spans (same unit in as out)."""
    total = 0.0
    cur_start: float | None = None
    cur_end: float | None = None
    for start, end in sorted(spans):
        if cur_end is None or start > cur_end:
            if cur_end is not None and cur_start is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None and cur_start is not None:
        total += cur_end - cur_start
    return total


def spans_to_step(spans: list[tuple[float, float, int]]) -> StepComm:
    """(start_ms, end_ms, bytes) per bucket, on one clock -> the step's figures."""
    if not spans:
        return NO_ALLREDUCE
    last_ready = max(s for s, _, _ in spans)
    last_done = max(e for _, e, _ in spans)
    return StepComm(
        comm_ms=union_ms([(s, e) for s, e, _ in spans]),
        exposed_comm_ms=max(0.0, last_done - last_ready),
        buckets=len(spans),
        bytes=sum(b for _, _, b in spans),
    )


@dataclass
class HostClockCommTimer:
    """DDP comm hook that all-reduces (mean) each bucket and records host-clock spans (gloo)."""

    world_size: int
    spans: list[tuple[int, int, int]] = field(default_factory=list)  # (start_ns, end_ns, bytes)

    def begin_step(self) -> None:
        """Nothing to mark: host clocks of one process share an origin."""

    def hook(self, _state: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        start = time.perf_counter_ns()
        buf = bucket.buffer()
        buf.div_(self.world_size)
        fut = dist.all_reduce(buf, async_op=True).get_future()
        n_bytes = buf.numel() * buf.element_size()
        spans = self.spans

        def done(f: torch.futures.Future[list[torch.Tensor]]) -> torch.Tensor:
            spans.append((start, time.perf_counter_ns(), n_bytes))
            return f.value()[0]

        return fut.then(done)

    def take_step(self) -> StepComm:
        """The figures of the step just finished; resets for the next step."""
        spans, self.spans = self.spans, []
        return spans_to_step([(s / 1e6, e / 1e6, b) for s, e, b in spans])


@dataclass
class CudaEventCommTimer:
    """DDP comm hook timing each bucket with CUDA events (NCCL): ready and end of transfer, both
    relative to an event recorded when the step began. Read after the step's device sync."""

    world_size: int
    events: list[list[Any]] = field(default_factory=list)  # [start_ev, end_ev | None, bytes]
    step_start: Any = None

    def begin_step(self) -> None:
        """Record the step's origin on the current stream (before forward)."""
        self.step_start = torch.cuda.Event(enable_timing=True)
        self.step_start.record()

    def hook(self, _state: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        start = torch.cuda.Event(enable_timing=True)
        start.record()  # on the compute stream: the bucket's gradients are ready here
        buf = bucket.buffer()
        buf.div_(self.world_size)
        fut = dist.all_reduce(buf, async_op=True).get_future()
        entry: list[Any] = [start, None, buf.numel() * buf.element_size()]
        self.events.append(entry)

        def done(f: torch.futures.Future[list[torch.Tensor]]) -> torch.Tensor:
            end = torch.cuda.Event(enable_timing=True)
            end.record()  # the callback's stream waits for the all-reduce to finish
            entry[1] = end
            return f.value()[0]

        return fut.then(done)

    def take_step(self) -> StepComm:
        events, self.events = self.events, []
        origin = self.step_start
        if origin is None:
            return StepComm(None, None, None, None, "no step-start event was recorded")
        done = [(s, e, b) for s, e, b in events if e is not None]
        spans = [(origin.elapsed_time(s), origin.elapsed_time(e), b) for s, e, b in done]
        return spans_to_step(spans)


@dataclass
class DdpStatsCommTimer:
    """DDP's own C++ timers, read behind `ddp_stats`' guard after every step (no Python hook on
    DDP's all-reduce path). On NCCL, DDP times with CUDA events; read after the device sync."""

    stats: ddp_stats.DdpRuntimeStats

    def begin_step(self) -> None:
        """DDP starts its own timers."""

    def take_step(self) -> StepComm:
        got = self.stats.read()
        if got.reason is not None:
            return StepComm(None, None, None, None, got.reason)
        assert got.comm_ns is not None and got.exposed_ns is not None
        return StepComm(got.comm_ns / 1e6, got.exposed_ns / 1e6, got.buckets, got.bytes)

    @property
    def given_up(self) -> bool:
        return self.stats.given_up


@dataclass
class NoDdpTimer:
    """A layout without DDP: no gradient all-reduce to time here; every step says so."""

    def begin_step(self) -> None:
        """Nothing to mark."""

    def take_step(self) -> StepComm:
        return StepComm(
            None, None, None, None, "no DDP in this layout: its collectives are timed per kind"
        )


CommTimer = HostClockCommTimer | CudaEventCommTimer | DdpStatsCommTimer | NoDdpTimer


def hook_timer(
    backend: str, world_size: int
) -> tuple[HostClockCommTimer | CudaEventCommTimer, str]:
    """The comm-hook timer for `backend`: CUDA events on NCCL, the host clock elsewhere."""
    if backend == "nccl":
        return CudaEventCommTimer(world_size), CUDA_EVENTS
    return HostClockCommTimer(world_size), HOST_CLOCK


def attach_comm_timer(
    ddp: Any,
    method: str,
    backend: str,
    world_size: int,
    wrap_hook: Callable[[Any], Any] | None = None,
) -> tuple[CommTimer, str, str | None]:
    """Attach the requested all-reduce timer: (timer, method used, why it fell back or None).

    `ddp_stats` falls back to the comm hook when this torch build lacks DDP's runtime stats.
    `wrap_hook` wraps the timing hook before it is registered (hook method only).
    """
    fallback = None
    if method == "ddp_stats":
        try:
            return DdpStatsCommTimer(ddp_stats.DdpRuntimeStats.attach(ddp)), ddp_stats.METHOD, None
        except Exception as e:  # private API: absent or changed in this torch build
            fallback = (
                f"DDP runtime stats unavailable ({type(e).__name__}: {e}); using the comm hook"
            )
    timer, used = hook_timer(backend, world_size)
    ddp.register_comm_hook(None, wrap_hook(timer.hook) if wrap_hook else timer.hook)
    ddp_stats.sample_for_cross_check(ddp)
    return timer, used, fallback


def switch_to_hook(ddp: Any, backend: str, world_size: int) -> tuple[CommTimer, str]:
    """Replace a failing DDP-stats timer by the comm hook mid-run (DDP takes one hook, once)."""
    timer, used = hook_timer(backend, world_size)
    ddp.register_comm_hook(None, timer.hook)
    return timer, used
