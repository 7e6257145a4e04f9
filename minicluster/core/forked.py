"""`Forked`: work done by a forked child process on the second core, its results sent back to
the parent as pickled messages through a pipe.

The child shares what the parent held at the fork (copy on write) and never returns into the
caller: it runs the work and exits (`os._exit`, no atexit handlers, no stdio flushed twice).
A child that fails, is killed or goes quiet for longer than the timeout gives None to the
parent's `receive`, which then does the work itself: the answer is the same either way, only
later. `close` (also on an exception or KeyboardInterrupt in the parent) kills a child that is
still running and waits for it: no process outlives the call. Nothing is written to disk.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import threading
from collections.abc import Callable
from typing import Any

_LENGTH = struct.Struct("<Q")  # each message: its byte length, then the pickle


def second_core() -> bool:
    """Whether a `Forked` child can run beside this process: there is more than one core, and
    this process runs no other Python thread (a thread holding a lock at the fork, such as a
    live display's, would leave that lock held in the child for good)."""
    return (os.cpu_count() or 1) > 1 and threading.active_count() == 1


def _die_with(parent: int) -> None:
    """In the child: be killed when the parent ends (Linux's PR_SET_PDEATHSIG), so that a parent
    stopped by SIGTERM or SIGHUP, which runs no `close`, leaves no child working on; where the
    call is not available the child ends once it finds the pipe closed."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent ended before the call: end now
        os._exit(1)


_PR_SET_PDEATHSIG = 1


class Forked:
    """A forked child running `work(send)`: each `send(obj)` is one message for `receive`."""

    def __init__(self, work: Callable[[Callable[[Any], None]], None]) -> None:
        read_end, write_end = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                _die_with(parent)
                os.close(read_end)

                def send(obj: Any) -> None:
                    data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
                    view = memoryview(_LENGTH.pack(len(data)) + data)
                    while view:
                        view = view[os.write(write_end, view) :]

                work(send)
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        self._fd: int | None = read_end
        self.pid = pid  # the child's; 0 once it was waited for

    def receive(self, timeout_s: float) -> Any | None:
        """The child's next message; None when it ended without one (failed, killed, or sent
        all it had) or sent nothing for `timeout_s` (it is then killed): do the work here."""
        head = self._read(_LENGTH.size, timeout_s)
        if head is None:
            self.close()
            return None
        data = self._read(_LENGTH.unpack(head)[0], timeout_s)
        if data is None:
            self.close()
            return None
        return pickle.loads(data)

    def _read(self, n: int, timeout_s: float) -> bytes | None:
        chunks, left = [], n
        while left and self._fd is not None:
            ready, _, _ = select.select([self._fd], [], [], timeout_s)
            if not ready:
                return None
            chunk = os.read(self._fd, min(left, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks) if not left else None

    def close(self) -> None:
        """Stop the child if it still runs (its results are not wanted) and wait for it."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.pid:
            if os.waitpid(self.pid, os.WNOHANG)[0] == 0:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            self.pid = 0

    def __enter__(self) -> Forked:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
