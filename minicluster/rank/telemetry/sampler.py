"""A background thread that polls meters at a fixed interval and never blocks a training step."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Protocol

log = logging.getLogger(__name__)


class Sampled(Protocol):
    def sample(self, t_unix_s: float) -> None: ...


class Sampler:
    """Read, append, sleep: the step thread never waits on it (no lock is shared with it)."""

    def __init__(self, meters: Sequence[Sampled], interval_s: float) -> None:
        self.meters = list(meters)
        self.interval_s = interval_s
        self.samples = 0
        self.busy_ns: list[int] = []  # cost of each poll, to report the sampler's own overhead
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.meters or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name="minicluster-telemetry", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=max(2.0, 5 * self.interval_s))
        self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            t0 = time.perf_counter_ns()
            now = time.time()
            for m in self.meters:
                try:
                    m.sample(now)
                except Exception as e:  # a flaky sensor must not kill the sampler or the run
                    log.debug("telemetry sample failed: %s", e)
            self.busy_ns.append(time.perf_counter_ns() - t0)
            self.samples += 1
