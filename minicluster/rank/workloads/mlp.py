"""MLP classifier on synthetic Gaussian inputs with random labels."""

from __future__ import annotations

import torch
from torch import nn

from minicluster.core import flops
from minicluster.core.config import MlpConfig
from minicluster.rank.workloads import Workload, batch_generator, linear_weights


def build_mlp(cfg: MlpConfig, seed: int, device: torch.device) -> Workload:
    torch.manual_seed(seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    layers: list[nn.Module] = []
    width = cfg.input_dim
    for _ in range(cfg.num_layers - 1):
        layers += [nn.Linear(width, cfg.hidden_dim), nn.ReLU()]
        width = cfg.hidden_dim
    layers.append(nn.Linear(width, cfg.num_classes))
    model = nn.Sequential(*layers).to(device)

    def make_batch(step: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = batch_generator(seed, step, rank)
        x = torch.randn(cfg.per_rank_batch, cfg.input_dim, generator=g)
        y = torch.randint(0, cfg.num_classes, (cfg.per_rank_batch,), generator=g)
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    per_sample, how = flops.dense_flops_per_sample(linear_weights(model))
    return Workload(
        name="mlp",
        model=model,
        make_batch=make_batch,
        loss_fn=nn.functional.cross_entropy,
        samples_per_rank=cfg.per_rank_batch,
        tokens_per_rank=None,
        seq_len=None,
        flops_per_sample=per_sample,
        flops_method=how,
    )
