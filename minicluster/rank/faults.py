"""Rank-side fault injection: make this rank slow, crash, hang or corrupt its gradient on purpose.

The specs come parsed and checked from `fault_spec`; each rank acts only on its own. Every fault
is placed where the real failure would sit, so the measurements have to find it on their own:
a straggler's delay inside forward compute, a slow link's delay between the bucket being ready
and the all-reduce being issued, a corrupted gradient between the all-reduce and the optimizer.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from typing import Any

import torch

from minicluster.core.errors import ConfigError
from minicluster.core.fault_spec import FaultSpec

log = logging.getLogger(__name__)

CRASH_EXIT_CODE = 86  # arbitrary but recognisable in the launcher's report


class FaultInjector:
    """Acts on the faults aimed at `rank`; a no-op when there are none."""

    def __init__(self, faults: tuple[FaultSpec, ...], rank: int) -> None:
        self.faults = [f for f in faults if f.rank == rank]
        self.rank = rank
        self.step = -1

    def install(self, model: torch.nn.Module, opt: torch.optim.Optimizer, timer: Any) -> None:
        """Register the hooks the persistent and gradient faults need."""
        if self._of("straggler"):
            model.register_forward_pre_hook(self._straggle)
        if self._of("slow_link"):
            if not hasattr(timer, "before_issue"):
                raise ConfigError("slow_link needs the host-clock comm timer (gloo backend)")
            timer.before_issue = functools.partial(self._delay, "slow_link")
        if self._of("corrupt_grad"):
            opt.register_step_pre_hook(self._corrupt)

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
