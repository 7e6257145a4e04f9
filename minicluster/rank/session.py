"""One rank's life in a job, whatever the job: its record file and log, telemetry window, summary,
the in-band gather to rank 0 and the teardown of the process group.

The job itself (training steps, or the collectives benchmark) is the only part that differs; it
runs inside `with RankSession(...) as session:` and ends with `session.finish(...)`.
"""

from __future__ import annotations

import gc
import logging
import time
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
import torch.distributed as tdist

from minicluster.core import rank_format, rundir
from minicluster.core.config import RunConfig
from minicluster.core.errors import InputError
from minicluster.core.in_band import InBand, NodeReducer, NodeShare, pickled_size
from minicluster.core.io import atomic_write_json
from minicluster.core.rank_format import Header, LineRecord, RankLog, Summary
from minicluster.rank import dist, flight_recorder, telemetry, workloads
from minicluster.rank.header import header_record
from minicluster.rank.recorder import RankRecorder
from minicluster.rank.roster import gather_roster
from minicluster.rank.telemetry.session import TelemetrySession
from minicluster.rank.telemetry.session import for_rank as telemetry_for_rank

log = logging.getLogger(__name__)


class RankSession:
    """Owns what every job of a rank has. `gather`: send this rank's log to rank 0 at the end
    (the launcher reads no files: Ray, a job across nodes, an outside launcher); rank 0 then finds
    every rank's log in `gathered`. Without it the log keeps no steps and nothing is sent. With
    a `reducer` too, the gather goes by node (`gather_by_node`): rank 0 finds every node's
    share (its reduction, or its ranks' logs) in `in_band`.

    On the way out, whatever happened: a failed (or interrupted) summary when the job raised
    (after a failure, the rank's Flight Recorder dump),
    the record file and telemetry closed, the objects in `held` (a DDP model, its optimizer)
    dropped and collected before the process group is destroyed (else gloo can hang at exit).
    """

    def __init__(
        self,
        cfg: RunConfig,
        info: dist.RankInfo,
        device: torch.device,
        backend: str,
        threads: int,
        out_dir: Path,
        run_id: str,
        gather: bool,
        reducer: NodeReducer | None = None,
    ) -> None:
        self.cfg = cfg
        self.info = info
        self.device = device
        self.backend = backend
        self.threads = threads
        self.out_dir = out_dir
        self.run_id = run_id
        self.gather = gather
        self.reducer = reducer
        self.recorder: RankRecorder | None = None
        self.tele: TelemetrySession | None = None
        self.held: dict[str, Any] = {}
        self.gathered: list[RankLog] | None = None
        self.in_band: InBand | None = None
        self._roster: rank_format.Roster | None = None
        self._finished = False

    def __enter__(self) -> RankSession:
        return self

    def open(self) -> None:
        """Gather the job's roster (a collective: every rank calls it) and create the record
        file, before anything else is written."""
        self._roster = gather_roster(self.info, self.out_dir)
        self.recorder = RankRecorder(self.out_dir, self.info.rank, keep_steps=self.gather)

    def start(self, wl: workloads.Workload | None) -> Header:
        """Write the header (what the rank runs: `wl`, or None for a job without a model) and,
        on its node's local rank 0, the roster."""
        assert self.recorder is not None, "open() first"
        header = header_record(
            self.cfg, self.info, self.device, self.backend, self.run_id, wl, self.threads
        )
        self.recorder.start(header, self._roster if self.info.local_rank == 0 else None)
        return header

    def write(self, record: LineRecord) -> None:
        assert self.recorder is not None, "open() first"
        self.recorder.write(record)

    @property
    def log(self) -> RankLog:
        assert self.recorder is not None, "open() first"
        return self.recorder.log

    def telemetry(self) -> TelemetrySession:
        """This rank's telemetry sampler (closed on the way out)."""
        self.tele = telemetry_for_rank(
            self.info.local_rank,
            self.device.index if self.device.type == "cuda" else None,
            self.cfg.telemetry.sample_interval_ms / 1000.0,
        )
        return self.tele

    def finish(
        self,
        telemetry_window: dict[str, Any] | None,
        ddp_logging: dict[str, Any] | None = None,
        validation: dict[str, Any] | None = None,
        memory: dict[str, Any] | None = None,
    ) -> None:
        """The job ran to its end: write the ok summary (`memory`: what the job measured of its
        own state, beside the process's peak), then (with `gather`) send the log to rank 0."""
        assert self.recorder is not None, "open() first"
        summary = self._summary("ok", None, telemetry_window, ddp_logging, validation)
        if memory and summary.memory is not None:
            summary.memory.update(memory)
        self.recorder.finish(summary)
        self._finished = True
        if self.gather and self.reducer is not None and self._roster is not None:
            self.in_band = gather_by_node(self.recorder.log, self.info, self._roster, self.reducer)
        elif self.gather:
            self.gathered = _gather_on_rank0(self.recorder.log, self.info, self._roster)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is not None:
                self._record_failure(exc)
        finally:
            if tb is not None:
                # The job's frames hold its model and optimizer in their locals: drop them too.
                traceback.clear_frames(tb)
            if self.recorder is not None:
                self.recorder.close()
            if self.tele is not None:
                self.tele.close()
            self.held.clear()
            gc.collect()
            dist.teardown()

    def _record_failure(self, exc: BaseException) -> None:
        """Best effort while `exc` is on its way up: the header when the job failed before it
        (e.g. the model did not fit), then a failed or interrupted summary."""
        recorder = self.recorder
        if recorder is not None and not recorder.closed and recorder.log.header is None:
            try:
                recorder.write(
                    header_record(
                        self.cfg,
                        self.info,
                        self.device,
                        self.backend,
                        self.run_id,
                        None,
                        self.threads,
                    )
                )
            except (OSError, ValueError):
                log.warning("could not write the header to %s", recorder.path)
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        if status == "failed":
            # Before the process group goes: which collectives this rank entered (a timeout
            # or a lost peer is told from every rank's dump, `minicluster diagnose`).
            flight_recorder.dump(self.out_dir, self.info.rank)
        summary = self._summary(status, exc, None, None, None)
        if recorder is not None:
            recorder.finish_best_effort(summary)
            return
        path = rundir.rank_summary(self.out_dir, self.info.rank)
        try:
            atomic_write_json(path, summary.to_json())
        except OSError:
            log.warning("could not write %s", path)

    def _summary(
        self,
        status: str,
        error: BaseException | None,
        telemetry_window: dict[str, Any] | None,
        ddp_logging: dict[str, Any] | None,
        validation: dict[str, Any] | None,
    ) -> Summary:
        memory: dict[str, Any] = {
            "rss_peak_bytes": telemetry.process_rss_peak_bytes(),
            "host_total_bytes": telemetry.host_memory_total_bytes(),
        }
        if self.device.type == "cuda":
            memory["cuda_max_allocated_bytes"] = torch.cuda.max_memory_allocated(self.device)
            memory["cuda_total_bytes"] = torch.cuda.get_device_properties(self.device).total_memory
        rlog = self.recorder.log if self.recorder is not None else None
        last = rlog.last_step if rlog is not None else None
        return Summary(
            format=rank_format.FORMAT_VERSION,
            run_id=self.run_id,
            rank=self.info.rank,
            world_size=self.info.world_size,
            hostname=self.info.hostname,
            status=status,
            last_step=-1 if last is None else last,
            error=None if error is None else f"{type(error).__name__}: {error}",
            memory=memory,
            ddp_logging=ddp_logging,
            telemetry=telemetry_window,
            validation=validation,
            collectives_recorded=self._bench_recorded(rlog),
            t_unix_s=time.time(),
            bad_input=str(error) if isinstance(error, InputError) else None,
            traceback=_traceback_text(error) if status == "failed" else None,
        )

    def _bench_recorded(self, rlog: RankLog | None) -> int | None:
        """A collectives job's records so far (its summary says how many); None for training."""
        if self.cfg.job != "collectives":
            return None
        return len(rlog.bench) if rlog is not None else 0


def _traceback_text(error: BaseException | None) -> str | None:
    """`error`'s traceback as Python prints it (chained causes too), its last
    `TRACEBACK_CHARS` characters: the innermost frames, where the fault is."""
    if error is None:
        return None
    text = "".join(traceback.format_exception(error))
    limit = rank_format.TRACEBACK_CHARS
    return text if len(text) <= limit else "...\n" + text[-limit:]


def _gather_on_rank0(
    mine: RankLog, info: dist.RankInfo, roster: rank_format.Roster | None
) -> list[RankLog] | None:
    """Every rank's log in-band on rank 0 (no shared filesystem needed); None elsewhere. Rank 0's
    log holds the job's roster (every rank has the same one) even where rank 0 is not its node's
    local rank 0."""
    gathered: list[Any] | None = [None] * info.world_size if info.rank == 0 else None
    tdist.gather_object(mine, gathered, dst=0)
    if gathered is not None and gathered[0].roster is None:
        gathered[0].roster = roster
    return gathered


def gather_by_node(
    mine: RankLog, info: dist.RankInfo, roster: rank_format.Roster, reducer: NodeReducer
) -> InBand | None:
    """The in-band gather in two levels (`core.in_band`): every rank sends its log to its
    node's leader over a node-local group; each leader reduces its node's logs with `reducer`;
    the leaders agree whether every node could; then only the leaders send rank 0 their node's
    share (its reduction, or its ranks' logs when any node could not reduce). A collective:
    every rank calls it. None but on rank 0."""
    nodes = [list(n["ranks"]) for n in roster.nodes]
    leaders = [min(ranks) for ranks in nodes]  # rank 0 leads its node
    i = next(j for j, ranks in enumerate(nodes) if info.rank in ranks)
    leader = leaders[i]
    # Each rank creates only the groups it is in, synchronizing with their members only (the
    # group's name is made from its ranks, so the members agree without the others).
    group = tdist.new_group(nodes[i], use_local_synchronization=True)
    node_logs: list[Any] | None = [None] * len(nodes[i]) if info.rank == leader else None
    tdist.gather_object(mine, node_logs, dst=leader, group=group)
    if node_logs is None:
        return None
    # One node: its leader is rank 0, and no one else to agree with or send to.
    lead_group = (
        tdist.new_group(sorted(leaders), use_local_synchronization=True) if len(nodes) > 1 else None
    )
    for rlog in node_logs:
        if rlog.rank == 0 and rlog.roster is None:
            rlog.roster = roster  # rank 0's log holds the job's roster (see _gather_on_rank0)
    node = roster.nodes[i]
    share = NodeShare(
        node_rank=node["node_rank"],
        hostname=node["hostname"],
        ranks=nodes[i],
        leader=leader,
        log_bytes=sum(pickled_size(rlog) for rlog in node_logs),
    )
    t0 = time.perf_counter()
    try:
        share.reduction = reducer(node_logs)
        share.reduce_ms = (time.perf_counter() - t0) * 1000.0
    except Exception as e:  # noqa: BLE001 - any failure sends the logs instead, with its reason
        share.error = f"{type(e).__name__}: {e}"
        log.warning("node %s: could not reduce its ranks' records (%s)", i, share.error)
    errors: list[Any] = [(i, share.error)]
    if lead_group is not None:
        errors = [None] * len(leaders)
        tdist.all_gather_object(errors, (i, share.error), group=lead_group)
    failed = [(j, err) for j, err in errors if err is not None]
    reason = None
    if failed:
        reason = "; ".join(
            f"node {roster.nodes[j]['node_rank']} ({roster.nodes[j]['hostname']}) could not "
            f"reduce: {err}"
            for j, err in failed
        )
        reason += ": every node sent its ranks' logs"
        share.reduction = None
        share.logs = node_logs
    shares: list[Any] | None = [share]
    if lead_group is not None:
        shares = [None] * len(leaders) if info.rank == 0 else None
        tdist.gather_object(share, shares, dst=0, group=lead_group)
    if shares is None:
        return None
    shares.sort(key=lambda s: s.ranks[0])
    return InBand(shares=shares, sent_bytes=[pickled_size(s) for s in shares], reason=reason)
