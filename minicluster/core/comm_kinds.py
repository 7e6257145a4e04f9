"""Collective kinds a training step issues, named once for the rank side (which times them) and the
analysis side (which reports `comm.kinds`): the kinds, what their bytes count, their busbw factor
(nccl-tests `doc/PERFORMANCE.md`, through `collective_defs`' op specs) and the timing methods."""

from __future__ import annotations

from minicluster.core import collective_defs

KINDS = ("all_gather", "reduce_scatter", "all_reduce", "send_recv", "all_to_all", "broadcast")
LABELS = {
    "all_gather": "all-gather",
    "reduce_scatter": "reduce-scatter",
    "all_reduce": "all-reduce",
    "send_recv": "send/recv",
    "all_to_all": "all-to-all",
    "broadcast": "broadcast",
}
BYTES_TEXT = {
    "all_gather": "gathered output bytes",
    "reduce_scatter": "input bytes",
    "all_reduce": "buffer bytes",
    "send_recv": "tensor bytes sent or received",
    "all_to_all": "bytes sent by the rank",
    "broadcast": "buffer bytes",
}

# How a kind's calls were timed.
WRAPPED_HOST_CLOCK = "wrapped_calls_host_clock"
DDP_ALLREDUCE = "ddp_allreduce_timer"
METHOD_TEXT = {
    WRAPPED_HOST_CLOCK: "torch.distributed collectives and functional collectives (DTensor) "
    "wrapped on the rank; host clock at issue and at completion (a Work's future, which gloo "
    "completes when the data arrived; a functional collective waited at once); exposed = time "
    "the caller was blocked (a synchronous call, a Work.wait, a functional collective's wait)",
    DDP_ALLREDUCE: "the DDP gradient all-reduce as the run's timing_method measured it (comm_ms "
    "and exposed_comm_ms of each step; bytes and buckets where the method counts them)",
}


def busbw_factor(kind: str, n: int) -> float:
    """nccl-tests' bus-bandwidth factor of `kind` on a group of `n` ranks (send/recv: 1)."""
    if kind == "send_recv":
        return 1.0
    return collective_defs.busbw_factor(kind, n)


def busbw_factor_text(kind: str) -> str:
    return "1" if kind == "send_recv" else collective_defs.BUSBW_FACTOR_TEXT[kind]
