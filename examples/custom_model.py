"""Your own model under minicluster: a factory `build(ctx)` that returns the model, its batches
and its loss. Run it with

    minicluster run -c examples/custom_model.yaml

or name it in any training config:

    workload:
      name: custom
      factory: examples/custom_model.py:build   # or an importable module: mypkg.models:build
      options: {width: 256, depth: 4}

`ctx` holds rank, world_size, device, seed, per_rank_batch (the config's, or None), options (the
config's workload.options), mesh (the job's DeviceMesh under a layout other than DDP, else None)
and dp_rank / dp_size (which data-parallel share this rank trains on: the ranks of a tensor-
parallel group share one). The model runs under DDP, FSDP2 (`--parallel dp_shard=2`), and tensor
parallel (`--parallel tp=2`, or `dp_shard=2,tp=2` on 4 ranks) through its `parallelize`.
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


def parallelize(model: ResidualMLP, mesh) -> ResidualMLP:  # noqa: ANN001
    """Megatron-style tensor parallel on the mesh's tp dim: each block's first linear split by
    columns, its second by rows (one all-reduce per block in forward, one in backward); norms
    and the head replicated. minicluster applies FSDP2 over the data-parallel dims afterwards."""
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )

    plan = {}
    for i in range(len(model.blocks)):
        plan[f"blocks.{i}.1"] = ColwiseParallel()
        plan[f"blocks.{i}.3"] = RowwiseParallel()
    return parallelize_module(model, mesh["tp"], plan)


def build(ctx):  # noqa: ANN001, ANN201 (the contract's shape, as a user would write it)
    width = int(ctx.options.get("width", 128))
    depth = int(ctx.options.get("depth", 2))
    batch = ctx.per_rank_batch or 32
    model = ResidualMLP(width, depth).to(ctx.device)
    matmul_params = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))

    def make_batch(step: int, dp_rank: int = ctx.dp_rank) -> tuple[torch.Tensor, torch.Tensor]:
        # Different data on every data-parallel rank and step, the same on a re-run with the
        # same seed. Keyed by the data-parallel rank: the ranks of one tensor-parallel group
        # draw the same. Taking `dp_rank` lets the harness make any rank's batch (validate
        # --layouts trains each layout on the same global batch); make_batch(step) also works.
        g = torch.Generator().manual_seed((ctx.seed * 1_000_003 + step) * 65_537 + dp_rank)
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
        "parallelize": parallelize,
    }
