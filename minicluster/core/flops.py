"""Model FLOPs per sample (the formulas, with their sources) and the dense peak of known GPUs, for
achieved TFLOP/s and MFU.

FLOPs here are model FLOPs (what the model needs, as in PaLM's MFU), not hardware FLOPs: work
the harness or the framework adds (re-computation, padding) is not counted, so MFU is a lower
bound of the device's busy fraction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KAPLAN = "Kaplan et al. 2020, 'Scaling Laws for Neural Language Models', sec. 2.1"
PALM = "Chowdhery et al. 2022, 'PaLM', appendix B"


def dense_flops_per_sample(matmul_weights: int) -> tuple[float, str]:
    """A model of dense layers: 6 FLOPs per matmul weight per sample (2 forward: one multiply, one
    add; 4 backward: the gradients of the inputs and of the weights). Biases, activations and
    norms are left out (a few % of the total for wide layers)."""
    return 6.0 * matmul_weights, f"6 x {matmul_weights} matmul weights per sample ({KAPLAN})"


def decoder_flops_per_sample(
    matmul_weights: int, n_layers: int, d_model: int, seq_len: int
) -> tuple[float, str]:
    """A decoder-only transformer: per token 6N (N the matmul weights: attention projections, MLP,
    output head; embeddings are look-ups) plus 12 * L * d_model * T for the attention scores and
    their weighted sum over the T positions, forward and backward; times T tokens per sample.
    Causal masking is not subtracted (as PaLM counts it)."""
    per_token = 6.0 * matmul_weights + 12.0 * n_layers * d_model * seq_len
    how = (
        f"(6 x {matmul_weights} matmul weights + 12 x {n_layers} layers x {d_model} d_model x "
        f"{seq_len} seq) per token x {seq_len} tokens ({PALM})"
    )
    return per_token * seq_len, how


@dataclass(frozen=True)
class Peak:
    """A GPU model's dense (no sparsity) peak in TFLOP/s per precision, where the vendor's figure
    is from (`source`, `date`: the document's date)."""

    model: str
    pattern: str  # matched against the device name torch reports (case-insensitive)
    tflops: dict[str, float]  # precision (fp32, tf32, bf16, fp16) -> dense TFLOP/s
    source: str
    date: str


# Vendor figures quoted "with sparsity" are halved to the dense figure. fp32 is the CUDA-core
# figure: PyTorch does not use TF32 for fp32 matmuls unless told to
# (torch.backends.cuda.matmul.allow_tf32, default False since 1.12).
PEAKS: tuple[Peak, ...] = (
    Peak(
        "NVIDIA H100 SXM5",
        r"h100.*(sxm|hbm3)",
        {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4},
        "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM column; 1,979 TFLOPS bf16 with sparsity)",
        "2022",
    ),
    Peak(
        "NVIDIA H100 PCIe",
        r"h100.*pcie",
        {"fp32": 51.0, "tf32": 378.0, "bf16": 756.5, "fp16": 756.5},
        "NVIDIA H100 PCIe product brief PB-11133-001_v02 and datasheet (1,513 TFLOPS bf16 with "
        "sparsity)",
        "2022-11",
    ),
    Peak(
        "NVIDIA H200",
        r"h200",
        {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4},
        "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM column; 1,979 TFLOPS bf16 with sparsity)",
        "2024",
    ),
    Peak(
        "NVIDIA A100",
        r"a100",
        {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
        "NVIDIA A100 Tensor Core GPU datasheet (SXM and PCIe, 40 and 80 GB: the same peaks)",
        "2021",
    ),
    Peak(
        "NVIDIA L40S",
        r"l40s",
        {"fp32": 91.6, "tf32": 183.0, "bf16": 362.05, "fp16": 362.05},
        "NVIDIA L40S datasheet (733 TFLOPS bf16 with sparsity)",
        "2023",
    ),
    Peak(
        "NVIDIA L4",
        r"\bl4\b",
        {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0},
        "NVIDIA L4 Tensor Core GPU datasheet (242 TFLOPS bf16 with sparsity)",
        "2023",
    ),
    Peak(
        "NVIDIA A10",
        r"\ba10\b",
        {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0},
        "NVIDIA A10 Tensor Core GPU datasheet (250 TFLOPS bf16 with sparsity)",
        "2021",
    ),
    Peak(
        "NVIDIA V100 SXM2",
        r"v100.*sxm2",
        {"fp32": 15.7, "fp16": 125.0},
        "NVIDIA Tesla V100 datasheet (SXM2; no bf16 on Volta)",
        "2020",
    ),
)


def peak_for(device_name: str) -> Peak | None:
    """The table's entry for a device name as torch reports it (`NVIDIA H100 80GB HBM3`), or
    None."""
    for peak in PEAKS:
        if re.search(peak.pattern, device_name, re.IGNORECASE):
            return peak
    return None
