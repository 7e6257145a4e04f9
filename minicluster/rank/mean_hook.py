"""A DDP comm hook that all-reduces each bucket through `torch.distributed.all_reduce` and divides
by the world size: DDP's own all-reduce, but on the Python path a fault can reach."""

# No `from __future__ import annotations`: DDP.register_comm_hook checks these annotations.

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist


def mean_hook(
    world_size: int,
) -> Callable[[Any, dist.GradBucket], torch.futures.Future[torch.Tensor]]:
    """The hook for `ddp.register_comm_hook(None, ...)`."""

    def hook(_state: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        buf = bucket.buffer()
        buf.div_(world_size)
        fut = dist.all_reduce(buf, async_op=True).get_future()
        return fut.then(lambda f: f.value()[0])

    return hook
