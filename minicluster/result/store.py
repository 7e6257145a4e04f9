"""The run-directory rules: a run claims a new directory before any rank starts, `runs/latest`
follows the newest run, `launcher.json` keeps how the launch ended, and `result.json` is never
replaced by a result covering less of the run, nor when it cannot be read.

Every command that writes a run or sweep directory goes through these rules (the paths
themselves are named in `core.rundir`).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minicluster.core import clock, rundir
from minicluster.core.errors import InputError
from minicluster.core.io import atomic_write_json, probe_writable_dir
from minicluster.result.coverage import covers_less
from minicluster.result.model import SCHEMA_VERSION
from minicluster.result.schema import validate_result


def planned_output(out: Path | None) -> tuple[str, Path]:
    """A new id and the directory a run would take (`out`, or runs/<id>), claiming nothing:
    what `--dry-run` shows."""
    new_id = clock.new_run_id()
    return new_id, Path("runs") / new_id if out is None else out


def new_output(out: Path | None, what: str = "run", job: str | None = None) -> tuple[str, Path]:
    """A new id and its output directory (`out`, or runs/<id>), checked to hold no earlier run and
    claimed for this one (exclusive create of DIR/.claim) before any rank starts.

    `job` names a job across nodes (its rendezvous): on a shared filesystem every node's
    `minicluster run` gets the same directory, and the nodes of one job share its claim."""
    new_id, out_dir = planned_output(out)
    if job is not None and _claim_owner(out_dir).get("job") == job:
        return new_id, out_dir  # another node of this job took it first: share it
    ensure_new_run_dir(out_dir, what)
    claim(out_dir, new_id, what, job)
    return new_id, out_dir


def check_planned_output(out: Path | None, what: str = "run") -> tuple[str, Path]:
    """`planned_output`, refused (InputError, exit 2) where `new_output` would refuse it (an
    earlier run in it, a file, a claim by another run), creating and claiming nothing: what
    `--dry-run` checks, so a dry run passes only where the real command would start."""
    new_id, out_dir = planned_output(out)
    _refuse_earlier_run(out_dir, what)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output directory {out_dir} is a file: give a directory for --out")
    if (out_dir / rundir.CLAIM_FILE).exists():
        raise InputError(
            f"output directory {out_dir} is taken by {_owner_text(out_dir)}: give a new --out "
            f"for this {what}, or remove it"
        )
    return new_id, out_dir


def _owner_text(out_dir: Path) -> str:
    """Who holds `out_dir`'s claim, as a message says it."""
    run_id = _claim_owner(out_dir).get("run_id")
    if run_id:
        return f"run {run_id}"
    return f"another run (its {rundir.CLAIM_FILE} file names none: remove it if no run is using it)"


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
        _OWN.add(out_dir.resolve())
    except FileExistsError:
        taken = _claim_owner(out_dir)
        if job is not None and taken.get("job") == job:
            _OWN.add(out_dir.resolve())
            return
        raise InputError(
            f"output directory {out_dir} is taken by {_owner_text(out_dir)}: give a new "
            f"--out for this {what}, or remove it"
        ) from None
    except OSError as e:
        raise InputError(f"output directory {out_dir} is not writable: {e.strerror or e}") from None


def ensure_new_run_dir(out_dir: Path, what: str = "run") -> None:
    """`out_dir` is writable and holds no earlier run: its rank files would mix with the new
    ones (a rank that dies early would leave the old run's summary standing for it)."""
    _refuse_earlier_run(out_dir, what)
    ensure_writable(out_dir)


# Directories this process claimed (resolved): a command's own runs inside them (a node check's
# collectives, a repeat's rI) are not "inside an earlier run".
_OWN: set[Path] = set()


def _refuse_earlier_run(out_dir: Path, what: str) -> None:
    """InputError when `out_dir` holds an earlier run (or, for a sweep, anything), lies inside an
    earlier run's directory, or holds other runs (a runs root: `latest`, or a run in a
    sub-directory): its files would mix with theirs, or `runs/latest` would move into them."""
    taken = rundir.holds_run(out_dir)
    if taken:
        why = f"already holds {taken} of an earlier run"
    elif (inside := _earlier_run_above(out_dir)) is not None:
        run, marker = inside
        shown = run if out_dir.is_absolute() else Path(os.path.relpath(run))
        raise InputError(
            f"output directory {out_dir} is inside the earlier run {shown} (it holds {marker}): "
            f"give an --out outside it for this {what}"
        )
    elif (held := rundir.holds_runs(out_dir)) is not None:
        raise InputError(
            f"output directory {out_dir} holds other runs ({held}): give a new directory for "
            f"this {what} (e.g. {out_dir / 'NAME'})"
        )
    elif what == "sweep" and out_dir.is_dir() and any(out_dir.iterdir()):
        why = "is not empty (a sweep makes one directory per run in it)"
    else:
        return
    raise InputError(
        f"output directory {out_dir} {why}: give a new --out for this {what}, or remove it"
    )


def _earlier_run_above(out_dir: Path) -> tuple[Path, str] | None:
    """The nearest directory above `out_dir` that holds a run (and the marker found there),
    stopping at a directory this process claimed itself; None when there is none."""
    for parent in out_dir.resolve().parents:
        if parent in _OWN:
            return None
        marker = rundir.looks_like_run(parent)
        if marker is not None:
            return parent, marker
    return None


def ensure_writable(out_dir: Path) -> None:
    """InputError when `out_dir` is a file or cannot be made or written in."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output directory {out_dir} is a file: give a directory for --out")
    try:
        probe_writable_dir(out_dir)
    except OSError as e:
        raise InputError(f"output directory {out_dir} is not writable: {e.strerror or e}") from None


def point_latest(out_dir: Path, link: str = rundir.LATEST_LINK) -> str | None:
    """Make runs/latest (or runs/`link`) point at this run (replaced atomically); why it could
    not, or None."""
    latest = out_dir.parent / link
    tmp = out_dir.parent / f".{link}-{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(out_dir.name)
        os.replace(tmp, latest)
    except OSError as e:
        return f"could not update {latest}: {e.strerror or e}"
    return None


def record_launch(
    out_dir: Path,
    launcher: str,
    error: str | None,
    exit_codes: Mapping[int, int],
    interrupted: bool,
    stopped: Mapping[int, int] | None = None,
) -> None:
    """Keep how a launch that did not finish ended (why, each rank's non-zero exit code, whether
    the user or a scheduler interrupted it, the ranks the launcher itself signalled) in
    DIR/launcher.json, so `aggregate DIR` says it again later. Nothing is written for a launch
    whose ranks all finished."""
    if error is None and not exit_codes and not interrupted:
        return
    record: dict[str, Any] = {
        "launcher": launcher,
        "exit_codes": {str(rank): code for rank, code in sorted(exit_codes.items())},
        "interrupted": interrupted,
    }
    if error is not None:
        record["error"] = error
    if stopped is not None:
        record["stopped_by_launcher"] = {str(r): sig for r, sig in sorted(stopped.items())}
    atomic_write_json(rundir.launcher_path(out_dir), record)


def launcher_record(out_dir: Path) -> dict[str, Any]:
    """What the launcher left in DIR/launcher.json (a failed or interrupted run), or {}."""
    try:
        data = json.loads(rundir.launcher_path(out_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def recorded_stopped(record: Mapping[str, Any]) -> dict[int, int] | None:
    """The ranks the launcher signalled itself (rank -> signal), or None where it did not say
    (another launcher, an older launcher.json)."""
    try:
        return {int(rank): int(sig) for rank, sig in record["stopped_by_launcher"].items()}
    except (KeyError, ValueError, TypeError, AttributeError):
        return None


def recorded_exit_codes(record: Mapping[str, Any]) -> dict[int, int] | None:
    """Per-rank exit codes from a launcher record, or None."""
    try:
        return {int(rank): int(code) for rank, code in record["exit_codes"].items()}
    except (KeyError, ValueError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class Written:
    """Where `write_result` put a result: `path`; when DIR/result.json was kept instead of
    replaced, `kept` is its path, `kept_result` its content when it could be read (a fuller
    result: it stays the run's answer) and `why` says why it was kept."""

    path: Path
    kept: Path | None = None
    kept_result: dict[str, Any] | None = None
    why: str | None = None


def write_result(out_dir: Path, result: dict[str, Any]) -> Written:
    """Validate `result` and write it atomically to DIR/result.json, unless the result already
    there covers more of the run (more ranks or records: e.g. rank 0's complete multi-node
    result, re-aggregated on a node holding only its own ranks' files) or cannot be read
    (truncated, not JSON, or from a newer minicluster): then beside it, as
    `result.partial-<UTC time>.json`. A result.json is never replaced by less, nor lost."""
    validate_result(result)
    path = rundir.result_path(out_dir)
    old, why = _read_old(path)
    if why is None and old is not None:
        why = covers_less(result, old)
        if why is not None:
            why = f"it covers more of the run ({why})"
    if why is None:
        atomic_write_json(path, result)
        return Written(path)
    partial = write_fresh_result(out_dir, "partial", result)
    return Written(partial, kept=path, kept_result=old, why=why)


def _read_old(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The result at `path` (None when there is none), and why it must not be replaced
    because it cannot be read, else None."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, f"it cannot be read ({e.strerror or e})"
    try:
        old = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        return None, "it cannot be read (truncated, or not JSON)"
    if not isinstance(old, dict):
        return None, "it cannot be read (not a result: not a JSON object)"
    version = old.get("schema_version")
    if _newer(version):
        return (
            None,
            f"it was written by a newer minicluster ({version}; this one writes {SCHEMA_VERSION})",
        )
    return old, None


def _newer(version: object) -> bool:
    """Whether `version` (`minicluster/MAJOR.MINOR`) is newer than the one this code writes."""
    mine, theirs = _version_tuple(SCHEMA_VERSION), _version_tuple(version)
    return mine is not None and theirs is not None and theirs > mine


def _version_tuple(version: object) -> tuple[int, int] | None:
    match = re.fullmatch(
        r"minicluster/(\d+)(?:\.(\d+))?", version if isinstance(version, str) else ""
    )
    return (int(match[1]), int(match[2] or 0)) if match else None


def write_fresh_result(out_dir: Path, kind: str, data: Any) -> Path:
    """Write `data` as `result.<kind>-<UTC time>.json` (`partial`, `rejudged`) in `out_dir`, under
    a name no file there had: the name is claimed with an exclusive create before the atomic
    write, so two writers in the same second (two `aggregate DIR --straggler-threshold` at once)
    get two files, and a result written beside result.json never replaces an earlier one.
    Returns the path; on any error the claim is removed and the error raised."""
    stamp = clock.utc_stamp()
    n = 1
    while True:
        suffix = "" if n == 1 else f"-{n}"
        path = out_dir / f"result.{kind}-{stamp}{suffix}.json"
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            break
        except FileExistsError:
            n += 1
    try:
        atomic_write_json(path, data)
    except BaseException:  # a full disk, a value JSON cannot hold, Ctrl-C: no empty claim left
        path.unlink(missing_ok=True)
        raise
    return path
