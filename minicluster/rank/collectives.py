"""The collective micro-benchmark on one rank: per op and message size, check the result, then time it.

nccl-tests' method (github.com/NVIDIA/nccl-tests): for each op and size, one call whose output
is compared element by element with closed-form expected values (#wrong), `warmup_iters`
untimed calls, a barrier, then `iters` calls timed together with the host clock
(`time.perf_counter_ns`); on CUDA the device is synchronized before the clock is read, as
nccl-tests synchronizes its stream before stopping its timer (the calls are queued
back to back, so no per-call event is needed). This rank's mean time per call is recorded
with the max of that mean across ranks (an all_reduce MAX): `time = mean over iters after
warm-up, max across ranks`.

Runs inside an initialized process group; the worker owns set-up, records and teardown.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist

from minicluster.core import collective_defs
from minicluster.core.collective_defs import (
    DTYPE_BYTES,
    DTYPE_EXACT_INT,
    RANK_STEP,
    OpSize,
    op_size,
)
from minicluster.core.config import CollectivesSection
from minicluster.core.errors import ConfigError
from minicluster.core.rank_format import Collective

log = logging.getLogger(__name__)

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
CHUNK_ELEMS = 1 << 24  # fill and check in chunks: bounded int64 temporaries at 256M+ on a GPU
# The pattern (collective_defs: RANK_STEP, CHUNK_STEP, each op's keys): with p prime, a result
# that takes a value from the wrong rank, the wrong chunk or the wrong offset (shifted by less
# than p places) differs from the expected value, and for the summing ops every partial sum
# stays an exact small integer (n x (p - 1) <= the largest exact integer). p = 2 or 3 would not
# separate the steps; the moved values take the largest prime the dtype holds, so the pattern
# repeats as rarely as possible.
MOVE_PRIME: dict[str, int] = {"float32": 65521, "float16": 2039, "bfloat16": 251}
NOT_WRITTEN = -1.0  # outputs start as this, so an element an op never writes counts as wrong

# torch 2.13 renamed the tensor collectives (the old names warn); torch >= 2.2 has the old ones.
_all_gather_tensor = getattr(tdist, "all_gather_single", None) or tdist.all_gather_into_tensor
_reduce_scatter_tensor = (
    getattr(tdist, "reduce_scatter_single", None) or tdist.reduce_scatter_tensor
)

Emit = Callable[[Collective], None]


def _largest_prime_at_most(x: int) -> int | None:
    for p in range(x, 1, -1):
        if all(p % d for d in range(2, math.isqrt(p) + 1)):
            return p
    return None


def sum_prime(world_size: int, dtype: str) -> int | None:
    """p for the summing ops: the largest prime such that sums over ranks of values < p stay
    exact in `dtype`; None when not even 2 does (no exact check then).

    While p > n (float32 up to 4,094 ranks, float16 up to 44, bfloat16 up to 16) every element
    that is misplaced by less than p places, or summed from the wrong chunk, changes the sum:
    each rank's value moves by the same nonzero step mod p, so n steps cannot cancel.
    """
    return _largest_prime_at_most(min(MOVE_PRIME[dtype], DTYPE_EXACT_INT[dtype] // world_size + 1))


@dataclass
class OpCase:
    """One op at one size on this rank: its buffers, one call, and the expected output."""

    shape: OpSize
    run: Callable[[], Any]
    inp: torch.Tensor
    out: torch.Tensor  # the input itself for the in-place ops (all_reduce, broadcast)
    # index (int64 tensor) -> expected output value there; None when no exact check exists
    expected: Callable[[torch.Tensor], torch.Tensor] | None
    before_timing: Callable[[], Any] | None = None
    check_reason: str | None = None  # why `expected` is None


# Each op's call on this rank's buffers (the one thing the op specs of `collective_defs` leave to
# torch): (input, output, root) -> work. The tensor collectives are looked up when called.
CALLS: dict[str, Callable[[torch.Tensor, torch.Tensor, int], Any]] = {
    "all_reduce": lambda inp, out, root: tdist.all_reduce(inp),
    "all_gather": lambda inp, out, root: _all_gather_tensor(out, inp),
    "reduce_scatter": lambda inp, out, root: _reduce_scatter_tensor(out, inp),
    "broadcast": lambda inp, out, root: tdist.broadcast(inp, src=root),
    "all_to_all": lambda inp, out, root: tdist.all_to_all_single(out, inp),
}


def make_case(
    op: str,
    shape: OpSize,
    rank: int,
    world_size: int,
    root: int,
    dtype: str,
    device: torch.device,
) -> OpCase:
    """Allocate and fill `op`'s buffers at `shape` with rank- and place-dependent values, as its
    spec (`collective_defs.SPECS`) says: the input pattern, the buffers, the expected output."""
    s = collective_defs.spec(op)
    dt = TORCH_DTYPES[dtype]
    c = shape.count
    reason = None
    if s.reduces:
        p = sum_prime(world_size, dtype)
        if p is None:
            reason = (
                f"{dtype} cannot hold sums over {world_size} ranks of values that tell them "
                "apart: result not checked"
            )
        mod = p or 1
    else:
        p = mod = MOVE_PRIME[dtype]
    if s.rooted and rank != root:
        inp = torch.full((shape.in_elems,), NOT_WRITTEN, dtype=dt, device=device)
    else:
        inp = pattern(
            shape.in_elems, lambda i: (rank * RANK_STEP + s.in_key(i, c)) % mod, dt, device
        )
    out = (
        inp if s.in_place else torch.full((shape.out_elems,), NOT_WRITTEN, dtype=dt, device=device)
    )
    expected: Callable[[torch.Tensor], torch.Tensor] | None
    if s.reduces:
        assert s.out_key is not None
        out_key = s.out_key
        # sums[k] = sum over ranks src of (src * RANK_STEP + k) % p: the expected sum at key k
        keys = torch.arange(mod, dtype=torch.int64, device=device)
        sums = torch.zeros(mod, dtype=torch.int64, device=device)
        for src in range(world_size if p else 0):
            sums += (src * RANK_STEP + keys) % mod
        expected = (lambda i: sums[out_key(i, c, rank) % mod]) if p else None
    else:
        assert s.source is not None
        source = s.source

        def expected(i: torch.Tensor) -> torch.Tensor:
            src, key = source(i, c, rank, root)
            return (src * RANK_STEP + key) % mod

    call = CALLS[op]

    def zero() -> None:
        inp.zero_()  # in place, so timed calls keep summing: zeros never overflow

    return OpCase(
        shape,
        lambda: call(inp, out, root),
        inp,
        out,
        expected,
        zero if s.reduces and s.in_place else None,
        reason,
    )


def pattern(
    n_elems: int,
    value: Callable[[torch.Tensor], torch.Tensor],
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """A new 1-D tensor of `n_elems` whose element i is `value(i)` (filled in chunks)."""
    out = torch.empty(n_elems, dtype=dtype, device=device)
    for start in range(0, n_elems, CHUNK_ELEMS):
        stop = min(n_elems, start + CHUNK_ELEMS)
        idx = torch.arange(start, stop, dtype=torch.int64, device=device)
        out[start:stop] = value(idx).to(dtype)
    return out


def count_wrong(out: torch.Tensor, expected: Callable[[torch.Tensor], torch.Tensor]) -> int:
    """Elements of `out` that differ from `expected(index)` (NaN counts as wrong)."""
    wrong = torch.zeros((), dtype=torch.int64, device=out.device)
    for start in range(0, out.numel(), CHUNK_ELEMS):
        stop = min(out.numel(), start + CHUNK_ELEMS)
        idx = torch.arange(start, stop, dtype=torch.int64, device=out.device)
        # the expected values are small integers, exact in out's dtype: compare exactly
        wrong += (out[start:stop] != expected(idx).to(out.dtype)).sum()
    return int(wrong.item())  # one host sync per check, outside any timed region


def run_benchmark(
    section: CollectivesSection,
    rank: int,
    world_size: int,
    device: torch.device,
    emit: Emit,
    progress: bool = False,
) -> None:
    """Every (op, size) of `section` on this rank; `emit` gets one record per (op, size)."""
    if section.root >= world_size:
        raise ConfigError(
            f"collectives.root is {section.root}; must be < world size ({world_size})"
        )
    on_gpu = device.type == "cuda"
    sync = torch.cuda.synchronize if on_gpu else _no_sync
    bench = _Bench(section, rank, world_size, device, sync)
    for op in section.ops:
        peak = 0.0
        for nominal in section.sizes(on_gpu):
            rec = bench.one(op, nominal)
            emit(rec)
            if rec.time_us_max and world_size > 1:  # one rank: nothing crosses a link
                bw = collective_defs.busbw_gbps(op, rec.size_bytes, rec.time_us_max, world_size)
                peak = max(peak, bw)
        if progress:
            log.info("%s done: peak busbw %.3g GB/s", op, peak)


class _Bench:
    def __init__(
        self,
        section: CollectivesSection,
        rank: int,
        world_size: int,
        device: torch.device,
        sync: Callable[[], None],
    ) -> None:
        self.s = section
        self.rank = rank
        self.n = world_size
        self.device = device
        self.sync = sync
        self.backend = tdist.get_backend()

    def one(self, op: str, nominal: int) -> Collective:
        s = self.s
        shape = op_size(op, nominal, self.n, s.dtype)
        rec = Collective(
            op=op,
            size_bytes=shape.size_bytes,
            nominal_bytes=nominal,
            count=shape.count,
            dtype=s.dtype,
            iters=s.iters,
            warmup_iters=s.warmup_iters,
        )
        if shape.size_bytes == 0:
            unit = self.n * DTYPE_BYTES[s.dtype]
            rec.reason = f"{nominal} B is below n x element size ({unit} B): nothing to send"
            return self._done(rec)
        case: OpCase | None = None
        error = None
        try:
            case = make_case(op, shape, self.rank, self.n, s.root, s.dtype, self.device)
        except RuntimeError as e:  # out of memory (OutOfMemoryError is one): nothing sent yet
            error = f"could not allocate the buffers: {_first_line(e)}"
        # Every rank takes the same branch, else the ranks' next collectives would not match.
        if not self._everywhere(error is None):
            rec.reason = error or "another rank could not allocate the buffers"
            return self._done(rec)
        assert case is not None
        try:
            case.run()
        except getattr(tdist, "DistError", ()):
            raise  # a peer died or timed out: the run failed, not the op
        except (RuntimeError, NotImplementedError, ValueError, TypeError) as e:
            # A backend rejects an op it lacks before it communicates, on every rank alike.
            error = f"{self.backend} does not run it: {type(e).__name__}: {_first_line(e)}"
        if not self._everywhere(error is None):
            rec.reason = error or "failed on another rank"
            return self._done(rec)
        if case.expected is not None:
            rec.wrong = count_wrong(case.out, case.expected)
        else:
            rec.check_reason = case.check_reason
        if case.before_timing is not None:
            case.before_timing()
        for _ in range(s.warmup_iters):
            case.run()
        mean_us = self._timed_mean_us(case.run, s.iters)
        rec.status = "measured"
        rec.time_us = mean_us
        rec.time_us_max = self._max_everywhere(mean_us)
        return self._done(rec)

    def _timed_mean_us(self, run: Callable[[], Any], iters: int) -> float:
        self._barrier()
        t0 = time.perf_counter_ns()
        for _ in range(iters):
            run()
        self.sync()  # NCCL calls return once queued: wait for the device before reading the clock
        return (time.perf_counter_ns() - t0) / iters / 1e3

    def _barrier(self) -> None:
        """All ranks start the timed loop together (an all_reduce, then the device drained)."""
        tdist.all_reduce(torch.ones(1, device=self.device))
        self.sync()

    def _everywhere(self, ok: bool) -> bool:
        flag = torch.tensor([1.0 if ok else 0.0], dtype=torch.float64, device=self.device)
        tdist.all_reduce(flag, op=tdist.ReduceOp.MIN)
        return bool(flag.item() == 1.0)

    def _max_everywhere(self, value: float) -> float:
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        return float(t.item())

    @staticmethod
    def _done(rec: Collective) -> Collective:
        rec.t_unix_s = time.time()
        return rec


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def _no_sync() -> None:
    pass
