"""Workloads: a model plus deterministic synthetic data generated on the rank."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from minicluster.core.config import LlamaConfig, MlpConfig, TransformerConfig, WorkloadConfig


@dataclass
class Workload:
    name: str
    model: torch.nn.Module
    # make_batch(step, rank) -> (inputs, targets); the same (seed, step, rank) gives the same batch.
    make_batch: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    samples_per_rank: int
    tokens_per_rank: int | None  # None for workloads without tokens
    seq_len: int | None

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def build(cfg: WorkloadConfig, seed: int, device: torch.device) -> Workload:
    if isinstance(cfg, MlpConfig):
        from minicluster.rank.workloads.mlp import build_mlp

        return build_mlp(cfg, seed, device)
    if isinstance(cfg, TransformerConfig):
        from minicluster.rank.workloads.transformer import build_transformer

        return build_transformer(cfg, seed, device)
    if isinstance(cfg, LlamaConfig):
        from minicluster.rank.workloads.llama import build_llama

        return build_llama(cfg, seed, device)
    raise AssertionError(f"unhandled workload config {cfg!r}")


def batch_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """A CPU generator seeded from (seed, step, rank), so any rank's batch can be re-made."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step) * 65_537 + rank)
    return g
