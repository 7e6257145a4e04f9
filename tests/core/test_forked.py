"""`core.forked.Forked`: messages come back in order; a child that fails, hangs or is no longer
wanted gives None or is killed, and no process outlives the parent's call."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from minicluster.core.forked import Forked

pytestmark = pytest.mark.timeout(60)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_messages_come_back_in_order() -> None:
    def work(send: Callable[[Any], None]) -> None:
        send({"n": 1})
        send(list(range(100_000)))  # more than a pipe's buffer

    with Forked(work) as child:
        assert child.receive(10) == {"n": 1}
        assert child.receive(10) == list(range(100_000))
        assert child.receive(10) is None  # nothing more: it exited


def test_a_failing_child_gives_none() -> None:
    def work(send: Callable[[Any], None]) -> None:
        raise RuntimeError("boom")

    with Forked(work) as child:
        assert child.receive(10) is None


def test_a_silent_child_is_killed_after_the_timeout() -> None:
    def work(send: Callable[[Any], None]) -> None:
        time.sleep(60)

    child = Forked(work)
    pid = child.pid
    started = time.monotonic()
    assert child.receive(0.2) is None
    assert time.monotonic() - started < 5
    assert _gone(pid)  # killed and waited for: not even a zombie


def test_an_interrupted_parent_kills_the_child() -> None:
    def work(send: Callable[[Any], None]) -> None:
        time.sleep(60)

    with pytest.raises(KeyboardInterrupt), Forked(work) as child:
        pid = child.pid
        raise KeyboardInterrupt
    assert _gone(pid)


PARENT = """
import sys, time
from minicluster.core.forked import Forked

def work(send):
    time.sleep(60)

child = Forked(work)
print(child.pid, flush=True)
time.sleep(60)
"""


def _ended(pid: int) -> bool:
    """Gone, or a zombie (the child of a parent that ended is reaped by init, if ever)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_a_child_ends_with_a_parent_stopped_by_sigterm() -> None:
    """SIGTERM or SIGHUP to the parent runs no `close` (a new user's trial found the child
    running on with PPID 1): the kernel kills the child with its parent."""
    import signal
    import subprocess
    import sys

    repo = str(__import__("pathlib").Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": repo}
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert not _gone(child)
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=20)
        deadline = time.monotonic() + 10
        while not _ended(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _ended(child)
    finally:
        parent.kill()
        parent.wait()
