"""Timing of repeated device work: CUDA events on a GPU (host clocks return before the kernels
finish), `perf_counter_ns` on the CPU; and the error classes a measurement can end with."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def time_calls(
    fn: Callable[[], Any],
    device: torch.device,
    iters: int,
    budget_s: float,
    warmup: int = 2,
) -> list[float]:
    """Seconds per call of `fn` on `device`: `warmup` untimed calls, then up to `iters` timed ones,
    stopping early once `budget_s` has passed (at least one timed call is always made)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    out: list[float] = []
    t_end = time.perf_counter() + budget_s
    for _ in range(iters):
        if device.type == "cuda":
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()  # the kernels of this call are done when its end event is
            out.append(start.elapsed_time(stop) / 1000.0)
        else:
            t0 = time.perf_counter_ns()
            fn()
            out.append((time.perf_counter_ns() - t0) / 1e9)
        if time.perf_counter() >= t_end:
            break
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def error_kind(e: BaseException) -> str:
    """`oom` (the device's memory is taken: cannot decide), `unsupported` (the device or build
    lacks the dtype or operation: cannot decide) or `device_error` (the device failed the work:
    a finding)."""
    if isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower():
        return "oom"
    text = str(e).lower()
    if isinstance(e, (NotImplementedError, TypeError)) or "not implemented" in text:
        return "unsupported"
    if "not supported" in text or "unsupported" in text:
        return "unsupported"
    return "device_error"


def error_entry(e: BaseException) -> dict[str, str]:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return {"kind": error_kind(e), "text": f"{type(e).__name__}: {first}"[:300]}
