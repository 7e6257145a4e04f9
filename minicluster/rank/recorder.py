"""One rank's record file: a JSON line per record, flushed as written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from minicluster.core import rundir
from minicluster.core.errors import InputError


class RankRecorder:
    """Appends one JSON line per record and flushes it, so a crash loses at most the current step."""

    def __init__(self, out_dir: Path, rank: int) -> None:
        self.path = rundir.rank_jsonl(out_dir, rank)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # "x": never replace an earlier run's records (exclusive create)
            self._f: IO[str] = open(self.path, "x", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115
        except FileExistsError:
            raise InputError(
                f"{self.path} exists: the output directory holds an earlier run"
            ) from None

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._f.flush()  # to the OS, not fsync: survives a process crash without stalling the step

    def close(self) -> None:
        self._f.close()
