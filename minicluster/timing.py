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
