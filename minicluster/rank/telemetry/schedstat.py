"""CPU time and run-queue delay of this process's threads, and of its loop thread, per step.

`/proc/self/task/<tid>/schedstat` holds three numbers per thread: the time it ran on a CPU (ns),
the time it was runnable but waited on a run queue for a CPU (`run_delay`, ns) and its time
slices. A rank reads every thread's at a step's start and at its end: the step's `cpu_ms` is the
sum of the threads' CPU time in between, its `cpu_wait_ms` the sum of their run-queue delay: the
time the rank could have run and did not, because the CPU was held by another thread (another
process's, or one of its own). A thread seen at only one of the two reads (started or ended
during the step) is left out of both sums: its share before it appeared, or after it went, is
not known.

The same two readings give the training-loop thread's own figures (`main_cpu_ms`,
`main_cpu_wait_ms`: the thread that reads the clock, by its native id; no extra read): that is the
thread that arrives late at the collective when it waits for a CPU. The sum over all threads
counts also gloo's and the intra-op pool's threads, runnable while the loop thread sleeps or
computes: a rank whose loop thread slept 40 ms a step showed 30.8 ms a step more summed wait than
its peer on a loaded host (BENCHMARKS.md, issue 25).

Where the files cannot be read (not Linux, a kernel without schedstats, /proc not mounted)
`ThreadClock.reason` says why, once; the step fields are then null. Where the loop thread is
not listed (a task directory of another process, a test's fake one) `ThreadClock.main_reason`
says so and the `main_*` fields are null.
"""

from __future__ import annotations

import os
import threading
from typing import NamedTuple

TASK_DIR = "/proc/self/task"

Reading = dict[str, tuple[int, int]]  # tid -> (cpu_ns, run_delay_ns)


def read_threads(task_dir: str = TASK_DIR) -> Reading:
    """Every thread's (cpu_ns, run_delay_ns) under `task_dir` now; OSError or ValueError when
    the directory or a file cannot be read as schedstat (a thread that ended between the
    listing and its read is skipped)."""
    out: Reading = {}
    for tid in os.listdir(task_dir):
        try:
            fd = os.open(f"{task_dir}/{tid}/schedstat", os.O_RDONLY)
        except FileNotFoundError:
            continue  # the thread ended since the listing
        try:
            raw = os.read(fd, 128)
        finally:
            os.close(fd)
        cpu, delay, _ = raw.split()
        out[tid] = (int(cpu), int(delay))
    return out


class CpuDelta(NamedTuple):
    """A step's figures, ms (None: not read): every thread's sum and the loop thread's own."""

    cpu_ms: float | None
    cpu_wait_ms: float | None
    main_cpu_ms: float | None
    main_cpu_wait_ms: float | None


NO_DELTA = CpuDelta(None, None, None, None)


def step_delta(before: Reading, after: Reading) -> tuple[float, float]:
    """(cpu_ms, cpu_wait_ms) between two readings, summed over the threads seen in both."""
    cpu = wait = 0
    for tid, (cpu1, delay1) in after.items():
        start = before.get(tid)
        if start is not None:
            cpu += cpu1 - start[0]
            wait += delay1 - start[1]
    return cpu / 1e6, wait / 1e6


class ThreadClock:
    """This process's threads' CPU time and run-queue delay (the module); `reason` is why they
    cannot be read here (None: they can).

    Each thread's file is opened once and read again from its start (`os.pread`): a step's two
    reads cost one listing of the threads (at its start: a thread that starts later is not
    counted anyway) and one read per thread each (measured: scripts/bench_cpu_wait.py)."""

    def __init__(self, task_dir: str | None = None, main_tid: int | None = None) -> None:
        task_dir = TASK_DIR if task_dir is None else task_dir  # (read now: tests move it)
        self.task_dir = task_dir
        # the loop thread: the one that makes the clock (and reads it at each step)
        self.main_tid = str(threading.get_native_id() if main_tid is None else main_tid)
        self.reason: str | None = None
        self.main_reason: str | None = None
        self._fds: dict[str, int] = {}
        try:
            threads = read_threads(task_dir)
            if not threads:
                self.reason = f"{task_dir} lists no thread"
            elif self.main_tid not in threads:
                self.main_reason = f"the loop thread {self.main_tid} is not listed in {task_dir}"
        except (OSError, ValueError) as e:
            self.reason = f"cannot read {task_dir}/*/schedstat ({e.__class__.__name__}: {e})"
        if self.reason is not None:
            self.main_reason = self.reason

    def _read(self, tids: list[str]) -> Reading:
        out: Reading = {}
        for tid in tids:
            fd = self._fds.get(tid)
            if fd is None:
                try:
                    fd = self._fds[tid] = os.open(f"{self.task_dir}/{tid}/schedstat", os.O_RDONLY)
                except FileNotFoundError:
                    continue  # the thread ended since the listing
            try:
                raw = os.pread(fd, 128, 0)
            except OSError:  # the thread ended: its file reads no more
                raw = b""
            if not raw:
                os.close(self._fds.pop(tid))
                continue
            cpu, delay, _ = raw.split()
            out[tid] = (int(cpu), int(delay))
        return out

    def read(self) -> Reading | None:
        """The threads' reading now (every thread listed); None when they cannot be read (the
        reason kept)."""
        if self.reason is not None:
            return None
        try:
            tids = os.listdir(self.task_dir)
            for gone in set(self._fds) - set(tids):
                os.close(self._fds.pop(gone))
            return self._read(tids)
        except (OSError, ValueError) as e:
            self.reason = f"cannot read {self.task_dir}/*/schedstat ({e.__class__.__name__}: {e})"
            return None

    def since(self, before: Reading | None) -> CpuDelta:
        """This process's threads' CPU time and wait since `before` (a `read`), over the
        threads in both, and the loop thread's, rounded to the µs; all None when either reading
        is missing, the loop thread's None when it is not in both."""
        if before is None or self.reason is not None:
            return NO_DELTA
        try:
            after = self._read(list(before))
        except (OSError, ValueError) as e:
            self.reason = f"cannot read {self.task_dir}/*/schedstat ({e.__class__.__name__}: {e})"
            return NO_DELTA
        cpu, wait = step_delta(before, after)
        start, end = before.get(self.main_tid), after.get(self.main_tid)
        if start is None or end is None:
            return CpuDelta(round(cpu, 3), round(wait, 3), None, None)
        return CpuDelta(
            round(cpu, 3),
            round(wait, 3),
            round((end[0] - start[0]) / 1e6, 3),
            round((end[1] - start[1]) / 1e6, 3),
        )

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
