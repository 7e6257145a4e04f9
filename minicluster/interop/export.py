"""Write a `BenchmarkRecord` in another format (`minicluster convert --to ...`)."""

from __future__ import annotations

from minicluster.core.errors import InputError
from minicluster.interop.record import BenchmarkRecord

TARGETS = ("trackiq", "csv", "parquet", "minicluster")


def export(record: BenchmarkRecord, target: str) -> str | bytes:
    """`record` in the `target` format: text, or bytes for parquet."""
    import json

    if target == "trackiq":
        from minicluster.interop.trackiq_export import to_trackiq

        return json.dumps(to_trackiq(record), indent=2, allow_nan=False) + "\n"
    if target == "minicluster":
        from minicluster.interop.minicluster_export import to_result

        return json.dumps(to_result(record), indent=2, allow_nan=False) + "\n"
    if target == "csv":
        from minicluster.interop.csv_table import to_csv

        return to_csv(record)
    if target == "parquet":
        from minicluster.interop.parquet_table import to_parquet

        return to_parquet(record)
    raise InputError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
