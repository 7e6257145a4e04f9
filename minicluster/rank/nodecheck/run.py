"""One node check's own measurements, in order: platform, hardware state before the load, GEMM,
device memory, host memory, host-device copies (with the PCIe link read right after), the
hardware state after, XID events and the kernel log, InfiniBand, DCGM, then the burn-in. The
intra-node collectives run separately, through `minicluster collectives` (the command)."""

from __future__ import annotations

import os
import platform as py_platform
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from minicluster.core.nodecheck_plan import HEADLINE_DTYPE, Plan
from minicluster.rank.header import cpu_model
from minicluster.rank.nodecheck import burn_in, gemm, gpu_state, hostinfo, memory
from minicluster.rank.telemetry import host_memory_total_bytes
from minicluster.rank.telemetry.nvml import load_nvml

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class Nvml:
    """NVML for the check's duration: the module once initialised, or why there is none."""

    def __init__(self, module: Any | None = None) -> None:
        self.module: Any | None = None
        self.reason: str | None = None
        nvml, why = (module, None) if module is not None else load_nvml()
        if nvml is None:
            self.reason = why
            return
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as e:
            self.reason = f"NVML init failed: {e}"
            return
        self.module = nvml

    def close(self) -> None:
        if self.module is not None:
            try:
                self.module.nvmlShutdown()
            except self.module.NVMLError:
                pass


def devices() -> list[torch.device]:
    """Every CUDA device torch sees, else the CPU."""
    if torch.cuda.is_available():
        return [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    return [torch.device("cpu")]


def cuda_reason() -> str:
    """Why torch sees no GPU, in its own words where it has them."""
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build"
    try:
        torch.cuda.init()
    except Exception as e:  # torch raises RuntimeError or AssertionError by version
        return f"torch.cuda: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    return "torch.cuda.is_available() is False (no CUDA device visible: CUDA_VISIBLE_DEVICES?)"


def platform_info(devs: list[torch.device], nvml: Nvml) -> dict[str, Any]:
    """The node as the references and the fleet match it: GPU model and count, CPU model (keys
    of `analysis.references.PLATFORM_KEYS`), and what else says what ran."""
    gpu_names = [torch.cuda.get_device_name(d) for d in devs if d.type == "cuda"]
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_sockets": _sockets(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": memory.host_threads(),
        "host_memory_total_bytes": host_memory_total_bytes(),
        "gpu_model": gpu_names[0] if gpu_names else None,
        "gpus_per_node": len(gpu_names),
        "gpu_models": sorted(set(gpu_names)),
        "device": "cuda" if gpu_names else "cpu",
        "cuda_reason": None if gpu_names else cuda_reason(),
        "driver_version": None,
        "nvml_gpu_count": None,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "nvml_reason": nvml.reason,
        "torch": str(torch.__version__),
        "cuda": torch.version.cuda,
        "python": py_platform.python_version(),
        "os": f"{py_platform.system()} {py_platform.release()}",
    }
    if nvml.module is not None:
        d = gpu_state.driver(nvml.module)
        info["driver_version"] = d["values"].get("driver_version")
        info["nvml_gpu_count"] = d["values"].get("count")
        if d["errors"]:
            info["nvml_reason"] = "; ".join(d["errors"].values())
    return info


def _sockets() -> int | None:
    ids = set()
    for path in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology/physical_package_id"):
        try:
            ids.add(path.read_text().strip())
        except OSError:
            continue
    return len(ids) or None


def _nvml_index(dev: torch.device, nvml: Nvml, count: int) -> int | None:
    """The NVML index of a torch device (CUDA_VISIBLE_DEVICES may renumber): by UUID, else the
    same index."""
    if nvml.module is None or dev.type != "cuda":
        return None
    uuid = str(getattr(torch.cuda.get_device_properties(dev), "uuid", "") or "")
    for i in range(count):
        try:
            h = nvml.module.nvmlDeviceGetHandleByIndex(i)
            nv_uuid = gpu_state.plain(nvml.module.nvmlDeviceGetUUID(h))
        except nvml.module.NVMLError:
            continue
        if uuid and str(nv_uuid).removeprefix("GPU-") == uuid.removeprefix("GPU-"):
            return i
    return dev.index if dev.index is not None and dev.index < count else None


def measure(
    plan: Plan,
    progress: Progress = _quiet,
    nvml_module: Any | None = None,
    obs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every measurement of `plan` but the collectives, as observations (plain JSON data), filled
    into `obs` as they are made (so that an interrupted check keeps what it measured)."""
    t_start = time.perf_counter()
    nvml = Nvml(nvml_module)
    obs = {} if obs is None else obs
    try:
        return _measure(plan, progress, nvml, t_start, obs)
    finally:
        nvml.close()


def _measure(
    plan: Plan, progress: Progress, nvml: Nvml, t_start: float, obs: dict[str, Any]
) -> dict[str, Any]:
    devs = devices()
    obs.update(platform=platform_info(devs, nvml), seconds={})
    count = obs["platform"]["nvml_gpu_count"] or 0
    nv_index = {str(d): _nvml_index(d, nvml, count) for d in devs}
    obs["nvml_index"] = nv_index
    on_gpu = devs[0].type == "cuda"

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        value = fn()
        obs["seconds"][name] = time.perf_counter() - t0
        return value

    # With CUDA_VISIBLE_DEVICES (a scheduler's share of the node) only the GPUs given to this
    # process are checked; else every GPU NVML lists.
    mine = sorted({i for i in nv_index.values() if i is not None})
    checked = (
        mine if obs["platform"]["cuda_visible_devices"] is not None and mine else list(range(count))
    )
    obs["nvml_checked"] = checked
    watch = None
    if nvml.module is not None and count and plan.runs("xid"):
        watch = gpu_state.XidWatch(nvml.module, checked)
    if nvml.module is not None and count and plan.runs("gpu_state"):
        obs["gpu_state_before"] = [gpu_state.snapshot(nvml.module, i) for i in checked]
    if plan.runs("gemm"):
        progress("GEMM: " + ", ".join(str(d) for d in devs))
        obs["gemm"] = timed("gemm", lambda: _gemms(plan, devs))
    if plan.runs("device_memory") and on_gpu:
        progress("device memory: copy and triad")
        obs["device_memory"] = timed(
            "device_memory",
            lambda: [
                f(d, plan.device_memory_bytes, plan.memory_iters, plan.gemm_budget_s)
                for d in devs
                for f in (memory.device_copy, memory.device_triad)
            ],
        )
    if plan.runs("host_memory"):
        nbytes, how = (
            (plan.host_triad_bytes, "given") if plan.host_triad_bytes else memory.host_triad_bytes()
        )
        progress(f"host memory: STREAM triad, {nbytes // 2**20} MiB per array")
        triad = timed(
            "host_memory",
            lambda: memory.host_triad(
                nbytes, plan.memory_iters, plan.gemm_budget_s, memory.host_threads()
            ),
        )
        triad["size_rule"] = how
        obs["host_memory"] = triad
    if plan.runs("pcie") and on_gpu:
        progress("host-device copies (pinned)")
        obs["pcie"] = timed("pcie", lambda: _copies(plan, devs, nvml, nv_index))
    if nvml.module is not None and count and plan.runs("gpu_state"):
        obs["gpu_state_after"] = [gpu_state.snapshot(nvml.module, i) for i in checked]
    if plan.runs("xid"):
        obs["xid"] = {
            "nvml": watch.drain() if watch is not None else None,
            "kernel_log": hostinfo.kernel_log_xids(),
        }
    if plan.runs("infiniband"):
        obs["infiniband"] = hostinfo.infiniband()
    if plan.runs("dcgm"):
        if hostinfo.dcgm_available():
            progress(f"dcgmi diag -r {plan.dcgm_level}")
        obs["dcgm"] = timed("dcgm", lambda: hostinfo.dcgm_diag(plan.dcgm_level))
    obs["seconds"]["own_checks"] = time.perf_counter() - t_start
    return obs


def _gemms(plan: Plan, devs: list[torch.device]) -> list[dict[str, Any]]:
    kind = devs[0].type
    sizes = plan.gemm_sizes_gpu if kind == "cuda" else plan.gemm_sizes_cpu
    dtypes = plan.gemm_dtypes_gpu if kind == "cuda" else plan.gemm_dtypes_cpu
    if kind == "cuda" and not torch.cuda.is_bf16_supported():
        dtypes = tuple(d for d in dtypes if d != "bfloat16")
    threads_before = torch.get_num_threads()
    if kind == "cpu":
        torch.set_num_threads(memory.host_threads())
    try:
        return [
            gemm.gemm(d, dtype, n, plan.gemm_iters, plan.gemm_budget_s, plan.check_rows)
            for d in devs
            for dtype in dtypes
            for n in sizes
        ]
    finally:
        torch.set_num_threads(threads_before)


def _copies(
    plan: Plan, devs: list[torch.device], nvml: Nvml, nv_index: dict[str, int | None]
) -> list[dict[str, Any]]:
    out = []
    for d in devs:
        h2d, d2h = memory.host_copy(d, plan.h2d_bytes, plan.memory_iters, plan.gemm_budget_s)
        i = nv_index.get(str(d))
        link = gpu_state.link(nvml.module, i) if nvml.module is not None and i is not None else None
        out.append(
            {"device": str(d), "nvml_index": i, "h2d": h2d, "d2h": d2h, "link_under_load": link}
        )
    return out


def run_burn_in(
    plan: Plan, progress: Progress = _quiet, nvml_module: Any | None = None
) -> dict[str, Any]:
    """The burn-in of `plan` (plan.burn_in_s > 0) on every device, sampling NVML per interval."""
    devs = devices()
    nvml = Nvml(nvml_module)
    try:
        kind = devs[0].type
        dtype = HEADLINE_DTYPE[kind]
        n = max(plan.gemm_sizes_gpu if kind == "cuda" else plan.gemm_sizes_cpu)
        count = 0
        if nvml.module is not None:
            count = gpu_state.driver(nvml.module)["values"].get("count") or 0
        index = {str(d): _nvml_index(d, nvml, count) for d in devs}

        def sampler(dev: torch.device) -> dict[str, Any]:
            i = index.get(str(dev))
            if nvml.module is not None and i is not None:
                handle = nvml.module.nvmlDeviceGetHandleByIndex(i)
                return gpu_state.sample(nvml.module, handle)
            return _cpu_sample()

        threads_before = torch.get_num_threads()
        if kind == "cpu":
            torch.set_num_threads(memory.host_threads())
        try:
            return burn_in.burn_in(
                devs, dtype, n, plan.burn_in_s, plan.intervals, sampler, progress, plan.check_rows
            )
        finally:
            torch.set_num_threads(threads_before)
    finally:
        nvml.close()


def _cpu_sample() -> dict[str, Any]:
    import psutil

    freq = psutil.cpu_freq()
    return {"cpu_mhz": None if freq is None else float(freq.current)}
