"""Memory bandwidth: device copy and STREAM triad on a GPU, the host's STREAM triad over all
cores, and pinned host-to-device / device-to-host copies; each result checked.

Byte counts follow STREAM (McCalpin): copy moves 2 x bytes (read + write), triad a = b + s c
3 x bytes; the write-allocate read a cache makes before writing is not counted. The figure is the
median call's rate (STREAM prints the best: on a shared host one lucky call would set it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from minicluster.rank.nodecheck.timing import error_entry, median, time_calls

SCALAR = 3.0
MIB = 1024**2


def _observation(kind: str, device: torch.device, nbytes: int, method: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "device": str(device),
        "bytes": nbytes,
        "gbps": None,
        "best_gbps": None,
        "call_s": [],
        "wrong": None,
        "method": method,
        "error": None,
    }


def device_copy(device: torch.device, nbytes: int, iters: int, budget_s: float) -> dict[str, Any]:
    """dst.copy_(src) of `nbytes` on the device; 2 x bytes / time; dst checked equal to src."""
    out = _observation("device_copy", device, nbytes, "dst.copy_(src), 2 x bytes / median time")
    try:
        count = nbytes // 4
        src = torch.empty(count, device=device, dtype=torch.float32).uniform_(-1, 1)
        dst = torch.empty_like(src)
        calls = time_calls(lambda: dst.copy_(src), device, iters, budget_s)
        _rates(out, calls, 2 * count * 4)
        out["wrong"] = int((dst != src).sum().item())
    except RuntimeError as e:
        out["error"] = error_entry(e)
    return out


def device_triad(device: torch.device, nbytes: int, iters: int, budget_s: float) -> dict[str, Any]:
    """a = b + 3 c on the device (`nbytes` per array); 3 x bytes / time; 4,096 elements spread
    over `a` checked against float64."""
    out = _observation(
        "device_triad", device, nbytes, "torch.add(b, c, alpha=3, out=a), 3 x bytes / median time"
    )
    try:
        count = nbytes // 4
        b = torch.empty(count, device=device, dtype=torch.float32).uniform_(-1, 1)
        c = torch.empty_like(b).uniform_(-1, 1)
        a = torch.empty_like(b)
        calls = time_calls(lambda: torch.add(b, c, alpha=SCALAR, out=a), device, iters, budget_s)
        _rates(out, calls, 3 * count * 4)
        out["wrong"] = triad_wrong(a, b, c, rel_tol=1e-6)
    except RuntimeError as e:
        out["error"] = error_entry(e)
    return out


def host_triad(nbytes: int, iters: int, budget_s: float, threads: int) -> dict[str, Any]:
    """The host's STREAM triad a = b + 3 c in float64 over `threads` torch threads (`nbytes` per
    array), 3 x bytes / median time; 4,096 elements checked exactly (one fused multiply-add or a
    multiply then an add: both within 1 ulp)."""
    cpu = torch.device("cpu")
    out = _observation(
        "host_triad",
        cpu,
        nbytes,
        f"torch.add(b, c, alpha=3, out=a) in float64 on {threads} thread(s), 3 x bytes / median "
        "time (STREAM's count)",
    )
    out["threads"] = threads
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        count = nbytes // 8
        # filled, not random: the bandwidth does not depend on the values, and drawing 2 x N
        # random doubles took longer than the measurement on a loaded host
        b = torch.full((count,), 1.25, dtype=torch.float64)
        c = torch.full((count,), -0.5, dtype=torch.float64)
        a = torch.empty_like(b)
        calls = time_calls(lambda: torch.add(b, c, alpha=SCALAR, out=a), cpu, iters, budget_s)
        _rates(out, calls, 3 * count * 8)
        out["wrong"] = triad_wrong(a, b, c, rel_tol=2.3e-16)
    except RuntimeError as e:
        out["error"] = error_entry(e)
    finally:
        torch.set_num_threads(before)
    return out


def host_copy(
    device: torch.device, nbytes: int, iters: int, budget_s: float
) -> list[dict[str, Any]]:
    """Pinned host-to-device and device-to-host copies of `nbytes` (bytes / median time), each
    checked: the round trip returns the bytes sent."""
    method = "pinned {}.copy_(non_blocking=True), bytes / median time"
    h2d = _observation("h2d", device, nbytes, method.format("device"))
    d2h = _observation("d2h", device, nbytes, method.format("host"))
    try:
        host = torch.randint(0, 256, (nbytes,), dtype=torch.uint8).pin_memory()
        back = torch.empty_like(host).pin_memory()
        dev = torch.empty(nbytes, dtype=torch.uint8, device=device)
        calls = time_calls(lambda: dev.copy_(host, non_blocking=True), device, iters, budget_s)
        _rates(h2d, calls, nbytes)
        calls = time_calls(lambda: back.copy_(dev, non_blocking=True), device, iters, budget_s)
        _rates(d2h, calls, nbytes)
        wrong = int((back != host).sum().item())
        h2d["wrong"] = d2h["wrong"] = wrong
    except RuntimeError as e:
        h2d["error"] = d2h["error"] = error_entry(e)
    return [h2d, d2h]


def _rates(out: dict[str, Any], calls: list[float], moved_bytes: int) -> None:
    out["call_s"] = calls
    out["gbps"] = moved_bytes / median(calls) / 1e9
    out["best_gbps"] = moved_bytes / min(calls) / 1e9


def triad_wrong(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, rel_tol: float) -> int:
    """Elements of `a` = `b` + 3 `c` (4,096 spread over it) off by more than `rel_tol` x 4 of
    the terms' size, or not finite."""
    n = a.numel()
    k = min(4096, n)
    # integer spacing: a float32 linspace rounds n - 1 up to n past 2**24 elements
    idx = torch.arange(k, dtype=torch.int64, device=a.device) * (n - 1) // max(k - 1, 1)
    bb, cc = b[idx].double().cpu(), c[idx].double().cpu()
    got, want = a[idx].double().cpu(), bb + SCALAR * cc
    # rounding is relative to the terms, not to their sum (b = -3c cancels to 0)
    tol = rel_tol * 4 * (bb.abs() + SCALAR * cc.abs()) + 1e-300
    return int(((got - want).abs() > tol).sum().item() + (~torch.isfinite(a[idx])).sum().item())


def host_triad_bytes() -> tuple[int, str]:
    """Bytes per array for the host triad: 4 x the largest cache level the kernel lists (STREAM's
    rule), at least 64 MiB and at most 1 GiB; and how it was chosen."""
    largest = 0
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        largest = max(largest, _size(text))
    if largest == 0:
        return 256 * MIB, "no cache size in sysfs: 256 MiB per array"
    nbytes = min(max(4 * largest, 64 * MIB), 1024 * MIB)
    return nbytes, f"4 x the {largest // 1024} KiB last-level cache, clamped to 64 MiB..1 GiB"


def _size(text: str) -> int:
    units = {"K": 1024, "M": MIB, "G": 1024**3}
    if text and text[-1].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    try:
        return int(text)
    except ValueError:
        return 0


def host_threads() -> int:
    """The cores this process may run on (its affinity), else the CPU count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
