"""Rank-side fault injection: make this rank slow, crash, be killed, hang or corrupt its gradient.

The specs come parsed and checked from `fault_spec`; each rank acts only on those that name it. Every fault
is placed where the real failure would sit, so the measurements have to find it on their own:
a straggler's (or a drift's) delay inside forward compute, a pause between two steps (after the
optimizer step, where a GC or a checkpoint write sits), a slow link's delay in the transport (the data a
slow link carries leave late, so the transfer ends late on every rank it reaches, as over a slow
link, while compute stays on time), a corrupted gradient between the all-reduce and the optimizer.
"""

from __future__ import annotations

import inspect
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol

from minicluster.core import fault_spec
from minicluster.core.fault_spec import FaultSpec
from minicluster.rank import comm_kinds
from minicluster.rank.mean_hook import mean_hook

log = logging.getLogger(__name__)

CRASH_EXIT_CODE = 86  # arbitrary but recognisable in the launcher's report
# the c10d collectives a slow link carries besides all_reduce (FSDP2's, and older torch's names)
C10D_COLLECTIVES = (
    "all_gather_into_tensor",
    "all_gather_single",
    "reduce_scatter_tensor",
    "reduce_scatter_single",
    "broadcast",
    "all_to_all_single",
)


class FaultInjector:
    """Acts on the faults aimed at `rank` (for a per-link slow link: at either end); a no-op when
    there are none."""

    def __init__(self, faults: tuple[FaultSpec, ...], rank: int) -> None:
        self.faults = [f for f in faults if rank in f.endpoints]
        self.rank = rank
        self.step = -1
        self.transport: SlowTransport | None = None

    def install(
        self,
        module: torch.nn.Module,
        ddp: Any,
        opt: torch.optim.Optimizer,
        hook_registered: bool,
        world_size: int,
    ) -> None:
        """Register the hooks the persistent and gradient faults need on `module` (the model
        forward runs; inside DDP, or laid out by FSDP2/TP when `ddp` is None). `hook_registered`:
        the timer already gave DDP a Python comm hook (which calls `dist.all_reduce`)."""
        if self._of("straggler") or self._of("drift"):
            module.register_forward_pre_hook(self._straggle)
        if (self.transport is not None or self.install_transport()) and (
            ddp is not None and not hook_registered
        ):
            # DDP's C++ all-reduce would bypass the slow transport
            ddp.register_comm_hook(None, mean_hook(world_size))
        if self._of("corrupt_grad"):
            opt.register_step_pre_hook(self._corrupt)

    def install_transport(self) -> bool:
        """Route this rank's collectives and sends through a slow transport when a slow link
        touches it (once; a layout run installs it before the per-kind tracker, which then
        times the delay as the collective's); True when one does."""
        if not self._of("slow_link"):
            return False
        if self.transport is None:
            self.transport = SlowTransport(self)
            self.transport.install()
        return True

    def link_delay_s(self, peers: frozenset[int]) -> float:
        """This step's slow-link delay in seconds for data this rank sends to `peers` (one
        destination, or the other ranks of a collective's group); 0 on a healthy link.

        A slow link without a peer is every link of its rank; one with a peer is the link between
        the two ranks, which carries the traffic of a send between them or of a collective on
        the group of just the two.
        """
        delay_ms = 0
        for f in self._of("slow_link"):
            if self.step < f.from_step:
                continue
            other = None if f.peer is None else (f.peer if self.rank == f.rank else f.rank)
            if other is None or peers == {other}:
                delay_ms += f.delay_ms or 0
        return delay_ms / 1e3

    def begin_step(self, step: int) -> None:
        """Called before each step: a crash or a hang fires here, before the step's compute.
        A collectives job calls it once with 0: the whole benchmark is its one step."""
        self.step = step
        pause_ms = sum(f.delay_at_ms(step) for f in self._of("pause"))
        if pause_ms:  # between two steps: after the last optimizer step, before this batch
            time.sleep(pause_ms / 1e3)
        for f in self.faults:
            if f.step != step:
                continue
            if f.kind == "crash":
                log.warning("fault injected: %s (os._exit)", f)
                sys.stderr.flush()
                os._exit(CRASH_EXIT_CODE)  # no finally, no summary: as abrupt as a real crash
            if f.kind == "kill":
                sig = f.signal or fault_spec.DEFAULT_KILL_SIGNAL
                log.warning("fault injected: %s (os.kill(own pid, %d))", f, sig)
                sys.stderr.flush()
                # As the OOM killer or earlyoom would: a signal to this process alone, from
                # outside the launcher, no summary.
                os.kill(os.getpid(), sig)
                threading.Event().wait()  # SIGTERM is delivered asynchronously: wait for it
            if f.kind == "hang":
                log.warning("fault injected: %s (blocking forever)", f)
                threading.Event().wait()  # the launcher's SIGTERM/SIGKILL ends it

    def _of(self, kind: str) -> list[FaultSpec]:
        return [f for f in self.faults if f.kind == kind]

    def _straggle(self, _module: torch.nn.Module, _inputs: Any) -> None:
        delay_ms = sum(
            f.delay_at_ms(self.step) for f in (*self._of("straggler"), *self._of("drift"))
        )
        if delay_ms:
            time.sleep(delay_ms / 1e3)

    def _corrupt(self, opt: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
        if not any(f.step == self.step for f in self._of("corrupt_grad")):
            return
        for group in opt.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    # A DTensor (FSDP2 shard, TP slice): this rank's own part of it
                    local = getattr(p.grad, "to_local", None)
                    grad = local() if callable(local) else p.grad
                    with torch.no_grad():
                        grad.view(-1)[0] += 1.0  # one element, after the all-reduce
                    log.warning("fault injected: corrupt_grad at step %d", self.step)
                    return


class _DelayedWork:
    """What an async collective or `isend` returns, for one the slow link issues later."""

    def __init__(self) -> None:
        self.future: torch.futures.Future[list[torch.Tensor]] = torch.futures.Future()

    def get_future(self) -> torch.futures.Future[list[torch.Tensor]]:
        return self.future

    def wait(self, timeout: Any = None) -> bool:
        self.future.wait()
        return True

    def is_completed(self) -> bool:
        return self.future.done()


class SlowTransport(comm_kinds.Patches):
    """A slow link at this rank: every collective and send it carries leaves `link_delay_s`
    late, issued in order from one sender thread, so the caller is not held (compute stays on
    time) and the transfer ends late on every rank, exactly as over a slow link. Receives are
    left alone: the data of a slow link reach them late because the sender's leave late (with a
    peer, both ends of the link delay what they send to the other: both directions are slow).

    The entry points are the Python ones the layouts really call (looked up on the package at
    each call): DDP's comm hook calls `dist.all_reduce`; FSDP2 calls `dist.all_gather_single`
    and `dist.reduce_scatter_single` (`*_into_tensor` / `*_tensor` on older torch) and, under
    HSDP, `dist.all_reduce`; pipelining sends with `dist.isend`; DTensor (tensor parallel)
    calls the functional collectives of `torch.distributed._functional_collectives`. A c10d
    call the caller waits for (async_op False) blocks it until the delayed transfer is done,
    as it would over a slow link; an async one blocks it only until the delayed call is issued
    (it needs a real Work back). A functional collective is issued on the caller's thread once
    the sender queue is empty and the delay has passed: DTensor waits for its result at once, so
    the caller waits for the late data either way, inside the collective (timed as its).
    """

    def __init__(self, injector: FaultInjector) -> None:
        super().__init__()
        self.injector = injector
        self.real_all_reduce = dist.all_reduce
        self.real_isend = dist.isend
        self.queue: queue.Queue[tuple[Callable[[], Any], Any, _DelayedWork, float]] = queue.Queue()
        threading.Thread(target=self._send, name="slow-link", daemon=True).start()

    def install(self) -> None:
        """Replace `torch.distributed`'s collectives, isend and send, and the functional
        collectives, with this transport's."""
        self._patch(dist, "all_reduce", self.all_reduce)
        self._patch(dist, "isend", self.isend)
        self._patch(dist, "send", self.send)
        for name in C10D_COLLECTIVES:
            if hasattr(dist, name):
                self._patch(dist, name, self._c10d(getattr(dist, name)))
        for name, (_kind, gpos, _scaled) in comm_kinds.FUNCOL_CALLS.items():
            if hasattr(funcol, name):
                self._patch(funcol, name, self._funcol(getattr(funcol, name), gpos))

    def _others(self, group: Any) -> frozenset[int]:
        return frozenset(dist.get_process_group_ranks(group or dist.group.WORLD)) - {
            self.injector.rank
        }

    def all_reduce(
        self,
        tensor: torch.Tensor,
        op: Any = dist.ReduceOp.SUM,
        group: Any = None,
        async_op: bool = False,
    ) -> Any:
        return self._issue(
            lambda: self.real_all_reduce(tensor, op=op, group=group, async_op=True),
            tensor,
            self.injector.link_delay_s(self._others(group)),
            async_op,
        )

    def _c10d(self, real: Callable[..., Any]) -> Callable[..., Any]:
        """A c10d collective (all-gather, reduce-scatter, broadcast, all-to-all) through the
        sender thread."""
        sig = inspect.signature(real)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            bound = sig.bind(*args, **kwargs)
            group = bound.arguments.get("group")
            async_op = bool(bound.arguments.get("async_op", False))
            bound.arguments["async_op"] = True
            delay_s = self.injector.link_delay_s(self._others(group))
            if not async_op:
                return self._issue(lambda: real(*bound.args, **bound.kwargs), None, delay_s, False)
            # the caller needs the real Work: held until the delayed call is issued
            issued: queue.Queue[Any] = queue.Queue(maxsize=1)

            def call() -> Any:
                try:
                    work = real(*bound.args, **bound.kwargs)
                except Exception as e:
                    issued.put(e)
                    raise
                issued.put(work)
                return work

            self._issue(call, None, delay_s, True)
            got = issued.get()
            if isinstance(got, Exception):
                raise got
            return got

        return wrapped

    def _funcol(self, real: Callable[..., Any], gpos: int) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if torch.compiler.is_compiling():
                return real(*args, **kwargs)  # traced into a graph: nothing runs here
            group = kwargs.get("group", args[gpos] if len(args) > gpos else None)
            others = comm_kinds.funcol_group_ranks(group)
            delay_s = (
                0.0
                if others is None
                else self.injector.link_delay_s(frozenset(others) - {self.injector.rank})
            )
            # after every call queued before it (the order of issue is the order on the wire)
            self._issue(lambda: None, None, delay_s, False)
            return real(*args, **kwargs)

        return wrapped

    def isend(self, tensor: torch.Tensor, dst: int, group: Any = None, tag: int = 0) -> Any:
        return self._issue(
            lambda: self.real_isend(tensor, dst, group=group, tag=tag),
            tensor,
            self.injector.link_delay_s(frozenset({dst})),
            async_op=True,
        )

    def send(self, tensor: torch.Tensor, dst: int, group: Any = None, tag: int = 0) -> None:
        self.isend(tensor, dst, group=group, tag=tag).wait()

    def _issue(
        self, call: Callable[[], Any], tensor: torch.Tensor | None, delay_s: float, async_op: bool
    ) -> Any:
        work = _DelayedWork()
        self.queue.put((call, tensor, work, delay_s))
        if async_op:
            return work
        work.wait()
        return None

    def _send(self) -> None:
        while True:
            call, tensor, work, delay_s = self.queue.get()
            if delay_s:
                time.sleep(delay_s)
            try:
                issued = call()
                if issued is not None:
                    issued.wait()
            except Exception as e:  # the peer failed: hand the error to the waiting caller
                work.future.set_exception(e)  # type: ignore[arg-type]  # (torch's stub)
                continue
            work.future.set_result([] if tensor is None else [tensor])
