"""The rank's header record: who and where the rank is (launcher, node, host), what it runs."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

from minicluster.core import clock, launcher_env, rank_format
from minicluster.core.config import RunConfig
from minicluster.core.rank_format import Header
from minicluster.core.version import __version__
from minicluster.rank import dist, telemetry, workloads


def header_record(
    cfg: RunConfig,
    info: dist.RankInfo,
    device: torch.device,
    backend: str,
    run_id: str,
    wl: workloads.Workload | None,
    threads: int,
) -> Header:
    """Who and where this rank is, and what it runs (`wl` None: from the config); `threads` is
    what the rank gave `torch.set_num_threads`."""
    gpu: dict[str, Any] | None = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        gpu = {
            "name": props.name,
            "uuid": str(getattr(props, "uuid", "")) or None,
            "memory_total_bytes": props.total_memory,
        }
    return Header(
        format=rank_format.FORMAT_VERSION,
        run_id=run_id,
        rank=info.rank,
        local_rank=info.local_rank,
        world_size=info.world_size,
        local_world_size=info.local_world_size,
        node_rank=info.node_rank,
        hostname=info.hostname,
        pid=os.getpid(),
        created_at=clock.utc_now_iso(),
        tool_version=__version__,
        backend=backend,
        device=str(device),
        threads=threads,
        launcher=os.environ.get(launcher_env.LAUNCHER, "outside"),
        ray=ray_identity(),
        job=cfg.job,
        config=cfg.to_dict(),
        workload=workload_fields(cfg, wl),
        platform={
            "hostname": info.hostname,
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "host_memory_total_bytes": telemetry.host_memory_total_bytes(),
            "gpu": gpu,
            "torch": str(torch.__version__),
            "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}",
        },
    )


def workload_fields(cfg: RunConfig, wl: workloads.Workload | None) -> dict[str, Any]:
    """The header's workload: from the built workload, else (the collectives benchmark, or a
    workload that failed to build) from the config, with `params` unknown."""
    if wl is not None:
        return {
            "name": wl.name,
            "per_rank_batch": wl.samples_per_rank,
            "seq_len": wl.seq_len,
            "tokens_per_rank": wl.tokens_per_rank,
            "params": wl.params,
            "flops_per_sample": wl.flops_per_sample,
            "flops_method": wl.flops_method,
        }
    if cfg.job == "collectives":
        return {
            "name": "collectives",
            "per_rank_batch": None,
            "seq_len": None,
            "tokens_per_rank": None,
            "params": None,
        }
    seq_len = getattr(cfg.workload, "seq_len", None)
    batch = cfg.workload.per_rank_batch
    return {
        "name": cfg.workload.name,
        "per_rank_batch": batch,
        "seq_len": seq_len,
        "tokens_per_rank": batch * seq_len if seq_len else None,
        "params": None,
    }


def ray_identity() -> dict[str, Any] | None:
    """Under the Ray launcher, the Ray version and this worker's Ray node ID; else None."""
    version = os.environ.get(launcher_env.RAY_VERSION)
    if version is None:
        return None
    return {"version": version, "node_id": os.environ.get(launcher_env.RAY_NODE_ID)}


def platform_keys() -> dict[str, Any]:
    """What a reference's platform is matched on (`analysis.references.PLATFORM_KEYS`), for this
    machine before any rank starts: the GPU model and count (None without CUDA), the CPU model."""
    on_gpu = torch.cuda.is_available() and torch.cuda.device_count() > 0
    return {
        "gpu_model": torch.cuda.get_device_name(0) if on_gpu else None,
        "gpus_per_node": torch.cuda.device_count() if on_gpu else None,
        "cpu_model": cpu_model(),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
