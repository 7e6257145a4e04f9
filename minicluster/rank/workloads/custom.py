"""A user's own model: the factory `workload.factory` names, loaded, called with a `BuildContext`,
and what it returns checked against the contract (README "Your own model").

Every fault of the user's code (the file does not import, the function is missing, `build`
raises, its result lacks a field, `make_batch` or `loss_fn` raises) is a `UserCodeError`: one line
naming the file, the function and the exception, exit 2.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from minicluster.core import factory_spec
from minicluster.core.config import CustomConfig
from minicluster.core.errors import InputError
from minicluster.core.factory_spec import FactorySpec
from minicluster.rank.workloads import Workload

REQUIRED = ("model", "make_batch", "loss_fn", "samples_per_batch")
OPTIONAL = ("tokens_per_batch", "flops_per_sample", "parallelize")


class UserCodeError(InputError):
    """The user's model code failed or broke the contract (exit 2, like any bad input)."""


@dataclass(frozen=True)
class BuildContext:
    """What `build(ctx)` is told about the rank it builds for.

    `mesh` is the job's DeviceMesh (dims pp, dp_replicate, dp_shard, ep, tp, in that order,
    size-1 dims included: `ctx.mesh["tp"]` is the tensor-parallel group)
    under a layout other than DDP; None under DDP, where every rank holds the whole model. `per_rank_batch` is the config's
    `workload.per_rank_batch` (None: the factory chooses); `options` the config's
    `workload.options`.
    """

    rank: int
    world_size: int
    device: torch.device
    seed: int
    per_rank_batch: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    mesh: Any = None
    # Which data-parallel share of the data this rank trains on, of how many: the ranks of one
    # tensor-parallel group share one (they must draw the same batches); rank and world size
    # under DDP and FSDP2.
    dp_rank: int = 0
    dp_size: int = 1


def load_factory(text: str) -> Callable[[BuildContext], Any]:
    """The factory function `text` names, its module imported; UserCodeError in one line when
    the module does not import or has no such function."""
    spec = factory_spec.parse(text)
    module = _import(spec)
    fn = getattr(module, spec.function, None)
    if fn is None:
        raise UserCodeError(f"{_where(spec)}: {spec.target} has no function {spec.function!r}")
    if not callable(fn):
        raise UserCodeError(
            f"{_where(spec)}: {spec.function!r} in {spec.target} is a "
            f"{type(fn).__name__}, not a function"
        )
    return fn


def build_custom(
    cfg: CustomConfig,
    seed: int,
    device: torch.device,
    rank: int,
    world_size: int,
    mesh: Any = None,
) -> Workload:
    """The user's workload on this rank: `build(ctx)` called and its result checked; its
    `make_batch`, `loss_fn` and `parallelize` wrapped so that an exception in them names them.
    `mesh`: the job's DeviceMesh under a layout other than DDP (`ctx.mesh`); with a tp dim
    above 1 the result must bring `parallelize`."""
    spec = factory_spec.parse(cfg.factory)
    factory = load_factory(cfg.factory)
    ctx = BuildContext(
        rank=rank,
        world_size=world_size,
        device=device,
        seed=seed,
        per_rank_batch=cfg.per_rank_batch,
        options=dict(cfg.options),
        mesh=mesh,
        **_data_parallel(mesh, rank, world_size),
    )
    torch.manual_seed(seed)  # the same initial weights on every rank (DDP broadcasts rank 0's)
    try:
        built = factory(ctx)
    except Exception as e:
        raise UserCodeError(f"{_where(spec)}: {spec.function}(ctx) raised {_exc(e)}") from None
    parts = _parts(built, spec)
    model = parts["model"]
    if not isinstance(model, torch.nn.Module):
        raise _bad(spec, "model", f"must be a torch.nn.Module, got {type(model).__name__}")
    if not any(True for _ in model.parameters()):
        raise _bad(spec, "model", "has no parameters: there is nothing to train")
    for name in ("make_batch", "loss_fn"):
        if not callable(parts[name]):
            raise _bad(spec, name, f"must be callable, got {type(parts[name]).__name__}")
    samples = _count(spec, "samples_per_batch", parts["samples_per_batch"])
    assert samples is not None  # required: _parts checked it is there
    if cfg.per_rank_batch is not None and samples != cfg.per_rank_batch:
        raise _bad(
            spec,
            "samples_per_batch",
            f"is {samples} but workload.per_rank_batch is {cfg.per_rank_batch}: build must "
            "honour ctx.per_rank_batch when the config sets it",
        )
    tokens = _count(spec, "tokens_per_batch", parts.get("tokens_per_batch"))
    flops = parts.get("flops_per_sample")
    if flops is not None and (
        isinstance(flops, bool)
        or not isinstance(flops, (int, float))
        or not math.isfinite(flops)
        or flops <= 0
    ):
        raise _bad(spec, "flops_per_sample", f"must be a positive number, got {flops!r}")
    parallelize = parts.get("parallelize")
    if parallelize is not None and not callable(parallelize):
        raise _bad(spec, "parallelize", f"must be callable, got {type(parallelize).__name__}")
    tp = _tp_degree(mesh)
    if tp > 1 and parallelize is None:
        raise UserCodeError(
            f"{_where(spec)}: parallel.tp is {tp} but what {spec.function}(ctx) returned has no "
            "parallelize(model, mesh): a custom model brings its own tensor-parallel plan "
            '(README "Your own model"), or runs under dp_replicate and dp_shard'
        )
    return Workload(
        name="custom",
        model=model.to(device),
        make_batch=_checked_batches(spec, parts["make_batch"]),
        loss_fn=_checked_loss(spec, parts["loss_fn"]),
        samples_per_rank=samples,
        tokens_per_rank=tokens,
        seq_len=None,
        flops_per_sample=None if flops is None else float(flops),
        flops_method=None if flops is None else f"flops_per_sample from {spec}",
        parallelize=None if parallelize is None else _checked_parallelize(spec, parallelize),
        any_rank_batches=takes_dp_rank(parts["make_batch"]),
    )


def _data_parallel(mesh: Any, rank: int, world_size: int) -> dict[str, int]:
    """`dp_rank` and `dp_size` of the BuildContext: this rank's coordinate over the mesh's
    data-parallel dims (dp_replicate x dp_shard), as the layouts' own workloads draw batches."""
    if mesh is None:
        return {"dp_rank": rank, "dp_size": world_size}
    shard = int(mesh["dp_shard"].size())
    dp_rank = mesh.get_local_rank("dp_replicate") * shard + mesh.get_local_rank("dp_shard")
    return {"dp_rank": int(dp_rank), "dp_size": int(mesh["dp_replicate"].size()) * shard}


def _tp_degree(mesh: Any) -> int:
    """The size of `mesh`'s tp dim; 1 without a mesh (DDP)."""
    if mesh is None:
        return 1
    return int(mesh["tp"].size())


def _checked_parallelize(
    spec: FactorySpec, parallelize: Callable[[Any, Any], Any]
) -> Callable[[torch.nn.Module, Any], torch.nn.Module]:
    """`parallelize(model, mesh)` as the layout calls it: the module it returns (or the one it
    changed in place, when it returns None), its exceptions and wrong results named."""

    def call(model: torch.nn.Module, mesh: Any) -> torch.nn.Module:
        try:
            laid_out = parallelize(model, mesh)
        except Exception as e:
            raise UserCodeError(
                f"{_where(spec)}: parallelize(model, mesh) raised {_exc(e)}"
            ) from None
        if laid_out is None:
            return model
        if not isinstance(laid_out, torch.nn.Module):
            raise UserCodeError(
                f"{_where(spec)}: parallelize(model, mesh) must return the model (an "
                f"nn.Module) or None, got {type(laid_out).__name__}"
            )
        return laid_out

    return call


def takes_dp_rank(make_batch: Callable[..., Any]) -> bool:
    """Whether the user's `make_batch` takes a second positional argument (`make_batch(step,
    dp_rank)`: it can make any data-parallel rank's batch), not only `make_batch(step)`."""
    try:
        params = inspect.signature(make_batch).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: call it as the contract says
        return False
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in positional)


def _checked_batches(
    spec: FactorySpec, make_batch: Callable[..., Any]
) -> Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]:
    """`make_batch(step)` as the harness calls it (`(step, rank)`: a `make_batch(step)` closes
    over its own rank; a `make_batch(step, dp_rank)` is handed the data-parallel rank whose batch
    the harness wants), its exceptions and wrong results named."""
    by_rank = takes_dp_rank(make_batch)

    def call(step: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            batch = make_batch(step, rank) if by_rank else make_batch(step)
        except Exception as e:
            raise UserCodeError(f"{_where(spec)}: make_batch({step}) raised {_exc(e)}") from None
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise UserCodeError(
                f"{_where(spec)}: make_batch({step}) must return (inputs, targets), got "
                f"{type(batch).__name__}"
            )
        return batch[0], batch[1]

    return call


def _checked_loss(
    spec: FactorySpec, loss_fn: Callable[[Any, Any], Any]
) -> Callable[[Any, Any], torch.Tensor]:
    def call(outputs: Any, targets: Any) -> torch.Tensor:
        try:
            loss = loss_fn(outputs, targets)
        except Exception as e:
            raise UserCodeError(f"{_where(spec)}: loss_fn raised {_exc(e)}") from None
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            got = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise UserCodeError(f"{_where(spec)}: loss_fn must return a scalar tensor, got {got}")
        return loss

    return call


def _parts(built: Any, spec: FactorySpec) -> dict[str, Any]:
    """The contract's fields of what build returned (a mapping, or an object's attributes)."""
    if isinstance(built, Mapping):
        get: Callable[[str], Any] = lambda key: built.get(key)  # noqa: E731
    else:
        get = lambda key: getattr(built, key, None)  # noqa: E731
    if built is None:
        raise UserCodeError(
            f"{_where(spec)}: {spec.function}(ctx) returned None; return a mapping or object "
            f"with {', '.join(REQUIRED)}"
        )
    parts = {key: get(key) for key in (*REQUIRED, *OPTIONAL)}
    missing = [key for key in REQUIRED if parts[key] is None]
    if missing:
        raise UserCodeError(
            f"{_where(spec)}: what {spec.function}(ctx) returned ({type(built).__name__}) lacks "
            f"{', '.join(missing)}; required: {', '.join(REQUIRED)}"
        )
    return parts


def _count(spec: FactorySpec, name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad(spec, name, f"must be a positive int, got {value!r}")
    return value


def _bad(spec: FactorySpec, name: str, why: str) -> UserCodeError:
    return UserCodeError(f"{_where(spec)}: {spec.function}(ctx) returned {name} that {why}")


def _where(spec: FactorySpec) -> str:
    return f"{factory_spec.FIELD} {spec}"


def _exc(e: BaseException) -> str:
    """`Type: first line of the message` (one line, whatever the exception's text)."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _import(spec: FactorySpec) -> ModuleType:
    """The module of `spec`: a file loaded under a name of its own (its directory on sys.path,
    as for a script, so its siblings import), or a module imported by name."""
    if not spec.is_file:
        try:
            return importlib.import_module(spec.target)
        except (Exception, SystemExit) as e:
            raise UserCodeError(
                f"{_where(spec)}: importing {spec.target} raised {_exc(e)}"
            ) from None
    path = Path(spec.target)
    if not path.is_file():
        raise UserCodeError(f"{_where(spec)}: no such file {path}")
    resolved = path.resolve()
    name = "minicluster_custom_" + hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise UserCodeError(f"{_where(spec)}: {path} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    if str(resolved.parent) not in sys.path:
        sys.path.insert(0, str(resolved.parent))
    sys.modules[name] = module  # before it runs: dataclasses and pickle look it up there
    try:
        module_spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:
        del sys.modules[name]
        raise UserCodeError(f"{_where(spec)}: importing {path} raised {_exc(e)}") from None
    return module
