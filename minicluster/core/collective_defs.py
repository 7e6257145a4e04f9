"""What size, count and bus bandwidth mean for each collective, in nccl-tests' conventions.

Shared by the per-rank benchmark (`rank.collectives`), its aggregation (`analysis.collectives`),
the CLI and the reports, so each definition is written once. Stdlib only.

References (NVIDIA/nccl-tests): `doc/PERFORMANCE.md` for algbw and the busbw factors;
`src/<op>.cu` `*GetCollByteCount` for what "size" and "count" mean per op.
"""

from __future__ import annotations

from dataclasses import dataclass

from minicluster.core.choices import (
    CPU_DEFAULT_MAX_BYTES,
    GPU_DEFAULT_MAX_BYTES,
    OPS,
)
from minicluster.core.units import BYTES_PER_GB

DTYPE_BYTES: dict[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2}
# Every integer 0..2^p is exact in a binary float with p significand bits (implicit bit counted).
DTYPE_EXACT_INT: dict[str, int] = {"float32": 2**24, "float16": 2**11, "bfloat16": 2**8}

TIME_RULE = "time = mean over iters after warm-up, max across ranks"
# What `size_bytes` is per op (nccl-tests' "size" column).
SIZE_MEANING: dict[str, str] = {
    "all_reduce": "buffer bytes",
    "all_gather": "gathered output bytes (n x per-rank input)",
    "reduce_scatter": "input bytes per rank (n x per-rank output)",
    "broadcast": "buffer bytes",
    "all_to_all": "bytes sent per rank (n x per-peer chunk)",
}
# What `count` is per op (nccl-tests' "count" column: the op's count argument, in elements).
COUNT_MEANING: dict[str, str] = {
    "all_reduce": "buffer elements",
    "all_gather": "per-rank input elements",
    "reduce_scatter": "per-rank output elements",
    "broadcast": "buffer elements",
    "all_to_all": "elements per peer",
}
BUSBW_FACTOR_TEXT: dict[str, str] = {
    "all_reduce": "2(n-1)/n",
    "all_gather": "(n-1)/n",
    "reduce_scatter": "(n-1)/n",
    "broadcast": "1",
    "all_to_all": "(n-1)/n",
}
FORMULAS: dict[str, object] = {
    "algbw_gbps": "size_bytes / time_s / 1e9 (decimal GB/s)",
    "busbw_gbps": "algbw_gbps * busbw_factor (nccl-tests doc/PERFORMANCE.md)",
    "busbw_factor": BUSBW_FACTOR_TEXT,
    "size_bytes": SIZE_MEANING,
    "count": COUNT_MEANING,
    "rounding": "each size is rounded down to a multiple of n x element size; K = 1024 bytes",
}


@dataclass(frozen=True)
class OpSize:
    """The buffers of one op at one size on each rank (elements of the benchmark's dtype)."""

    op: str
    nominal_bytes: int  # the size asked for
    size_bytes: int  # rounded down to a multiple of n x element size: what algbw divides
    count: int  # nccl-tests' count column
    in_elems: int  # per-rank input buffer
    out_elems: int  # per-rank output buffer (in place for all_reduce and broadcast)


def op_size(op: str, nominal_bytes: int, world_size: int, dtype: str) -> OpSize:
    """Buffers for `op` at `nominal_bytes`, with nccl-tests' meaning of size (see SIZE_MEANING).

    Every op's size is rounded down to a multiple of n x element size (nccl-tests does it for the
    ops that split a buffer across ranks), so the rows of one nominal size compare like for like.
    """
    if op not in OPS:
        raise ValueError(f"unknown collective {op!r}; allowed: {', '.join(OPS)}")
    elem = DTYPE_BYTES[dtype]
    unit = world_size * elem
    size = nominal_bytes // unit * unit
    elems = size // elem
    per_rank = elems // world_size
    if op in ("all_reduce", "broadcast"):
        count, in_elems, out_elems = elems, elems, elems
    elif op == "all_gather":
        count, in_elems, out_elems = per_rank, per_rank, elems
    elif op == "reduce_scatter":
        count, in_elems, out_elems = per_rank, elems, per_rank
    else:  # all_to_all
        count, in_elems, out_elems = per_rank, elems, elems
    return OpSize(op, nominal_bytes, size, count, in_elems, out_elems)


def nominal_sizes(min_bytes: int, max_bytes: int, step_factor: int) -> list[int]:
    """min, min x f, min x f^2, ... up to and including max (nccl-tests -b/-e/-f)."""
    if min_bytes < 1 or step_factor < 2:
        raise ValueError("min_bytes must be >= 1 and step_factor >= 2")
    sizes = []
    size = min_bytes
    while size <= max_bytes:
        sizes.append(size)
        size *= step_factor
    return sizes


def default_max_bytes(on_gpu: bool) -> int:
    return GPU_DEFAULT_MAX_BYTES if on_gpu else CPU_DEFAULT_MAX_BYTES


def busbw_factor(op: str, world_size: int) -> float:
    """nccl-tests' bus-bandwidth correction (doc/PERFORMANCE.md, "Summary")."""
    n = world_size
    if op == "all_reduce":
        return 2 * (n - 1) / n
    if op == "broadcast":
        return 1.0
    if op in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n
    raise ValueError(f"unknown collective {op!r}; allowed: {', '.join(OPS)}")


def algbw_gbps(size_bytes: int, time_us: float) -> float:
    """Algorithm bandwidth: size / time, in decimal GB/s (1 GB = 1e9 bytes, as nccl-tests)."""
    return size_bytes / (time_us / 1e6) / BYTES_PER_GB


def busbw_gbps(op: str, size_bytes: int, time_us: float, world_size: int) -> float:
    return algbw_gbps(size_bytes, time_us) * busbw_factor(op, world_size)
