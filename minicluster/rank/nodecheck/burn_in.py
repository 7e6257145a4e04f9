"""Burn-in: sustained GEMM load on every device at once for a given duration, with the rate and
the device's state (clock event reasons, temperature, SM clock, power) per interval, and the
last result checked. The drift test over the intervals is `analysis.trend`'s."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from minicluster.rank.nodecheck.gemm import TORCH_DTYPES, check
from minicluster.rank.nodecheck.timing import error_entry

Sampler = Callable[[torch.device], dict[str, Any]]


def burn_in(
    devices: list[torch.device],
    dtype: str,
    n: int,
    duration_s: float,
    intervals: int,
    sampler: Sampler | None = None,
    progress: Callable[[str], None] | None = None,
    check_rows: int = 64,
) -> dict[str, Any]:
    """Run C = A B on every device in turn, back to back, for `duration_s`, split into
    `intervals` equal intervals; per interval and device the TFLOP/s (calls x 2 n^3 over the time
    the device spent: CUDA events, or the wall clock on the CPU) and, from `sampler`, its state
    at the interval's end."""
    interval_s = duration_s / intervals
    out: dict[str, Any] = {
        "kind": "burn_in",
        "dtype": dtype,
        "n": n,
        "duration_s": duration_s,
        "interval_s": interval_s,
        "intervals": [],
        "check": {},
        "error": None,
        "method": f"torch.matmul {dtype} n = {n} back to back on every device, "
        f"{intervals} intervals of {interval_s:g} s; TFLOP/s per interval = calls x 2 n^3 / time",
    }
    tf32_before = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
        mats = {}
        for dev in devices:
            gen = torch.Generator(device=dev).manual_seed(1)
            a = (torch.rand((n, n), generator=gen, device=dev) * 2 - 1).to(TORCH_DTYPES[dtype])
            b = (torch.rand((n, n), generator=gen, device=dev) * 2 - 1).to(TORCH_DTYPES[dtype])
            mats[dev] = (a, b, torch.empty_like(a))
        t0 = time.perf_counter()
        for k in range(intervals):
            out["intervals"].append(_interval(devices, mats, n, interval_s, t0, sampler))
            if progress is not None:
                progress(_progress_line(k, intervals, out["intervals"][-1]))
        for dev, (a, b, c) in mats.items():
            out["check"][str(dev)] = check(a, b, c, dtype, check_rows)
    except (RuntimeError, NotImplementedError, TypeError) as e:
        out["error"] = error_entry(e)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32_before
    return out


def _interval(
    devices: list[torch.device],
    mats: dict[torch.device, tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    n: int,
    interval_s: float,
    t0: float,
    sampler: Sampler | None,
) -> dict[str, Any]:
    calls = dict.fromkeys(devices, 0)
    events: dict[torch.device, Any] = {}
    start = time.perf_counter()
    for dev in devices:
        if dev.type == "cuda":
            ev = torch.cuda.Event(enable_timing=True)
            ev.record(torch.cuda.current_stream(dev))
            events[dev] = ev
    while True:
        for dev in devices:  # one call per device per round: every device stays loaded
            a, b, c = mats[dev]
            torch.matmul(a, b, out=c)
            calls[dev] += 1
        for dev in devices:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)  # bound the queue: the interval ends on time
        if time.perf_counter() - start >= interval_s:
            break
    wall = time.perf_counter() - start
    per_device: dict[str, dict[str, Any]] = {}
    for dev in devices:
        if dev.type == "cuda":
            end = torch.cuda.Event(enable_timing=True)
            end.record(torch.cuda.current_stream(dev))
            end.synchronize()
            seconds = events[dev].elapsed_time(end) / 1000.0
        else:
            seconds = wall  # the CPU devices share the wall clock
        per_device[str(dev)] = {
            "calls": calls[dev],
            "seconds": seconds,
            "tflops": calls[dev] * 2.0 * n**3 / seconds / 1e12 if seconds > 0 else None,
            "state": sampler(dev) if sampler is not None else {},
        }
    return {"t_s": time.perf_counter() - t0, "devices": per_device}


def _progress_line(k: int, total: int, interval: dict[str, Any]) -> str:
    parts = []
    for dev, d in interval["devices"].items():
        state = d.get("state") or {}
        extra = ""
        if state.get("temperature_c") is not None:
            extra += f", {state['temperature_c']} C"
        if state.get("throttle_reasons"):
            extra += f", clock events 0x{int(state['throttle_reasons']):x}"
        rate = d.get("tflops")
        parts.append(f"{dev} {rate:.3g} TFLOP/s{extra}" if rate is not None else f"{dev} n/a")
    return f"burn-in {k + 1}/{total} at {interval['t_s']:.0f} s: " + "; ".join(parts)
