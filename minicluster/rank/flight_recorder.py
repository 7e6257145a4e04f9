"""torch's Flight Recorder on this rank: turned on before the process group starts, dumped into
the run directory when the rank fails (its collective raised, timed out, or the launcher or
another process sent it SIGTERM).

The dump API is private (`torch._C._distributed_c10d._dump_fr_trace`, torch 2.x; it records
gloo collectives too): this is the one module that calls it, behind a guard that checks what it
returns (a pickled dict with `version` and `entries`) and turns anything odd into no dump and a
logged reason. The files are torch's own dump format, one per rank
(`DIR/flight_recorder/rank_NNNNN`: a prefix and the rank, as torch names its
`TORCH_FR_DUMP_TEMP_FILE` dumps), read by `minicluster diagnose` (torch 2.13's own `fr_trace`
stops on gloo dumps with a KeyError: their `pg_config` names the default group '' while the
entries name it '0').
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from minicluster.core import rundir
from minicluster.core.io import atomic_write_bytes

log = logging.getLogger(__name__)

BUFFER_ENV = "TORCH_FR_BUFFER_SIZE"  # entries kept per rank (torch's ring buffer; 0: off)
DEFAULT_BUFFER = "2000"


def enable() -> None:
    """Turn the recorder on for the process group about to start (a user's own setting wins)."""
    os.environ.setdefault(BUFFER_ENV, DEFAULT_BUFFER)


def snapshot() -> tuple[bytes | None, str | None]:
    """This rank's recorder contents in torch's dump format, or None and why not."""
    try:
        from torch._C import _distributed_c10d as c10d
    except ImportError as e:
        return None, f"torch has no c10d extension ({e})"
    dump = getattr(c10d, "_dump_fr_trace", None)
    if not callable(dump):
        return None, "this torch has no _dump_fr_trace"
    try:
        raw = dump()
    except Exception as e:  # a private API: any failure is "no dump", never the rank's failure
        return None, f"_dump_fr_trace failed: {type(e).__name__}: {e}"
    if not isinstance(raw, bytes | bytearray):
        return None, f"_dump_fr_trace returned {type(raw).__name__}, not bytes"
    try:
        data: Any = pickle.loads(raw)
    except Exception as e:
        return None, f"_dump_fr_trace returned bytes that do not unpickle ({e})"
    if not isinstance(data, dict) or not {"version", "entries"} <= set(data):
        return None, "_dump_fr_trace returned no {version, entries} dict"
    return bytes(raw), None


def dump(out_dir: Path, rank: int) -> Path | None:
    """Write this rank's recorder into the run directory; None (with a logged reason) when it
    could not be read or written."""
    raw, why = snapshot()
    if raw is None:
        log.warning("no Flight Recorder dump: %s", why)
        return None
    path = rundir.flight_recorder_dump(out_dir, rank)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, raw)
    except OSError as e:
        log.warning("could not write the Flight Recorder dump %s: %s", path, e)
        return None
    return path


def dump_on_sigterm(out_dir: Path, rank: int) -> None:
    """On SIGTERM (the launcher stopping a hung rank, or a kill from outside): dump, then die of
    SIGTERM as before, so the exit code still says who sent what."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        dump(out_dir, rank)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, handler)
