"""DDP's own per-iteration runtime stats, read behind a guard: the one module that touches the
private, prototype API (`DistributedDataParallel._get_ddp_logging_data`, `ddp.logger`).

DDP's C++ reducer times every iteration (first all-reduce start to last end, backward compute
end) at almost no cost, but the API is private and its dict can be stale or incomplete. Every
read is checked: the keys are present, DDP's iteration counter advanced by exactly one since the
last read, the comm timers changed and are in order. Anything else makes that step's comm values
null with the reason (never 0, never the previous step's); after `MAX_CONSECUTIVE_FAILURES`
failed reads in a row the worker switches to the comm hook and records why.

Source: torch/csrc/distributed/c10d/logger.cpp (`set_runtime_stats_and_log`), probed on torch
2.13: `iteration` is the reducer's forward count; `num_buckets_reduced` the buckets all-reduced
in the iteration; `rebuilt_bucket_sizes` the buckets DDP actually runs once it rebuilt them
after the first iteration (`bucket_sizes` is the constructor's plan).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from minicluster.core import comm_methods

# What a read needs; `tests/rank/test_ddp_stats.py` checks the pinned torch provides them.
REQUIRED_KEYS = (
    "iteration",
    "backward_comm_time_start",
    "backward_comm_time_end",
    "backward_compute_time_end",
    "num_buckets_reduced",
    "bucket_sizes",
    "has_rebuilt_buckets",
)
MAX_CONSECUTIVE_FAILURES = 3
METHOD = comm_methods.DDP_STATS


@dataclass
class StatsRead:
    """One step's figures (ns) from DDP's logging data, or why they are not trustworthy."""

    comm_ns: int | None = None
    exposed_ns: int | None = None
    buckets: int | None = None
    bytes: int | None = None
    reason: str | None = None


@dataclass
class DdpRuntimeStats:
    """Reads DDP's runtime stats once per step and checks them (see the module docstring)."""

    ddp: Any
    last_iteration: int | None = None
    last_comm_start: int | None = None
    failures_in_a_row: int = 0
    failures: list[str] = field(default_factory=list)

    @classmethod
    def attach(cls, ddp: Any) -> DdpRuntimeStats:
        """Ask DDP to time every iteration; raises (AttributeError, RuntimeError, ...) when this
        torch build lacks the API, so the caller can fall back to the comm hook."""
        ddp._set_ddp_runtime_logging_sample_rate(1)
        if getattr(ddp, "logger", None) is None:
            raise AttributeError("DDP has no logger")
        return cls(ddp)

    def read(self) -> StatsRead:
        """The figures of the step that just finished (call after its backward and optimizer)."""
        got = self._checked()
        if got.reason is None:
            self.failures_in_a_row = 0
        else:
            self.failures_in_a_row += 1
            self.failures.append(got.reason)
        return got

    @property
    def given_up(self) -> bool:
        return self.failures_in_a_row >= MAX_CONSECUTIVE_FAILURES

    def _checked(self) -> StatsRead:
        try:
            # DDP logs an iteration's timers at the next forward; log them now so the figures
            # belong to the step just finished. (DDP's pre-forward logs the same iteration again:
            # its running averages count each iteration twice, so they are not used here.)
            self.ddp.logger.set_runtime_stats_and_log()
            data = self.ddp._get_ddp_logging_data()
        except Exception as e:  # private API: absent or changed in this torch build
            return StatsRead(reason=f"DDP logging data not readable: {type(e).__name__}: {e}")
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            return StatsRead(reason=f"DDP logging data lacks {', '.join(missing)}")
        iteration = int(data["iteration"])
        previous, self.last_iteration = self.last_iteration, iteration
        if previous is not None and iteration != previous + 1:
            return StatsRead(
                reason=f"DDP's iteration went {previous} -> {iteration} between two steps "
                "(expected +1): these timers are stale or from another iteration"
            )
        start = int(data["backward_comm_time_start"])
        end = int(data["backward_comm_time_end"])
        compute_end = int(data["backward_compute_time_end"])
        if start == self.last_comm_start:
            return StatsRead(
                reason="DDP's comm timers did not change since the last step (no gradient "
                "all-reduce ran, e.g. under no_sync)"
            )
        self.last_comm_start = start
        if start <= 0 or end < start or compute_end <= 0:
            return StatsRead(reason=f"DDP's comm timers are out of order ({start}, {end})")
        sizes_key = "rebuilt_bucket_sizes" if int(data["has_rebuilt_buckets"]) else "bucket_sizes"
        sizes = [int(s) for s in str(data.get(sizes_key, "")).split(",") if s.strip()]
        return StatsRead(
            comm_ns=end - start,
            exposed_ns=max(0, end - compute_end),
            buckets=int(data["num_buckets_reduced"]),
            bytes=sum(sizes) if sizes else None,
        )


def sample_for_cross_check(ddp: Any) -> None:
    """With a comm-hook timer: let DDP time every 10th iteration, for `cross_check` (~0 cost)."""
    try:
        ddp._set_ddp_runtime_logging_sample_rate(10)
    except Exception:  # private API: the cross-check then says it is unavailable
        pass


def cross_check(ddp: Any, method: str) -> dict[str, Any]:
    """DDP's running means of its own comm timers, beside a comm-hook timer's figures; when DDP's
    stats are the timing method itself there is nothing independent to check against."""
    if method == METHOD:
        return {
            "status": "unavailable",
            "reason": "the timing method is DDP's own runtime stats: no independent cross-check "
            "(its running means also count each iteration twice when read every step)",
        }
    try:
        data = ddp._get_ddp_logging_data()
    except Exception as e:  # private API: absent or changed in this torch build
        return {"status": "unavailable", "reason": f"DDP logging data not readable: {e}"}
    comm_ns = data.get("avg_backward_comm_time")
    overlap_ns = data.get("avg_backward_compute_comm_overlap_time")
    if not comm_ns:
        return {"status": "unavailable", "reason": "DDP recorded no sampled iterations"}
    return {
        "status": "measured",
        "method": "DistributedDataParallel._get_ddp_logging_data (every 10th iteration)",
        "avg_backward_comm_time_ms": comm_ns / 1e6,
        "avg_backward_compute_comm_overlap_time_ms": (overlap_ns or 0) / 1e6,
        "comm_hook": data.get("comm_hook", ""),
    }
