"""Dense GEMM throughput on one device, with the result checked element by element on a slice.

C = A B for n x n matrices of uniform(-1, 1) values in the given dtype; the rate is 2 n^3 over the
median call time. The last timed call's result is checked: every element must be finite, and
`check_rows` rows spread over C are recomputed in float64 from the same inputs; an element is
wrong when |C - C64| exceeds `TOLERANCE[dtype]` x (|A| |B|), the standard bound of a dot
product's rounding error (Higham, Accuracy and Stability of Numerical Algorithms, 3.1). A
corrupted element (a flipped exponent or high mantissa bit, a zero, a NaN) lies orders of
magnitude beyond it; a flip of a low mantissa bit does not, and no check of a floating-point
product can see one.
"""

from __future__ import annotations

from typing import Any

import torch

from minicluster.rank.nodecheck.timing import error_entry, median, time_calls

TORCH_DTYPES = {
    "float32": torch.float32,
    "tf32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
# Per element, |C - C64| / (|A| |B|). float32: 1e-4, above the worst case n u of n = 1,000
# (6e-5) and ~20x the typical sqrt(n) u at n = 16,384; tf32 rounds each input to 10 mantissa
# bits (u = 4.9e-4) and bf16/fp16 round the output to 7/10 bits (half an ulp: 3.9e-3 / 4.9e-4 of
# |C| <= |A||B|). Measured on an H200 (tests/fixtures/gpu/device_probe_h200.json, n = 8192, a
# relative error): fp32 9e-7, tf32 2.9e-4, bf16 2.3e-3, fp16 3.0e-4.
TOLERANCE = {"float32": 1e-4, "tf32": 2e-3, "bfloat16": 8e-3, "float16": 2e-3}


def gemm(
    device: torch.device,
    dtype: str,
    n: int,
    iters: int,
    budget_s: float,
    check_rows: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """One GEMM measurement: rate, per-call times and the check of the result; on an error,
    the observation says which kind (`timing.error_kind`) and no rate."""
    out: dict[str, Any] = {
        "kind": "gemm",
        "device": str(device),
        "dtype": dtype,
        "n": n,
        "tflops": None,
        "call_s": [],
        "checked": 0,
        "wrong": None,
        "max_norm_err": None,
        "tolerance": TOLERANCE[dtype],
        "method": (
            "torch.matmul, 2 n^3 / median call time ("
            + ("CUDA events" if device.type == "cuda" else "perf_counter")
            + f"); {check_rows} rows of the last call checked against float64"
        ),
        "error": None,
    }
    tf32_before = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
        gen = torch.Generator(device=device).manual_seed(seed)
        a = torch.rand((n, n), generator=gen, device=device, dtype=torch.float32) * 2 - 1
        b = torch.rand((n, n), generator=gen, device=device, dtype=torch.float32) * 2 - 1
        a, b = a.to(TORCH_DTYPES[dtype]), b.to(TORCH_DTYPES[dtype])
        c = torch.empty((n, n), device=device, dtype=TORCH_DTYPES[dtype])
        calls = time_calls(lambda: torch.matmul(a, b, out=c), device, iters, budget_s)
        out["call_s"] = calls
        out["tflops"] = 2.0 * n**3 / median(calls) / 1e12
        out.update(check(a, b, c, dtype, check_rows))
    except (RuntimeError, NotImplementedError, TypeError) as e:
        out["error"] = error_entry(e)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32_before
    return out


def check(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, dtype: str, rows: int
) -> dict[str, Any]:
    """Wrong elements of `c` = `a` @ `b`: non-finite anywhere, or beyond the tolerance on `rows`
    rows spread over the matrix (float64 recomputation)."""
    n = c.shape[0]
    nonfinite = int((~torch.isfinite(c)).sum().item())
    idx = torch.linspace(0, n - 1, steps=min(rows, n), device=c.device).round().long().unique()
    a64, b64 = a[idx].double(), b.double()
    ref = a64 @ b64
    bound = a64.abs() @ b64.abs()
    err = (c[idx].double() - ref).abs() / bound.clamp_min(torch.finfo(torch.float64).tiny)
    err = torch.nan_to_num(err, nan=float("inf"))
    tol = TOLERANCE[dtype]
    wrong_slice = int((err > tol).sum().item())
    slice_nonfinite = int((~torch.isfinite(c[idx])).sum().item())
    return {
        "checked": int(idx.numel() * n),
        # a non-finite element in the slice is counted once, in the slice
        "wrong": wrong_slice + nonfinite - slice_nonfinite,
        "nonfinite": nonfinite,
        "max_norm_err": float(err.max().item()) if err.numel() else None,
    }
