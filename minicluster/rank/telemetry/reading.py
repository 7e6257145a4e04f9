"""One telemetry value with its provenance: status, method, scope and, when missing, the reason."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from minicluster.core.metrics import Status

Scope = Literal["gpu", "cpu_package", "dram", "host"]


@dataclass(frozen=True)
class Reading:
    """A value that cannot be measured is `None` with a reason, never 0."""

    value: float | None
    unit: str
    status: Status
    scope: Scope
    method: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def missing(unit: str, scope: Scope, reason: str, method: str | None = None) -> Reading:
    return Reading(None, unit, "unavailable", scope, method, reason)


def unavailable_source(source: str, scope: Scope, reason: str) -> dict[str, Any]:
    """The record of a source that could not be read at all on this rank."""
    return {
        "source": source,
        "scope": scope,
        "id": None,
        "available": False,
        "reason": reason,
        "readings": {},
        "series": [],
    }


def read_text(path: Path) -> str:
    """The default sysfs reader; tests pass their own to simulate permission errors."""
    return path.read_text(encoding="ascii", errors="replace")
