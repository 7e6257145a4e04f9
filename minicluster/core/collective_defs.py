"""What size, count and bus bandwidth mean for each collective, in nccl-tests' conventions.

One spec per op (`SPECS`), as nccl-tests keeps one struct per op: shared by the per-rank
benchmark (`rank/collectives.py`), its aggregation (`analysis/collectives.py`), the CLI and the
reports, so each definition is written once. Stdlib only (the torch call of each op is the one
thing the benchmark adds).

References (NVIDIA/nccl-tests): `doc/PERFORMANCE.md` for algbw and the busbw factors;
`src/<op>.cu` `*GetCollByteCount` for what "size" and "count" mean per op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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

# The checked pattern (rank/collectives.py): rank s puts (s * RANK_STEP + key) % p at each input
# element, key the element's place: its index, or for an input split into per-rank chunks of c
# elements, chunk * CHUNK_STEP + offset. CHUNK_STEP != RANK_STEP: an all_to_all that transposes
# ranks and chunks is caught too.
RANK_STEP = 1
CHUNK_STEP = 3


def plain_key(i: Any, c: int) -> Any:
    """The key of input element i: its index."""
    return i


def chunked_key(i: Any, c: int) -> Any:
    """The key of input element i of a buffer split into per-rank chunks of c elements."""
    return (i // c) * CHUNK_STEP + i % c


@dataclass(frozen=True)
class OpSpec:
    """One collective, as nccl-tests keeps one `struct testColl` per op: what its size and count
    mean (`src/<op>.cu` `*GetCollByteCount`), its bus-bandwidth factor (`doc/PERFORMANCE.md`),
    its buffers and the values its output must hold.

    Sizes: `elems` is the op's size in elements (rounded down to a multiple of n), `per_rank`
    = elems / n. Expected output values, for output index i (integer arithmetic that works on
    ints and on index tensors alike), c = the per-rank chunk (= `count` for the chunked ops):
    - a summing op (`reduces`): output element i holds the sum over ranks s of
      (s * RANK_STEP + out_key(i)) % p;
    - a moving op: output element i holds (src * RANK_STEP + key) % p of rank src's input,
      (src, key) = `source(i, c, rank, root)`.
    """

    name: str
    size_meaning: str  # what `size_bytes` is (nccl-tests' "size" column)
    count_meaning: str  # what `count` is (nccl-tests' "count" column: the op's count argument)
    busbw_factor_text: str
    busbw_factor: Callable[[int], float]  # n -> factor
    count: Callable[[int, int], int]  # (elems, per_rank) -> count
    in_elems: Callable[[int, int], int]  # per-rank input buffer
    out_elems: Callable[[int, int], int]  # per-rank output buffer (ignored when in place)
    in_place: bool  # the output is the input buffer (all_reduce, broadcast)
    in_key: Callable[[Any, int], Any]  # (i, c) -> the key of input element i
    reduces: bool
    out_key: Callable[[Any, int, int], Any] | None = None  # (i, c, rank), summing ops
    source: Callable[[Any, int, int, int], tuple[Any, Any]] | None = None  # (i, c, rank, root)
    rooted: bool = False  # only the root's input counts (broadcast): the others' start unset


SPECS: tuple[OpSpec, ...] = (
    OpSpec(
        name="all_reduce",
        size_meaning="buffer bytes",
        count_meaning="buffer elements",
        busbw_factor_text="2(n-1)/n",
        busbw_factor=lambda n: 2 * (n - 1) / n,
        count=lambda elems, per_rank: elems,
        in_elems=lambda elems, per_rank: elems,
        out_elems=lambda elems, per_rank: elems,
        in_place=True,
        in_key=plain_key,
        reduces=True,
        out_key=lambda i, c, rank: i,
    ),
    OpSpec(
        name="all_gather",
        size_meaning="gathered output bytes (n x per-rank input)",
        count_meaning="per-rank input elements",
        busbw_factor_text="(n-1)/n",
        busbw_factor=lambda n: (n - 1) / n,
        count=lambda elems, per_rank: per_rank,
        in_elems=lambda elems, per_rank: per_rank,
        out_elems=lambda elems, per_rank: elems,
        in_place=False,
        in_key=plain_key,
        reduces=False,
        source=lambda i, c, rank, root: (i // c, i % c),  # out[s*c + k] is rank s's input k
    ),
    OpSpec(
        name="reduce_scatter",
        size_meaning="input bytes per rank (n x per-rank output)",
        count_meaning="per-rank output elements",
        busbw_factor_text="(n-1)/n",
        busbw_factor=lambda n: (n - 1) / n,
        count=lambda elems, per_rank: per_rank,
        in_elems=lambda elems, per_rank: elems,
        out_elems=lambda elems, per_rank: per_rank,
        in_place=False,
        in_key=chunked_key,
        reduces=True,
        out_key=lambda i, c, rank: rank * CHUNK_STEP + i,  # rank r gets the sum of chunk r
    ),
    OpSpec(
        name="broadcast",
        size_meaning="buffer bytes",
        count_meaning="buffer elements",
        busbw_factor_text="1",
        busbw_factor=lambda n: 1.0,
        count=lambda elems, per_rank: elems,
        in_elems=lambda elems, per_rank: elems,
        out_elems=lambda elems, per_rank: elems,
        in_place=True,
        in_key=plain_key,
        reduces=False,
        source=lambda i, c, rank, root: (root, i),
        rooted=True,
    ),
    OpSpec(
        name="all_to_all",
        size_meaning="bytes sent per rank (n x per-peer chunk)",
        count_meaning="elements per peer",
        busbw_factor_text="(n-1)/n",
        busbw_factor=lambda n: (n - 1) / n,
        count=lambda elems, per_rank: per_rank,
        in_elems=lambda elems, per_rank: elems,
        out_elems=lambda elems, per_rank: elems,
        in_place=False,
        in_key=chunked_key,
        reduces=False,
        # rank s sends its chunk r to rank r's chunk s: out[s*c + k] = s's value at (r, k)
        source=lambda i, c, rank, root: (i // c, rank * CHUNK_STEP + i % c),
    ),
)
BY_NAME: dict[str, OpSpec] = {spec.name: spec for spec in SPECS}
assert tuple(BY_NAME) == OPS, "one spec per op, in report order"


def spec(op: str) -> OpSpec:
    """`op`'s spec; ValueError naming the allowed ops for an unknown one."""
    try:
        return BY_NAME[op]
    except KeyError:
        raise ValueError(f"unknown collective {op!r}; allowed: {', '.join(OPS)}") from None


# What the result's `collectives.formulas` block and the reports say, from the specs.
SIZE_MEANING: dict[str, str] = {s.name: s.size_meaning for s in SPECS}
COUNT_MEANING: dict[str, str] = {s.name: s.count_meaning for s in SPECS}
BUSBW_FACTOR_TEXT: dict[str, str] = {s.name: s.busbw_factor_text for s in SPECS}
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
    s = spec(op)
    elem = DTYPE_BYTES[dtype]
    unit = world_size * elem
    size = nominal_bytes // unit * unit
    elems = size // elem
    per_rank = elems // world_size
    in_elems = s.in_elems(elems, per_rank)
    out_elems = in_elems if s.in_place else s.out_elems(elems, per_rank)
    return OpSize(op, nominal_bytes, size, s.count(elems, per_rank), in_elems, out_elems)


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
    return spec(op).busbw_factor(world_size)


def algbw_gbps(size_bytes: int, time_us: float) -> float:
    """Algorithm bandwidth: size / time, in decimal GB/s (1 GB = 1e9 bytes, as nccl-tests)."""
    return size_bytes / (time_us / 1e6) / BYTES_PER_GB


def busbw_gbps(op: str, size_bytes: int, time_us: float, world_size: int) -> float:
    return algbw_gbps(size_bytes, time_us) * busbw_factor(op, world_size)
