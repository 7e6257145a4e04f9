"""The FLOPs formulas and the GPU peak table."""

from __future__ import annotations

import pytest

from minicluster.core import flops


def test_dense_rule_is_six_flops_per_weight() -> None:
    value, how = flops.dense_flops_per_sample(1000)
    assert value == 6000 and "Kaplan" in how


def test_decoder_rule_adds_attention_per_token_times_tokens() -> None:
    value, how = flops.decoder_flops_per_sample(1000, n_layers=2, d_model=8, seq_len=4)
    assert value == (6 * 1000 + 12 * 2 * 8 * 4) * 4 and "PaLM" in how


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM5"),
        ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe"),
        ("NVIDIA H200", "NVIDIA H200"),
        ("NVIDIA A100-SXM4-80GB", "NVIDIA A100"),
        ("NVIDIA A100 80GB PCIe", "NVIDIA A100"),
        ("NVIDIA L40S", "NVIDIA L40S"),
        ("NVIDIA L4", "NVIDIA L4"),
        ("NVIDIA A10", "NVIDIA A10"),
        ("Tesla V100-SXM2-32GB", "NVIDIA V100 SXM2"),
    ],
)
def test_torch_device_names_find_their_peak(name: str, model: str) -> None:
    peak = flops.peak_for(name)
    assert peak is not None and peak.model == model


@pytest.mark.parametrize("name", ["NVIDIA GeForce RTX 4090", "AMD Instinct MI300X", "cpu", ""])
def test_an_unlisted_device_has_no_peak(name: str) -> None:
    assert flops.peak_for(name) is None


def test_every_peak_says_where_it_is_from_and_is_dense() -> None:
    for peak in flops.PEAKS:
        assert peak.source and peak.date and "fp32" in peak.tflops
        # tensor-core peaks are above the CUDA-core fp32 one; dense, so below the sparse figures
        assert all(v >= peak.tflops["fp32"] for v in peak.tflops.values())
    h100 = flops.peak_for("NVIDIA H100 80GB HBM3")
    assert h100 is not None and h100.tflops["bf16"] == pytest.approx(1978.9 / 2, rel=1e-3)
