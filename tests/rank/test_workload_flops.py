"""The built-in workloads' FLOPs per sample checked against torch's own FLOP counter
(torch.utils.flop_counter.FlopCounterMode: every matmul and attention of one forward + backward),
and a rank's training-state bytes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from minicluster.core.config import MlpConfig, TransformerConfig  # noqa: E402
from minicluster.rank import workloads  # noqa: E402

CPU = torch.device("cpu")


def _counted(wl: workloads.Workload) -> int:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    x, y = wl.make_batch(0, 0)
    # The math backend: attention as the matmuls the counter sees (it does not count the fused
    # CPU kernel).
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        wl.loss_fn(wl.model(x), y).backward()
    return int(counter.get_total_flops())


def test_mlp_flops_are_what_torch_counts() -> None:
    cfg = MlpConfig(per_rank_batch=4, input_dim=32, hidden_dim=48, num_layers=3, num_classes=5)
    wl = workloads.build(cfg, 0, CPU)
    assert wl.flops_per_sample is not None
    # The first layer's input gradient is not needed (the data needs none): torch skips it, the
    # 6N rule counts it, 2 x input_dim x hidden_dim per sample.
    skipped = 2 * 32 * 48 * 4
    assert wl.flops_per_sample * 4 == _counted(wl) + skipped


def test_transformer_flops_are_what_torch_counts() -> None:
    cfg = TransformerConfig(
        per_rank_batch=2, seq_len=16, vocab_size=64, d_model=32, n_layers=2, n_heads=4
    )
    wl = workloads.build(cfg, 0, CPU)
    assert wl.flops_per_sample is not None
    counted = _counted(wl)
    # Matmuls (6N per token) and attention (12 L d T per token, not halved for the causal mask,
    # as PaLM counts and as torch's counter counts scaled_dot_product_attention).
    assert wl.flops_per_sample * 2 == pytest.approx(counted, rel=0.01)


def test_state_bytes_counts_params_grads_and_momentum() -> None:
    model = torch.nn.Linear(10, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    fresh = workloads.state_bytes(model, opt)
    assert fresh == {"params_bytes": 33 * 4, "grads_bytes": 0, "optimizer_bytes": 0}
    model(torch.ones(2, 10)).sum().backward()
    opt.step()
    assert workloads.state_bytes(model, opt) == {
        "params_bytes": 33 * 4,
        "grads_bytes": 33 * 4,
        "optimizer_bytes": 33 * 4,
    }


def test_llama_flops_are_what_torch_counts() -> None:
    """Dense: 6N + attention as for the GPT. GQA's k/v projections are smaller matmuls, counted
    by their weights like the rest; RoPE, RMSNorm and SwiGLU's products are elementwise."""
    from minicluster.core.config import LlamaConfig

    cfg = LlamaConfig(
        per_rank_batch=2, seq_len=16, vocab_size=64, dim=32, n_layers=2, n_heads=4, n_kv_heads=2,
        multiple_of=16,
    )  # fmt: skip
    wl = workloads.build(cfg, 0, CPU)
    assert wl.flops_per_sample is not None
    assert wl.flops_per_sample * 2 == pytest.approx(_counted(wl), rel=0.01)
