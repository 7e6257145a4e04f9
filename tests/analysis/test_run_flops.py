"""Achieved TFLOP/s and MFU from recorded FLOPs and step times; null with the reason where the
FLOPs or the device's peak are unknown."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from minicluster.analysis import flops

STEPS_MS = np.array([100.0, 100.0, 200.0, np.nan])  # 3 measured steps, 0.4 s


def _header(gpu: str | None, flops_per_sample: float | None = 1e9, **run: Any) -> dict[str, Any]:
    return {
        "workload": {
            "name": "mlp",
            "per_rank_batch": 10,
            "flops_per_sample": flops_per_sample,
            "flops_method": "6N",
        },
        "platform": {"gpu": None if gpu is None else {"name": gpu}},
        "config": {"run": run},
    }


def test_job_and_rank_tflops_from_flops_batch_and_step_time() -> None:
    h = _header(None)
    m = flops.run_flops(h, [h, h], STEPS_MS, world_size=2)
    # 1e9 FLOPs x 10 samples x 2 ranks x 3 steps / 0.4 s = 1.5e11 FLOP/s
    assert m["achieved_tflops"].value == pytest.approx(0.15)
    assert m["tflops_per_rank"].value == pytest.approx(0.075)
    assert "6N" in (m["achieved_tflops"].method or "")
    assert m["mfu_pct"].value is None and "CPU" in (m["mfu_pct"].reason or "")
    assert flops.rank_tflops(h, 50.0) == pytest.approx(1e10 / 0.05 / 1e12)


def test_mfu_against_the_listed_peak_of_the_runs_precision() -> None:
    h = _header("NVIDIA H100 80GB HBM3")
    mfu = flops.run_flops(h, [h, h], STEPS_MS, 2)["mfu_pct"]
    assert mfu.value == pytest.approx(100 * 0.075 / 67.0)
    assert "fp32" in (mfu.method or "") and "datasheet" in (mfu.method or "")
    bf16 = _header("NVIDIA H100 80GB HBM3", precision="bf16")
    assert flops.run_flops(bf16, [bf16], STEPS_MS, 2)["mfu_pct"].value == pytest.approx(
        100 * 0.075 / 989.4
    )


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ([_header("NVIDIA GeForce RTX 4090")], "no dense peak known for NVIDIA GeForce RTX 4090"),
        ([_header("NVIDIA A100-SXM4-80GB"), _header("NVIDIA L4")], "different devices"),
        ([_header("Tesla V100-SXM2-32GB", precision="bf16")], "no bf16 peak"),
    ],
)
def test_mfu_is_null_with_the_reason(headers: list[dict[str, Any]], says: str) -> None:
    mfu = flops.run_flops(headers[0], headers, STEPS_MS, 2)["mfu_pct"]
    assert mfu.value is None and says in (mfu.reason or "")


def test_unknown_flops_leave_every_figure_null_with_the_reason() -> None:
    h = _header("NVIDIA H100 PCIe", flops_per_sample=None)
    h["workload"]["name"] = "custom"
    m = flops.run_flops(h, [h], STEPS_MS, 2)
    assert all(m[k].value is None for k in flops.NAMES)
    assert "custom model without flops_per_sample" in (m["achieved_tflops"].reason or "")
    assert flops.rank_tflops(h, 50.0) is None


def test_ranks_that_share_a_batch_count_its_flops_once() -> None:
    """tp=2 on 2 ranks: one data rank, one batch per step; the two ranks split its FLOPs (the
    job's figure is not doubled, each rank's is half a batch's)."""
    h = _header(None)
    m = flops.run_flops(h, [h, h], STEPS_MS, world_size=2, data_ranks=1)
    # 1e9 FLOPs x 10 samples x 1 data rank x 3 steps / 0.4 s = 7.5e10 FLOP/s
    assert m["achieved_tflops"].value == pytest.approx(0.075)
    assert m["tflops_per_rank"].value == pytest.approx(0.0375)
    assert "global batch 10 " in (m["achieved_tflops"].method or "")
    assert flops.rank_tflops(h, 50.0, share=0.5) == pytest.approx(0.5e10 / 0.05 / 1e12)
