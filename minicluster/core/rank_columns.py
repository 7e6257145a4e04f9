"""The columnar copy of a rank's records: `ranks/rank_NNNNN.steps.arrow` (Arrow IPC file).

The JSONL journal (`rank_format`) is the crash-safe record: a line per step, flushed as written.
At the end of a run the rank also writes its steps as columns, one Arrow column per step key (in
the journal's order), so a reader takes 1,000 steps in one call instead of parsing 1,000 lines
into 1,000 objects. The file is made from the journal itself (its lines parsed back), so it holds
exactly what the journal holds, and is written atomically: a crash leaves the journal alone.

The schema's metadata key `minicluster` holds JSON: `format` (`COLUMNS_VERSION`), `rank_format`
(the journal's `FORMAT_VERSION`), `rows` and `last_step` (the step records), `journal_bytes` (the
journal's size when the columns were made) and `journal_tail_sha256` (the hash of its last
`TAIL_BYTES` bytes), and `records`: every non-step record of the journal but the roster, in
order (header, comm_timing, ...), as its JSON object. The roster (a node's local rank 0 writes
it) is apart, under `minicluster.roster` (a list of its records), so a reader of many ranks
parses it once.

A reader uses the columns only when they are complete: the journal's size and tail hash are the
ones recorded (a journal that grew after the columns were made, or was replaced, is read as
itself). A step key whose values Arrow cannot hold as one type is stored as JSON text (field
metadata `encoding: json`). pyarrow is imported lazily: without it nothing is written and every
reader reads the journal.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from minicluster.core import rank_format, rundir
from minicluster.core.io import atomic_write_bytes

COLUMNS_NAME = "minicluster-rank-columns"
COLUMNS_VERSION = f"{COLUMNS_NAME}/1.0"
META_KEY = b"minicluster"
ROSTER_KEY = b"minicluster.roster"
TAIL_BYTES = 4096
COLUMNS_SUFFIX = ".steps.arrow"
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def columns_path(run_dir: Path, rank: int) -> Path:
    """`run_dir/ranks/rank_00003.steps.arrow`: the rank's steps as columns."""
    return run_dir / rundir.RANKS_DIR / f"rank_{rank:05d}{COLUMNS_SUFFIX}"


def available() -> bool:
    """Whether pyarrow can be imported (without it the columns are neither written nor read)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def journal_stamp(path: Path | str) -> tuple[int, str]:
    """The journal's size and the sha256 of its last `TAIL_BYTES` bytes."""
    with open(path, "rb", buffering=0) as f:  # unbuffered: no isatty, no buffer (4,096 ranks)
        size = os.fstat(f.fileno()).st_size
        f.seek(max(0, size - TAIL_BYTES))
        tail = f.readall()
    return size, hashlib.sha256(tail).hexdigest()


def write_columns(journal: Path, out: Path) -> int | None:
    """Write the steps of the journal at `journal` as columns to `out` (atomically); the number
    of step rows written, or None when there is nothing to write (no step records, no pyarrow).
    OSError when the journal cannot be read or `out` written."""
    if not available():
        return None
    size, tail = journal_stamp(journal)
    with open(journal, "rb") as f:
        data = f.read(size)
    objs, _ = rank_format.parse_lines(data, journal.name)
    rows = [o for o in objs if type(o) is dict and o.get("type") == rank_format.STEP]
    if not rows:
        return None
    others = [o for o in objs if not (type(o) is dict and o.get("type") == rank_format.STEP)]
    keys: dict[str, None] = {}  # the widest row's keys first, as the journal's reader orders them
    for shape in sorted(dict.fromkeys(map(tuple, rows)), key=lambda t: -len(t)):
        keys.update(dict.fromkeys(shape))
    keys.pop("type", None)
    columns = {key: [r.get(key) for r in rows] for key in keys}
    write_arrays(out, columns, others, (size, tail))
    return len(rows)


def write_arrays(
    out: Path,
    columns: Mapping[str, Any],
    records: list[dict[str, Any]],
    stamp: tuple[int, str],
) -> None:
    """Write the columnar file `out` (atomically): the step keys' values in `columns` (lists of
    the journal's values, or numpy arrays), the journal's other `records` in order, and the
    journal's `stamp` (`journal_stamp`, when these columns were made from it)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    rosters = [o for o in records if type(o) is dict and o.get("type") == rank_format.ROSTER]
    others = [o for o in records if not (type(o) is dict and o.get("type") == rank_format.ROSTER)]
    fields, arrays = [], []
    for key, values in columns.items():
        try:
            arr = pa.array(values)
            fields.append(pa.field(key, arr.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            arr = pa.array([json.dumps(v) for v in values], pa.string())
            fields.append(pa.field(key, pa.string(), metadata={b"encoding": b"json"}))
        arrays.append(arr)
    steps = columns.get("step")
    last = steps[-1] if steps is not None and len(steps) else None
    meta = {
        "format": COLUMNS_VERSION,
        "rank_format": rank_format.FORMAT_VERSION,
        "rows": len(arrays[0]) if arrays else 0,
        "last_step": int(last) if last is not None else None,
        "journal_bytes": stamp[0],
        "journal_tail_sha256": stamp[1],
        "records": others,
    }
    metadata = {META_KEY: json.dumps(meta).encode()}
    if rosters:  # apart: a 16,384-rank roster is read once, not once per node
        metadata[ROSTER_KEY] = json.dumps(rosters).encode()
    schema = pa.schema(fields, metadata=metadata)
    table = pa.Table.from_arrays(arrays, schema=schema)
    sink = io.BytesIO()
    with ipc.new_file(sink, schema) as writer:
        writer.write_table(table)
    atomic_write_bytes(out, sink.getvalue())


def read_columns(
    run_dir: Path,
    rank: int,
    skip: tuple[str, ...] | frozenset[str] = (),
    loads: Callable[[bytes], Any] = json.loads,
    roster: bool = True,
) -> tuple[dict[str, Any], Any] | None:
    """Rank `rank`'s columns when its columnar file is there, readable and complete (it matches
    the journal as it is now): (its metadata, a pyarrow Table of the step keys but `skip`); the
    metadata's `records` hold the journal's non-step records in order (the roster last, unless
    `roster` is False). None otherwise: read the journal."""
    ranks = os.path.join(run_dir, rundir.RANKS_DIR)
    try:
        # O_NONBLOCK: a FIFO under the file's name would block the open (a regular file reads
        # as without it); anything but a regular file is no columnar file
        fd = os.open(os.path.join(ranks, f"rank_{rank:05d}{COLUMNS_SUFFIX}"), _READ_FLAGS)
    except OSError:
        return None
    try:
        with open(fd, "rb", buffering=0) as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = f.readall()
    except OSError:
        return None
    try:
        import pyarrow as pa
        import pyarrow.ipc as ipc
    except ImportError:
        return None
    try:
        reader = ipc.open_file(pa.py_buffer(data))
        raw = (reader.schema.metadata or {}).get(META_KEY)
        meta = loads(raw) if raw else None
        if not isinstance(meta, dict) or str(meta.get("format", "")).partition("/")[0] != (
            COLUMNS_NAME
        ):
            return None
        if str(meta["format"]).split("/")[1].split(".")[0] != "1":
            return None
        stamp = journal_stamp(os.path.join(ranks, f"rank_{rank:05d}.jsonl"))
        if stamp != (meta.get("journal_bytes"), meta.get("journal_tail_sha256")):
            return None  # the journal changed (or is gone) since: it is the record
        table = reader.read_all()
        raw_roster = reader.schema.metadata.get(ROSTER_KEY) if roster else None
        if raw_roster:
            meta["records"] = [*meta.get("records", []), *loads(raw_roster)]
    except (OSError, ValueError, KeyError, IndexError, pa.ArrowException):
        return None
    if table.num_rows != meta.get("rows"):
        return None
    if skip:  # (by name lookups: a list of every column's name per file was 12 us of 4,096 files)
        present = [c for c in skip if table.schema.get_field_index(c) >= 0]
        if present:
            table = table.drop_columns(present)
    return meta, table


def json_encoded(field: Any) -> bool:
    """Whether a column of the table holds its values as JSON text (`write_columns`)."""
    return bool(field.metadata and field.metadata.get(b"encoding") == b"json")
