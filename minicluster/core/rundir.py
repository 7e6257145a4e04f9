"""Every path inside a run (or sweep) directory, named once.

A run directory holds:

    config.json                  the resolved config the ranks loaded (JSON is YAML)
    ranks/rank_00003.jsonl       one rank's records: header line, then one line per step
    ranks/rank_00003.summary.json   that rank's summary, written atomically at its end
    ranks/rank_00003.steps.arrow    its steps as columns, written at its end (`core.rank_columns`)
    launcher.json                why a local launch failed or was interrupted (exit codes, the
                                 ranks the launcher signalled itself)
    flight_recorder/rank_00003   that rank's Flight Recorder dump (torch's format), written when
                                 it failed (`minicluster diagnose DIR` reads them)
    ray.log                      `--launcher ray`: what the Ray driver printed (Ray's own output)
    node.json                    on a node that does not see rank 0's files: this node's ranks and
                                 where rank 0 wrote the result (`NODE_KEYS`)
    result.json                  the canonical result (see minicluster.result)
    .claim                       the exclusive claim a new run takes on the directory

A sweep directory holds `sweep.json` (the plan), one run directory per run and, when it projects
past its world sizes without given link parameters, the run directory of its all_reduce probe
(`allreduce-n2/`).
"""

from __future__ import annotations

from pathlib import Path

RANKS_DIR = "ranks"
RESULT_FILE = "result.json"
CONFIG_FILE = "config.json"
LAUNCHER_FILE = "launcher.json"
RAY_LOG_FILE = "ray.log"
NODE_FILE = "node.json"
PLAN_FILE = "sweep.json"
REPEATS_FILE = "repeats.json"  # `run --repeats K`: the K run directories and their spread
CLAIM_FILE = ".claim"
LATEST_LINK = "latest"
# `node-check` without --out: its own link; `latest` stays the newest run (what `compare`,
# `report` and `aggregate` read as a run), never a node check
LATEST_NODE_CHECK_LINK = "latest-node-check"
RANK_FILE_GLOB = "rank_*.jsonl"
SUMMARY_FILE_GLOB = "rank_*.summary.json"
# What a directory holding an earlier run contains (any one is enough to refuse a new run there).
# what runs, sweeps and nodes write as their record: a report file may never take these names
RECORDED_FILES = (
    RESULT_FILE,
    CONFIG_FILE,
    LAUNCHER_FILE,
    RAY_LOG_FILE,
    NODE_FILE,
    PLAN_FILE,
    REPEATS_FILE,
    CLAIM_FILE,
)
LAYOUTS_FILE = "layouts.json"  # sweep --layouts (kind layout_sweep) and validate --layouts
RUN_MARKERS = (f"{RANKS_DIR}/", RESULT_FILE, PLAN_FILE, NODE_FILE, REPEATS_FILE, LAYOUTS_FILE)
# node.json: the job's run id, this node (node_rank, hostname, ranks, ranks_ok), and where rank 0
# wrote the result (`result`: {hostname, path}).
NODE_KEYS = ("run_id", "node_rank", "hostname", "ranks", "ranks_ok", "result", "written_at")


def ranks_dir(run_dir: Path) -> Path:
    return run_dir / RANKS_DIR


def rank_jsonl(run_dir: Path, rank: int) -> Path:
    """`run_dir/ranks/rank_00003.jsonl`: the rank's header and step records."""
    return run_dir / RANKS_DIR / f"rank_{rank:05d}.jsonl"


def rank_summary(run_dir: Path, rank: int) -> Path:
    """`run_dir/ranks/rank_00003.summary.json`: the rank's end-of-run summary."""
    return run_dir / RANKS_DIR / f"rank_{rank:05d}.summary.json"


def rank_files_pattern() -> str:
    """The rank file path relative to the run directory, as a `str.format` pattern."""
    return f"{RANKS_DIR}/rank_{{rank:05d}}.jsonl"


def rank_from_name(name: str) -> int | None:
    """The rank of `rank_00003.jsonl` or `rank_00003.summary.json`; None for any other name."""
    stem = name.split(".", 1)[0]
    if not stem.startswith("rank_"):
        return None
    try:
        return int(stem.removeprefix("rank_"))
    except ValueError:
        return None


def result_path(run_dir: Path) -> Path:
    return run_dir / RESULT_FILE


def config_path(run_dir: Path) -> Path:
    return run_dir / CONFIG_FILE


FLIGHT_RECORDER_DIR = "flight_recorder"
FLIGHT_RECORDER_PREFIX = "rank_"  # + the rank's digits: the names torch's fr_trace reads too


def flight_recorder_dir(run_dir: Path) -> Path:
    return run_dir / FLIGHT_RECORDER_DIR


def flight_recorder_dump(run_dir: Path, rank: int) -> Path:
    return flight_recorder_dir(run_dir) / f"{FLIGHT_RECORDER_PREFIX}{rank:05d}"


def launcher_path(run_dir: Path) -> Path:
    return run_dir / LAUNCHER_FILE


def ray_log_path(run_dir: Path) -> Path:
    """`run_dir/ray.log`: the Ray driver's output (kept out of the terminal)."""
    return run_dir / RAY_LOG_FILE


def node_path(run_dir: Path) -> Path:
    """`run_dir/node.json`: on a node without rank 0's files, where the result went."""
    return run_dir / NODE_FILE


def plan_path(sweep_dir: Path) -> Path:
    return sweep_dir / PLAN_FILE


def allreduce_probe_dir(sweep_dir: Path, world_size: int) -> Path:
    """The run directory of a sweep's all_reduce size sweep at `world_size` (the projection's
    alpha and beta)."""
    return sweep_dir / f"allreduce-n{world_size}"


def holds_run(run_dir: Path) -> str | None:
    """The first marker of an earlier run in `run_dir` (`ranks/`, `result.json`, `sweep.json`,
    `node.json`)."""
    return next((n for n in RUN_MARKERS if (run_dir / n).exists()), None)


def holds_runs(root: Path) -> str | None:
    """What shows that `root` holds other runs (a runs root such as `runs/`): its `latest` link,
    or a sub-directory that holds a run; None otherwise."""
    if (root / LATEST_LINK).is_symlink():
        return f"the {LATEST_LINK} link"
    try:
        subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return None
    run = next((p for p in subdirs if looks_like_run(p)), None)
    return None if run is None else f"the run {run.name}/"


def looks_like_run(run_dir: Path) -> str | None:
    """What shows that `run_dir` is a run (or sweep) directory a command wrote, or None: its
    claim, rank files under `ranks/`, a plan, `node.json`, `repeats.json` or `layouts.json`, or
    `result.json` beside `config.json`. Stricter than `holds_run`: a lone `result.json` (a
    converted file in a project folder) does not make the folders under it an earlier run's."""
    if (run_dir / CLAIM_FILE).is_file():
        return CLAIM_FILE
    ranks = run_dir / RANKS_DIR
    if ranks.is_dir() and any(ranks.glob(RANK_FILE_GLOB)):
        return f"{RANKS_DIR}/ with rank files"
    found = next(
        (n for n in (PLAN_FILE, NODE_FILE, REPEATS_FILE, LAYOUTS_FILE) if (run_dir / n).is_file()),
        None,
    )
    if found is None and (run_dir / RESULT_FILE).is_file() and (run_dir / CONFIG_FILE).is_file():
        found = f"{RESULT_FILE} and {CONFIG_FILE}"
    return found


def wrong_level(path: Path, command: str) -> str | None:
    """What to give instead when `path` is one level off a run directory: a run's `ranks/`
    folder (its run directory), or a folder of runs (the runs found there, `command` on the
    first); None when it is neither. The `{path} ...` error of `watch`, `report` and `aggregate`
    ends with it."""
    try:
        if path.is_dir() and any(path.glob(RANK_FILE_GLOB)):
            return (
                f"{path} is a run's {RANKS_DIR}/ folder: give the run directory "
                f"(`minicluster {command} {path.parent}`)"
            )
        if looks_like_run(path):  # a sweep's directory holds runs, and is one
            return None
        runs = sorted(p.name for p in path.iterdir() if p.is_dir() and looks_like_run(p))
    except OSError:
        return None
    if not runs:
        return None
    shown = ", ".join(runs[:6]) + (f" and {len(runs) - 6} more" if len(runs) > 6 else "")
    return (
        f"{path} is a folder of {len(runs)} run(s), not a run: {shown}; give one "
        f"(`minicluster {command} {path / runs[0]}`)"
    )
