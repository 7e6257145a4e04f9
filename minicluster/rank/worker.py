"""The per-rank entry point: training steps or the collectives benchmark, inside a `RankSession`.

A training job (`_train`) runs instrumented DDP steps, one flushed step record each; a config
with `job: collectives` runs the collective micro-benchmark (`collectives.py`, or the pairwise
link test `pairwise.py`) instead (`_benchmark`): one record per (op, size). Everything else (the
record file, header, summary, telemetry, the in-band gather and teardown) is the session's.

Launcher-agnostic: reads its rank from the environment (torchrun, srun, Ray) and runs alone
when none is set. Never imports the analysis side: rank 0 returns every rank's log, gathered
in-band when the launcher asked for it, and whoever launched the ranks aggregates.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as tdist
from torch.nn.parallel import DistributedDataParallel as DDP

from minicluster.core import clock, comm_methods, fault_spec, pairs, rundir
from minicluster.core.config import RunConfig, check_layout, default_threads
from minicluster.core.errors import InputError
from minicluster.core.in_band import InBand, NodeReducer, NodeShare, pickled_size
from minicluster.core.log import setup_logging
from minicluster.core.rank_format import CommTiming, RankLog, Step
from minicluster.rank import (
    collectives,
    comm_kinds,
    ddp_stats,
    dist,
    equivalence,
    faults,
    flight_recorder,
    isolate,
    layouts,
    pairwise,
    replica,
    workloads,
)
from minicluster.rank.comm_timing import (
    CommTimer,
    DdpStatsCommTimer,
    NoDdpTimer,
    attach_comm_timer,
    switch_to_hook,
    union_ms,
)
from minicluster.rank.session import RankSession
from minicluster.rank.telemetry import schedstat
from minicluster.rank.telemetry.reading import unavailable_source

log = logging.getLogger(__name__)


def run(
    cfg: RunConfig, out_dir: Path, run_id: str | None = None, gather: bool = True
) -> list[RankLog] | None:
    """Run the configured job on this rank.

    `gather`: the launcher reads no rank files (Ray, a job across nodes without a shared
    filesystem, an outside launcher that aggregates in-band), so every rank sends its log to rank
    0, which returns them all (in rank order). Without it (a launcher that reads the files) nothing
    is sent and every rank returns None.
    """
    return _run(cfg, out_dir, run_id, gather, None).gathered


def run_in_band(
    cfg: RunConfig, out_dir: Path, run_id: str | None, reducer: NodeReducer
) -> InBand | None:
    """Run the configured job on this rank and gather its records in-band by node: each node's
    leader reduces its ranks' logs with `reducer` (the caller's: this layer never imports the
    analysis side) and rank 0 returns every node's share (`core.in_band`); None elsewhere. A
    session without the job's roster (nodes unknown) sends every rank's log, as `run`."""
    session = _run(cfg, out_dir, run_id, True, reducer)
    if session.in_band is not None or session.gathered is None:
        return session.in_band
    logs = session.gathered
    share = NodeShare(None, None, list(range(len(logs))), 0, logs=logs)
    why = "no roster: every rank sent its log to rank 0"
    return InBand([share], [pickled_size(logs)], reason=why)


def _run(
    cfg: RunConfig,
    out_dir: Path,
    run_id: str | None,
    gather: bool,
    reducer: NodeReducer | None,
) -> RankSession:
    info = dist.rank_info_from_env()
    dist.die_with_launcher()  # a rank whose agent (node) is gone must not linger
    setup_logging(info.rank)
    threads = cfg.run.threads_per_rank or default_threads(os.cpu_count(), info.local_world_size)
    torch.set_num_threads(threads)  # recorded in the header: every later reader takes it there
    device = dist.pick_device(cfg.run.device, info.local_rank)
    backend = dist.pick_backend(cfg.run.backend, device)
    flight_recorder.enable()  # before the process group starts: it records from the first op
    dist.init(info, backend, cfg.run.collective_timeout_s)
    try:
        # Before anything is written: every rank agrees on the run id and that `out_dir` holds
        # no earlier run of theirs (its records would be overwritten).
        run_id = _agree_run_id(run_id)
        _agree_out_dir_is_new(out_dir, info)
    except BaseException:
        dist.teardown()
        raise
    flight_recorder.dump_on_sigterm(out_dir, info.rank)
    session = RankSession(cfg, info, device, backend, threads, out_dir, run_id, gather, reducer)
    with session:
        if cfg.job == "collectives":
            _benchmark(cfg, session)
        else:
            _train(cfg, session)
    return session


def _train(cfg: RunConfig, session: RankSession) -> None:
    """Training steps on this rank, in the configured layout (DDP, or FSDP2/TP on one mesh): one
    step record per step, flushed as it ends."""
    info, device, backend = session.info, session.device, session.backend
    # Outside launchers skip the CLI's checks: bad fault specs or layouts fail here, before work.
    fault_spec.check_against_run(cfg.faults, info.world_size, cfg.steps.warmup + cfg.steps.measured)
    layout = check_layout(cfg, info.world_size)
    session.open()
    # The job's mesh, built once before the model (a custom model's build(ctx) is handed it);
    # a pipeline builds its own.
    mesh = None if layout.is_ddp or layout.pp > 1 else layouts.build_mesh(layout, device)
    wl = workloads.build(cfg.workload, cfg.run.seed, device, info.rank, info.world_size, mesh)
    session.start(wl)
    if cfg.run.fixed_global_batch:  # before the tp group compares its batches (below)
        _shard_batches(
            wl, layout.tp * layout.pp, cfg.workload
        )  # the ranks of a tp/pp group share one batch
    injector = faults.FaultInjector(cfg.faults, info.rank)
    module = wl.model
    pipe: layouts.Pipeline | None = None
    par: layouts.Parallel | None = None
    timer: CommTimer | comm_kinds.KindTracker
    if layout.is_ddp:
        if cfg.run.compile:
            wl.model.compile()
        model: torch.nn.Module = DDP(
            wl.model,
            device_ids=[device.index] if device.type == "cuda" else None,
            bucket_cap_mb=cfg.run.bucket_cap_mb,
        )
        checker = replica.ReplicaChecker(cfg.run.replica_check_every)
        method = cfg.run.comm_timing
        forced = None
        if method != "hook" and checker.every > 0:
            # The replica check sees the reduced gradient inside the comm hook.
            method, forced = "hook", "the replica check needs the comm hook"
        timer, timing_method, fallback = attach_comm_timer(
            model, method, backend, info.world_size, wrap_hook=checker.wrap_comm_hook
        )
        if fallback:
            log.warning("%s", fallback)
        dp_rank, autocast = info.rank, layouts.autocast(device, cfg.run.precision, None)
    else:
        if layout.pp > 1:
            pipe = layouts.pipeline(wl.model, layout, device, wl.loss_fn)
            model, dp_rank, module = pipe.stage_module, pipe.dp_rank, pipe.stage_module
            autocast = layouts.autocast(device, cfg.run.precision, None)
        else:
            par = layouts.parallelize(
                wl.model,
                layout,
                device,
                cfg.run.precision,
                cfg.run.compile,
                mesh=mesh,
                plan=wl.parallelize,
            )
            model, dp_rank = par.model, par.dp_rank
            autocast = layouts.autocast(device, cfg.run.precision, par)
            if layout.tp > 1 and layout.ep == 1:  # before any comm timer sees its collective
                _check_tp_batches(wl, par.mesh["tp"], dp_rank, device, cfg.workload)
        # Shards and tensor-parallel slices differ between ranks by design: each rank's
        # checksums are of its own shards (the analysis compares ranks holding the same ones,
        # `Layout.replica_groups`), and the gradient the collectives delivered is taken when
        # the optimizer step begins (`watch_optimizer`), against the one applied.
        checker = replica.ReplicaChecker(cfg.run.replica_check_every)
        timing_method, forced, fallback = comm_methods.NO_DDP, None, None
        timer = NoDdpTimer()
        if backend == "gloo":  # host clock: on NCCL it would time the launch, not the transfer
            # A slow link's transport first: the tracker wraps it, so the delay is timed inside
            # the collective it holds back, as over a slow link (not as compute, nor as a late
            # issue that looks like the other rank's wait).
            injector.install_transport()
            tracker = comm_kinds.KindTracker()
            tracker.install()
            session.held.update(tracker=tracker)
            timer, timing_method = tracker, comm_methods.KINDS_HOST_CLOCK
    # The header is already on disk (written before DDP's first collective): this record adds
    # the timing method from step 0 on.
    session.write(CommTiming(method=timing_method, fallback=fallback or forced, from_step=0))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sync = par.sync_grads if par is not None else pipe.sync_grads if pipe is not None else None
    if sync is not None:  # EP's dense gradients, DP+PP's stage replicas: averaged first
        opt.register_step_pre_hook(lambda *_, _sync=sync: _sync())
    if not layout.is_ddp:
        checker.watch_optimizer(opt)  # after EP's sync, before the fault injector's hook
    session.held.update(model=model, module=module, opt=opt)
    ddp = model if isinstance(model, DDP) else None
    hooked = timing_method != ddp_stats.METHOD
    injector.install(module, ddp, opt, hooked, info.world_size)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    tele = session.telemetry()
    cpu_clock = schedstat.ThreadClock()  # each step's CPU time and run-queue delay
    if cpu_clock.reason is not None:  # said once, as the telemetry sources that cannot be read
        tele.notes.append(unavailable_source("cpu_schedstat", "host", cpu_clock.reason))
    elif cpu_clock.main_reason is not None:  # the loop thread's own figures only
        tele.notes.append(unavailable_source("cpu_schedstat_main", "host", cpu_clock.main_reason))

    total = cfg.steps.warmup + cfg.steps.measured
    progress_every = max(1, total // 5) if os.environ.get("MINICLUSTER_PROGRESS") != "0" else 0
    prev_end_ns: int | None = None  # the previous step's end: the host time between steps
    for step in range(total):
        if step == cfg.steps.warmup:
            tele.begin()  # the measured window: right after warm-up (device already synced)
        injector.begin_step(step)
        checker.begin_step(step)
        if pipe is not None:
            rec = pipeline_step(
                pipe, opt, wl, timer, device, step, cfg.steps.warmup, autocast, dp_rank, cpu_clock
            )
            prev_end_ns = None
        else:
            rec, prev_end_ns = train_step(
                model,
                opt,
                wl,
                timer,
                device,
                step,
                dp_rank,
                cfg.steps.warmup,
                autocast,
                prev_end_ns,
                cpu_clock,
            )
        for key, value in checker.record(module, opt).items():  # after the clock stopped
            setattr(rec, key, value)
        if isinstance(timer, comm_kinds.KindTracker):
            rec.comm_kinds = timer.last_kinds
            if timer.last_syncs:
                rec.syncs_ms = [round(ms, 4) for ms, _, _, _ in timer.last_syncs]
                rec.sync_groups = [leader for _, leader, _, _ in timer.last_syncs]
                rec.sync_kinds = [kind for _, _, kind, _ in timer.last_syncs]
                rec.sync_bus_bytes = [bus for _, _, _, bus in timer.last_syncs]
        session.write(rec)
        if isinstance(timer, DdpStatsCommTimer) and timer.given_up:
            assert ddp is not None
            timer, switched = _switch_to_hook(ddp, timer, backend, info, step + 1)
            session.write(switched)
        if progress_every and (step + 1) % progress_every == 0:
            log.info("step %d/%d  step_time %.2f ms", step + 1, total, rec.step_time_ms)

    tele_window = tele.end(cfg.steps.measured)
    if isinstance(timer, comm_kinds.KindTracker):
        timer.uninstall()
    cross = ddp_stats.cross_check(ddp, session.log.timing[-1].method) if ddp else None
    validation = None
    if cfg.run.check_ddp_equivalence and info.rank == 0 and ddp is not None:
        validation = equivalence.ddp_equivalence(
            module,
            opt,
            lambda: workloads.build(cfg.workload, cfg.run.seed, device),
            info.world_size,
            total,
        )
    session.finish(
        tele_window,
        ddp_logging=cross,
        validation=validation,
        memory=workloads.state_bytes(module, opt),
    )


def _benchmark(cfg: RunConfig, session: RankSession) -> None:
    """The collective micro-benchmark (or the pairwise link test) on this rank: one record per
    (op, size), or the plan and one record per pair."""
    info, device = session.info, session.device
    session.open()
    session.start(None)
    tele = session.telemetry()
    progress = os.environ.get("MINICLUSTER_PROGRESS") != "0"
    section = cfg.collectives
    pairwise_test = section.pattern == "pairwise"
    # Outside launchers skip the CLI's check: bad fault specs fail here, before any work.
    fault_spec.check_against_benchmark(
        cfg.faults, info.world_size, section.pattern in fault_spec.FAULT_PATTERNS
    )
    injector = faults.FaultInjector(cfg.faults, info.rank)
    injector.begin_step(0)  # the whole benchmark is its one step
    injector.install_transport()
    # One window over the whole benchmark (every op and size): power and temperature while
    # the links are busy; the (op, size) count stands where a training run has its steps.
    tele.begin()
    # Each record is flushed as written: a crash keeps every (op, size) measured so far.
    node = pairs.node_of({"node_rank": info.node_rank, "hostname": info.hostname})
    if pairwise_test:
        pairwise.run_pairwise(
            section, info.rank, info.world_size, node, device, session.write, progress
        )
    elif section.pattern == "isolate":
        isolate.run_isolate(
            section, info.rank, info.world_size, node, device, session.write, progress
        )
    else:
        collectives.run_benchmark(
            section, info.rank, info.world_size, device, session.write, progress
        )
    session.finish(tele.end(len(session.log.bench)))


def _switch_to_hook(
    ddp: DDP, failing: DdpStatsCommTimer, backend: str, info: dist.RankInfo, from_step: int
) -> tuple[CommTimer, CommTiming]:
    """DDP's runtime stats failed several steps in a row: time with the comm hook from the next
    step on, and say why in a `comm_timing` record."""
    timer, used = switch_to_hook(ddp, backend, info.world_size)
    why = (
        f"DDP runtime stats failed {failing.stats.failures_in_a_row} steps in a row "
        f"({failing.stats.failures[-1]}); the comm hook times from step {from_step}"
    )
    log.warning("%s", why)
    return timer, CommTiming(method=used, fallback=why, from_step=from_step)


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


def train_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    wl: workloads.Workload,
    timer: CommTimer | comm_kinds.KindTracker,
    device: torch.device,
    step: int,
    dp_rank: int,
    warmup: int,
    autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
    prev_end_ns: int | None = None,
    cpu_clock: schedstat.ThreadClock | None = None,
) -> tuple[Step, int]:
    """One timed optimizer step on this rank: its step record (times in ms) and the
    `perf_counter_ns` of its end. `dp_rank`: which data-parallel share of the batch this rank
    trains on (the ranks of a tensor-parallel group share one). `prev_end_ns`: the previous
    step's end, so the record says how long the host spent between the two (`gap_ms`: the
    batch, the records, a pause of any cause). `cpu_clock`: this process's threads' CPU time and
    run-queue delay over the step (`cpu_ms`, `cpu_wait_ms`; `main_cpu_ms`, `main_cpu_wait_ms`:
    the loop thread's own; `telemetry.schedstat`)."""
    cpu0 = cpu_clock.read() if cpu_clock is not None else None
    x, y = wl.make_batch(step, dp_rank)
    sync = torch.cuda.synchronize if device.type == "cuda" else _no_sync
    sync()  # batch on the device before the clock starts
    timer.begin_step()  # CUDA events: the origin the step's bucket spans are taken from
    t0 = time.perf_counter_ns()
    opt.zero_grad(set_to_none=True)
    with autocast():
        loss = wl.loss_fn(model(x), y)
    sync()
    t1 = time.perf_counter_ns()
    loss.backward()  # returns once DDP has waited for every bucket's all-reduce
    sync()
    t2 = time.perf_counter_ns()
    opt.step()
    sync()  # device idle before the step's end is read
    t3 = time.perf_counter_ns()
    cpu = cpu_clock.since(cpu0) if cpu_clock is not None else schedstat.NO_DELTA
    comm = timer.take_step()
    fwd_ms, bwd_ms, opt_ms = (t1 - t0) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6
    exposed = comm.exposed_comm_ms
    step_rec = Step(
        step=step,
        warmup=step < warmup,
        step_time_ms=(t3 - t0) / 1e6,
        fwd_ms=fwd_ms,
        bwd_ms=bwd_ms,
        opt_ms=opt_ms,
        compute_ms=_compute_ms(fwd_ms, bwd_ms, exposed, isinstance(timer, comm_kinds.KindTracker)),
        comm_ms=comm.comm_ms,
        exposed_comm_ms=exposed,
        buckets=comm.buckets,
        comm_bytes=comm.bytes,
        comm_reason=comm.reason,
        loss=loss.item(),
        t_unix_s=time.time(),
        gap_ms=None if prev_end_ns is None else (t0 - prev_end_ns) / 1e6,
        cpu_ms=cpu.cpu_ms,
        cpu_wait_ms=cpu.cpu_wait_ms,
        main_cpu_ms=cpu.main_cpu_ms,
        main_cpu_wait_ms=cpu.main_cpu_wait_ms,
    )
    return step_rec, t3


def pipeline_step(
    pipe: layouts.Pipeline,
    opt: torch.optim.Optimizer,
    wl: workloads.Workload,
    timer: CommTimer | comm_kinds.KindTracker,
    device: torch.device,
    step: int,
    warmup: int,
    autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
    dp_rank: int = 0,
    cpu_clock: schedstat.ThreadClock | None = None,
) -> Step:
    """One timed optimizer step of this rank's pipeline stage: the schedule runs forward and
    backward of every microbatch (they cannot be timed apart), its chunks' busy time is the
    stage's compute, the rest of the schedule its bubble and send/recv waits."""
    # Every stage of a replica the same batch (the first reads x, the last y); each data-parallel
    # replica of the pipeline its own
    cpu0 = cpu_clock.read() if cpu_clock is not None else None
    x, y = wl.make_batch(step, dp_rank)
    sync = torch.cuda.synchronize if device.type == "cuda" else _no_sync
    sync()
    timer.begin_step()
    pipe.busy_spans.clear()
    t0 = time.perf_counter_ns()
    opt.zero_grad(set_to_none=True)
    with autocast():
        loss = pipe.step(x, y, wl.loss_fn)
    sync()
    t1 = time.perf_counter_ns()
    opt.step()
    sync()
    t2 = time.perf_counter_ns()
    cpu = cpu_clock.since(cpu0) if cpu_clock is not None else schedstat.NO_DELTA
    comm = timer.take_step()
    busy_ms = union_ms([(s / 1e6, e / 1e6) for s, e in pipe.busy_spans])
    return Step(
        step=step,
        warmup=step < warmup,
        step_time_ms=(t2 - t0) / 1e6,
        opt_ms=(t2 - t1) / 1e6,
        compute_ms=busy_ms,
        comm_ms=comm.comm_ms,
        exposed_comm_ms=comm.exposed_comm_ms,
        buckets=comm.buckets,
        comm_bytes=comm.bytes,
        comm_reason=comm.reason,
        loss=loss,
        t_unix_s=time.time(),
        pp_stage=pipe.stage,
        pp_busy_ms=busy_ms,
        pp_schedule_ms=(t1 - t0) / 1e6,
        cpu_ms=cpu.cpu_ms,
        cpu_wait_ms=cpu.cpu_wait_ms,
        main_cpu_ms=cpu.main_cpu_ms,
        main_cpu_wait_ms=cpu.main_cpu_wait_ms,
    )


def _check_tp_batches(
    wl: workloads.Workload,
    tp_mesh: Any,
    dp_rank: int,
    device: torch.device,
    cfg_workload: object = None,
) -> None:
    """The ranks of a tensor-parallel group must train on one batch (their slices of one
    layer see the same input): step 0's batch, hashed on each, compared over the group. A
    `make_batch` keyed by the global rank (`ctx.rank`, not `ctx.dp_rank`) would otherwise train
    each slice on other data, silently. A collective: every rank of the group calls it."""
    import hashlib

    digest = hashlib.blake2b(digest_size=8)
    _hash_batch(digest, wl.make_batch(0, dp_rank))
    mine = torch.tensor([int.from_bytes(digest.digest(), "little", signed=True)], device=device)
    group = tp_mesh.get_group()
    theirs = [torch.empty_like(mine) for _ in range(tp_mesh.size())]
    tdist.all_gather(theirs, mine, group=group)
    if len({int(t.item()) for t in theirs}) > 1:
        from minicluster.rank.workloads.custom import UserCodeError

        factory = getattr(cfg_workload, "factory", None)
        who = f"workload.factory {factory}: " if factory else ""
        ranks = tdist.get_process_group_ranks(group)
        raise UserCodeError(
            f"{who}make_batch gave the ranks of one tensor-parallel group (ranks {ranks}) "
            "different batches at step 0: they must train on one batch; make it from "
            "(step, dp_rank) (ctx.dp_rank), not from ctx.rank"
        )


def _hash_batch(digest: Any, obj: Any) -> None:
    """Feed a batch's contents to `digest`: tensors by their bytes (any shape, 0-d included, any
    dtype), dicts, lists and tuples item by item, anything else by its repr."""
    if isinstance(obj, torch.Tensor):
        flat = obj.detach().reshape(-1).contiguous().cpu()
        digest.update(str(obj.dtype).encode() + str(tuple(obj.shape)).encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            digest.update(repr(key).encode())
            _hash_batch(digest, obj[key])
    elif isinstance(obj, list | tuple):
        for item in obj:
            _hash_batch(digest, item)
    else:
        digest.update(repr(obj).encode())


def _shard_batches(wl: workloads.Workload, shards: int, cfg_workload: object = None) -> None:
    """Make each data-parallel rank train on `shards` consecutive per-rank batches (the global
    batch of a run with one data-parallel rank per rank, concatenated), so a layout with fewer
    data-parallel ranks sees the same data as DDP."""
    if shards <= 1:
        return
    if not wl.any_rank_batches:
        from minicluster.rank.workloads.custom import UserCodeError

        factory = getattr(cfg_workload, "factory", "")
        raise UserCodeError(
            f"workload.factory {factory}: a fixed global batch under tensor or pipeline parallel (validate "
            "--layouts) needs make_batch(step, dp_rank), which makes any data-parallel rank's "
            "batch; make_batch(step) makes only this rank's"
        )
    one = wl.make_batch

    def make_batch(step: int, dp_rank: int) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [one(step, dp_rank * shards + i) for i in range(shards)]
        return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])

    wl.make_batch = make_batch


def _compute_ms(
    fwd_ms: float, bwd_ms: float, exposed: float | None, anywhere: bool
) -> float | None:
    """Forward + backward less the time blocked on communication; unknown comm figures leave
    compute unknown too. DDP blocks only in backward (its all-reduce); a layout's collectives
    (`anywhere`: FSDP2's all-gathers, TP's all-reduces) block in forward as well."""
    if exposed is None:
        return None
    if anywhere:
        return max(0.0, fwd_ms + bwd_ms - exposed)
    return fwd_ms + max(0.0, bwd_ms - exposed)


def _no_sync() -> None:
    pass


def _agree_run_id(run_id: str | None) -> str:
    """Every rank uses rank 0's run id (from the launcher, or made here)."""
    box = [run_id or clock.new_run_id()]
    tdist.broadcast_object_list(box, src=0)
    return str(box[0])
