"""The parallel layout: the `parallel:` degrees resolved against a world size into one mesh shape.

Degrees `dp_replicate x dp_shard x tp x pp x ep` multiply to the world size (one DeviceMesh, dims
in `MESH_DIMS` order, outermost first, as torchtitan orders them). `dp_replicate` left unset
takes what the world size leaves after the others, so an empty section is today's DDP. A degree
that does not fit the world size or the model is a `ConfigError` naming the field, raised before
any rank starts (and again on every rank, for outside launchers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from minicluster.core.errors import ConfigError

# Mesh dims, outermost first: pipeline stages span the slowest links, tensor parallel the fastest.
MESH_DIMS = ("pp", "dp_replicate", "dp_shard", "ep", "tp")
DEGREES = MESH_DIMS
PP_SCHEDULES = ("1f1b", "gpipe")


@dataclass(frozen=True)
class Layout:
    """The resolved degrees of one run (every one an int >= 1, product = world size)."""

    dp_replicate: int = 1
    dp_shard: int = 1
    tp: int = 1
    pp: int = 1
    ep: int = 1
    pp_schedule: str | None = None  # only when pp > 1
    pp_microbatches: int | None = None  # only when pp > 1

    @property
    def world_size(self) -> int:
        return self.dp_replicate * self.dp_shard * self.tp * self.pp * self.ep

    @property
    def is_ddp(self) -> bool:
        """Plain data parallel with DDP: no sharding, no model parallelism."""
        return self.dp_shard == 1 and self.tp == 1 and self.pp == 1 and self.ep == 1

    @property
    def fsdp(self) -> bool:
        """FSDP2 (`fully_shard`) wraps the model: dp sharding, or data parallel beside tp (a
        pipeline's data-parallel copies average their stages' gradients themselves)."""
        return not self.is_ddp and self.pp == 1 and (self.dp_shard > 1 or self.dp_replicate > 1)

    @property
    def name(self) -> str:
        """Short name of the parallelisms in use, e.g. `FSDP+TP`, `DDP`."""
        parts = []
        if self.is_ddp:
            return "DDP"
        if self.dp_shard > 1 and self.dp_replicate > 1:
            parts.append("HSDP")
        elif self.fsdp:
            parts.append("FSDP")
        elif self.dp_replicate > 1:
            parts.append("DP")
        for degree, label in ((self.tp, "TP"), (self.pp, "PP"), (self.ep, "EP")):
            if degree > 1:
                parts.append(label)
        return "+".join(parts) or "single"

    @property
    def label(self) -> str:
        """The degrees other than 1, as the `--parallel` flag takes them (`dp_shard=2,tp=2`)."""
        given = [f"{k}={getattr(self, k)}" for k in DEGREES if getattr(self, k) > 1]
        return ",".join(given) or "dp_replicate=1"

    @property
    def mesh(self) -> list[tuple[str, int]]:
        return [(dim, getattr(self, dim)) for dim in MESH_DIMS]

    def replica_groups(self) -> list[list[int]]:
        """The ranks that hold the same parameters, gradients and optimizer state after every
        step, bit for bit: ranks whose mesh coordinates differ only in `dp_replicate` (DDP: all
        ranks; HSDP: the replicas of each shard; FSDP2, TP, PP and EP alone: one rank each, no
        other rank holds its shard). Ranks are laid out row-major over `MESH_DIMS`, as
        `init_device_mesh` lays them."""
        inner = 1
        for dim in MESH_DIMS[MESH_DIMS.index("dp_replicate") + 1 :]:
            inner *= getattr(self, dim)
        block = inner * self.dp_replicate  # the ranks of one pipeline stage
        return [
            [stage * block + r * inner + offset for r in range(self.dp_replicate)]
            for stage in range(self.pp)
            for offset in range(inner)
        ]

    def to_dict(self) -> dict[str, Any]:
        """The `layout` section of a result."""
        return {
            "label": self.label,
            "name": self.name,
            **{k: getattr(self, k) for k in DEGREES},
            "fsdp": self.fsdp,
            "mesh": [list(pair) for pair in self.mesh],
            "pp_schedule": self.pp_schedule,
            "pp_microbatches": self.pp_microbatches,
        }


def _ranks_hint(n: int) -> str:
    """How to give the degrees the ranks they need: `n` ranks on one node (`--nproc`), or a
    world size that is a multiple of `n`."""
    return f" (run on a multiple of {n} ranks: --nproc {n})"


def resolve(
    degrees: dict[str, int | None],
    world_size: int,
    pp_schedule: str = "1f1b",
    pp_microbatches: int | None = None,
) -> Layout:
    """The layout of `degrees` (None: unset) on `world_size` ranks; ConfigError naming the field
    whose degree does not fit."""
    given = {k: v for k, v in degrees.items() if v is not None}
    for key, value in given.items():
        if key not in DEGREES:
            raise ConfigError(f"parallel.{key} is not a degree; allowed: {', '.join(DEGREES)}")
        if value < 1:
            raise ConfigError(f"parallel.{key} is {value}; must be >= 1")
    needed = math.prod(given.values())  # the fewest ranks the degrees given fit on
    for key, value in given.items():
        if world_size % value:
            raise ConfigError(
                f"parallel.{key} ({value}) does not divide the world size ({world_size})"
                f"{_ranks_hint(needed)}"
            )
    others = 1
    for key in DEGREES:
        if key != "dp_replicate":
            others *= given.get(key, 1)
    if "dp_replicate" not in given:
        if world_size % others:
            named = " x ".join(f"{k}={v}" for k, v in given.items())
            raise ConfigError(
                f"parallel: {named} = {others} ranks does not divide the world size ({world_size})"
                f"{_ranks_hint(others)}"
            )
        given["dp_replicate"] = world_size // others
    product = others * given["dp_replicate"]
    if product != world_size:
        text = " x ".join(f"{k}={given.get(k, 1)}" for k in DEGREES)
        raise ConfigError(
            f"parallel: {text} = {product} ranks, but the world size is {world_size}; "
            f"the degrees must multiply to the world size{_ranks_hint(product)}"
        )
    pp = given.get("pp", 1)
    if pp > 1 and pp_microbatches is not None and pp_microbatches < pp:
        raise ConfigError(
            f"parallel.pp_microbatches ({pp_microbatches}) is below parallel.pp ({pp}): "
            "a schedule needs at least one microbatch per stage"
        )
    return Layout(
        dp_replicate=given["dp_replicate"],
        dp_shard=given.get("dp_shard", 1),
        tp=given.get("tp", 1),
        pp=pp,
        ep=given.get("ep", 1),
        pp_schedule=pp_schedule if pp > 1 else None,
        pp_microbatches=(pp_microbatches or 2 * pp) if pp > 1 else None,
    )


def parse_flag(text: str, source: str = "--parallel") -> dict[str, Any]:
    """`dp_shard=2,tp=2` (the `--parallel` flag) -> {key: value}; ConfigError on a bad item,
    naming `source` (the flag the text came from: `--layouts dp_shard=2,tp=0` for a layout)."""
    out: dict[str, Any] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not value.strip():
            raise ConfigError(f"{source}: {item!r} is not key=value (e.g. dp_shard=2,tp=2)")
        if key in out:  # `tp=2,tp=4` ran tp=4 without a word
            raise ConfigError(f"{source}: {key} is given twice in {text!r}")
        if key == "pp_schedule":
            out[key] = value.strip()
            continue
        try:
            out[key] = int(value)
        except ValueError:
            raise ConfigError(f"{source}: {key} must be an integer, got {value!r}") from None
    if not out:
        raise ConfigError(f"{source} is empty; e.g. {source.split()[0]} dp_shard=2,tp=2")
    return out
