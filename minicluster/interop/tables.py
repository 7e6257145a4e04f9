"""A record's metrics as a table, one row per metric with its provenance: CSV, or Parquet (extra).

Parquet adds a `samples` list column; pyarrow is imported only when Parquet is asked for.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from minicluster.core.errors import InputError
from minicluster.interop.record import BenchmarkRecord

COLUMNS = (
    "source",
    "tool",
    "workload_type",
    "workload",
    "hardware",
    "metric",
    "value",
    "unit",
    "status",
    "method",
    "reason",
    "n_samples",
)


def to_csv(record: BenchmarkRecord) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for name, mv in record.metrics.items():
        w.writerow(
            [
                record.label,
                record.tool,
                record.workload_type,
                record.workload_name,
                record.hardware or "",
                name,
                "" if mv.value is None else repr(mv.value),
                mv.unit,
                mv.status,
                mv.method or "",
                mv.reason or "",
                len(record.samples.get(name, [])),
            ]
        )
    return buf.getvalue()


def to_parquet(record: BenchmarkRecord) -> bytes:
    """One row per metric, the CSV columns plus a `samples` list column (empty when none)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            "parquet output needs pyarrow: pip install 'minicluster[parquet]'"
        ) from None
    names = list(record.metrics)
    mvs = [record.metrics[n] for n in names]
    columns: dict[str, list[Any]] = {
        "source": [record.label] * len(names),
        "tool": [record.tool] * len(names),
        "workload_type": [record.workload_type] * len(names),
        "workload": [record.workload_name] * len(names),
        "hardware": [record.hardware] * len(names),
        "metric": names,
        "value": [m.value for m in mvs],
        "unit": [m.unit for m in mvs],
        "status": [m.status for m in mvs],
        "method": [m.method for m in mvs],
        "reason": [m.reason for m in mvs],
        "n_samples": [len(record.samples.get(n, [])) for n in names],
    }
    assert list(columns) == list(COLUMNS)
    columns["samples"] = [record.samples.get(n, []) for n in names]
    schema = pa.schema(
        [(c, pa.string()) for c in COLUMNS[:6]]
        + [("value", pa.float64())]
        + [(c, pa.string()) for c in ("unit", "status", "method", "reason")]
        + [("n_samples", pa.int64()), ("samples", pa.list_(pa.float64()))]
    )
    buf = io.BytesIO()
    pq.write_table(pa.table(columns, schema=schema), buf)
    return buf.getvalue()
