"""Foreign and own result formats, both directions: `load` any of them, `export` to any target."""

from __future__ import annotations

from pathlib import Path

from minicluster.core.errors import InputError
from minicluster.interop.record import FORMATS, BenchmarkRecord

__all__ = ["FORMATS", "TARGETS", "BenchmarkRecord", "export", "load"]


def load(path: Path, fmt: str | None = None) -> BenchmarkRecord:
    """Read `path` (a file, or a run directory holding result.json) as `fmt` or as detected."""
    from minicluster.interop import detect

    return detect.load(path, fmt)


TARGETS = ("trackiq", "csv", "parquet", "minicluster")


def export(record: BenchmarkRecord, target: str) -> str | bytes:
    """`record` in the `target` format: text, or bytes for parquet."""
    import json

    if target == "trackiq":
        from minicluster.interop.trackiq import to_trackiq

        return json.dumps(to_trackiq(record), indent=2, allow_nan=False) + "\n"
    if target == "minicluster":
        from minicluster.interop.minicluster import to_result

        return json.dumps(to_result(record).to_json(), indent=2, allow_nan=False) + "\n"
    if target == "csv":
        from minicluster.interop.tables import to_csv

        return to_csv(record)
    if target == "parquet":
        from minicluster.interop.tables import to_parquet

        return to_parquet(record)
    raise InputError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
