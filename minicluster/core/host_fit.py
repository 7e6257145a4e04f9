"""Whether N ranks fit on this host: sharing cores (a warning: timings then measure contention)
and host memory (a refusal before any rank starts: every rank is a torch process)."""

from __future__ import annotations

import os

from minicluster.core.errors import InputError

# The smallest peak RSS of one rank of the default job on CPU: 311 MiB (tests/golden/
# run_2ranks.result.json, memory_peak_mib; 319 MiB for examples/custom_model.yaml), torch on
# Linux. A bigger model needs more: this is a floor, so the refusal never refuses what fits.
RANK_RSS_FLOOR_BYTES = 300 * 1024**2


def host_memory_bytes() -> int | None:
    """This host's physical memory, or None when the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_local_ranks(
    nproc: int,
    on_gpu: bool,
    cores: int | None = None,
    memory_bytes: int | None = None,
    flag: str | None = None,
) -> str | None:
    """InputError when `nproc` CPU ranks on this host would need more memory than it has (each
    at least RANK_RSS_FLOOR_BYTES); else a warning when they share its cores, or None. `flag`:
    how the user gave `nproc` (default `--nproc N`), as the message names it."""
    if on_gpu:
        return None
    cores = os.cpu_count() if cores is None else cores
    memory_bytes = host_memory_bytes() if memory_bytes is None else memory_bytes
    if memory_bytes is not None:
        need = nproc * RANK_RSS_FLOOR_BYTES
        if need > memory_bytes:
            most = max(1, memory_bytes // RANK_RSS_FLOOR_BYTES)
            raise InputError(
                f"{flag or f'--nproc {nproc}'} would start {nproc} torch processes of at least "
                f"{RANK_RSS_FLOOR_BYTES // 1024**2} MiB each ({_gib(need)}), more than this host's "
                f"{_gib(memory_bytes)} of memory: at most {most} ranks fit here; "
                "for more, run across nodes (--nnodes) or on GPUs"
            )
    if cores is not None and nproc > cores:
        return (
            f"{nproc} ranks on {cores} CPU cores: ranks share cores, so step times (and any "
            "straggler verdict) also measure the contention between them"
        )
    return None


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 1024**3:.1f} GiB"
