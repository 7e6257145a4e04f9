"""Names and defaults the command line offers, in a module that imports nothing, so that
`minicluster --help` (and `compare --help`) start before any module with logic is loaded."""

from __future__ import annotations

# Measurements a run can require up front (`--require`, config telemetry.require).
REQUIRABLE_MEASUREMENTS = ("energy", "temperature")

# How `minicluster collectives` runs: every op over message sizes, or every pair of ranks.
PATTERNS = ("all", "pairwise")

# The collectives, in report order (nccl-tests' names).
OPS: tuple[str, ...] = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all")

DEFAULT_MIN_BYTES = 1024
# nccl-tests' usual sweep ends at 256M (or more); a GPU moves that in milliseconds.
GPU_DEFAULT_MAX_BYTES = 256 * 1024**2
# gloo on CPU moves 1-1.5 GB/s and is on its plateau from ~2M. Measured on a 2-core host, 2
# ranks, the default command (5 ops, 26 calls per size) took 8.4 s up to 16M, 14 s up to 32M and
# 40 s up to 64M: 16M keeps it well under 20 s with the 30-60% run-to-run noise seen there.
CPU_DEFAULT_MAX_BYTES = 16 * 1024**2

# `minicluster sweep` without --world-sizes, --mode, --repeats.
SWEEP_WORLD_SIZES = "1,2,4"
SWEEP_MODE = "weak"
SWEEP_REPEATS = 1
