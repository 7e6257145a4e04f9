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
