"""Apply a layout other than DDP to a workload's model: one DeviceMesh, tensor parallel (DTensor),
then FSDP2 (`fully_shard`) over the data-parallel dims.

Order as torchtitan applies it: TP inside each block first, then FSDP2 per block and at the
root, so FSDP2 shards the tensor-parallel DTensors over the data-parallel mesh (2-D). Without
dp_shard, data-parallel ranks replicate through FSDP2 over the 2-D (dp_replicate, dp_shard) mesh
(HSDP with shards of one rank), since DDP does not take DTensor parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from minicluster.core.layout import MESH_DIMS, Layout

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Parallel:
    """The model as the training loop calls it, and where this rank's batch comes from: ranks
    with the same data-parallel coordinate (a tensor-parallel group) train on the same batch."""

    model: nn.Module
    mesh: Any  # torch.distributed.device_mesh.DeviceMesh
    dp_rank: int
    dp_size: int
    mixed_precision: str | None  # FSDP2's MixedPrecisionPolicy, as text; None when not used
    # Expert parallel: averages the gradients over the ep ranks before the optimizer steps (an
    # all-reduce of the dense ones; the experts' arrived through the all-to-all's backward)
    sync_grads: Callable[[], None] | None = None


def build_mesh(layout: Layout, device: torch.device) -> Any:
    """One DeviceMesh over every rank, dims in `MESH_DIMS` order (size-1 dims included, so every
    layout names the same dims)."""
    from torch.distributed.device_mesh import init_device_mesh

    shape = tuple(size for _, size in layout.mesh)
    return init_device_mesh(device.type, shape, mesh_dim_names=MESH_DIMS)


def tensor_parallel_plan(model: nn.Module) -> dict[str, Any]:
    """Megatron-style plan of a Llama block (column-parallel q/k/v and w1/w3, row-parallel wo and
    w2: one all-reduce after attention and one after the MLP in forward, two in backward).
    Embeddings, norms and the output head stay replicated (no sequence parallel)."""
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

    plan: dict[str, Any] = {}
    for name, _ in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("wq", "wk", "wv", "w1", "w3"):
            plan[name] = ColwiseParallel()
        elif leaf in ("wo", "w2"):
            plan[name] = RowwiseParallel()
    return plan


def parallelize(
    model: nn.Module,
    layout: Layout,
    device: torch.device,
    precision: str,
    compile: bool,
    mesh: Any = None,
    plan: Callable[[nn.Module, Any], nn.Module] | None = None,
) -> Parallel:
    """`model` laid out on this rank's share of the mesh (a collective: every rank calls it;
    `mesh`: the job's, when already built). `plan`: a custom model's own tensor-parallel
    `parallelize(model, mesh)`, applied in place of the Llama plan, before FSDP2."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    from torch.distributed.tensor.parallel import parallelize_module

    mesh = build_mesh(layout, device) if mesh is None else mesh
    if layout.ep > 1:
        return _expert_parallel(model, layout, mesh)
    if layout.tp > 1 and plan is not None:
        model = plan(model, mesh)
    elif layout.tp > 1:
        parallelize_module(model, mesh["tp"], tensor_parallel_plan(model))
    blocks = list(getattr(model, "layers", []))
    if compile:
        for block in blocks:
            block.compile()
        if not blocks:
            model.compile()
    mp_text = None
    if layout.fsdp:
        # 1-D FSDP over dp_shard alone; HSDP (replicate x shard) once dp_replicate > 1, where a
        # shard of one rank makes FSDP2 a replication (its reduce-scatter a group of one).
        dp_mesh = mesh["dp_shard"] if layout.dp_replicate == 1 else mesh["dp_replicate", "dp_shard"]
        kwargs: dict[str, Any] = {"mesh": dp_mesh}
        if precision != "fp32":
            # Parameters gathered in the compute dtype, gradients reduced in fp32 (torchtitan's
            # default: a low-precision reduce loses bits at every hop).
            kwargs["mp_policy"] = MixedPrecisionPolicy(
                param_dtype=DTYPES[precision], reduce_dtype=torch.float32
            )
            mp_text = f"param_dtype={precision}, reduce_dtype=fp32"
        for i, block in enumerate(blocks):
            # The last block stays gathered after forward: backward needs it first.
            fully_shard(block, reshard_after_forward=i < len(blocks) - 1, **kwargs)
        fully_shard(model, **kwargs)
    dp_rank = mesh.get_local_rank("dp_replicate") * layout.dp_shard + mesh.get_local_rank(
        "dp_shard"
    )
    return Parallel(model, mesh, dp_rank, layout.dp_replicate * layout.dp_shard, mp_text)


def _expert_parallel(model: nn.Module, layout: Layout, mesh: Any) -> Parallel:
    """Every MoE layer keeps this rank's experts; the ep ranks are data parallel for the rest."""
    import torch.distributed as dist

    from minicluster.rank.workloads.llama import MoE

    group, rank = mesh["ep"].get_group(), mesh.get_local_rank("ep")
    moes = [m for m in model.modules() if isinstance(m, MoE)]
    for moe in moes:
        moe.shard_experts(group, rank, layout.ep)
    experts = {id(p) for moe in moes for p in moe.experts.parameters()}
    dense = [p for p in model.parameters() if id(p) not in experts]
    expert_params = [p for p in model.parameters() if id(p) in experts]

    def sync_grads() -> None:
        grads = [p.grad for p in dense if p.grad is not None]
        if grads:
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat, group=group)
            flat /= layout.ep
            for g, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
                g.copy_(part.view_as(g))
        for p in expert_params:
            if p.grad is not None:
                p.grad /= layout.ep  # the sum over ranks' tokens of each rank's mean loss

    return Parallel(model, mesh, rank, layout.ep, None, sync_grads)


def autocast(
    device: torch.device, precision: str, parallel: Parallel | None
) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """The context forward and the loss run in: autocast to the precision, unless FSDP2's
    mixed-precision policy already casts the parameters (then fp32 loss, bf16 matmuls)."""
    if precision == "fp32" or (parallel is not None and parallel.mixed_precision is not None):
        return contextlib.nullcontext
    dtype = DTYPES[precision]
    return lambda: torch.autocast(device.type, dtype=dtype)


class LlamaStage(nn.Module):
    """One pipeline stage of a Llama: its contiguous share of the blocks, with the embedding on
    the first stage and the final norm and output head on the last (the rest is dropped)."""

    def __init__(self, model: nn.Module, stage: int, stages: int) -> None:
        super().__init__()
        blocks = list(model.layers)  # type: ignore[arg-type]
        per = len(blocks) // stages
        first, last = stage == 0, stage == stages - 1
        self.tok_embeddings: nn.Module | None = model.tok_embeddings if first else None  # type: ignore[assignment]
        self.layers = nn.ModuleList(blocks[stage * per : (stage + 1) * per])
        self.norm: nn.Module | None = model.norm if last else None  # type: ignore[assignment]
        self.output: nn.Module | None = model.output if last else None  # type: ignore[assignment]
        self.register_buffer("rope_cos", model.get_buffer("rope_cos"), persistent=False)
        self.register_buffer("rope_sin", model.get_buffer("rope_sin"), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.tok_embeddings(x) if self.tok_embeddings is not None else x
        t = h.shape[1]
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]  # type: ignore[index]
        for layer in self.layers:
            h = layer(h, cos, sin)
        if self.norm is not None and self.output is not None:
            h = self.output(self.norm(h))
        return h


@dataclass
class Pipeline:
    """This rank's pipeline stage and its schedule; `busy_spans` are the host-clock spans of
    the stage's forward and backward chunks in the current step (the rest of the step is
    bubble or communication)."""

    stage_module: nn.Module
    schedule: Any
    stage: int
    stages: int
    microbatches: int
    busy_spans: list[tuple[int, int]]
    # DP+PP: this rank's data-parallel replica of its stage, and the averaging of the stage's
    # gradients over the replicas (one all-reduce before the optimizer steps); None without dp
    dp_rank: int = 0
    sync_grads: Callable[[], None] | None = None

    def step(
        self, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable[..., torch.Tensor]
    ) -> float | None:
        """One schedule step on this rank: the mean microbatch loss on the last stage, else
        None (the other stages never see a loss)."""
        if self.stage == 0:
            self.schedule.step(x)
            return None
        if self.stage == self.stages - 1:
            losses: list[torch.Tensor] = []
            self.schedule.step(target=y, losses=losses)
            return float(sum(v.item() for v in losses) / len(losses))
        self.schedule.step()
        return None


def pipeline(
    model: nn.Module, layout: Layout, device: torch.device, loss_fn: Callable[..., torch.Tensor]
) -> Pipeline:
    """`model` cut into `layout.pp` stages, this rank's stage under the configured schedule
    (1F1B or GPipe), its chunks timed (a collective: every rank calls it)."""
    import time

    from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe

    mesh = build_mesh(layout, device)
    stage_index = mesh.get_local_rank("pp")
    module = LlamaStage(model, stage_index, layout.pp).to(device)
    stage = PipelineStage(module, stage_index, layout.pp, device, group=mesh["pp"].get_group())
    busy: list[tuple[int, int]] = []
    for name in ("forward_one_chunk", "backward_one_chunk"):
        original = getattr(stage, name)

        def timed(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            start = time.perf_counter_ns()
            try:
                return _original(*args, **kwargs)
            finally:
                busy.append((start, time.perf_counter_ns()))

        setattr(stage, name, timed)
    schedule_cls = Schedule1F1B if layout.pp_schedule == "1f1b" else ScheduleGPipe
    microbatches = layout.pp_microbatches or 2 * layout.pp
    schedule = schedule_cls(stage, n_microbatches=microbatches, loss_fn=loss_fn)
    dp_rank, sync = 0, None
    if layout.dp_replicate > 1:
        dp_rank = mesh.get_local_rank("dp_replicate")
        sync = _average_grads(list(module.parameters()), mesh["dp_replicate"].get_group())
    return Pipeline(module, schedule, stage_index, layout.pp, microbatches, busy, dp_rank, sync)


def _average_grads(params: list[nn.Parameter], group: Any) -> Callable[[], None]:
    """The mean of `params`' gradients over the ranks of `group` (the replicas of one pipeline
    stage), one all-reduce of all of them flattened."""
    import torch.distributed as dist

    size = dist.get_world_size(group)

    def sync_grads() -> None:
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat, group=group)
            flat /= size
            for g, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
                g.copy_(part.view_as(g))

    return sync_grads
