"""Write a record's metrics as a CSV table, one row per metric with its provenance."""

from __future__ import annotations

import csv
import io

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
