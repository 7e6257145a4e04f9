"""The per-rank loop: instrumented DDP training steps, one flushed JSON line per step, a summary at the end.

A config with `job: collectives` runs the collective micro-benchmark (`collectives.py`) in the
same frame instead: one line per (op, size), the same header, summary, gather and teardown.

Launcher-agnostic: reads its rank from the environment (torchrun, srun, Ray) and runs alone
when none is set. Never imports the coordinator; rank 0 returns everyone's records gathered
in-band so no shared filesystem is needed.
"""

from __future__ import annotations

import gc
import logging
import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.distributed as tdist
from torch.nn.parallel import DistributedDataParallel as DDP

from minicluster.core import fault_spec, pairs, rank_format, rundir
from minicluster.core.config import RunConfig
from minicluster.core.errors import InputError
from minicluster.core.io import atomic_write_json
from minicluster.core.log import setup_logging
from minicluster.rank import (
    collectives,
    ddp_stats,
    dist,
    equivalence,
    faults,
    pairwise,
    replica,
    telemetry,
    workloads,
)
from minicluster.rank.comm_timing import (
    CommTimer,
    DdpStatsCommTimer,
    attach_comm_timer,
    switch_to_hook,
)
from minicluster.rank.header import header_record
from minicluster.rank.recorder import RankRecorder
from minicluster.rank.roster import gather_roster
from minicluster.rank.telemetry.session import TelemetrySession
from minicluster.rank.telemetry.session import for_rank as telemetry_for_rank

log = logging.getLogger(__name__)


def run(cfg: RunConfig, out_dir: Path, run_id: str | None = None) -> list[dict[str, Any]] | None:
    """Run the configured job on this rank. Rank 0 returns every rank's records; others None."""
    info = dist.rank_info_from_env()
    dist.die_with_launcher()  # a rank whose agent (node) is gone must not linger
    setup_logging(info.rank)
    threads = cfg.run.threads_per_rank or max(1, (os.cpu_count() or 1) // info.local_world_size)
    torch.set_num_threads(threads)
    device = dist.pick_device(cfg.run.device, info.local_rank)
    backend = dist.pick_backend(cfg.run.backend, device)
    dist.init(info, backend, cfg.run.collective_timeout_s)
    try:
        # Before anything is written: every rank agrees on the run id and that `out_dir` holds
        # no earlier run of theirs (its records would be overwritten).
        run_id = _agree_run_id(run_id)
        _agree_out_dir_is_new(out_dir, info)
    except BaseException:
        dist.teardown()
        raise
    if cfg.job == "collectives":
        return _run_collectives(cfg, info, device, backend, threads, out_dir, run_id)
    held: dict[str, Any] = {}  # DDP model and optimizer, dropped before the group is destroyed
    recorder: RankRecorder | None = None
    summary_path = rundir.rank_summary(out_dir, info.rank)
    last_step = -1
    tele: TelemetrySession | None = None
    header: dict[str, Any] | None = None
    timings: list[dict[str, Any]] = []
    try:
        # Outside launchers skip the CLI's check: bad fault specs fail here, before any work.
        fault_spec.check_against_run(
            cfg.faults, info.world_size, cfg.steps.warmup + cfg.steps.measured
        )
        roster = gather_roster(info, out_dir)
        recorder = RankRecorder(out_dir, info.rank)
        wl = workloads.build(cfg.workload, cfg.run.seed, device)
        header = header_record(cfg, info, device, backend, run_id, wl, threads)
        recorder.write(header)
        if info.local_rank == 0:
            recorder.write(roster)
        ddp = DDP(
            wl.model,
            device_ids=[device.index] if device.type == "cuda" else None,
            bucket_cap_mb=cfg.run.bucket_cap_mb,
        )
        checker = replica.ReplicaChecker(cfg.run.replica_check_every)
        injector = faults.FaultInjector(cfg.faults, info.rank)
        method = cfg.run.comm_timing
        forced = None
        if method != "hook" and checker.every > 0:
            # The replica check sees the reduced gradient inside the comm hook.
            method, forced = "hook", "the replica check needs the comm hook"
        timer, timing_method, fallback = attach_comm_timer(
            ddp, method, backend, info.world_size, wrap_hook=checker.wrap_comm_hook
        )
        if fallback:
            log.warning("%s", fallback)
        # The header is already on disk (written before DDP's first collective): this line adds
        # the timing method to it; readers merge it into the header.
        timings.append(
            {
                "type": rank_format.COMM_TIMING,
                "method": timing_method,
                "fallback": fallback or forced,
                "from_step": 0,
            }
        )
        recorder.write(timings[-1])
        opt = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
        held.update(ddp=ddp, opt=opt)
        injector.install(ddp, opt, timing_method != ddp_stats.METHOD, info.world_size)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        tele = telemetry_for_rank(
            info.local_rank,
            device.index if device.type == "cuda" else None,
            cfg.telemetry.sample_interval_ms / 1000.0,
        )

        total = cfg.steps.warmup + cfg.steps.measured
        progress_every = max(1, total // 5) if os.environ.get("MINICLUSTER_PROGRESS") != "0" else 0
        steps: list[dict[str, Any]] = []
        for step in range(total):
            if step == cfg.steps.warmup:
                tele.begin()  # the measured window: right after warm-up (device already synced)
            injector.begin_step(step)
            checker.begin_step(step)
            rec = train_step(ddp, opt, wl, timer, device, step, info.rank, cfg.steps.warmup)
            rec.update(checker.record(ddp.module, opt))  # after the step's clock stopped
            recorder.write(rec)
            if isinstance(timer, DdpStatsCommTimer) and timer.given_up:
                timer, switched = _switch_to_hook(ddp, timer, backend, info, step + 1)
                timings.append({"type": rank_format.COMM_TIMING, **switched})
                recorder.write(timings[-1])
            steps.append(rec)
            last_step = step
            if progress_every and (step + 1) % progress_every == 0:
                log.info("step %d/%d  step_time %.2f ms", step + 1, total, rec["step_time_ms"])

        tele_window = tele.end(cfg.steps.measured)
        cross = ddp_stats.cross_check(ddp, timings[-1]["method"])
        summary = _summary(info, device, run_id, "ok", last_step, cross, None, tele_window)
        if cfg.run.check_ddp_equivalence and info.rank == 0:
            summary["validation"] = equivalence.ddp_equivalence(
                ddp.module,
                opt,
                lambda: workloads.build(cfg.workload, cfg.run.seed, device),
                info.world_size,
                total,
            )
        atomic_write_json(summary_path, summary)
        recorder.close()
        recorder = None
        # Every comm_timing record in order, as the file holds them: a switch mid-run is kept.
        mine = {"header": header, "summary": summary, "steps": steps, "comm_timing": timings}
        return _gather_on_rank0(mine, info, roster)
    except BaseException as e:
        if header is None and recorder is not None:
            # Failed before its header (e.g. the model did not fit): still say who and what.
            _write_best_effort(
                recorder, header_record(cfg, info, device, backend, run_id, None, threads)
            )
        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        _write_failed_summary(
            summary_path, _summary(info, device, run_id, status, last_step, None, e)
        )
        raise
    finally:
        if recorder is not None:
            recorder.close()
        if tele is not None:
            tele.close()
        held.clear()  # drop DDP model and optimizer before destroy_process_group (gloo hangs else)
        gc.collect()
        dist.teardown()


def _run_collectives(
    cfg: RunConfig,
    info: dist.RankInfo,
    device: torch.device,
    backend: str,
    threads: int,
    out_dir: Path,
    run_id: str,
) -> list[dict[str, Any]] | None:
    """The collective micro-benchmark on this rank (process group already joined)."""
    recorder: RankRecorder | None = None
    summary_path = rundir.rank_summary(out_dir, info.rank)
    records: list[dict[str, Any]] = []
    tele: TelemetrySession | None = None
    try:
        roster = gather_roster(info, out_dir)
        recorder = writer = RankRecorder(out_dir, info.rank)
        header = header_record(cfg, info, device, backend, run_id, None, threads)
        recorder.write(header)
        if info.local_rank == 0:
            recorder.write(roster)
        tele = telemetry_for_rank(
            info.local_rank,
            device.index if device.type == "cuda" else None,
            cfg.telemetry.sample_interval_ms / 1000.0,
        )

        def emit(rec: dict[str, Any]) -> None:
            writer.write(rec)  # flushed: a crash keeps every (op, size) measured so far
            records.append(rec)

        progress = os.environ.get("MINICLUSTER_PROGRESS") != "0"
        section = cfg.collectives
        pairwise_test = section.pattern == "pairwise"
        # Outside launchers skip the CLI's check: bad fault specs fail here, before any work.
        fault_spec.check_against_benchmark(cfg.faults, info.world_size, pairwise_test)
        injector = faults.FaultInjector(cfg.faults, info.rank)
        injector.begin_step(0)  # the whole benchmark is its one step
        injector.install_transport()
        # One window over the whole benchmark (every op and size): power and temperature while
        # the links are busy; the (op, size) count stands where a training run has its steps.
        tele.begin()
        if pairwise_test:
            pairwise.run_pairwise(
                section, info.rank, info.world_size, pairs.node_of(header), device, emit, progress
            )
        else:
            collectives.run_benchmark(section, info.rank, info.world_size, device, emit, progress)
        window = tele.end(len(records))
        summary = _summary(info, device, run_id, "ok", -1, None, None, window)
        summary["collectives_recorded"] = len(records)
        atomic_write_json(summary_path, summary)
        recorder.close()
        recorder = None
        mine = {"header": header, "summary": summary, "steps": [], "collectives": records}
        return _gather_on_rank0(mine, info, roster)
    except BaseException as e:
        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        summary = _summary(info, device, run_id, status, -1, None, e)
        summary["collectives_recorded"] = len(records)
        _write_failed_summary(summary_path, summary)
        raise
    finally:
        if recorder is not None:
            recorder.close()
        if tele is not None:
            tele.close()
        gc.collect()  # as the training path: nothing of the benchmark outlives the group
        dist.teardown()


def _gather_on_rank0(
    mine: dict[str, Any], info: dist.RankInfo, roster: dict[str, Any]
) -> list[dict[str, Any]] | None:
    """Every rank's records in-band on rank 0 (no shared filesystem needed); None elsewhere.
    Rank 0 adds the job's roster to its own records (every rank has the same one)."""
    gathered: list[Any] | None = [None] * info.world_size if info.rank == 0 else None
    tdist.gather_object(mine, gathered, dst=0)
    if gathered is None:
        return None
    gathered[0] = {**gathered[0], "roster": roster}
    return gathered


def _switch_to_hook(
    ddp: DDP, failing: DdpStatsCommTimer, backend: str, info: dist.RankInfo, from_step: int
) -> tuple[CommTimer, dict[str, Any]]:
    """DDP's runtime stats failed several steps in a row: time with the comm hook from the next
    step on, and say why in a `comm_timing` record."""
    timer, used = switch_to_hook(ddp, backend, info.world_size)
    why = (
        f"DDP runtime stats failed {failing.stats.failures_in_a_row} steps in a row "
        f"({failing.stats.failures[-1]}); the comm hook times from step {from_step}"
    )
    log.warning("%s", why)
    return timer, {"method": used, "fallback": why, "from_step": from_step}


def _agree_out_dir_is_new(out_dir: Path, info: dist.RankInfo) -> None:
    """InputError on every rank when any rank's files (or rank 0's result.json) already exist in
    `out_dir`: an earlier run's records are never overwritten (shared or node-local disks)."""
    mine = None
    for path in (rundir.rank_jsonl(out_dir, info.rank), rundir.rank_summary(out_dir, info.rank)):
        if path.exists():
            mine = f"{path} exists"
            break
    if mine is None and info.rank == 0 and rundir.result_path(out_dir).exists():
        mine = f"{rundir.result_path(out_dir)} exists"
    everyone: list[Any] = [None] * info.world_size
    tdist.all_gather_object(everyone, mine)
    taken = [(rank, why) for rank, why in enumerate(everyone) if why]
    if taken:
        rank, why = taken[0]
        raise InputError(
            f"output directory {out_dir} holds an earlier run (rank {rank}: {why}): "
            "give each run a new --out"
        )


def _write_best_effort(recorder: RankRecorder, record: dict[str, Any]) -> None:
    try:
        recorder.write(record)
    except (OSError, ValueError):
        log.warning("could not write the header to %s", recorder.path)


def _write_failed_summary(path: Path, summary: dict[str, Any]) -> None:
    """Best effort while an exception is on its way up: it must not be masked by an I/O error."""
    try:
        atomic_write_json(path, summary)
    except OSError:
        log.warning("could not write %s", path)


def train_step(
    ddp: DDP,
    opt: torch.optim.Optimizer,
    wl: workloads.Workload,
    timer: CommTimer,
    device: torch.device,
    step: int,
    rank: int,
    warmup: int,
) -> dict[str, Any]:
    """One timed optimizer step on this rank: its step record (`rank_format.STEP_KEYS`), times in ms."""
    x, y = wl.make_batch(step, rank)
    sync = torch.cuda.synchronize if device.type == "cuda" else _no_sync
    sync()  # batch on the device before the clock starts
    timer.begin_step()  # CUDA events: the origin the step's bucket spans are taken from
    t0 = time.perf_counter_ns()
    opt.zero_grad(set_to_none=True)
    loss = wl.loss_fn(ddp(x), y)
    sync()
    t1 = time.perf_counter_ns()
    loss.backward()  # returns once DDP has waited for every bucket's all-reduce
    sync()
    t2 = time.perf_counter_ns()
    opt.step()
    sync()  # device idle before the step's end is read
    t3 = time.perf_counter_ns()
    comm = timer.take_step()
    fwd_ms, bwd_ms, opt_ms = (t1 - t0) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6
    exposed = comm.exposed_comm_ms
    return {
        "type": rank_format.STEP,
        "step": step,
        "warmup": step < warmup,
        "step_time_ms": (t3 - t0) / 1e6,
        "fwd_ms": fwd_ms,
        "bwd_ms": bwd_ms,
        "opt_ms": opt_ms,
        # Unknown comm figures leave compute unknown too: backward holds both.
        "compute_ms": None if exposed is None else fwd_ms + max(0.0, bwd_ms - exposed),
        "comm_ms": comm.comm_ms,
        "exposed_comm_ms": exposed,
        "buckets": comm.buckets,
        "comm_bytes": comm.bytes,
        "comm_reason": comm.reason,
        "loss": loss.item(),
        "t_unix_s": time.time(),
    }


def _no_sync() -> None:
    pass


def _agree_run_id(run_id: str | None) -> str:
    """Every rank uses rank 0's run id (from the launcher, or made here)."""
    box = [run_id or datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]]
    tdist.broadcast_object_list(box, src=0)
    return str(box[0])


def _summary(
    info: dist.RankInfo,
    device: torch.device,
    run_id: str,
    status: str,
    last_step: int,
    ddp_logging: dict[str, Any] | None,
    error: BaseException | None,
    telemetry_window: dict[str, Any] | None = None,
) -> dict[str, Any]:
    memory: dict[str, Any] = {
        "rss_peak_bytes": telemetry.process_rss_peak_bytes(),
        "host_total_bytes": telemetry.host_memory_total_bytes(),
    }
    if device.type == "cuda":
        memory["cuda_max_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
        memory["cuda_total_bytes"] = torch.cuda.get_device_properties(device).total_memory
    return {
        "format": rank_format.FORMAT_VERSION,
        "run_id": run_id,
        "rank": info.rank,
        "world_size": info.world_size,
        "hostname": info.hostname,
        "status": status,
        "last_step": last_step,
        "error": None if error is None else f"{type(error).__name__}: {error}",
        "memory": memory,
        "ddp_logging": ddp_logging,
        "telemetry": telemetry_window,
    }
