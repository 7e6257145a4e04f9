"""A progress bar on stderr, fed by a rank's record file while the ranks run (rank 0's, or on a
node of a job across nodes that does not hold rank 0, its lowest rank's)."""

from __future__ import annotations

import threading
from pathlib import Path

from minicluster.core import rank_format, rundir


class Progress:
    """A progress bar fed by rank 0's records (steps, or collective sizes) while the ranks run."""

    def __init__(self, out_dir: Path, total: int, label: str = "rank 0 steps") -> None:
        self.out_dir = out_dir
        self.path: Path | None = None
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
        console = Console(stderr=True)
        if not console.is_terminal:
            # a bar on a log file or pipe draws nothing but a blank line when it stops (it sat
            # between the launch lines and a one-line error)
            self._stop.wait()
            return
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
            console=console,
            # The launcher shares the cores with the ranks: redraw and poll rarely, so it
            # takes no measurable time from whichever rank shares a core with it.
            refresh_per_second=2,
        ) as bar:
            task = bar.add_task(self.label, total=self.total)
            while not self._stop.wait(0.5):
                bar.update(task, completed=self._count())
            bar.update(task, completed=self._count())

    def _count(self) -> int:
        """Step (or collective) records written so far (header, timing and roster lines aside),
        reading only what was appended since the last call."""
        if self.path is None:
            files = sorted(rundir.ranks_dir(self.out_dir).glob(rundir.RANK_FILE_GLOB))
            if not files:
                return 0
            self.path = files[0]  # rank 0 when it runs here: files are named by rank
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:
            return 0
        whole = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits
        self._offset += len(whole)
        self._lines += sum(
            1 for line in whole.splitlines() if rank_format.line_type(line) in _COUNTED
        )
        return self._lines


# What the bar counts: steps, or (op, size) records, or the pairwise plan and its pairs.
_COUNTED = (rank_format.STEP, *rank_format.BENCH_TYPES)
