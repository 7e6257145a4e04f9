"""One orchestration path for every command that launches ranks (run, validate, collectives, and
each run of a sweep): config -> launch -> aggregate -> latest -> reports, through the launcher
interface (`launchers.base`) and the run-directory rules (`result.store`).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minicluster.cli.progress import Progress
from minicluster.core import gc_pause, heap, rundir
from minicluster.core.config import RunConfig
from minicluster.core.errors import (
    EXIT_INTERRUPTED,
    InputError,
    MiniclusterError,
    RunFailedError,
    RunIncompleteError,
)
from minicluster.core.io import atomic_write_json
from minicluster.launchers.base import Launcher, LaunchOutcome, LaunchPlan, RecordsAt
from minicluster.result import store
from minicluster.result.model import RunResult

if TYPE_CHECKING:
    from minicluster.analysis.frame import Launch

log = logging.getLogger("minicluster.cli")

INTERRUPTED = "interrupted by the user before the ranks finished"
# Ctrl-C after every rank wrote its ok summary: the launcher was still waiting for the ranks to
# exit (torchrun's agent: its exit barrier and rendezvous shutdown) or closing the progress bar.
INTERRUPTED_AFTER = (
    "interrupted by the user after every rank finished (each wrote its ok summary): the "
    "interrupt came during the launch's teardown"
)


def launch(launcher: Launcher, plan: LaunchPlan, total: int, label: str) -> LaunchOutcome:
    """Start the plan's ranks under a progress bar and wait for them. How they ended is kept in
    DIR/launcher.json (a launch that did not finish); a Ctrl-C that reaches this process
    outside the launcher is an interrupted outcome too."""
    try:
        with Progress(plan.out_dir, total, label):
            outcome = launcher.run(plan)
    except KeyboardInterrupt as e:
        outcome = LaunchOutcome(RecordsAt(plan.out_dir), str(e) or None, interrupted=True)
    finished = outcome.interrupted and every_rank_finished(plan, outcome)
    try:
        store.record_launch(
            plan.out_dir,
            plan.launcher,
            _why(outcome, finished),
            outcome.exit_codes,
            outcome.interrupted,
            outcome.stopped,
        )
    except OSError as e:
        if e.errno in NO_SPACE:
            raise
        log.warning("could not write %s: %s", rundir.launcher_path(plan.out_dir), e)
    return outcome


def _why(outcome: LaunchOutcome, finished: bool = False) -> str | None:
    """The launcher error a result records: for an interrupt, that the user interrupted it, and
    whether every rank had `finished` by then (`every_rank_finished`)."""
    if not outcome.interrupted:
        return outcome.error
    text = INTERRUPTED_AFTER if finished else INTERRUPTED
    return f"{text} ({outcome.error})" if outcome.error else text


def every_rank_finished(plan: LaunchPlan, outcome: LaunchOutcome) -> bool:
    """Whether every rank of the plan's job had finished when the launch was interrupted: each
    wrote its ok summary in the run directory and none exited with a code of its own (the
    interrupt's 130, or a signal, is not one). False where a node sees only its own ranks'
    files (a job across nodes without a shared filesystem): not shown here."""
    if any(code > 0 and code != EXIT_INTERRUPTED for code in outcome.exit_codes.values()):
        return False
    from minicluster.core.rank_format import decode_summary

    for rank in range(plan.world_size):
        path = rundir.rank_summary(plan.out_dir, rank)
        try:  # through the record codec, as every reader of a summary
            summary = decode_summary(json.loads(path.read_bytes()), path.name)
        except (OSError, ValueError):  # missing, malformed JSON, or a RecordError
            return False
        if summary.status != "ok":
            return False
    return True


def keep_what_ran(out_dir: Path, header: bool = True) -> None:
    """After an interrupt: the ranks' records so far become `out_dir/result.json` (status
    incomplete, every recorded step kept), and the user is told where, and (`header`) the
    result's verdict header on stdout, as the summary's first line (`... INCOMPLETE (run
    incomplete: interrupted) ...`): the command still exits 130. When Ctrl-C came after
    every rank had finished (status ok, nothing missing) that is what is said: the command still
    exits 130 (it was interrupted), `aggregate DIR` exits by the result."""
    try:
        kept = aggregate_dir(out_dir, None, quiet=True)
    except MiniclusterError as e:
        print(f"minicluster: interrupted; nothing to keep: {e}", file=sys.stderr)
        return
    steps = [r.steps_recorded for r in kept.ranks]
    low, high = min(steps, default=0), max(steps, default=0)
    count = low if low == high else f"{low}-{high}"
    where = rundir.result_path(out_dir)
    if kept.status == "ok" and kept.interrupted is not True:
        print(
            f"minicluster: interrupted after every rank finished: all {count} steps per rank "
            f"recorded, status ok, in {where} (exit 130 for the interrupt; `minicluster "
            f"aggregate {out_dir}` exits by the result)",
            file=sys.stderr,
        )
        if header:
            _print_header(kept)
        return
    print(
        f"minicluster: interrupted; keeping what the ranks recorded in {out_dir}\n"
        f"minicluster: kept {count} steps per rank in {where} (status {kept.status}); "
        f"`minicluster report {out_dir}` shows it",
        file=sys.stderr,
    )
    if header:
        _print_header(kept)


def _print_header(result: RunResult) -> None:
    """The verdict header of a kept result (stdout, as a summary's first line)."""
    from minicluster.report.terminal import print_run_header

    with stdout_may_close():
        print_run_header(result)


def collect(plan: LaunchPlan, outcome: LaunchOutcome) -> tuple[RunResult, Path] | None:
    """The result of a finished launch and where it is, from wherever the outcome says the
    records are: in-band records (aggregated and written here), a result rank 0 wrote itself,
    or this machine's rank files; None on a node whose result is on rank 0's node."""
    where = outcome.records
    if where.on_rank0_node:
        _say_where_the_result_is(plan.out_dir)
        return None
    if where.result is not None:
        from minicluster.result import read

        return read(where.result), where.result
    if where.in_band is not None:
        from minicluster.analysis.aggregate import aggregate
        from minicluster.analysis.records import from_gathered

        result = aggregate(from_gathered(where.in_band), launch_of(outcome))
        return RunResult.from_json(result), write_result(plan.out_dir, result)
    return aggregate_dir_to(where.dir, launch_of(outcome))


def launch_of(outcome: LaunchOutcome) -> Launch:
    """What aggregation is told about a launch (`analysis.frame.Launch`): the one place a
    launcher's outcome becomes analysis input (the launchers never import analysis)."""
    from minicluster.analysis.frame import Launch

    stopped = None if outcome.stopped is None else dict(outcome.stopped)
    return Launch(_why(outcome), dict(outcome.exit_codes), outcome.interrupted, stopped)


def recorded_launch(out_dir: Path, launcher_error: str | None = None) -> Launch:
    """How the launch of `out_dir` ended, as DIR/launcher.json kept it (`aggregate DIR` later;
    nothing there: it finished), with `launcher_error` in place of the recorded error if given."""
    from minicluster.analysis.frame import Launch

    launcher = store.launcher_record(out_dir)
    if launcher_error is None and isinstance(launcher.get("error"), str):
        launcher_error = launcher["error"]  # recorded when the run was launched
    return Launch(
        launcher_error,
        store.recorded_exit_codes(launcher) or {},
        launcher.get("interrupted") is True,
        store.recorded_stopped(launcher),
    )


def aggregate_dir(
    out_dir: Path,
    launcher_error: str | None,
    quiet: bool = False,
    judge: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Aggregate the rank files of `out_dir` into its result.json; `quiet`: no summary; `judge`
    adds to the result before it is written (`aggregate --reference`)."""
    with gc_pause.paused():  # the summary too: its tables are many small objects
        result, path = aggregate_dir_to(out_dir, recorded_launch(out_dir, launcher_error), judge)
        say_result(path, result, quiet)
    return result


def aggregate_dir_to(
    out_dir: Path,
    launch: Launch | None = None,
    judge: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[RunResult, Path]:
    """Aggregate the rank files of `out_dir`: the result, and where it was written (`write_result`:
    never over a result.json built from more ranks or steps, such as rank 0's in-band result of a
    job across nodes on a node that keeps only its own ranks' files). How the launch ended is
    `launch`, else what DIR/launcher.json kept (`aggregate DIR` later). Raises as `run_records`.
    """
    from minicluster.analysis.aggregate import aggregate

    heap.keep_freed_memory()  # its temporaries reused, not faulted in anew (core.heap)
    with gc_pause.paused():
        records, launch = run_records(out_dir, launch)
        result = aggregate(
            records, launch, flight_recorder=flight_recorder_diagnosis(out_dir), consume=True
        )
        if judge is not None:
            judge(result)
        written = store.write_result(out_dir, result)
        _warn_kept(written)
        if written.kept_result is not None:  # a fuller result was there: it stays the answer
            return RunResult.from_json(written.kept_result), rundir.result_path(out_dir)
        return RunResult.from_json(result), written.path


def flight_recorder_diagnosis(out_dir: Path) -> dict[str, Any] | None:
    """What the Flight Recorder dumps of `out_dir` say (`analysis.flight_recorder.diagnose`);
    None when the run left none, or they do not read (`diagnose DIR` says why)."""
    from minicluster.analysis import flight_recorder

    if not rundir.flight_recorder_dir(out_dir).is_dir():
        return None
    try:
        return flight_recorder.diagnose(flight_recorder.load([rundir.flight_recorder_dir(out_dir)]))
    except InputError:
        return None


def run_records(out_dir: Path, launch: Launch | None = None) -> tuple[list[Any], Launch]:
    """The rank records of `out_dir` (read for aggregation) and how its launch ended (`launch`,
    else what DIR/launcher.json kept). InputError on a node's directory of a finished job whose
    result is elsewhere (node.json); RunFailedError when the launch failed before any rank
    recorded anything (RunIncompleteError when it was interrupted)."""
    from minicluster.analysis.aggregate import LAST_ONLY_STEP_FIELDS, UNREAD_STEP_FIELDS
    from minicluster.analysis.records import read_run_dir

    if launch is None:
        launch = recorded_launch(out_dir)
    if not rundir.ranks_dir(out_dir).is_dir():
        refuse_empty_launch(launch, "nothing to aggregate")
    records = read_run_dir(out_dir, drop=UNREAD_STEP_FIELDS, last_only=LAST_ONLY_STEP_FIELDS)
    _refuse_partial_node_dir(out_dir, records)
    return records, launch


def refuse_empty_launch(launch: Launch, then: str) -> None:
    """For a run whose ranks recorded nothing: RunIncompleteError (exit 1) when its launch was
    interrupted (no failure of the run), RunFailedError (exit 3) when it failed; nothing when
    the launch recorded no end (it may still be starting)."""
    if not launch.error:
        return
    if launch.interrupted:
        raise RunIncompleteError(
            f"INCOMPLETE: the run was interrupted before any rank recorded anything "
            f"({launch.error}): {then}"
        )
    raise RunFailedError(f"the launch failed before any rank recorded anything: {launch.error}")


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


def write_and_print(out_dir: Path, result: dict[str, Any]) -> None:
    print_summary(write_result(out_dir, result), RunResult.from_json(result))


def print_summary(path: Path, result: RunResult) -> None:
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
    """`store.write_result`, saying so when DIR/result.json was kept and the result went beside
    it; where it went."""
    written = store.write_result(out_dir, result)
    _warn_kept(written)
    return written.path


def _warn_kept(written: store.Written) -> None:
    if written.kept is not None:
        print(
            f"minicluster: warning: kept {written.kept}: {written.why}; the result of the files "
            f"here goes to {written.path}",
            file=sys.stderr,
        )


def point_latest(out_dir: Path, link: str = rundir.LATEST_LINK) -> None:
    """`store.point_latest`, with a warning when runs/latest (or runs/`link`) could not follow."""
    why = store.point_latest(out_dir, link)
    if why is not None:
        log.warning("%s", why)


def write_reports(result: RunResult, md: Path | None, html: Path | None) -> None:
    """Write the requested Markdown and HTML reports of `result` (`-`: standard output, where
    the command takes it: `check_output_files` refuses it elsewhere)."""
    if md is not None:
        from minicluster.report.markdown import render_markdown

        write_report(md, render_markdown(result))
    if html is not None:
        from minicluster.report.html import render_html

        write_report(html, render_html(result))


def write_report(path: Path, text: str) -> None:
    """A report file named on the command line (`report: PATH` said), or standard output for
    `-` (the caller then prints its summary on stderr: `side_console`)."""
    if is_stdout(path):
        with stdout_may_close():
            write_output(path, text)
    else:
        write_file(path, text, announce="report")


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

    from minicluster.report.terminal import PIPED_WIDTH

    # the same width rule as on stdout: the terminal's, else PIPED_WIDTH (COLUMNS wins); at
    # rich's default 80 columns a piped summary lost its last table columns
    piped = not sys.stderr.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=True, highlight=False, width=PIPED_WIDTH if piped else None)


def write_file(path: Path, data: str | bytes, announce: str | None = None) -> None:
    """Atomic write of a user-named output file; a failure is one line and exit 2 (a full disk
    after ranks started: 3, `ranks_started`). Never a file named `-` (standard output: a
    command that takes it writes it with `write_output`)."""
    from minicluster.core.io import atomic_write_bytes

    if is_stdout(path):
        raise InputError("'-' (standard output) is not an output this command can write to")

    try:
        atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)
    except OSError as e:
        if e.errno in NO_SPACE:
            raise  # the command says what it means: before or after ranks started
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None
    if announce:
        with stdout_may_close():
            print(f"{announce}: {path}")


def _say_where_the_result_is(out_dir: Path) -> None:
    """On a node of a job across nodes whose ranks finished: where rank 0 wrote the result."""
    from minicluster.cli.multinode import print_node_line

    if print_node_line(out_dir):
        return
    # Every rank finished, yet neither file is here: a shared directory whose rank 0 runs on
    # another node that has not written the result yet, or a rank 0 that could not write it.
    print(
        f"minicluster: this node's ranks finished; {out_dir} holds neither result.json nor "
        "node.json: the result is on rank 0's node",
        file=sys.stderr,
    )


def verdict_after_the_fact(result: RunResult) -> int:
    """The exit code of a result this command built without being interrupted itself (`aggregate
    DIR`, a sweep over its runs): 130 is the code of a command that was interrupted, so an
    interrupted run's result exits by what it found (3 failed; 1 a finding, or `incomplete`:
    interrupted before its planned steps ran; else 0), as `watch` of it does."""
    from minicluster.analysis.verdicts import exit_code_after_the_fact

    return exit_code_after_the_fact(result)


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


def print_plan(
    launcher: Launcher, cfg: RunConfig, out: Path | None, title: str, source: Path | None
) -> None:
    """`--dry-run`: what `launcher` would start for `cfg` (from the config file `source`, None:
    the built-in one), on stdout; starts and claims nothing (the run id and output directory
    shown are the ones a run now would get). InputError where the run would refuse `out` (it
    holds an earlier run)."""
    run_id, out_dir = store.check_planned_output(out)
    plan = launcher.plan(cfg, out_dir, run_id)
    origin = "the built-in config" if source is None else str(source)
    with stdout_may_close():
        print(f"minicluster: dry run: {title}, from {origin}; nothing started")
        for line in plan.lines():
            print(f"  {line}")


def execute(
    cfg: RunConfig,
    launcher: Launcher,
    out_dir: Path,
    run_id: str,
    progress_total: int,
    progress_label: str = "rank 0 steps",
    *,
    point_at: bool = False,
    md: Path | None = None,
    html: Path | None = None,
    quiet: bool = False,
    judge: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult | None:
    """The one path every launching command takes: plan the launch, write the resolved config
    into `out_dir`, start the ranks under a progress bar, turn their records into `result.json`
    (printing the summary unless `quiet`), point `runs/latest` at it when `point_at`, write the
    reports.

    Where the result comes from is the outcome's business (`collect`): the result of a run
    whose ranks failed is returned too (status failed); None on a node of a job across nodes
    whose result is on rank 0's node. RunFailedError when the ranks never started, InputError
    when no rank left anything to aggregate; a disk that fills up once the ranks have started is
    RunFailedError (exit 3), before that InputError (exit 2). After Ctrl-C (or a scheduler's
    SIGTERM) what the ranks recorded becomes the result (status incomplete) and
    KeyboardInterrupt goes on up. `judge` adds to the result before the reports and the summary
    (`run --reference`: the `reference` section), and the result is written again with it.
    """
    plan = launcher.plan(cfg, out_dir, run_id)
    # JSON is YAML: the ranks load it like any config
    atomic_write_json(plan.config_path, plan.config.to_dict())
    with ranks_started(out_dir):
        outcome = launch(launcher, plan, progress_total, progress_label)
        if outcome.interrupted:
            keep_what_ran(out_dir, header=not quiet)
            raise KeyboardInterrupt(outcome.error or "")
        phase = "the aggregation"
        written: Path | None = None  # the result, once collected
        try:
            found = collect(plan, outcome)
            if found is None:
                return None
            result, path = found
            written = path
            if judge is not None:
                phase = "the judgement against the reference"
                data = result.to_json()
                judge(data)
                atomic_write_json(path, data)
                result = RunResult.from_json(data)
            if point_at:
                point_latest(out_dir)
            phase = "the reports"
            # Every file first, the terminal last: a closed stdout must not cost a report.
            write_reports(result, md, html)
        except KeyboardInterrupt:
            _say_interrupted_after_launch(out_dir, outcome, phase, written)
            raise
    say_result(path, result, quiet)
    return result


def say_result(path: Path, result: RunResult, quiet: bool) -> None:
    """What a run's aggregation says: the user's code stopped the ranks, its one line (not a
    table of empty figures); else the summary, unless `quiet`."""
    if result.bad_input is not None:
        print(
            f"minicluster: error: {result.bad_input} (exit 2; what the ranks recorded: {path})",
            file=sys.stderr,
        )
    elif not quiet:
        print_summary(path, result)


def _say_interrupted_after_launch(
    out_dir: Path, outcome: LaunchOutcome, phase: str, written: Path | None
) -> None:
    """Ctrl-C once the launch had ended: the ranks had finished (or failed) by then, so nothing
    is recorded as interrupted (no launcher.json for it); the user is told during what, and
    where the result is (`written`, once collected) or how to build it from the rank files."""
    ended = "every rank finished" if outcome.ok else f"the ranks ended ({outcome.error})"
    if written is not None:
        unjudged = (
            " (not judged against the reference)" if phase.startswith("the judgement") else ""
        )
        then = f"the result is in {written}{unjudged}"
    elif outcome.records.in_band is None:
        then = f"`minicluster aggregate {out_dir}` builds the result from the rank files"
    else:
        then = "the ranks' records were gathered in-band: no result was written"
    print(f"minicluster: interrupted during {phase}, after {ended}; {then}", file=sys.stderr)


@contextmanager
def ranks_started(out_dir: Path) -> Iterator[None]:
    """A disk that fills up once ranks have started fails the run (exit 3), in one line naming
    the file and what the ranks kept."""
    try:
        yield
    except OSError as e:
        if e.errno not in NO_SPACE:
            raise
        raise RunFailedError(
            f"{no_space_text(e)} (the ranks had started; what they recorded is under {out_dir})"
        ) from None


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def no_space_text(e: OSError) -> str:
    """`cannot write PATH: no space left on device` (or `disk quota exceeded`)."""
    what = "no space left on device" if e.errno == errno.ENOSPC else "disk quota exceeded"
    return f"cannot write {e.filename}: {what}" if e.filename else what
