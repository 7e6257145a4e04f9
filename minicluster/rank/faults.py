"""Rank-side fault injection: make this rank slow, crash, hang or corrupt its gradient on purpose.

The specs come parsed and checked from `fault_spec`; each rank acts only on its own. Every fault
is placed where the real failure would sit, so the measurements have to find it on their own:
a straggler's delay inside forward compute, a slow link's delay in the transport (the slow
rank's all-reduce data leave late, so every rank's transfer ends late, as over a slow link, while
its compute stays on time), a corrupted gradient between the all-reduce and the optimizer.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from typing import Any

import torch
import torch.distributed as dist

from minicluster.core.fault_spec import FaultSpec
from minicluster.rank.mean_hook import mean_hook as _mean_hook

log = logging.getLogger(__name__)

CRASH_EXIT_CODE = 86  # arbitrary but recognisable in the launcher's report


class FaultInjector:
    """Acts on the faults aimed at `rank`; a no-op when there are none."""

    def __init__(self, faults: tuple[FaultSpec, ...], rank: int) -> None:
        self.faults = [f for f in faults if f.rank == rank]
        self.rank = rank
        self.step = -1

    def install(
        self, ddp: Any, opt: torch.optim.Optimizer, hook_registered: bool, world_size: int
    ) -> None:
        """Register the hooks the persistent and gradient faults need. `hook_registered`: the
        timer already gave DDP a Python comm hook (which calls `dist.all_reduce`)."""
        if self._of("straggler"):
            ddp.module.register_forward_pre_hook(self._straggle)
        if self._of("slow_link"):
            transport = SlowTransport(self)
            dist.all_reduce = transport.all_reduce
            if not hook_registered:  # DDP's C++ all-reduce would bypass the slow transport
                ddp.register_comm_hook(None, transport.bucket_hook(world_size))
        if self._of("corrupt_grad"):
            opt.register_step_pre_hook(self._corrupt)

    def link_delay_s(self) -> float:
        """This step's slow-link delay per all-reduce, in seconds (0 on a healthy rank)."""
        return sum(f.delay_ms or 0 for f in self._of("slow_link") if self.step >= f.from_step) / 1e3

    def begin_step(self, step: int) -> None:
        """Called before each step: a crash or a hang fires here, before the step's compute."""
        self.step = step
        for f in self.faults:
            if f.step != step:
                continue
            if f.kind == "crash":
                log.warning("fault injected: %s (os._exit)", f)
                sys.stderr.flush()
                os._exit(CRASH_EXIT_CODE)  # no finally, no summary: as abrupt as a real crash
            if f.kind == "hang":
                log.warning("fault injected: %s (blocking forever)", f)
                threading.Event().wait()  # the launcher's SIGTERM/SIGKILL ends it

    def _of(self, kind: str) -> list[FaultSpec]:
        return [f for f in self.faults if f.kind == kind]

    def _straggle(self, _module: torch.nn.Module, _inputs: Any) -> None:
        self._delay("straggler")

    def _delay(self, kind: str) -> None:
        delay_ms = sum(f.delay_ms or 0 for f in self._of(kind) if self.step >= f.from_step)
        if delay_ms:
            time.sleep(delay_ms / 1e3)

    def _corrupt(self, opt: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
        if not any(f.step == self.step for f in self._of("corrupt_grad")):
            return
        for group in opt.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    with torch.no_grad():
                        p.grad.view(-1)[0] += 1.0  # one element, after the all-reduce
                    log.warning("fault injected: corrupt_grad at step %d", self.step)
                    return


class _DelayedWork:
    """What `dist.all_reduce(..., async_op=True)` returns, for an all-reduce issued later."""

    def __init__(self) -> None:
        self.future: torch.futures.Future[list[torch.Tensor]] = torch.futures.Future()

    def get_future(self) -> torch.futures.Future[list[torch.Tensor]]:
        return self.future

    def wait(self) -> bool:
        self.future.wait()
        return True


class SlowTransport:
    """A slow link on this rank: each all-reduce it issues leaves `link_delay_s` late, sent in
    order from one sender thread, so the autograd thread is not held (compute stays on time)
    and every rank's transfer of that buffer ends late, exactly as over a slow link."""

    def __init__(self, injector: FaultInjector) -> None:
        self.injector = injector
        self.real_all_reduce = dist.all_reduce
        self.queue: queue.Queue[tuple[torch.Tensor, Any, _DelayedWork, float]] = queue.Queue()
        threading.Thread(target=self._send, name="slow-link", daemon=True).start()

    def all_reduce(
        self,
        tensor: torch.Tensor,
        op: Any = dist.ReduceOp.SUM,
        group: Any = None,
        async_op: bool = False,
    ) -> Any:
        work = _DelayedWork()
        self.queue.put((tensor, op, work, self.injector.link_delay_s()))
        if async_op:
            return work
        work.wait()
        return None

    def _send(self) -> None:
        while True:
            tensor, op, work, delay_s = self.queue.get()
            if delay_s:
                time.sleep(delay_s)
            try:
                self.real_all_reduce(tensor, op=op, async_op=True).wait()
            except Exception as e:  # the peer failed: hand the error to the waiting hook
                work.future.set_exception(e)  # type: ignore[arg-type]  # torch's stub types it T
                continue
            work.future.set_result([tensor])

    def bucket_hook(self, world_size: int) -> Any:
        """A plain all-reduce (mean) comm hook through this transport, for a run timed without
        one (DDP's own stats): DDP's built-in all-reduce would not pass through it."""
        return _mean_hook(world_size)
