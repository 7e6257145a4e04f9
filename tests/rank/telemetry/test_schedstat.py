"""Per-step CPU time and run-queue delay of the rank's threads (rank.telemetry.schedstat): read
from a fake /proc task directory (threads that come and go mid-step), and from this process."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from minicluster.core.rank_format import Step, decode, encode
from minicluster.rank.telemetry import schedstat


def _task(root: Path, threads: dict[str, tuple[int, int]]) -> None:
    for tid in list(p.name for p in root.iterdir()) if root.exists() else []:
        if tid not in threads:
            (root / tid / "schedstat").unlink()
            (root / tid).rmdir()
    for tid, (cpu, delay) in threads.items():
        (root / tid).mkdir(parents=True, exist_ok=True)
        (root / tid / "schedstat").write_text(f"{cpu} {delay} 7\n")


def test_only_threads_seen_at_both_reads_count(tmp_path: Path) -> None:
    root = tmp_path / "task"
    _task(root, {"10": (1_000_000, 500_000), "11": (2_000_000, 0), "12": (5_000_000, 9_000_000)})
    clock = schedstat.ThreadClock(str(root), main_tid=12)  # 12: the loop thread
    assert clock.reason is None and clock.main_reason is None
    before = clock.read()
    # 11 ended and 13 started during the step: neither counts
    _task(
        root,
        {"10": (4_000_000, 1_500_000), "12": (6_500_000, 9_250_000), "13": (9 * 10**9, 9 * 10**9)},
    )
    cpu, wait, main_cpu, main_wait = clock.since(before)
    assert cpu == pytest.approx(3.0 + 1.5)
    assert wait == pytest.approx(1.0 + 0.25)
    assert (main_cpu, main_wait) == (pytest.approx(1.5), pytest.approx(0.25))


def test_a_loop_thread_not_listed_is_null_with_a_reason(tmp_path: Path) -> None:
    """The loop thread's figures are null (the sum stands) where it is not in the directory, and
    where it ended (or is not seen) at one of the two reads."""
    root = tmp_path / "task"
    _task(root, {"10": (1_000_000, 500_000)})
    clock = schedstat.ThreadClock(str(root), main_tid=99)
    assert clock.reason is None
    assert clock.main_reason is not None and "99" in clock.main_reason
    before = clock.read()
    _task(root, {"10": (2_000_000, 700_000)})
    delta = clock.since(before)
    assert delta.cpu_ms == pytest.approx(1.0) and delta.cpu_wait_ms == pytest.approx(0.2)
    assert delta.main_cpu_ms is None and delta.main_cpu_wait_ms is None


def test_unreadable_schedstat_is_null_with_a_reason(tmp_path: Path) -> None:
    clock = schedstat.ThreadClock(str(tmp_path / "absent"))
    assert clock.reason is not None and "cannot read" in clock.reason
    assert clock.read() is None
    assert clock.since(None) == (None, None, None, None)
    assert clock.main_reason == clock.reason
    bad = tmp_path / "task"
    (bad / "1").mkdir(parents=True)
    (bad / "1" / "schedstat").write_text("not numbers\n")
    assert "ValueError" in (schedstat.ThreadClock(str(bad)).reason or "")


@pytest.mark.skipif(not Path(schedstat.TASK_DIR).exists(), reason="no /proc (not Linux)")
def test_this_process_cpu_time_follows_its_busy_thread() -> None:
    """A thread spinning 50 ms during the 'step' is CPU time of the process."""
    clock = schedstat.ThreadClock()
    if clock.reason is not None:
        pytest.skip(clock.reason)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    t = threading.Thread(target=spin)
    t.start()
    time.sleep(0.01)  # the thread exists at both reads
    before = clock.read()
    time.sleep(0.05)
    cpu, wait, main_cpu, main_wait = clock.since(before)
    stop.set()
    t.join()
    assert cpu is not None and wait is not None
    assert main_cpu is not None and main_wait is not None
    # the spinning thread ran or waited for a CPU the whole 50 ms (the GIL aside: sleep frees it)
    assert cpu + wait >= 30.0, (cpu, wait, sys.getswitchinterval())
    # the loop thread (this one) slept: the spin is not its CPU time, nor its wait
    assert main_cpu + main_wait < cpu + wait - 20.0, (main_cpu, main_wait, cpu, wait)


def test_the_step_record_carries_the_fields_and_old_lines_read_as_null() -> None:
    rec = Step(
        step=3,
        step_time_ms=5.0,
        cpu_ms=1.25,
        cpu_wait_ms=0.5,
        main_cpu_ms=1.0,
        main_cpu_wait_ms=0.25,
    )
    back = decode(json.loads(encode(rec)))
    assert isinstance(back, Step) and (back.cpu_ms, back.cpu_wait_ms) == (1.25, 0.5)
    assert (back.main_cpu_ms, back.main_cpu_wait_ms) == (1.0, 0.25)
    old = decode({"type": "step", "step": 3, "step_time_ms": 5.0, "cpu_ms": 1.0})
    assert isinstance(old, Step) and old.cpu_wait_ms is None and old.main_cpu_wait_ms is None
