"""One orchestration path for every command that launches ranks (run, validate, collectives, and
each run of a sweep): config -> launch -> aggregate -> latest -> reports, and the run-directory
rules around it (a new id, a directory holding no earlier run, launcher.json, runs/latest).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minicluster.cli.progress import Progress
from minicluster.core import clock, rundir
from minicluster.core.config import RunConfig
from minicluster.core.errors import InputError, MiniclusterError, RunFailedError
from minicluster.core.io import atomic_write_json, probe_writable_dir

if TYPE_CHECKING:
    from minicluster.analysis.frame import Launch
    from minicluster.launchers.ray_launch import RayOptions
    from minicluster.launchers.torchrun import Rendezvous

log = logging.getLogger("minicluster.cli")

INTERRUPTED = "interrupted by the user before the ranks finished"


def new_output(out: Path | None, what: str = "run", job: str | None = None) -> tuple[str, Path]:
    """A new id and its output directory (`out`, or runs/<id>), checked to hold no earlier run and
    claimed for this one (exclusive create of DIR/.claim) before any rank starts.

    `job` names a job across nodes (its rendezvous): on a shared filesystem every node's
    `minicluster run` gets the same directory, and the nodes of one job share its claim."""
    new_id = clock.new_run_id()
    out_dir = Path("runs") / new_id if out is None else out
    if job is not None and _claim_owner(out_dir).get("job") == job:
        return new_id, out_dir  # another node of this job took it first: share it
    ensure_new_run_dir(out_dir, what)
    claim(out_dir, new_id, what, job)
    return new_id, out_dir


def _claim_owner(out_dir: Path) -> dict[str, Any]:
    try:
        owner = json.loads((out_dir / rundir.CLAIM_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def claim(out_dir: Path, run_id: str, what: str = "run", job: str | None = None) -> None:
    """Take `out_dir` for run `run_id` with an exclusive create of its claim file: of two runs
    started together on one directory, exactly one gets it; the other stops with exit 2 (unless
    both are nodes of one job across nodes, `job`).

    The claim appears whole: written to a temporary file first, then hard-linked to its name
    (atomic and exclusive, NFS included), so a node of the same job that finds it taken reads the
    owner's job, never an empty file."""
    path = out_dir / rundir.CLAIM_FILE
    owner = json.dumps({"run_id": run_id, "pid": os.getpid(), "what": what, "job": job})
    try:
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f"{rundir.CLAIM_FILE}.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(owner)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError:  # a filesystem without hard links: an exclusive create, then the owner
            with open(path, "x", encoding="utf-8") as f:
                f.write(owner)
        finally:
            os.unlink(tmp)
    except FileExistsError:
        taken = _claim_owner(out_dir)
        if job is not None and taken.get("job") == job:
            return
        raise InputError(
            f"output directory {out_dir} is taken by run {taken.get('run_id', '?')}: give a new "
            f"--out for this {what}, or remove it"
        ) from None
    except OSError as e:
        raise InputError(f"output directory {out_dir} is not writable: {e.strerror or e}") from None


def ensure_new_run_dir(out_dir: Path, what: str = "run") -> None:
    """`out_dir` is writable and holds no earlier run: its rank files would mix with the new
    ones (a rank that dies early would leave the old run's summary standing for it)."""
    taken = rundir.holds_run(out_dir)
    if taken:
        why = f"already holds {taken} of an earlier run"
    elif what == "sweep" and out_dir.is_dir() and any(out_dir.iterdir()):
        why = "is not empty (a sweep makes one directory per run in it)"
    else:
        ensure_writable(out_dir)
        return
    raise InputError(
        f"output directory {out_dir} {why}: give a new --out for this {what}, or remove it"
    )


def ensure_writable(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output directory {out_dir} is a file: give a directory for --out")
    try:
        probe_writable_dir(out_dir)
    except OSError as e:
        raise InputError(f"output directory {out_dir} is not writable: {e.strerror or e}") from None


def point_latest(out_dir: Path) -> None:
    """Make runs/latest point at this run (replaced atomically)."""
    latest = out_dir.parent / rundir.LATEST_LINK
    tmp = out_dir.parent / f".latest-{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(out_dir.name)
        os.replace(tmp, latest)
    except OSError as e:
        log.warning("could not update %s: %s", latest, e)


def launch_ranks(
    resolved: Path,
    cfg: RunConfig,
    out_dir: Path,
    run_id: str,
    total: int,
    label: str = "rank 0 steps",
    rendezvous: Rendezvous | None = None,
    ray: RayOptions | None = None,
) -> str | None:
    """Start the ranks (`rendezvous`: this node's share of a job across nodes; `ray`: as Ray
    workers) under a progress bar; None on success, else why they failed. A Ray job's result is
    written here from rank 0's in-band records when every rank finished.

    On Ctrl-C, or a scheduler's SIGTERM, the ranks' records so far still become
    `out_dir/result.json` (status incomplete, every recorded step kept) before the interrupt
    goes on up.
    """
    from minicluster.launchers.torchrun import launch_local, launch_node

    try:
        with Progress(out_dir, total, label):
            if ray is not None:
                error = _launch_ray(cfg, out_dir, run_id, ray)
            elif rendezvous is None:
                error = launch_local(
                    resolved, cfg.run.nproc, out_dir, run_id, cfg.run.threads_per_rank
                )
            else:
                error = launch_node(
                    resolved, cfg.run.nproc, out_dir, run_id, cfg.run.threads_per_rank, rendezvous
                )
    except KeyboardInterrupt as e:
        why = f"{INTERRUPTED} ({e})" if str(e) else INTERRUPTED
        print(
            f"minicluster: interrupted; keeping what the ranks recorded in {out_dir}",
            file=sys.stderr,
        )
        record_launcher_error(out_dir, why, interrupted=True)
        try:
            kept = aggregate_dir(out_dir, None, quiet=True)
        except MiniclusterError as e:
            print(f"minicluster: nothing to keep: {e}", file=sys.stderr)
        else:
            steps = [r.get("steps_recorded") or 0 for r in kept.get("ranks") or []]
            low, high = min(steps, default=0), max(steps, default=0)
            print(
                f"minicluster: kept {low if low == high else f'{low}-{high}'} steps per rank "
                f"in {rundir.result_path(out_dir)} (status {kept.get('status')}); "
                f"`minicluster report {out_dir}` shows it",
                file=sys.stderr,
            )
        raise
    if error is not None:
        record_launcher_error(out_dir, error)
    return error


def _launch_ray(cfg: RunConfig, out_dir: Path, run_id: str, options: RayOptions) -> str | None:
    """Run the ranks as Ray workers; on success write the result from rank 0's in-band records
    (the ranks' files may be on other nodes), else say why they failed."""
    from minicluster.analysis.aggregate import aggregate
    from minicluster.analysis.records import from_gathered
    from minicluster.launchers.ray_launch import launch

    outcome = launch(cfg, out_dir, run_id, options)
    if outcome.error is None and outcome.gathered is not None:
        write_result(out_dir, aggregate(from_gathered(outcome.gathered)))
    return outcome.error


def record_launcher_error(out_dir: Path, error: str, interrupted: bool = False) -> None:
    """Keep why the launch failed (and whether the user or a scheduler interrupted it) in
    DIR/launcher.json, so `aggregate DIR` says it again later."""
    from minicluster.core.io import atomic_write_json

    path = rundir.launcher_path(out_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    try:
        atomic_write_json(path, {**data, "error": error, "interrupted": interrupted})
    except OSError as e:
        log.warning("could not write %s: %s", path, e)


def aggregate_dir(out_dir: Path, launcher_error: str | None, quiet: bool = False) -> dict[str, Any]:
    """Aggregate the rank files of `out_dir` into its result.json; `quiet`: no summary."""
    result, path = aggregate_dir_to(out_dir, launcher_error)
    if not quiet:
        print_summary(path, result)
    return result


def aggregate_dir_to(out_dir: Path, launcher_error: str | None) -> tuple[dict[str, Any], Path]:
    """Aggregate the rank files of `out_dir`: the result, and where it was written (`write_result`:
    never over a result.json built from more ranks or steps, such as rank 0's in-band result of a
    job across nodes on a node that keeps only its own ranks' files). InputError on a node's
    directory of a finished job whose result is elsewhere (node.json); RunFailedError when the
    launch failed before any rank recorded anything.
    """
    from minicluster.analysis.aggregate import aggregate

    records, launch = run_records(out_dir, launcher_error)
    result = aggregate(records, launch)
    path = write_result(out_dir, result)
    kept = rundir.result_path(out_dir)
    if path != kept:  # a fuller result was there: it stays the run's answer (and exit code)
        return json.loads(kept.read_text(encoding="utf-8")), kept
    return result, path


def run_records(out_dir: Path, launcher_error: str | None) -> tuple[list[Any], Launch]:
    """The rank records of `out_dir` (read for aggregation) and what its launcher said (this
    `launcher_error`, else the one DIR/launcher.json recorded). InputError on a node's directory
    of a finished job whose result is elsewhere (node.json); RunFailedError when the launch
    failed before any rank recorded anything."""
    from minicluster.analysis.aggregate import UNREAD_STEP_FIELDS
    from minicluster.analysis.frame import Launch
    from minicluster.analysis.records import read_run_dir

    launcher = launcher_record(out_dir)
    interrupted = launcher.get("interrupted") is True
    if launcher_error is None and isinstance(launcher.get("error"), str):
        launcher_error = launcher["error"]  # recorded when the run was launched
    if launcher_error and not rundir.ranks_dir(out_dir).is_dir():
        raise RunFailedError(
            f"the launch failed before any rank recorded anything: {launcher_error}"
        )
    records = read_run_dir(out_dir, drop=UNREAD_STEP_FIELDS)
    _refuse_partial_node_dir(out_dir, records)
    return records, Launch(launcher_error, _exit_codes(launcher) or {}, interrupted)


def _refuse_partial_node_dir(out_dir: Path, records: list[Any]) -> None:
    """A node's directory of a finished job across nodes holds its own ranks only: aggregating
    it would call the others missing. Say where the complete result is instead."""
    from minicluster.cli.multinode import read_node_file, where_the_result_went

    node = read_node_file(out_dir)
    if node is None or rundir.result_path(out_dir).exists():
        return
    here = {r.rank for r in records if r.header is not None}
    world = max((r.header["world_size"] for r in records if r.header), default=0)
    if len(here) < world:
        raise InputError(
            f"{out_dir} holds one node's ranks of a job across nodes: "
            f"{where_the_result_went(node)}. Aggregate there, or copy every node's "
            f"{rundir.RANKS_DIR}/ files into one directory (without node.json) first"
        )


def launcher_record(out_dir: Path) -> dict[str, Any]:
    """What the launcher left in DIR/launcher.json (a failed or interrupted local run), or {}."""
    try:
        data = json.loads(rundir.launcher_path(out_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _exit_codes(launcher: dict[str, Any]) -> dict[int, int] | None:
    """Per-rank exit codes from a launcher record, or None."""
    try:
        return {int(rank): int(code) for rank, code in launcher["exit_codes"].items()}
    except (KeyError, ValueError, TypeError, AttributeError):
        return None


def write_and_print(out_dir: Path, result: dict[str, Any]) -> None:
    print_summary(write_result(out_dir, result), result)


def print_summary(path: Path, result: dict[str, Any]) -> None:
    """The terminal summary of a result written to `path`, and where it is."""
    from minicluster.report.terminal import print_run_summary

    with stdout_may_close():
        print_run_summary(result)
        print(f"result: {path}")


@contextmanager
def stdout_may_close() -> Iterator[None]:
    """Terminal output that a closed stdout (`| head -1`) cuts short without failing the
    command: every file is written before it, and the command keeps its exit code."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)  # the interpreter's last flush must not fail
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def write_result(out_dir: Path, result: dict[str, Any]) -> Path:
    """Validate `result` and write it atomically to DIR/result.json, unless a result already there
    covers more of the run (more ranks or records: e.g. rank 0's complete multi-node result,
    re-aggregated on a node holding only its own ranks' files); then beside it, with a warning.
    """
    from minicluster.core.io import atomic_write_json
    from minicluster.result.coverage import covers_less
    from minicluster.result.schema import validate_result

    validate_result(result)
    path = rundir.result_path(out_dir)
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    why = covers_less(result, old) if isinstance(old, dict) else None
    if why is not None:
        kept = path
        path = out_dir / f"result.partial-{clock.utc_stamp()}.json"
        print(
            f"minicluster: warning: {kept} covers more of the run ({why}): kept it; the "
            f"result of the files here goes to {path}",
            file=sys.stderr,
        )
    atomic_write_json(path, result)
    return path


def write_reports(result: dict[str, Any], md: Path | None, html: Path | None) -> None:
    """Write the requested Markdown and HTML reports of `result`."""
    if md is not None:
        from minicluster.report.markdown import render_markdown

        write_file(md, render_markdown(result), announce="report")
    if html is not None:
        from minicluster.report.html import render_html

        write_file(html, render_html(result), announce="report")


def is_stdout(path: Path) -> bool:
    """Whether an output file named on the command line is `-`, standard output."""
    return str(path) == "-"


def stdout_outputs(outputs: list[Path]) -> bool:
    """Whether one of a command's output files (`--json`, `--md`, `--html`) is standard output;
    InputError when more than one is."""
    to_stdout = sum(is_stdout(o) for o in outputs)
    if to_stdout > 1:
        raise InputError("only one of --json, --md, --html can be '-' (standard output)")
    return to_stdout == 1


def write_output(path: Path, text: str) -> None:
    """A user-named output: to standard output for `-`, else an atomic file write."""
    if is_stdout(path):
        sys.stdout.write(text)
    else:
        write_file(path, text)


def side_console(stderr: bool) -> Any:
    """None (a report prints on its own console, on stdout), or a rich console on stderr when
    stdout carries a data file."""
    if not stderr:
        return None
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def write_file(path: Path, data: str | bytes, announce: str | None = None) -> None:
    """Atomic write of a user-named output file; a failure is one line and exit 2."""
    from minicluster.core.io import atomic_write_bytes

    try:
        atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None
    if announce:
        with stdout_may_close():
            print(f"{announce}: {path}")


def _in_band_result(out_dir: Path) -> tuple[dict[str, Any], Path] | None:
    """After a job across nodes finished: the result rank 0 wrote here and its path, or None on
    a node whose node.json says where it went."""
    from minicluster.cli.multinode import print_node_line
    from minicluster.result.schema import load_result

    path = rundir.result_path(out_dir)
    if path.is_file():
        return load_result(path), path
    if print_node_line(out_dir):
        return None
    # Every rank finished, yet neither file is here: a shared directory whose rank 0 runs on
    # another node that has not written the result yet, or a rank 0 that could not write it.
    print(
        f"minicluster: this node's ranks finished; {out_dir} holds neither result.json nor "
        "node.json: the result is on rank 0's node",
        file=sys.stderr,
    )
    return None


def check_required(cfg: RunConfig) -> None:
    """Fail before any rank starts when the config requires a measurement this machine lacks."""
    if not cfg.telemetry.require:
        return
    from minicluster.rank import telemetry

    telemetry.check_required(cfg.telemetry.require, on_gpu(cfg))


def on_gpu(cfg: RunConfig) -> bool:
    """Whether the ranks will run on CUDA devices (`auto` asks torch)."""
    if cfg.run.device == "auto":
        from minicluster.rank.dist import cuda_available

        return cuda_available()
    return bool(cfg.run.device == "cuda")


def execute(
    cfg: RunConfig,
    out_dir: Path,
    run_id: str,
    progress_total: int,
    progress_label: str = "rank 0 steps",
    *,
    point_at: bool = False,
    md: Path | None = None,
    html: Path | None = None,
    quiet: bool = False,
    rendezvous: Rendezvous | None = None,
    ray: RayOptions | None = None,
) -> dict[str, Any] | None:
    """The one path every launching command takes: write the resolved config into `out_dir`,
    launch the ranks under a progress bar, aggregate their records into `result.json` (printing
    the summary unless `quiet`), point `runs/latest` at it when `point_at`, write the reports.

    With `rendezvous` (this node's share of a job across nodes) rank 0 aggregates in-band: on
    its node the result is read back and shown; on a node that holds no result (node.json says
    where it went) the return value is None. After a failure each node aggregates the files it
    holds. The result of a run whose ranks failed is returned too (status failed);
    RunFailedError when the ranks never started, InputError when no rank left anything to
    aggregate. KeyboardInterrupt goes on up after what ran was kept.

    With `ray` the ranks run as Ray workers (one CPU thread per whole CPU a worker has, unless
    the config says otherwise) and the result comes from rank 0's in-band records, as above.
    """
    if ray is not None and not cfg.run.threads_per_rank:
        from minicluster.core.config import override

        cfg = override(cfg, threads_per_rank=ray.threads_per_rank())
    resolved = rundir.config_path(out_dir)  # JSON is YAML: the workers load it like any config
    atomic_write_json(resolved, cfg.to_dict())
    launcher_error = launch_ranks(
        resolved, cfg, out_dir, run_id, progress_total, progress_label, rendezvous, ray
    )
    if (rendezvous is not None or ray is not None) and launcher_error is None:
        found = _in_band_result(out_dir)
        if found is None:
            return None
        result, path = found
    else:
        result, path = aggregate_dir_to(out_dir, launcher_error)
    if point_at:
        point_latest(out_dir)
    # Every file first, the terminal last: a closed stdout must not cost a report.
    write_reports(result, md, html)
    if not quiet:
        print_summary(path, result)
    return result
