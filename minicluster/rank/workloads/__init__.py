"""Workloads: a model plus deterministic synthetic data generated on the rank."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from minicluster.core.config import (
    CustomConfig,
    LlamaConfig,
    MlpConfig,
    TransformerConfig,
    WorkloadConfig,
)


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
    # FLOPs of one sample's forward + backward, and how they were counted (core.flops); None:
    # not known (then TFLOP/s is null with the reason).
    flops_per_sample: float | None = None
    flops_method: str | None = None
    # A custom model's parallelize(model, mesh): its tensor-parallel plan, called under tp > 1
    # (then FSDP2 over the data-parallel dims); None: no plan of its own.
    parallelize: Callable[[torch.nn.Module, object], torch.nn.Module] | None = None
    # Whether make_batch makes the batch of any data-parallel rank it is given (the built-in
    # workloads, a custom make_batch(step, dp_rank)), or only its own rank's (a custom
    # make_batch(step)): a layout's fixed global batch needs the former.
    any_rank_batches: bool = True

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def build(
    cfg: WorkloadConfig,
    seed: int,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
    mesh: object = None,
) -> Workload:
    """The workload of `cfg` on this rank (`rank` of `world_size`, and the job's DeviceMesh
    under a layout other than DDP: a custom model's factory is told them)."""
    if isinstance(cfg, MlpConfig):
        from minicluster.rank.workloads.mlp import build_mlp

        return build_mlp(cfg, seed, device)
    if isinstance(cfg, TransformerConfig):
        from minicluster.rank.workloads.transformer import build_transformer

        return build_transformer(cfg, seed, device)
    if isinstance(cfg, LlamaConfig):
        from minicluster.rank.workloads.llama import build_llama

        return build_llama(cfg, seed, device)
    if isinstance(cfg, CustomConfig):
        from minicluster.rank.workloads.custom import build_custom

        return build_custom(cfg, seed, device, rank, world_size, mesh)
    raise AssertionError(f"unhandled workload config {cfg!r}")


def linear_weights(model: torch.nn.Module) -> int:
    """The weights of the model's `nn.Linear` layers: the N of the 6N FLOPs rule (core.flops);
    embeddings are look-ups, biases and norms left out."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def state_bytes(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, int]:
    """This rank's training state in bytes: parameters, gradients (those allocated now) and the
    optimizer's state tensors (SGD momentum buffers, Adam moments). Shared tensors count once."""
    params = {id(p): p for p in model.parameters()}
    grads = {id(p.grad): p.grad for p in params.values() if p.grad is not None}
    state = {
        id(t): t
        for per_param in opt.state.values()
        for t in per_param.values()
        if isinstance(t, torch.Tensor)
    }

    def nbytes(tensors: Mapping[int, torch.Tensor]) -> int:
        # A DTensor (FSDP2, tensor parallel) counts the shard this rank holds.
        local = (t.to_local() if hasattr(t, "to_local") else t for t in tensors.values())
        return sum(t.numel() * t.element_size() for t in local)

    return {
        "params_bytes": nbytes(params),
        "grads_bytes": nbytes(grads),
        "optimizer_bytes": nbytes(state),
    }


def batch_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """A CPU generator seeded from (seed, step, rank), so any rank's batch can be re-made."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step) * 65_537 + rank)
    return g


def token_batches(
    vocab_size: int, per_rank_batch: int, seq_len: int, seed: int, device: torch.device
) -> Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]:
    """`make_batch(step, rank)` of a language model: random tokens from `batch_generator`,
    the targets the inputs shifted by one."""

    def make_batch(step: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = batch_generator(seed, step, rank)
        tokens = torch.randint(0, vocab_size, (per_rank_batch, seq_len + 1), generator=g)
        x, y = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    return make_batch
