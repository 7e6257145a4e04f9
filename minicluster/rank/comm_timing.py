"""All-reduce timing per DDP bucket: a comm hook with host clocks (gloo) or CUDA events (NCCL).

gloo completes a bucket's future on its own thread only when the data is reduced, so a host
clock read in the future's callback is the end of the transfer. NCCL futures complete when the
kernel is enqueued, so there the hook records CUDA events on the stream instead.
"""

# No `from __future__ import annotations` here: DDP.register_comm_hook compares the hook's
# annotations with dist.GradBucket and Future[Tensor] at runtime, and strings fail that check.

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class StepComm:
    """One step's communication figures, in ms."""

    comm_ms: float  # time with at least one all-reduce in flight (union of bucket spans)
    exposed_comm_ms: float  # end of backward compute (last bucket ready) to end of last all-reduce
    buckets: int
    bytes: int
    # Host time from a bucket being ready to its all-reduce being issued, max over buckets: the
    # rank's own delay in the comm path (None where the timer does not measure it).
    issue_delay_ms: float | None = None


def union_ms(spans: list[tuple[int, int]]) -> float:
    """Total length in ms of the union of [start_ns, end_ns) spans."""
    total = 0
    cur_start: int | None = None
    cur_end: int | None = None
    for start, end in sorted(spans):
        if cur_end is None or start > cur_end:
            if cur_end is not None and cur_start is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None and cur_start is not None:
        total += cur_end - cur_start
    return total / 1e6


@dataclass
class HostClockCommTimer:
    """DDP comm hook that all-reduces (mean) each bucket and records host-clock spans (gloo)."""

    world_size: int
    spans: list[tuple[int, int, int]] = field(default_factory=list)  # (start_ns, end_ns, bytes)
    issue_ns: list[int] = field(default_factory=list)  # bucket ready -> all-reduce issued
    before_issue: Callable[[], None] | None = None  # fault injection (slow_link) only

    def hook(self, _state: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        start = time.perf_counter_ns()
        buf = bucket.buffer()
        buf.div_(self.world_size)
        if self.before_issue is not None:
            self.before_issue()
        self.issue_ns.append(time.perf_counter_ns() - start)
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
        issue_ns, self.issue_ns = self.issue_ns, []
        if not spans:
            return StepComm(0.0, 0.0, 0, 0)
        last_ready = max(s for s, _, _ in spans)
        last_done = max(e for _, e, _ in spans)
        return StepComm(
            comm_ms=union_ms([(s, e) for s, e, _ in spans]),
            exposed_comm_ms=max(0, last_done - last_ready) / 1e6,
            buckets=len(spans),
            bytes=sum(b for _, _, b in spans),
            issue_delay_ms=max(issue_ns) / 1e6 if issue_ns else None,
        )


@dataclass
class CudaEventCommTimer:
    """DDP comm hook timing each bucket with CUDA events (NCCL): ready, start and end of transfer.

    Buckets run in order on NCCL's stream, so the sum of bucket times is the time with an
    all-reduce in flight. Read after the step's device synchronize.
    """

    world_size: int
    events: list[tuple[Any, Any, int]] = field(default_factory=list)  # (start_ev, end_ev, bytes)

    def hook(self, _state: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        start = torch.cuda.Event(enable_timing=True)
        start.record()  # on the compute stream: the bucket's gradients are ready here
        buf = bucket.buffer()
        buf.div_(self.world_size)
        fut = dist.all_reduce(buf, async_op=True).get_future()
        entry: list[Any] = [start, None, buf.numel() * buf.element_size()]
        self.events.append(entry)  # type: ignore[arg-type]

        def done(f: torch.futures.Future[list[torch.Tensor]]) -> torch.Tensor:
            end = torch.cuda.Event(enable_timing=True)
            end.record()  # the callback's stream waits for the all-reduce to finish
            entry[1] = end
            return f.value()[0]

        return fut.then(done)

    def take_step(self) -> StepComm:
        events, self.events = self.events, []
        done = [(s, e, b) for s, e, b in events if e is not None]
        if not done:
            return StepComm(0.0, 0.0, 0, 0)
        comm = sum(s.elapsed_time(e) for s, e, _ in done)
        exposed = max(0.0, done[-1][0].elapsed_time(done[-1][1]))
        return StepComm(comm, exposed, len(done), sum(b for _, _, b in done))


def ddp_logging_cross_check(ddp_model: Any) -> dict[str, Any]:
    """DDP's own C++ comm timers (a private, prototype API): running means in ms, or why not."""
    try:
        data = ddp_model._get_ddp_logging_data()
    except Exception as e:  # private API: absent or changed in this torch build
        return {"status": "unavailable", "reason": f"DDP logging data not readable: {e}"}
    comm_ns = data.get("avg_backward_comm_time")
    overlap_ns = data.get("avg_backward_compute_comm_overlap_time")
    if not comm_ns:
        return {"status": "unavailable", "reason": "DDP recorded no sampled iterations"}
    return {
        "status": "measured",
        "method": "DistributedDataParallel._get_ddp_logging_data (sampled iterations)",
        "avg_backward_comm_time_ms": comm_ns / 1e6,
        "avg_backward_compute_comm_overlap_time_ms": (overlap_ns or 0) / 1e6,
        "comm_hook": data.get("comm_hook", ""),
    }


@dataclass
class DdpStatsCommTimer:
    """DDP's own C++ timers, made current and read after every step (a private, prototype API).

    Cheaper than a Python comm hook (DDP keeps its C++ all-reduce path). `backward_comm_time`
    spans the first bucket's all-reduce start to the last one's end; exposed communication is
    last all-reduce end minus backward compute end, as in the hook timers. On NCCL, DDP times
    with CUDA events; read after the step's device synchronize.
    """

    ddp: Any

    def take_step(self) -> StepComm:
        # DDP logs an iteration's timers at the next forward; log them now so the figures
        # belong to the step just finished rather than the one before.
        self.ddp.logger.set_runtime_stats_and_log()
        data = self.ddp._get_ddp_logging_data()
        comm_ns = data.get("backward_comm_time")
        if comm_ns is None:
            return StepComm(0.0, 0.0, 0, 0)
        exposed_ns = data.get("backward_comm_time_end", 0) - data.get(
            "backward_compute_time_end", 0
        )
        sizes = [s for s in str(data.get("bucket_sizes", "")).split(",") if s.strip()]
        return StepComm(
            comm_ms=comm_ns / 1e6,
            exposed_comm_ms=max(0, exposed_ns) / 1e6,
            buckets=len(sizes),
            bytes=sum(int(s) for s in sizes),
        )


CommTimer = HostClockCommTimer | CudaEventCommTimer | DdpStatsCommTimer


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
            ddp._set_ddp_runtime_logging_sample_rate(1)
            if getattr(ddp, "logger", None) is None:
                raise AttributeError("DDP has no logger")
            return DdpStatsCommTimer(ddp), "ddp_runtime_stats", None
        except Exception as e:  # private API: absent or changed in this torch build
            fallback = f"DDP runtime stats unavailable ({e}); using the comm hook"
    timer: CommTimer
    if backend == "nccl":
        timer, used = CudaEventCommTimer(world_size), "comm_hook_cuda_events"
    else:
        timer, used = HostClockCommTimer(world_size), "comm_hook_host_clock"
    ddp.register_comm_hook(None, wrap_hook(timer.hook) if wrap_hook else timer.hook)
    try:  # DDP's timers sampled every 10 iterations: a cross-check at ~0 cost
        ddp._set_ddp_runtime_logging_sample_rate(10)
    except Exception:  # private API
        pass
    return timer, used, fallback
