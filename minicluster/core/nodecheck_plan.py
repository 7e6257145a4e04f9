"""What `minicluster node-check` measures at each level (quick, medium, long): sizes, dtypes,
repetitions, time budgets and burn-in, as one typed plan that the command line builds once and
the measurements and the verdicts read.

The levels follow DCGM's diagnostic levels in spirit: quick is a readiness check (seconds here;
DCGM r1), medium adds larger sizes and a 2-minute burn-in (r2, "epilogue on failure"), long a
15-minute burn-in (r3).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

LEVELS = ("quick", "medium", "long")
# What `--checks` can name: each family of checks, in report order.
CHECKS = (
    "gemm",
    "device_memory",
    "host_memory",
    "pcie",
    "busbw",
    "gpu_state",
    "xid",
    "infiniband",
    "dcgm",
    "burn_in",
)
# The dtype that stands for a device's GEMM rate (the `gemm_tflops` headline) on each kind.
HEADLINE_DTYPE = {"cuda": "bfloat16", "cpu": "float32"}
MIB = 1024**2
GIB = 1024**3


@dataclass(frozen=True)
class Plan:
    """One node check: what runs, at which sizes, for how long. Sizes in bytes (K = 1024)."""

    level: str = "quick"
    checks: tuple[str, ...] = CHECKS
    gemm_sizes_gpu: tuple[int, ...] = (4096, 8192)
    gemm_sizes_cpu: tuple[int, ...] = (512, 1024)
    # fp16 on a CPU is a slow reference path in torch (1 GFLOP/s at n = 1024 on the 2-core dev
    # VM against 55 for fp32): not a rate anyone runs, so not measured there.
    gemm_dtypes_gpu: tuple[str, ...] = ("float32", "tf32", "bfloat16", "float16")
    gemm_dtypes_cpu: tuple[str, ...] = ("float32", "bfloat16")
    gemm_iters: int = 10
    # timed calls of one (dtype, size) stop after this long (at least one is made); the quick
    # level's 1 s keeps it under a minute on the 2-core dev VM at load 15 (BENCHMARKS.md)
    gemm_budget_s: float = 1.0
    check_rows: int = 64  # rows of C checked against a float64 product
    device_memory_bytes: int = 1 * GIB
    h2d_bytes: int = 256 * MIB
    host_triad_bytes: int | None = None  # per array; None: 4 x the last-level cache, >= 64 MiB
    memory_iters: int = 10
    busbw_sizes_gpu: tuple[int, int] = (1 * MIB, 256 * MIB)
    busbw_sizes_cpu: tuple[int, int] = (1 * MIB, 8 * MIB)
    busbw_iters: int = 10
    busbw_warmup_iters: int = 3
    burn_in_s: float = 0.0
    intervals: int = 20  # burn-in intervals (per-interval figures, the drift test)
    dcgm_level: int = 1
    expect_gpus: int | None = None
    floor_pct: float = 90.0
    drift_min_change_pct: float = 5.0
    throttle_min_pct: float = 5.0  # thermal throttling in this share of the samples is a finding

    def runs(self, check: str) -> bool:
        return check in self.checks

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_LEVELS: dict[str, Plan] = {
    "quick": Plan(),
    "medium": Plan(
        level="medium",
        gemm_sizes_gpu=(2048, 8192, 16384),
        gemm_sizes_cpu=(512, 1024, 2048),
        gemm_iters=20,
        gemm_budget_s=5.0,
        device_memory_bytes=4 * GIB,
        h2d_bytes=1 * GIB,
        memory_iters=20,
        busbw_sizes_gpu=(1 * MIB, 1 * GIB),
        busbw_sizes_cpu=(1 * MIB, 16 * MIB),
        busbw_iters=20,
        busbw_warmup_iters=5,
        burn_in_s=120.0,
        dcgm_level=2,
    ),
    "long": Plan(
        level="long",
        gemm_sizes_gpu=(2048, 8192, 16384),
        gemm_sizes_cpu=(512, 1024, 2048),
        gemm_iters=50,
        gemm_budget_s=10.0,
        device_memory_bytes=4 * GIB,
        h2d_bytes=1 * GIB,
        memory_iters=50,
        busbw_sizes_gpu=(1 * MIB, 1 * GIB),
        busbw_sizes_cpu=(1 * MIB, 16 * MIB),
        busbw_iters=50,
        busbw_warmup_iters=5,
        burn_in_s=900.0,
        intervals=60,
        dcgm_level=3,
    ),
}


def for_level(level: str, **changes: Any) -> Plan:
    """The plan of `level` with `changes` applied (None values left out). ValueError for an
    unknown level or field."""
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    given = {k: v for k, v in changes.items() if v is not None}
    return replace(_LEVELS[level], **given)
