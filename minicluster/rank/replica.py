"""Replica-consistency checksums: bit-exact sums of parameters, optimizer state and gradients.

Each value is summed through an int32 view into int64, so any changed bit changes the sum and
the order of summation does not matter. Ranks record these in their step records; aggregation
(`analysis.fault_detect`) compares them across ranks. The gradient pair (as delivered by the
all-reduce and as applied by the optimizer) lets a rank that diverged be named even when there
is no majority.
"""

# No `from __future__ import annotations`: DDP.register_comm_hook compares the hook's annotations
# with dist.GradBucket and Future[Tensor] at runtime (see timing.py).

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist


def bits_sum(tensors: Iterable[torch.Tensor]) -> int:
    """Sum of the 32-bit patterns of every element (float32 tensors), as a Python int."""
    total = 0
    for t in tensors:
        to_local = getattr(t, "to_local", None)  # a DTensor (FSDP2 shard, TP slice): this rank's
        flat = (to_local() if callable(to_local) else t).detach().reshape(-1)
        if flat.dtype != torch.float32:
            flat = flat.float()
        total += int(flat.view(torch.int32).sum(dtype=torch.int64))
    return total


class ReplicaChecker:
    """Records checksums every `every` steps; wraps the DDP comm hook to see the reduced gradient."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.active = False
        self._received: list[int] = []

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def begin_step(self, step: int) -> None:
        self.active = self.due(step)
        self._received = []

    def wrap_comm_hook(self, hook: Callable[..., Any]) -> Callable[..., Any]:
        if self.every <= 0:
            return hook
        checker = self

        def checked(state: object, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
            fut = hook(state, bucket)
            if not checker.active:
                return fut

            def received(f: torch.futures.Future[torch.Tensor]) -> torch.Tensor:
                out = f.value()
                checker._received.append(bits_sum([out]))
                return out

            return fut.then(received)

        return checked

    def watch_optimizer(self, opt: torch.optim.Optimizer) -> None:
        """For a layout other than DDP (no comm hook): take the gradient as the collectives
        delivered it (FSDP2's reduce-scatter, TP's all-reduces, EP's sync; this rank's shards)
        when the optimizer step begins. Register it before any other step pre-hook that changes
        the gradient (the fault injector's), after the ones that complete it (EP's sync)."""
        if self.every <= 0:
            return
        checker = self

        def delivered(o: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
            if checker.active:
                grads = [p.grad for g in o.param_groups for p in g["params"] if p.grad is not None]
                checker._received = [bits_sum(grads)]

        opt.register_step_pre_hook(delivered)

    def record(self, model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
        """The step's checksums (call after opt.step, outside the timed region), or {}."""
        if not self.active:
            return {}
        params = list(model.parameters())
        state = [
            v for p in params for v in opt.state.get(p, {}).values() if isinstance(v, torch.Tensor)
        ]
        grads = [p.grad for p in params if p.grad is not None]
        return {
            "param_checksum": bits_sum(params),
            "optim_checksum": bits_sum(state),
            "grad_applied_checksum": bits_sum(grads),
            "grad_reduced_checksum": sum(self._received) if self._received else None,
        }
