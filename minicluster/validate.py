"""Replica-consistency checksums: bit-exact sums of parameters, optimizer state and gradients.

Each value is summed through an int32 view into int64, so any changed bit changes the sum and
the order of summation does not matter. Ranks record these in their step lines; the
coordinator compares them across ranks. The gradient pair (as delivered by the all-reduce and as
applied by the optimizer) lets a rank that diverged be named even when there is no majority.
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
        flat = t.detach().reshape(-1)
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

    def record(self, model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
        """The step's checksums (call after opt.step, outside the timed region), or {}."""
        if not self.active:
            return {}
        params = [p for p in model.parameters()]
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


# float32 tolerances for DDP vs one process: the all-reduce sums the ranks' gradients in a
# different order than one matmul over the whole batch, so bits differ by rounding; over a few
# dozen SGD steps that stays orders of magnitude below these bounds, while a wrong gradient
# (a lost bucket, a corrupted value) is far above them.
EQUIVALENCE_ATOL = 1e-5
EQUIVALENCE_RTOL = 1e-3


def ddp_equivalence(
    ddp_model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    rebuild: Callable[[], Any],
    world_size: int,
    steps: int,
) -> dict[str, Any]:
    """Train a fresh single-process copy on the concatenated global batch for `steps` steps and
    compare its parameters with the DDP model's (rank 0 only; `rebuild` makes the workload)."""
    ref = rebuild()  # same seed: the same initial weights DDP started from
    ref_opt = type(opt)(ref.model.parameters(), **opt.defaults)
    for step in range(steps):
        xs, ys = zip(*(ref.make_batch(step, r) for r in range(world_size)), strict=True)
        ref_opt.zero_grad(set_to_none=True)
        ref.loss_fn(ref.model(torch.cat(xs)), torch.cat(ys)).backward()
        ref_opt.step()
    max_abs = 0.0
    max_rel = 0.0
    passed = True
    with torch.no_grad():
        for p, q in zip(ddp_model.parameters(), ref.model.parameters(), strict=True):
            diff = (p - q).abs()
            max_abs = max(max_abs, float(diff.max()))
            max_rel = max(max_rel, float((diff / q.abs().clamp_min(1e-12)).max()))
            passed = passed and bool(
                torch.allclose(p, q, atol=EQUIVALENCE_ATOL, rtol=EQUIVALENCE_RTOL)
            )
    return {
        "name": "ddp_equivalence",
        "passed": passed,
        "steps": steps,
        "world_size": world_size,
        "max_abs_diff": max_abs,
        "max_rel_diff": max_rel,
        "atol": EQUIVALENCE_ATOL,
        "rtol": EQUIVALENCE_RTOL,
        "method": "parameters after `steps` DDP steps vs one process on the concatenated global "
        "batch, same initial weights and optimizer; pass = torch.allclose(atol, rtol) on every "
        "parameter",
    }
