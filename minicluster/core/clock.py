"""The wall clock as minicluster writes it: UTC ISO-8601 timestamps, run ids, file-name stamps."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone


def utc_now_iso() -> str:
    """Now, in UTC, ISO-8601 to the second (`2026-01-01T00:00:00+00:00`)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def utc_iso(t_unix_s: float) -> str:
    """`t_unix_s` (seconds since the epoch), in UTC, ISO-8601 to the second."""
    return datetime.fromtimestamp(t_unix_s, timezone.utc).isoformat(timespec="seconds")


def utc_stamp() -> str:
    """Now, in UTC, for a file or directory name (`20260101-000000`): sorts by time."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


def new_run_id() -> str:
    """A new run id: the UTC start time and 6 random hex digits (`20260101-000000-3fa2c1`)."""
    return f"{utc_stamp()}-{uuid.uuid4().hex[:6]}"
