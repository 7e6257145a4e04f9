"""The node check's own measurements on this machine's CPU (real torch work): GEMM with its result
checked (a wrong element, made by a torch function mode the check did not write, fails it), the
host STREAM triad, and the burn-in's per-interval figures."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from minicluster.rank.nodecheck import burn_in, gemm, memory

CPU = torch.device("cpu")


class CorruptMatmul(TorchFunctionMode):
    """Flips the sign and doubles one element of every matmul written into an `out` tensor (the
    measured call), as a bad multiplier would; the float64 recomputation is left alone."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if func is torch.matmul and kwargs.get("out") is not None:
            out = kwargs["out"]
            out[0, 0] = -2 * out[0, 0] - 1
        return result


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_cpu_gemm_gives_a_rate_and_no_wrong_element(dtype: str) -> None:
    g = gemm.gemm(CPU, dtype, 256, iters=3, budget_s=2.0, check_rows=16)
    assert g["error"] is None
    assert g["tflops"] is not None and g["tflops"] > 0
    assert g["wrong"] == 0 and g["checked"] == 16 * 256
    # inside the tolerance with room: measured 8.6e-4 for bf16 here at n = 256 (tolerance 8e-3)
    assert 0 <= g["max_norm_err"] < gemm.TOLERANCE[dtype] / 4
    assert len(g["call_s"]) == 3


def test_a_wrong_element_fails_the_check() -> None:
    with CorruptMatmul():
        g = gemm.gemm(CPU, "float32", 256, iters=2, budget_s=2.0, check_rows=16)
    assert g["wrong"] == 1  # row 0 is among the checked rows
    assert g["max_norm_err"] > 0.01


def test_a_nan_anywhere_is_wrong_even_outside_the_checked_rows() -> None:
    a = torch.rand(64, 64)
    b = torch.rand(64, 64)
    c = a @ b
    c[33, 5] = float("nan")  # row 33 is not among the 4 checked rows (0, 21, 42, 63)
    got = gemm.check(a, b, c, "float32", rows=4)
    assert got["wrong"] == 1 and got["nonfinite"] == 1


def test_host_triad_measures_and_checks() -> None:
    t = memory.host_triad(8 * 2**20, iters=3, budget_s=2.0, threads=1)
    assert t["error"] is None and t["wrong"] == 0
    assert t["gbps"] > 0 and t["best_gbps"] >= t["gbps"]


def test_triad_check_is_relative_to_the_terms_not_their_sum() -> None:
    b = torch.tensor([3.0, 1.0], dtype=torch.float32)
    c = torch.tensor([-1.0, 2.0], dtype=torch.float32)
    a = torch.add(b, c, alpha=memory.SCALAR)  # 3 - 3 = 0 exactly: no false alarm
    assert memory.triad_wrong(a, b, c, 1e-6) == 0
    a[1] = 5.0  # 1 + 6 = 7
    assert memory.triad_wrong(a, b, c, 1e-6) == 1


def test_triad_check_indexes_inside_arrays_past_float32_precision() -> None:
    # 1 GiB float64 arrays (4 x a 256 MiB L3): 2**27 elements. A float32 linspace put the last
    # checked index at 2**27, one past the end, and node-check died with an IndexError.
    n = 2**27
    b = torch.full((1,), 1.25, dtype=torch.float64).expand(n)
    c = torch.full((1,), -0.5, dtype=torch.float64).expand(n)
    a = torch.full((1,), 1.25 + memory.SCALAR * -0.5, dtype=torch.float64).expand(n)
    assert memory.triad_wrong(a, b, c, 2.3e-16) == 0


def test_burn_in_reports_every_interval_and_checks_the_last_result() -> None:
    lines: list[str] = []
    out = burn_in.burn_in([CPU], "float32", 128, duration_s=1.0, intervals=5, progress=lines.append)
    assert out["error"] is None and len(out["intervals"]) == 5
    assert all(iv["devices"]["cpu"]["tflops"] > 0 for iv in out["intervals"])
    assert out["check"]["cpu"]["wrong"] == 0
    assert lines[0].startswith("burn-in 1/5 at ")
