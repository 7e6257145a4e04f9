"""Import a markdown inference benchmark report (latency/throughput tables, dashboard metrics)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from minicluster.core.errors import InputError
from minicluster.core.metrics import MetricValue
from minicluster.interop.record import BenchmarkRecord, registry_metric

_LATENCY_ROWS = {
    "average": "latency_mean_ms",
    "p50": "latency_p50_ms",
    "p90": "latency_p90_ms",
    "p95": "latency_p95_ms",
    "p99": "latency_p99_ms",
}
_FIELD = re.compile(r"\*\*(?P<key>[^*:]+):\*\*\s*`?(?P<value>[^`|*\n]+?)`?\s*(?=\||$)", re.M)


@dataclass
class _Table:
    heading: str
    header: list[str]
    rows: list[list[str]]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _tables(text: str) -> list[_Table]:
    tables: list[_Table] = []
    heading = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif (
            line.startswith("|")
            and i + 1 < len(lines)
            and re.match(r"^\|[\s:|-]+\|?$", lines[i + 1].strip())
        ):
            header = _cells(line)
            rows: list[list[str]] = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            tables.append(_Table(heading, header, rows))
            continue
        i += 1
    return tables


def _num(cell: str, where: str) -> float:
    m = re.fullmatch(r"\s*(-?[\d,]*\.?\d+)\s*(ms|s|%|p/s)?\s*", cell)
    if m is None:
        raise InputError(f"markdown report: {where}: {cell!r} is not a number")
    return float(m.group(1).replace(",", ""))


def _metric_value_table(t: _Table) -> dict[str, float]:
    return {r[0].lower(): _num(r[1], f"{t.heading} / {r[0]}") for r in t.rows if len(r) >= 2}


def to_record(text: str, label: str) -> BenchmarkRecord:
    tables = _tables(text)
    fields = {
        m.group("key").strip().lower(): m.group("value").strip() for m in _FIELD.finditer(text)
    }
    title = next((ln.lstrip("#").strip() for ln in text.splitlines() if ln.startswith("# ")), label)
    value_tables = [t for t in tables if [h.lower() for h in t.header[:2]] == ["metric", "value"]]
    latency = [t for t in value_tables if t.heading.lower().startswith("latency")]
    throughput = [t for t in value_tables if t.heading.lower().startswith("throughput")]
    if not latency and not throughput:
        raise InputError(
            "markdown report holds no Latency or Throughput table (| Metric | Value |)"
        )
    warnings: list[str] = []
    if len(latency) > 1 or len(throughput) > 1:
        warnings.append("report holds several configurations; the first one was imported")
    metrics: dict[str, MetricValue] = {}
    details: dict[str, object] = {}
    method = "markdown report"
    if latency:
        values = _metric_value_table(latency[0])
        for row, name in _LATENCY_ROWS.items():
            metrics[name] = registry_metric(
                name,
                values.get(row),
                "measured",
                f"{method}: {latency[0].heading} / {row}",
                f"no {row} row in the report",
            )
    if throughput:
        values = _metric_value_table(throughput[0])
        metrics["throughput_samples_per_sec"] = registry_metric(
            "throughput_samples_per_sec",
            values.get("average"),
            "measured",
            f"{method}: {throughput[0].heading} / average (pairs/s)",
            "no average row",
        )
        details["throughput_percentiles"] = {k: v for k, v in values.items() if k.startswith("p")}
    summary = next(
        (t for t in tables if [h.lower() for h in t.header[:2]] == ["batch", "conc"]), None
    )
    if summary and summary.rows:
        first = summary.rows[0]
        details["batch_size"] = int(_num(first[0], "summary / Batch"))
        details["concurrency"] = int(_num(first[1], "summary / Conc"))
    dashboard = next(
        (
            t
            for t in tables
            if t.header
            and t.header[0].lower() == "metric"
            and "avg" in [h.lower() for h in t.header]
        ),
        None,
    )
    if dashboard is not None:
        _dashboard(dashboard, metrics)
    return BenchmarkRecord(
        label=label,
        source_format="markdown",
        tool=f"markdown report ({fields.get('backend', 'unknown backend')})",
        tool_version=None,
        workload_type="inference",
        workload_name=fields.get("model", title),
        hardware=fields.get("device"),
        metrics=metrics,
        warnings=warnings,
        details={"title": title, "timestamp": fields.get("timestamp"), **details},
    )


def _dashboard(t: _Table, metrics: dict[str, MetricValue]) -> None:
    cols = [h.lower() for h in t.header]
    for row in t.rows:
        if len(row) != len(cols):
            continue
        name = row[0].lower()
        if name.startswith("gpu memory"):
            metrics["memory_peak_mib"] = MetricValue(
                _num(row[cols.index("max")], "GPU Memory / Max"),
                "MiB",
                "estimated",
                "markdown dashboard: GPU Memory max; the report's 'MB' read as MiB "
                "(unit not defined there)",
            )
        elif name.startswith("gpu utilization"):
            metrics["device_utilization_percent"] = MetricValue(
                _num(row[cols.index("avg")], "GPU Utilization / Avg"),
                "%",
                "measured",
                "markdown dashboard: GPU Utilization avg",
            )
