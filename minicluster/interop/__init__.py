"""Read any supported result format into a `BenchmarkRecord` (format detected from content)."""

from __future__ import annotations

from pathlib import Path

from minicluster.interop.record import FORMATS, BenchmarkRecord

__all__ = ["FORMATS", "BenchmarkRecord", "load"]


def load(path: Path, fmt: str | None = None) -> BenchmarkRecord:
    """Read `path` (a file, or a run directory holding result.json) as `fmt` or as detected."""
    from minicluster.interop import detect

    return detect.load(path, fmt)
