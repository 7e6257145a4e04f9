"""The background sampler and a rank's telemetry session."""

from __future__ import annotations

import threading
import time

import pytest

from minicluster.rank.telemetry.sampler import Sampler
from minicluster.rank.telemetry.session import for_rank


class CountingMeter:
    def __init__(self, fail: bool = False) -> None:
        self.times: list[float] = []
        self.fail = fail
        self.thread: str | None = None

    def sample(self, t_unix_s: float) -> None:
        self.thread = threading.current_thread().name
        self.times.append(t_unix_s)
        if self.fail:
            raise OSError("sensor went away")


@pytest.mark.timeout(10)
def test_sampler_polls_off_thread_and_survives_a_failing_meter() -> None:
    good, bad = CountingMeter(), CountingMeter(fail=True)
    sampler = Sampler([bad, good], interval_s=0.01)
    sampler.start()
    time.sleep(0.2)
    t_stop = time.perf_counter()
    sampler.stop()
    stop_s = time.perf_counter() - t_stop
    assert len(good.times) >= 5  # the failing meter did not stop the loop
    assert len(bad.times) == len(good.times)
    assert good.thread == "minicluster-telemetry"
    assert stop_s < 0.5
    n = len(good.times)
    time.sleep(0.05)
    assert len(good.times) == n  # really stopped
    assert sampler.samples == n and len(sampler.busy_ns) == n


@pytest.mark.timeout(10)
def test_session_window_on_non_zero_local_rank_reads_no_node_sources() -> None:
    session = for_rank(local_rank=1, cuda_index=None, interval_s=0.01)
    session.begin()
    blob = bytearray(8 * 2**20)  # touch memory inside the window
    time.sleep(0.05)
    record = session.end(measured_steps=7)
    session.close()
    assert len(blob) > 0
    assert record["window"]["measured_steps"] == 7
    assert record["window"]["duration_s"] > 0
    assert record["sample_interval_ms"] == pytest.approx(10.0)
    assert [s["source"] for s in record["sources"]] == ["host_memory"]
    rss = record["sources"][0]["readings"]["rss_peak_bytes"]
    assert rss["status"] == "measured" and rss["value"] > 8 * 2**20


def test_session_on_local_rank_zero_reports_every_node_source() -> None:
    session = for_rank(local_rank=0, cuda_index=None, interval_s=0.05)
    session.begin()
    record = session.end(measured_steps=1)
    session.close()
    by_source = {s["source"]: s for s in record["sources"]}
    assert {"host_memory", "nvml", "rapl", "thermal"} <= set(by_source)
    assert by_source["nvml"]["available"] is False
    assert "CPU" in by_source["nvml"]["reason"]
    for s in record["sources"]:
        if not s["available"]:
            assert s["reason"] and s["readings"] == {}  # never a fake 0
