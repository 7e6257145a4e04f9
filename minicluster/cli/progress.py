"""A progress bar on stderr, fed by rank 0's record file while the ranks run."""

from __future__ import annotations

import threading
from pathlib import Path

from minicluster.core import rundir


class Progress:
    """A progress bar fed by rank 0's records (steps, or collective sizes) while the ranks run."""

    def __init__(self, out_dir: Path, total: int, label: str = "rank 0 steps") -> None:
        self.path = rundir.rank_jsonl(out_dir, 0)
        self.total = total
        self.label = label
        self._stop = threading.Event()
        self._offset = 0  # bytes of rank 0's file already counted
        self._lines = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _loop(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        # On stderr with the other progress lines: stdout keeps the summary alone (a piped
        # stdout got one blank line per bar, one per run of a sweep).
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
            console=Console(stderr=True),
            # The launcher shares the cores with the ranks: redraw and poll rarely, so it
            # takes no measurable time from whichever rank shares a core with it.
            refresh_per_second=2,
        ) as bar:
            task = bar.add_task(self.label, total=self.total)
            while not self._stop.wait(0.5):
                bar.update(task, completed=self._count())
            bar.update(task, completed=self._count())

    def _count(self) -> int:
        """Records rank 0 wrote so far (not its header, nor a comm_timing line), reading only
        what was appended since the last call."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:
            return 0
        self._offset += len(chunk)
        self._lines += chunk.count(b"\n")
        return max(0, self._lines - 2)
