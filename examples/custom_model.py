"""Your own model under minicluster: a factory `build(ctx)` that returns the model, its batches
and its loss. Run it with

    minicluster run -c examples/custom_model.yaml

or name it in any training config:

    workload:
      name: custom
      factory: examples/custom_model.py:build   # or an importable module: mypkg.models:build
      options: {width: 256, depth: 4}

`ctx` holds rank, world_size, device, seed, per_rank_batch (the config's, or None), options (the
config's workload.options) and mesh (reserved for tensor and pipeline parallel plans: None
today). The model runs under DDP, or FSDP2 with `--parallel dp_shard=2`.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualMLP(nn.Module):
    """A stack of pre-norm residual MLP blocks regressing a vector from a vector."""

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(width),
                nn.Linear(width, 2 * width),
                nn.GELU(),
                nn.Linear(2 * width, width),
            )
            for _ in range(depth)
        )
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block(x)
        # A new tensor, not a view (`squeeze`): FSDP2 warns about a view returned from a
        # wrapped module (an in-place op on it would skip its pre-backward hook).
        return self.head(x).sum(dim=-1)


def build(ctx):  # noqa: ANN001, ANN201 (the contract's shape, as a user would write it)
    width = int(ctx.options.get("width", 128))
    depth = int(ctx.options.get("depth", 2))
    batch = ctx.per_rank_batch or 32
    model = ResidualMLP(width, depth).to(ctx.device)
    matmul_params = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))

    def make_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        # Different data on every rank and step, the same on a re-run with the same seed.
        g = torch.Generator().manual_seed((ctx.seed * 1_000_003 + step) * 65_537 + ctx.rank)
        x = torch.randn(batch, width, generator=g)
        y = x[:, :8].sum(dim=1)  # a target the model can learn
        return x.to(ctx.device), y.to(ctx.device)

    return {
        "model": model,
        "make_batch": make_batch,
        "loss_fn": nn.functional.mse_loss,
        "samples_per_batch": batch,
        # Dense layers: 2 FLOPs per weight per sample forward, 4 backward (Kaplan et al. 2020).
        "flops_per_sample": 6 * matmul_params,
    }
