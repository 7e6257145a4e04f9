"""The all-reduce timing methods a rank can use, named once for the rank side (which times) and
the analysis side (which reports how the figures were taken)."""

from __future__ import annotations

DDP_STATS = "ddp_runtime_stats"
HOOK_HOST_CLOCK = "comm_hook_host_clock"
HOOK_CUDA_EVENTS = "comm_hook_cuda_events"
# A layout without DDP (FSDP2, TP): no gradient all-reduce hook; its collectives are timed per
# kind (`comm.kinds`), not here.
NO_DDP = "none_no_ddp"
# A layout without DDP on gloo: every collective wrapped (rank.comm_kinds); comm = union of all.
KINDS_HOST_CLOCK = "wrapped_calls_host_clock"

METHOD_TEXT = {
    DDP_STATS: "DDP's C++ runtime stats per step, read behind a guard (keys present, iteration "
    "advanced by one): first all-reduce start to last end, a span that equals the union of "
    "bucket spans only when the buckets' all-reduces leave no gap between them",
    HOOK_HOST_CLOCK: "DDP comm hook, host clock at hook entry and in the future's callback; "
    "comm = union of bucket spans",
    HOOK_CUDA_EVENTS: "DDP comm hook, CUDA events relative to a step-start event; comm = union "
    "of bucket spans",
    KINDS_HOST_CLOCK: "every collective of the step wrapped on the rank (FSDP2's and DTensor's), "
    "host clock at issue and completion; comm = union of their spans, exposed = union of the "
    "time the rank was blocked in them",
    NO_DDP: "not timed as DDP all-reduce: the layout runs without DDP (FSDP2 / tensor parallel); "
    "see comm.kinds for its collectives",
}


def describe(method: str) -> str:
    """What `method` measures, for a metric's method text (the name itself when unknown)."""
    return METHOD_TEXT.get(method, method)
