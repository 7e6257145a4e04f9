"""A record's metrics as a table, one row per metric with its provenance: CSV, or Parquet (extra),
written through the pandas frame `minicluster.load(...).metrics` gives.

Parquet adds a `samples` list column; pyarrow is imported only when Parquet is asked for.
"""

from __future__ import annotations

import io

from minicluster.core.errors import InputError
from minicluster.interop.frames import METRIC_COLUMNS, metrics_frame
from minicluster.interop.record import BenchmarkRecord

COLUMNS = METRIC_COLUMNS


def to_csv(record: BenchmarkRecord) -> str:
    """One row per metric (columns COLUMNS); an unmeasured value is an empty cell."""
    return str(metrics_frame(record).to_csv(index=False, lineterminator="\n"))


def to_parquet(record: BenchmarkRecord) -> bytes:
    """One row per metric, the CSV columns plus a `samples` list column (empty when none)."""
    try:
        import pyarrow as pa
    except ImportError:
        raise InputError(
            "parquet output needs pyarrow: pip install 'minicluster[parquet]'"
        ) from None
    frame = metrics_frame(record)
    frame["samples"] = [record.samples.get(n, []) for n in frame["metric"]]
    schema = pa.schema(
        [
            (c, pa.float64() if c == "value" else pa.int64() if c == "n_samples" else pa.string())
            for c in COLUMNS
        ]
        + [("samples", pa.list_(pa.float64()))]
    )
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False, schema=schema)
    return buf.getvalue()
