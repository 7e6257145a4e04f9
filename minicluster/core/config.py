"""YAML config -> typed dataclasses; unknown keys, wrong types and out-of-range values raise ConfigError."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from minicluster.core import choices, collective_defs, factory_spec, pair_recheck
from minicluster.core import layout as layout_mod
from minicluster.core.checks import CHECK_KEYS, ChecksSection
from minicluster.core.choices import REQUIRABLE_MEASUREMENTS
from minicluster.core.errors import ConfigError
from minicluster.core.fault_spec import FaultSpec
from minicluster.core.fault_spec import from_mapping as fault_from_mapping
from minicluster.core.units import format_size, parse_size


def _range(lo: float | None = None, hi: float | None = None, help: str = "") -> dict[str, Any]:
    """Field metadata: the allowed range, and the help text the command line's flag for the
    field shows (with the field's default added by the parser)."""
    return {"min": lo, "max": hi, "help": help}


@dataclass(frozen=True)
class MlpConfig:
    """A multi-layer perceptron classifier on synthetic Gaussian inputs."""

    name: Literal["mlp"] = "mlp"
    per_rank_batch: int = field(default=64, metadata=_range(1))
    input_dim: int = field(default=512, metadata=_range(1))
    hidden_dim: int = field(default=1024, metadata=_range(1))
    num_layers: int = field(default=3, metadata=_range(1, 64))
    num_classes: int = field(default=10, metadata=_range(2))


@dataclass(frozen=True)
class TransformerConfig:
    """A small GPT-style causal language model on synthetic tokens."""

    name: Literal["transformer"] = "transformer"
    per_rank_batch: int = field(default=8, metadata=_range(1))
    seq_len: int = field(default=64, metadata=_range(2))
    vocab_size: int = field(default=1024, metadata=_range(2))
    d_model: int = field(default=128, metadata=_range(8))
    n_layers: int = field(default=2, metadata=_range(1, 64))
    n_heads: int = field(default=4, metadata=_range(1))

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"workload.d_model ({self.d_model}) must be divisible by "
                f"workload.n_heads ({self.n_heads})"
            )


# Shapes of published decoders (no weights): a preset fills the shape fields the config leaves
# out. Sources: Meta's Llama 3 / 3.1 / 3.2 model cards and params.json files (as torchtitan's
# llama3 model args restate them).
LLAMA_PRESETS: dict[str, dict[str, Any]] = {
    "llama3_1b": dict(
        dim=2048, n_layers=16, n_heads=32, n_kv_heads=8, vocab_size=128256,
        ffn_dim_multiplier=1.5, multiple_of=256, rope_theta=500000.0, seq_len=8192,
    ),
    "llama3_8b": dict(
        dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, vocab_size=128256,
        ffn_dim_multiplier=1.3, multiple_of=1024, rope_theta=500000.0, seq_len=8192,
    ),
    "llama3_70b": dict(
        dim=8192, n_layers=80, n_heads=64, n_kv_heads=8, vocab_size=128256,
        ffn_dim_multiplier=1.3, multiple_of=4096, rope_theta=500000.0, seq_len=8192,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class LlamaConfig:
    """A Llama-style decoder (RMSNorm, RoPE, SwiGLU, grouped-query attention) on synthetic
    tokens; the default fits two CPU ranks. `preset` fills the shape fields not given."""

    name: Literal["llama"] = "llama"
    per_rank_batch: int = field(default=4, metadata=_range(1))
    seq_len: int = field(default=32, metadata=_range(2))
    preset: str | None = None
    vocab_size: int = field(default=256, metadata=_range(2))
    dim: int = field(default=64, metadata=_range(8))
    n_layers: int = field(default=4, metadata=_range(1, 1024))
    n_heads: int = field(default=4, metadata=_range(1))
    n_kv_heads: int = field(default=2, metadata=_range(1))
    multiple_of: int = field(default=32, metadata=_range(1))
    ffn_dim_multiplier: float | None = field(default=None, metadata=_range(0.01))
    rope_theta: float = field(default=10000.0, metadata=_range(1))
    norm_eps: float = field(default=1e-5, metadata=_range(0))
    # Mixture of experts: 0 is a dense SwiGLU MLP; N > 0 replaces it by N SwiGLU experts, each
    # token routed to its top-k (expert parallel, `parallel.ep`, spreads them over ranks).
    moe_experts: int = field(default=0, metadata=_range(0, 4096))
    moe_top_k: int = field(default=2, metadata=_range(1, 64))

    def __post_init__(self) -> None:
        if self.moe_experts and self.moe_top_k > self.moe_experts:
            raise ConfigError(
                f"workload.moe_top_k ({self.moe_top_k}) exceeds workload.moe_experts "
                f"({self.moe_experts})"
            )
        if self.preset is not None and self.preset not in LLAMA_PRESETS:
            raise ConfigError(
                f"workload.preset is {self.preset!r}; allowed: {', '.join(LLAMA_PRESETS)}"
            )
        if self.dim % self.n_heads:
            raise ConfigError(
                f"workload.dim ({self.dim}) must be divisible by workload.n_heads ({self.n_heads})"
            )
        if (self.dim // self.n_heads) % 2:
            raise ConfigError(
                f"workload.dim / workload.n_heads ({self.dim // self.n_heads}) must be even (RoPE "
                "rotates pairs)"
            )
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(
                f"workload.n_heads ({self.n_heads}) must be divisible by workload.n_kv_heads "
                f"({self.n_kv_heads})"
            )

    @property
    def ffn_dim(self) -> int:
        """SwiGLU hidden size, as Llama computes it (2/3 of 4 dim, scaled, rounded up)."""
        hidden = int(2 * (4 * self.dim) / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return self.multiple_of * ((hidden + self.multiple_of - 1) // self.multiple_of)


@dataclass(frozen=True)
class CustomConfig:
    """The user's own model: `factory` names a function `build(ctx)` returning the model, its
    batches and its loss (the contract: README "Your own model", docs/custom_model.md)."""

    name: Literal["custom"] = "custom"
    # "pkg.module:build" (importable by the ranks) or "path/to/file.py:build" (relative to the
    # directory the command runs in; the launcher records it absolute).
    factory: str = ""
    # Given to build as ctx.per_rank_batch; None: the factory's own choice. A strong-scaling
    # sweep needs it (it divides the global batch among the ranks).
    per_rank_batch: int | None = field(default=None, metadata=_range(1))
    # Free-form settings handed to build as ctx.options (model sizes, data paths).
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        factory_spec.parse(self.factory)
        if not isinstance(self.options, dict):
            raise ConfigError(f"workload.options must be a mapping, got {self.options!r}")
        object.__setattr__(self, "options", dict(self.options))


WorkloadConfig = MlpConfig | TransformerConfig | LlamaConfig | CustomConfig
WORKLOADS: dict[
    str, type[MlpConfig] | type[TransformerConfig] | type[LlamaConfig] | type[CustomConfig]
] = {
    "mlp": MlpConfig,
    "transformer": TransformerConfig,
    "llama": LlamaConfig,
    "custom": CustomConfig,
}


@dataclass(frozen=True)
class StepsConfig:
    warmup: int = field(default=5, metadata=_range(0))
    measured: int = field(default=50, metadata=_range(1))


def default_threads(cores: int | None, local_ranks: int) -> int:
    """CPU threads per rank when `run.threads_per_rank` is 0: the host's cores shared by the
    ranks on it, at least 1. (What a rank used is in its header, `threads`.)"""
    return max(1, (cores or 1) // max(1, local_ranks))


@dataclass(frozen=True)
class RunSection:
    nproc: int = field(default=2, metadata=_range(1, 4096, help="ranks to start (per node)"))
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    collective_timeout_s: float = field(
        default=300.0,
        metadata=_range(
            1, help="how long a rank waits for a peer in a collective before the run fails"
        ),
    )
    # 0 means cores / local ranks, at least 1.
    threads_per_rank: int = field(default=0, metadata=_range(0, 1024))
    bucket_cap_mb: float = field(default=25.0, metadata=_range(0.01))
    # How all-reduce time is taken: DDP's C++ runtime stats (cheapest) or a Python comm hook
    # (per-bucket spans; host clock on gloo, CUDA events on NCCL). See README "Timing methods".
    comm_timing: Literal["ddp_stats", "hook"] = "ddp_stats"
    # Checksum parameters, optimizer state and gradients every N steps (replica check); 0: off.
    # `validate` and an injected corrupt_grad turn it on (1) when it is off.
    replica_check_every: int = field(default=0, metadata=_range(0))
    # Rank 0 re-trains a single-process copy on the global batch and compares (`validate`).
    check_ddp_equivalence: bool = False
    # fp32, or autocast to bf16/fp16 (FSDP2 also gathers parameters and reduces gradients in it).
    precision: Literal["fp32", "bf16", "fp16"] = field(
        default="fp32", metadata={"help": "compute precision: fp32, or autocast to bf16 / fp16"}
    )
    compile: bool = False  # torch.compile the model before wrapping it
    # The global batch is per_rank_batch x world size in every layout: a data-parallel rank of a
    # layout with fewer of them (tp, pp) trains on world / dp shards of it, so every layout sees
    # the same data (`validate --layouts` sets it).
    fixed_global_batch: bool = False


@dataclass(frozen=True)
class ParallelSection:
    """The layout's degrees (`core.layout`): their product is the world size; `dp_replicate`
    unset takes what the others leave (all unset: DDP over every rank)."""

    dp_replicate: int | None = field(default=None, metadata=_range(1))
    dp_shard: int | None = field(default=None, metadata=_range(1))
    tp: int | None = field(default=None, metadata=_range(1))
    pp: int | None = field(default=None, metadata=_range(1))
    ep: int | None = field(default=None, metadata=_range(1))
    pp_schedule: Literal["1f1b", "gpipe"] = "1f1b"
    pp_microbatches: int | None = field(default=None, metadata=_range(1))

    def degrees(self) -> dict[str, int | None]:
        return {k: getattr(self, k) for k in layout_mod.DEGREES}

    def layout(self, world_size: int) -> layout_mod.Layout:
        return layout_mod.resolve(
            self.degrees(), world_size, self.pp_schedule, self.pp_microbatches
        )


@dataclass(frozen=True)
class TelemetrySection:
    """Background sampler interval and measurements whose absence fails the run up front."""

    sample_interval_ms: int = field(default=100, metadata=_range(10, 60_000))
    require: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.require, (list, tuple)):
            raise ConfigError(f"telemetry.require must be a list, got {self.require!r}")
        for what in self.require:
            if what not in REQUIRABLE_MEASUREMENTS:
                raise ConfigError(
                    f"telemetry.require has {what!r}; allowed: {', '.join(REQUIRABLE_MEASUREMENTS)}"
                )
        object.__setattr__(self, "require", list(self.require))


MAX_MESSAGE_BYTES = 2**40  # 1 TiB: beyond any device's memory, and its count fits int64


def _size(lo: int, help: str = "") -> dict[str, Any]:
    """Metadata of a byte-size field: an int, or text such as `64M` (K = 1024), up to 1 TiB."""
    return {**_range(lo, MAX_MESSAGE_BYTES, help), "size": True}


DEFAULT_PAIR_BYTES = 64 * 1024**2  # a fixed size on the bandwidth plateau of every fabric


@dataclass(frozen=True)
class CollectivesSection:
    """The collective micro-benchmark (`job: collectives`): ops, message sizes, iterations; or,
    with `pattern: pairwise`, the link test of every pair of ranks (or nodes) at one size."""

    ops: list[str] = field(
        default_factory=lambda: list(choices.OPS),
        metadata={"help": f"comma list of {', '.join(choices.OPS)}"},
    )
    min_bytes: int = field(default=choices.DEFAULT_MIN_BYTES, metadata=_size(1))
    # None: chosen by device, 256M on a GPU and less on CPU (collective_defs.default_max_bytes).
    max_bytes: int | None = field(default=None, metadata=_size(1))
    step_factor: int = field(
        default=2,
        metadata=_range(2, 1024, help="multiply the size by F from MIN to MAX (nccl-tests -f)"),
    )
    iters: int = field(default=20, metadata=_range(1, help="timed calls per size"))
    warmup_iters: int = field(default=5, metadata=_range(0, help="untimed calls before them"))
    dtype: Literal["float32", "float16", "bfloat16"] = field(
        default="float32", metadata={"help": "element type"}
    )
    root: int = field(default=0, metadata=_range(0))  # of broadcast; must be < world size
    # all: every op at every size over all ranks; pairwise: send/recv between every pair.
    pattern: Literal["all", "pairwise", "isolate"] = field(
        default="all",
        metadata={
            "help": "all: every op at every size over all ranks; pairwise: the link test of every "
            "pair of ranks, send/recv both ways at one size, slow pairs and the suspect named, "
            "exit 1 on a slow or wrong pair; isolate: bad ranks (or nodes) found by group "
            "testing, all_reduce at one size on groups, exit 1 when one is named"
        },
    )
    pair_bytes: int = field(
        default=DEFAULT_PAIR_BYTES,
        metadata=_size(1, help="bytes each pair sends each way per transfer; K/M/G = 1024^n"),
    )
    # concurrent: a round's disjoint pairs at once (what a busy fabric sees); serial: one pair
    # at a time (no pair shares the host or the switch with another).
    schedule: Literal["concurrent", "serial"] = "concurrent"
    # rank: every pair of ranks; node: one rank per node, every pair of nodes.
    per: Literal["rank", "node"] = field(
        default="rank",
        metadata={
            "help": "rank: every pair of ranks; node: one rank per node, every pair of nodes "
            "(needs ranks on two nodes or more: an outside launcher)"
        },
    )
    # The schedule runs this many times; each pair keeps its fastest pass, so a pair is slow
    # only when it is slow every time (a busy host slows a healthy pair now and then: measured
    # 0.6-2.4 GB/s for one pair over three passes on a loaded 2-core VM). 1: each pair once.
    passes: int = field(
        default=2,
        metadata=_range(
            1,
            100,
            help="run the whole schedule P times; each pair keeps its fastest pass, so a pair is "
            "slow only when it is slow every time",
        ),
    )
    # After the passes, every pair flagged slow is measured again in this many rounds, each beside
    # a healthy pair (core.pair_recheck); it stays slow only when the upper 95% bound of its
    # median busbw ratio to them is below the cut. 0: no re-measure (the passes decide alone).
    recheck_rounds: int = field(
        default=8,
        metadata=_range(
            0,
            100,
            help="re-measure each pair the passes flag slow in R rounds beside healthy pairs; it "
            "stays slow only when slow against them (0: the passes decide; else at least 5, the "
            "fewest whose bound reaches the rule's confidence)",
        ),
    )
    # A pair is slow when its busbw's robust z (median/MAD over all pairs) is below -outlier_z,
    # or its busbw is below min_busbw_gbps (None: no absolute floor).
    outlier_z: float = field(
        default=3.5,
        metadata=_range(
            0.5,
            100,
            help="a pair whose busbw's robust z (median/MAD over all pairs) is below -Z is slow",
        ),
    )
    min_busbw_gbps: float | None = field(
        default=None,
        metadata=_range(1e-9, help="a pair below this busbw (GB/s) is slow whatever the others do"),
    )
    # The MAD of ln(busbw) never counts as less than this, so a handful of pairs that happen to
    # agree closely cannot make a normal dip an outlier: with z 3.5, a pair must be below
    # exp(-3.5 x 0.2) = 50% of the median before the spread alone names it (README, "Finding
    # the slow link": of 23 clean runs on a loaded 2-core VM a floor of 0.1 named a healthy pair
    # in 2, at 65% of the median among five that agreed within 5%; 0.15 and 0.2 in none).
    pair_mad_floor: float = field(default=0.2, metadata=_range(0, 10))
    # Isolation by group testing (pattern: isolate; core.group_testing): at most max_bad bad
    # units are isolated (more are said, not searched); a group is slow when the robust z of its
    # ln(busbw) against its round's same-size groups is below -isolate_z. With too few groups for
    # a spread (fewer than 2 x max_bad + 1), the scale is isolate_lone_scale: with z 3 and 0.25 a
    # group must be below exp(-0.75) = 47% of the fastest (README, "Isolating bad nodes").
    max_bad: int = field(
        default=3, metadata=_range(1, 1024, help="bad units to isolate at most (k)")
    )
    group_size: int | None = field(
        default=None,
        metadata=_range(2, help="units per group in round 1 (default: 8, a quarter on few units)"),
    )
    isolate_z: float = field(default=3.0, metadata=_range(0.5, 100))
    isolate_mad_floor: float = field(default=0.05, metadata=_range(0, 10))
    isolate_lone_scale: float = field(default=0.25, metadata=_range(0.01, 10))
    max_rounds: int = field(default=50, metadata=_range(1, 1000))
    # What min_busbw_gbps came from (isolate --reference: the figure, its source and the floor),
    # recorded so that the result says which reference judged it; None: no reference.
    reference: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.ops, (list, tuple)) or not self.ops:
            raise ConfigError(f"collectives.ops must be a non-empty list, got {self.ops!r}")
        for op in self.ops:
            if op not in choices.OPS:
                raise ConfigError(f"collectives.ops has {op!r}; allowed: {', '.join(choices.OPS)}")
        if len(set(self.ops)) != len(self.ops):
            raise ConfigError(f"collectives.ops lists an op twice: {', '.join(self.ops)}")
        if self.max_bytes is not None and self.max_bytes < self.min_bytes:
            raise ConfigError(
                f"collectives.max_bytes ({format_size(self.max_bytes)}) is below "
                f"collectives.min_bytes ({format_size(self.min_bytes)})"
            )
        elem = collective_defs.DTYPE_BYTES.get(self.dtype)
        if self.pattern != "all" and elem is not None and self.pair_bytes < elem:
            # the ranks would each find it (exit 3, one error per rank): said here, once
            raise ConfigError(
                f"collectives.pair_bytes (--size) is {self.pair_bytes} B, below one "
                f"{self.dtype} element ({elem} B)"
            )
        fewest = pair_recheck.min_rounds()
        if 0 < self.recheck_rounds < fewest:
            # the sign test's bound of R rounds holds at 1 - 2^-R: 50% at 1 round
            raise ConfigError(
                f"collectives.recheck_rounds (--recheck-rounds) is {self.recheck_rounds}: the "
                f"re-measure needs at least {fewest} rounds to reach its "
                f"{pair_recheck.CONFIDENCE:.0%} confidence (with {self.recheck_rounds}: "
                f"{1 - 0.5**self.recheck_rounds:.1%}); 0 turns it off"
            )
        object.__setattr__(self, "ops", list(self.ops))

    def max_bytes_for(self, on_gpu: bool) -> int:
        if self.max_bytes is not None:
            return self.max_bytes
        return max(self.min_bytes, collective_defs.default_max_bytes(on_gpu))

    def sizes(self, on_gpu: bool) -> list[int]:
        """The nominal message sizes in bytes, min to max by step_factor."""
        return collective_defs.nominal_sizes(
            self.min_bytes, self.max_bytes_for(on_gpu), self.step_factor
        )


JOBS = ("train", "collectives")
# Top-level keys of a collectives config; training sections would be silently unused there.
# faults: only a slow link, for the pairwise link test (fault_spec.check_against_benchmark).
_COLLECTIVES_KEYS = ("name", "job", "run", "collectives", "faults")


@dataclass(frozen=True)
class RunConfig:
    name: str = "default"
    # train: DDP training steps (workload, steps, telemetry, faults); collectives: the collective
    # micro-benchmark (collectives section). Both use the run section.
    job: Literal["train", "collectives"] = "train"
    workload: WorkloadConfig = field(default_factory=MlpConfig)
    steps: StepsConfig = field(default_factory=StepsConfig)
    run: RunSection = field(default_factory=RunSection)
    checks: ChecksSection = field(default_factory=ChecksSection)
    telemetry: TelemetrySection = field(default_factory=TelemetrySection)
    faults: tuple[FaultSpec, ...] = ()  # injected on purpose (`--fault`), see fault_spec.py
    collectives: CollectivesSection = field(default_factory=CollectivesSection)
    parallel: ParallelSection = field(default_factory=ParallelSection)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as JSON data: only the sections this job uses.

        A training config leaves out `job` and `collectives`, and `parallel`, `run.precision` and
        `run.compile` at their defaults (DDP, fp32, eager), so a DDP run's dict (pinned inside
        every training result.json) is the same as before layouts existed.
        """
        data = dataclasses.asdict(self)
        # JSON-shaped, also when gathered in-band; a kill's `signal` only where given, a shape
        # key at its default (every step, no drift) left out: the faults of results before those
        # keys keep their bytes
        data["faults"] = [
            {
                k: v
                for k, v in f.items()
                if (k, v) not in (("signal", None), ("every", 0), ("ms_per_step", None))
            }
            for f in data["faults"]
        ]
        if self.job == "train":
            del data["job"], data["collectives"]
            if self.parallel == ParallelSection():
                del data["parallel"]
            for key, default in (
                ("precision", "fp32"),
                ("compile", False),
                ("fixed_global_batch", False),
            ):
                if data["run"][key] == default:
                    del data["run"][key]
            return data
        return {k: data[k] for k in _COLLECTIVES_KEYS}  # no checks: nothing judges them there


def load(path: str | Path | None) -> RunConfig:
    """Load a YAML config file; None gives the built-in defaults (configs/default.yaml)."""
    if path is None:
        return RunConfig()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except IsADirectoryError:
        raise ConfigError(f"config {p} is a directory, not a YAML config file") from None
    except OSError as e:
        raise ConfigError(f"cannot read config {p}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read config {p}: not UTF-8 text") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except DuplicateKeyError as e:
        raise ConfigError(f"config {p} line {e.line}: key {e.key!r} is given twice") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config {p}{where}: malformed YAML") from None
    if data is None:
        # an empty file (or comments only) is most likely the wrong file: say so, run nothing
        raise ConfigError(
            f"config {p} is empty: give the sections to set (leave -c out for the defaults)"
        )
    return from_dict(data, source=str(p))


def _checks_from_run(data: dict[str, Any], source: str) -> None:
    """Move verdict thresholds given under `run` (configs and rank headers from before the
    `checks` section) into `checks`; ConfigError when one is given in both."""
    run = data.get("run")
    if not isinstance(run, dict) or not any(k in run for k in CHECK_KEYS):
        return
    checks = data.get("checks") or {}
    if not isinstance(checks, dict):
        return  # _build names the bad section
    moved = {k: run[k] for k in CHECK_KEYS if k in run}
    twice = sorted(set(moved) & set(checks))
    if twice:
        raise ConfigError(
            f"{source}: {twice[0]} is given in run and in checks; give it in checks only"
        )
    data["run"] = {k: v for k, v in run.items() if k not in CHECK_KEYS}
    data["checks"] = {**checks, **moved}


class DuplicateKeyError(yaml.YAMLError):
    """A mapping in the YAML names the same key twice (YAML would keep the last silently)."""

    def __init__(self, key: Any, line: int) -> None:
        super().__init__(f"duplicate key {key!r} at line {line}")
        self.key = key
        self.line = line


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses duplicate keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DuplicateKeyError(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 (PyYAML) reads a float only with a dot: `9e-07` and `1e3`, as JSON and YAML 1.2 write
# them, came back as strings, so a config.json the launcher wrote with a small threshold was
# refused by its own ranks. The YAML 1.2 float rule, for this loader only.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def from_dict(data: Any, source: str = "config") -> RunConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    data = dict(data)
    job = data.get("job", "train")
    if job not in JOBS:
        raise ConfigError(f"{source}: job is {job!r}; allowed: {', '.join(JOBS)}")
    if job == "collectives":
        if isinstance(data.get("run"), dict):  # thresholds of an older config: unused here
            data["run"] = {k: v for k, v in data["run"].items() if k not in CHECK_KEYS}
        return _collectives_from_dict(data, source)
    _checks_from_run(data, source)
    if "collectives" in data:
        raise ConfigError(f"{source}: a collectives section needs job: collectives")
    workload = data.get("workload", {})
    if workload is None:
        workload = {}
    if not isinstance(workload, dict):
        raise ConfigError(f"{source}: workload must be a mapping")
    wl_name = workload.get("name", "mlp")
    if wl_name not in WORKLOADS:
        raise ConfigError(
            f"{source}: unknown workload.name {wl_name!r}; allowed: {', '.join(WORKLOADS)}"
        )
    if wl_name == "llama" and workload.get("preset") is not None:
        preset = LLAMA_PRESETS.get(workload["preset"])
        if preset is None:
            raise ConfigError(
                f"{source}: workload.preset is {workload['preset']!r}; "
                f"allowed: {', '.join(LLAMA_PRESETS)}"
            )
        workload = {**preset, **workload}
    data["workload"] = _build(WORKLOADS[wl_name], workload, "workload", source)
    sections = (
        ("steps", StepsConfig),
        ("run", RunSection),
        ("checks", ChecksSection),
        ("telemetry", TelemetrySection),
        ("parallel", ParallelSection),
    )
    for key, cls in sections:
        section = data.get(key, {})
        data[key] = _build(cls, {} if section is None else section, key, source)
    data["faults"] = _faults(data, source)
    return _build(RunConfig, data, "", source)


def _collectives_from_dict(data: dict[str, Any], source: str) -> RunConfig:
    extra = sorted(set(data) - set(_COLLECTIVES_KEYS))
    if extra:
        raise ConfigError(
            f"{source}: {extra[0]} does not apply to job: collectives; "
            f"allowed: {', '.join(_COLLECTIVES_KEYS)}"
        )
    for key, cls in (("run", RunSection), ("collectives", CollectivesSection)):
        section = data.get(key, {})
        data[key] = _build(cls, {} if section is None else section, key, source)
    data["faults"] = _faults(data, source)
    return _build(RunConfig, data, "", source)


def _faults(data: dict[str, Any], source: str) -> tuple[FaultSpec, ...]:
    faults = data.get("faults") or []
    if not isinstance(faults, (list, tuple)):
        raise ConfigError(f"{source}: faults must be a list")
    return tuple(fault_from_mapping(f, f"{source}: faults") for f in faults)


def with_collectives(cfg: RunConfig, **fields: Any) -> RunConfig:
    """A copy of collectives config `cfg` with collectives fields replaced (None values ignored)."""
    changes = {k: v for k, v in fields.items() if v is not None}
    if not changes:
        return cfg
    merged = {**dataclasses.asdict(cfg.collectives), **changes}
    section = _build(CollectivesSection, merged, "collectives", "command line")
    return dataclasses.replace(cfg, collectives=section)


def with_parallel(cfg: RunConfig, text: str | None, source: str = "--parallel") -> RunConfig:
    """A copy of `cfg` with the degrees of a `--parallel dp_shard=2,tp=2` flag (None: as is);
    degrees the flag does not name are unset (the flag gives the whole layout). Errors name
    `source`, the flag the text came from (`--layouts dp_shard=2;tp=0` names its layout)."""
    if text is None:
        return cfg
    given = layout_mod.parse_flag(text, source)
    keep = {
        "pp_schedule": cfg.parallel.pp_schedule,
        "pp_microbatches": cfg.parallel.pp_microbatches,
    }
    section = _build(ParallelSection, {**keep, **given}, "parallel", source)
    return dataclasses.replace(cfg, parallel=section)


def slow_link_judged(lay: layout_mod.Layout) -> bool:
    """A slow link can be injected and judged under `lay`: DDP (its gradient all-reduce), or
    dp_shard or tp alone on every rank (each collective kind on one group of all ranks)."""
    if lay.is_ddp:
        return True
    return lay.world_size in (lay.dp_shard, lay.tp)


def check_layout(cfg: RunConfig, world_size: int) -> layout_mod.Layout:
    """The layout of `cfg` on `world_size` ranks; ConfigError naming the field when a degree does
    not divide the world size, the workload's heads or layers, or has no plan for the workload."""
    lay = cfg.parallel.layout(world_size)
    wl = cfg.workload
    if any(f.kind == "slow_link" for f in cfg.faults) and not slow_link_judged(lay):
        raise ConfigError(
            f"--fault slow_link under {lay.label} is not built yet: the link is judged per "
            "collective kind over all ranks, so every kind must run on one group of all ranks "
            "(DDP, dp_shard alone or tp alone; here a kind runs on several groups or "
            "point-to-point); use `collectives --pattern pairwise`"
        )
    model_parallel = [k for k in ("tp", "pp", "ep") if getattr(lay, k) > 1]
    if isinstance(wl, CustomConfig) and model_parallel and model_parallel != ["tp"]:
        raise ConfigError(
            f"parallel.{next(k for k in model_parallel if k != 'tp')} needs workload.name: "
            "llama (a custom model's parallelize(model, mesh) lays out tensor parallel; a "
            "pipeline or expert split of your own model is not built yet)"
        )
    if model_parallel and not isinstance(wl, (LlamaConfig, CustomConfig)):
        raise ConfigError(
            f"parallel.{model_parallel[0]} needs workload.name: llama (the {wl.name} workload has "
            "no tensor, pipeline or expert plan; it runs under dp_replicate and dp_shard)"
        )
    if lay.ep > 1:
        if not isinstance(wl, LlamaConfig) or not wl.moe_experts:
            raise ConfigError(
                f"parallel.ep ({lay.ep}) needs experts: workload.moe_experts > 0 (llama)"
            )
        if wl.moe_experts % lay.ep:
            raise ConfigError(
                f"parallel.ep ({lay.ep}) does not divide workload.moe_experts ({wl.moe_experts})"
            )
        if lay.ep != lay.world_size:
            raise ConfigError(
                f"parallel.ep ({lay.ep}) beside other degrees above 1 is not built yet: ep takes "
                "every rank (ep = world size)"
            )
    if isinstance(wl, LlamaConfig) and wl.moe_experts and lay.tp > 1:
        raise ConfigError("parallel.tp with workload.moe_experts is not built yet")
    if lay.pp > 1 and lay.pp * lay.dp_replicate != lay.world_size:
        raise ConfigError(
            f"parallel.pp ({lay.pp}) beside dp_shard, tp or ep is not built yet: pp takes "
            "every rank or goes with dp_replicate alone (pp x dp_replicate = world size)"
        )
    microbatches = lay.pp_microbatches or 0
    # run.fixed_global_batch: a pipeline's batch is the pp ranks' shards together
    batch = (wl.per_rank_batch or 0) * (lay.pp if cfg.run.fixed_global_batch else 1)
    if lay.pp > 1 and batch % microbatches:
        raise ConfigError(
            f"parallel.pp_microbatches ({microbatches}) does not divide the pipeline's batch "
            f"({batch}, workload.per_rank_batch)"
        )
    if isinstance(wl, LlamaConfig) and lay.tp > 1:
        for what in ("n_heads", "n_kv_heads"):
            if getattr(wl, what) % lay.tp:
                raise ConfigError(
                    f"parallel.tp ({lay.tp}) does not divide workload.{what} ({getattr(wl, what)})"
                )
        if wl.ffn_dim % lay.tp:
            raise ConfigError(
                f"parallel.tp ({lay.tp}) does not divide the SwiGLU hidden size ({wl.ffn_dim})"
            )
    if isinstance(wl, LlamaConfig) and lay.pp > 1 and wl.n_layers % lay.pp:
        raise ConfigError(
            f"parallel.pp ({lay.pp}) does not divide workload.n_layers ({wl.n_layers})"
        )
    return lay


def with_checks(cfg: RunConfig, **fields: Any) -> RunConfig:
    """A copy of `cfg` with verdict thresholds replaced (None values ignored)."""
    return dataclasses.replace(cfg, checks=override_checks(cfg.checks, **fields))


def override_checks(checks: ChecksSection, **fields: Any) -> ChecksSection:
    """`checks` with the given thresholds replaced (None values ignored), checked as a config's
    would be (ConfigError naming the field)."""
    changes = {k: v for k, v in fields.items() if v is not None}
    if not changes:
        return checks
    merged = {**dataclasses.asdict(checks), **changes}
    built: ChecksSection = _build(ChecksSection, merged, "checks", "command line")
    return built


def override(cfg: RunConfig, **run_fields: Any) -> RunConfig:
    """A copy of `cfg` with fields of its `run` section replaced (None values are ignored)."""
    changes = {k: v for k, v in run_fields.items() if v is not None}
    if not changes:
        return cfg
    merged = {**dataclasses.asdict(cfg.run), **changes}
    return dataclasses.replace(cfg, run=_build(RunSection, merged, "run", "command line"))


def require(cfg: RunConfig, measurements: list[str]) -> RunConfig:
    """A copy of `cfg` that also requires `measurements` (from `--require`)."""
    if not measurements:
        return cfg
    merged = {**dataclasses.asdict(cfg.telemetry)}
    merged["require"] = list(dict.fromkeys([*cfg.telemetry.require, *measurements]))
    section = _build(TelemetrySection, merged, "telemetry", "command line")
    return dataclasses.replace(cfg, telemetry=section)


def _build(cls: type, data: Any, prefix: str, source: str) -> Any:
    if dataclasses.is_dataclass(data):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix or 'config'} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        keys = ", ".join(f"{where}{k}" for k in unknown)
        raise ConfigError(
            f"{source}: unknown key{'s' if len(unknown) > 1 else ''} {keys}; "
            f"allowed: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        path = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _check(path, value, hints[name], fields[name].metadata, source)
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def _check(path: str, value: Any, hint: Any, meta: Any, source: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint):
        if value is None:
            return None
        (hint,) = (a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if meta.get("size") and isinstance(value, str):
        try:
            value = parse_size(value)
        except ValueError as e:
            raise ConfigError(f"{source}: {path}: {e}") from None
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(
                f"{source}: {path} is {value!r}; allowed: {', '.join(map(str, allowed))}"
            )
        return value
    if hint in (int, float) or hint is bool or hint is str:
        ok = (
            (hint is int and isinstance(value, int) and not isinstance(value, bool))
            or (hint is float and isinstance(value, (int, float)) and not isinstance(value, bool))
            or (hint is bool and isinstance(value, bool))
            or (hint is str and isinstance(value, str))
        )
        if not ok:
            raise ConfigError(
                f"{source}: {path} must be {hint.__name__}, got {type(value).__name__} {value!r}"
            )
        lo, hi = meta.get("min"), meta.get("max")
        if hint is float and not math.isfinite(value):
            raise ConfigError(f"{source}: {path} is {value}; must be a finite number")
        if hint in (int, float):
            if lo is not None and value < lo:
                raise ConfigError(f"{source}: {path} is {value}; must be >= {lo}")
            if hi is not None and value > hi:
                raise ConfigError(f"{source}: {path} is {value}; must be <= {hi}")
            return float(value) if hint is float else value
        return value
    return value  # nested dataclasses were built by the caller
