"""One rank's record file: each record encoded as a line and flushed as written, and applied to the
rank's log (what the in-band gather sends). At the end, the steps also as columns
(`core.rank_columns`), made from the journal, before the summary."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO

from minicluster.core import rank_columns, rank_format, rundir
from minicluster.core.errors import InputError
from minicluster.core.io import atomic_write_json
from minicluster.core.rank_format import Header, LineRecord, RankLog, Roster, Summary

log = logging.getLogger(__name__)


class RankRecorder:
    """Appends one line per record (`rank_format.encode`) and flushes it, so a crash loses at
    most the current step; `log` holds what was written, in order. `keep_steps` False: the log
    counts steps without keeping them (nobody gathers this rank's records in-band)."""

    def __init__(self, out_dir: Path, rank: int, keep_steps: bool = True) -> None:
        self.path = rundir.rank_jsonl(out_dir, rank)
        self.summary_path = rundir.rank_summary(out_dir, rank)
        self.columns_path = rank_columns.columns_path(out_dir, rank)
        self.log = RankLog(keep_steps=keep_steps)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # "x": never replace an earlier run's records (exclusive create)
            self._f: IO[str] | None = open(  # noqa: SIM115
                self.path, "x", encoding="utf-8", buffering=1 << 16
            )
        except FileExistsError:
            raise InputError(
                f"{self.path} exists: the output directory holds an earlier run"
            ) from None

    def start(self, header: Header, roster: Roster | None) -> None:
        """The file's first lines: the header, then (local rank 0 of a node only) the roster."""
        self.write(header)
        if roster is not None:
            self.write(roster)

    def write(self, record: LineRecord) -> None:
        assert self._f is not None, "the record file is closed"
        obj = record.to_json()
        self._f.write(rank_format.encode_json(obj) + "\n")
        self._f.flush()  # to the OS, not fsync: survives a process crash without stalling the step
        self.log.apply(record, obj)

    def finish(self, summary: Summary) -> None:
        """Close the record file, write its steps as columns (best effort: the journal is the
        record) and the summary (atomically)."""
        self.close()
        self.write_columns()
        atomic_write_json(self.summary_path, summary.to_json())
        self.log.apply(summary)

    def finish_best_effort(self, summary: Summary) -> None:
        """`finish` while an exception is on its way up: an I/O error must not mask it."""
        try:
            self.finish(summary)
        except OSError:
            log.warning("could not write %s", self.summary_path)

    def write_columns(self) -> None:
        """The journal's steps as columns beside it; a failure is logged, never raised (readers
        then read the journal)."""
        try:
            rank_columns.write_columns(self.path, self.columns_path)
        except (OSError, ValueError, TypeError) as e:  # pyarrow's errors are ValueError/TypeError
            log.warning("could not write %s: %s", self.columns_path, e)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    @property
    def closed(self) -> bool:
        return self._f is None
