"""Any result (a run or sweep directory, a result.json, or any importable format) as pandas
DataFrames, for notebooks: `minicluster.load(PATH)`. pandas is imported here, and this module only
when it is used, so the command line starts without it.

Every frame is a selection of numbers the result holds; nothing is recomputed except the long
step table's per-rank wait (comm_ms - the step's transfer), which is how the result defines it.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minicluster.core import rundir
from minicluster.core.errors import InputError
from minicluster.interop.record import BenchmarkRecord
from minicluster.result.model import RunResult

if TYPE_CHECKING:
    import pandas as pd

METRIC_COLUMNS = (
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
    "coverage",
)
STEP_COLUMNS = (
    "rank",
    "step",
    "warmup",
    "step_time_ms",
    "compute_ms",
    "comm_ms",
    "wait_ms",
    "transfer_ms",
    "exposed_comm_ms",
)


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise InputError("this needs pandas: pip install pandas") from None
    return pd


def metrics_frame(record: BenchmarkRecord) -> pd.DataFrame:
    """One row per metric of `record` (columns METRIC_COLUMNS): value, unit and provenance."""
    pd = _pandas()
    rows = [
        {
            "source": record.label,
            "tool": record.tool,
            "workload_type": record.workload_type,
            "workload": record.workload_name,
            "hardware": record.hardware,
            "metric": name,
            "value": mv.value,
            "unit": mv.unit,
            "status": mv.status,
            "method": mv.method,
            "reason": mv.reason,
            "n_samples": len(record.samples.get(name, [])),
            "coverage": mv.coverage.describe() if mv.coverage else None,
        }
        for name, mv in record.metrics.items()
    ]
    frame = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    frame["value"] = frame["value"].astype("float64")
    frame["n_samples"] = frame["n_samples"].astype("int64")
    return frame


class Result:
    """A loaded result. `result` is the canonical typed result (a foreign format converted, null
    where the source lacks a field) and `raw` its JSON; `record` is what `compare` reads; the
    DataFrames:

    - `metrics`: one row per metric (METRIC_COLUMNS);
    - `ranks`: one row per rank, nested fields flattened with `.` (`step_time_ms.p50`);
    - `nodes`: one row per node (host, CPU, GPUs, `n_ranks`);
    - `steps`: long format, one row per rank and step (STEP_COLUMNS), warm-up steps flagged;
      transfer (min over ranks of comm) and wait (comm - transfer) exist for measured steps only;
    - `scaling`: one row per world size of a sweep (empty otherwise).
    """

    def __init__(self, result: RunResult, record: BenchmarkRecord, path: Path) -> None:
        self.result = result
        self.record = record
        self.path = path

    def __repr__(self) -> str:
        return (
            f"<minicluster.Result {self.record.label}: {self.record.workload_type} "
            f"{self.record.workload_name}, {len(self.record.metrics)} metrics>"
        )

    @cached_property
    def raw(self) -> dict[str, Any]:
        """The canonical `minicluster/1.x` result as JSON (a dict)."""
        return self.result.to_json()

    @cached_property
    def metrics(self) -> pd.DataFrame:
        return metrics_frame(self.record)

    @cached_property
    def ranks(self) -> pd.DataFrame:
        pd = _pandas()
        ranks = [r.to_json() for r in self.result.ranks]
        return pd.json_normalize(ranks, sep=".") if ranks else pd.DataFrame(columns=["rank"])

    @cached_property
    def nodes(self) -> pd.DataFrame:
        pd = _pandas()
        if isinstance(self.result.nodes, list):  # the per-node section, where present
            return pd.json_normalize([n.to_json() for n in self.result.node_entries], sep=".")
        hosts: dict[str, list[int]] = {}
        for r in self.result.ranks:
            hosts.setdefault(str(r.hostname), []).append(int(r.rank))
        rows = []
        for node in self.result.platform.nodes:
            name = str(node.hostname)
            ranks = hosts.pop(name, [])
            rows.append({**node.to_json(), "ranks": ranks, "n_ranks": len(ranks)})
        rows += [{"hostname": h, "ranks": rs, "n_ranks": len(rs)} for h, rs in hosts.items()]
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["hostname", "n_ranks"])

    @cached_property
    def steps(self) -> pd.DataFrame:
        pd = _pandas()
        steps = self.result.steps_section
        series = self.result.series or {}
        transfer = dict(
            zip(series.get("step") or [], series.get("allreduce_transfer_ms") or [], strict=False)
        )
        if steps is not None and isinstance(steps.embedded, dict):
            rows = _embedded_rows(steps.embedded, transfer)
        elif steps is not None and isinstance(steps.rank_files, str) and self.path.is_dir():
            rows = _rank_file_rows(self.path, steps.rank_files, transfer)
        else:
            rows = []
        frame = pd.DataFrame(rows, columns=list(STEP_COLUMNS))
        return frame.astype({"rank": "int64", "step": "int64", "warmup": "bool"})

    @cached_property
    def scaling(self) -> pd.DataFrame:
        pd = _pandas()
        scaling = self.result.scaling
        points = [p.to_json() for p in scaling.points] if scaling is not None else None
        return pd.DataFrame(points) if points else pd.DataFrame(columns=["world_size"])


def _embedded_rows(embedded: dict[str, Any], transfer: dict[Any, Any]) -> list[dict[str, Any]]:
    rows = []
    for rank, cols in embedded.items():
        n = len(cols["step"])
        for i in range(n):
            step = cols["step"][i]
            warm = bool(cols["warmup"][i])
            rows.append(
                {
                    "rank": int(rank),
                    "step": step,
                    "warmup": warm,
                    "step_time_ms": cols["step_time_ms"][i],
                    "compute_ms": (cols.get("compute_ms") or [None] * n)[i],
                    "comm_ms": (cols.get("comm_ms") or [None] * n)[i],
                    "wait_ms": None if warm else (cols.get("wait_ms") or [None] * n)[i],
                    "transfer_ms": None if warm else transfer.get(step),
                    "exposed_comm_ms": (cols.get("exposed_comm_ms") or [None] * n)[i],
                }
            )
    return rows


def _rank_file_rows(
    result_dir: Path, pattern: str, transfer: dict[Any, Any]
) -> list[dict[str, Any]]:
    """Rows from the rank JSONL files `pattern` names (relative to the result's directory)."""
    from minicluster.analysis.records import read_run_dir

    prefix = pattern.split(rundir.RANKS_DIR + "/")[0]
    rows = []
    for rec in read_run_dir(result_dir / prefix if prefix else result_dir):
        for s in rec.steps:
            step, warm = s["step"], bool(s.get("warmup"))
            t = None if warm else transfer.get(step)
            comm = s.get("comm_ms")
            rows.append(
                {
                    "rank": rec.rank,
                    "step": step,
                    "warmup": warm,
                    "step_time_ms": s.get("step_time_ms"),
                    "compute_ms": s.get("compute_ms"),
                    "comm_ms": comm,
                    "wait_ms": None if t is None or comm is None else comm - t,
                    "transfer_ms": t,
                    "exposed_comm_ms": s.get("exposed_comm_ms"),
                }
            )
    return rows


def load(path: Path, fmt: str | None = None) -> Result:
    """`path` as a Result: a run or sweep directory, a result.json, or any format `compare`
    reads (TrackIQ, vLLM, markdown). InputError when it cannot be read."""
    from minicluster.interop import detect
    from minicluster.interop.minicluster import to_result
    from minicluster.result import read

    record = detect.load(path, fmt)
    result = read(path) if record.source_format == "minicluster" else to_result(record)
    return Result(result, record, path if path.is_dir() else path.parent)
