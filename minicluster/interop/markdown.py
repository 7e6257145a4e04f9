"""Import a markdown inference benchmark report (latency/throughput tables, dashboard metrics).

Units come from the cell (`1.20 s`), else the column header (`Value (ms)`), else the table's
heading or row label (`#### Latency (s)`, `GPU Memory (GB)`), and are converted to the registry's
unit; an unknown unit is refused. A table without any unit is read only when the report's
summary table says the unit (a `526.7ms` cell, or pairs / time(s) matching the throughput).
A placeholder cell (`N/A`, `—`, empty) makes that metric not measured; a row the importer does
not read (Std Dev, Min, ...) is never parsed, so a placeholder there does not matter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from minicluster.core.errors import InputError
from minicluster.core.metrics import MetricValue
from minicluster.interop import units
from minicluster.interop.record import BenchmarkRecord, registry_metric

_LATENCY_ROWS = {
    "average": "latency_mean_ms",
    "p50": "latency_p50_ms",
    "p90": "latency_p90_ms",
    "p95": "latency_p95_ms",
    "p99": "latency_p99_ms",
}
_FIELD = re.compile(r"\*\*(?P<key>[^*:]+):\*\*\s*`?(?P<value>[^`|*\n]+?)`?\s*(?=\||$)", re.M)
_SUMMARY_COUNT_COLUMNS = ("pairs", "samples", "requests", "items")
_RATE_MATCH = 0.02  # pairs / time(s) within 2% of the throughput average: the rate is per second


@dataclass
class _Table:
    heading: str
    header: list[str]
    rows: list[list[str]]

    def column(self, name: str) -> int | None:
        """Index of the column whose header (without its unit) is `name`, case-insensitive."""
        for i, h in enumerate(self.header):
            if re.sub(r"\s*\(.*\)\s*$", "", h).strip().lower() == name:
                return i
        return None


def _tables(text: str) -> list[_Table]:
    """Every table of `text` (GitHub tables, with or without the outer pipes; `\\|` is a pipe
    inside a cell), each under the heading above it. Cells are their source text, unescaped."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    tables: list[_Table] = []
    heading = ""
    row: list[str] | None = None
    current: _Table | None = None
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            heading = tokens[i + 1].content.strip()
        elif tok.type == "table_open":
            current = _Table(heading, [], [])
            tables.append(current)
        elif tok.type == "tr_open":
            row = []
        elif tok.type in ("th_open", "td_open") and row is not None:
            row.append(tokens[i + 1].content.strip())
        elif tok.type == "tr_close" and current is not None and row is not None:
            if current.header:
                current.rows.append(row)
            else:
                current.header = row
            row = None
        elif tok.type == "table_close":
            current = None
    return tables


@dataclass
class _Unit:
    """The unit a table's values are in when a cell does not say, and where it was read."""

    unit: str | None
    source: str


def _table_unit(t: _Table, summary: _Table | None, kind: str) -> _Unit:
    col = units.unit_in_parentheses(t.header[1]) if len(t.header) > 1 else None
    if col:
        return _Unit(col, f"column '{t.header[1]}'")
    head = units.unit_in_parentheses(t.heading)
    if head:
        return _Unit(head, f"heading '{t.heading}'")
    if summary is not None:
        return _summary_unit(t, summary, kind)
    return _Unit(None, "")


def _summary_unit(t: _Table, summary: _Table, kind: str) -> _Unit:
    """The unit the summary table shows for this table's average (`Lat Avg` = `526.7ms`), or for
    a throughput: per second when pairs / time(s) in the summary equals its average."""
    first = summary.rows[0] if summary.rows else []
    if kind == "latency":
        i = summary.column("lat avg")
        if i is not None and i < len(first):
            cell = units.parse_cell(first[i], "summary / Lat Avg")
            if not isinstance(cell, units.Placeholder) and cell[1]:
                return _Unit(cell[1], f"the summary's Lat Avg cell '{first[i]}'")
        return _Unit(None, "")
    time_i = next(
        (i for i, h in enumerate(summary.header) if re.fullmatch(r"time\s*\(s\)", h.lower())), None
    )
    count_i = next((summary.column(c) for c in _SUMMARY_COUNT_COLUMNS if summary.column(c)), None)
    average = _row_value(t, "average")
    if time_i is None or count_i is None or average is None or max(time_i, count_i) >= len(first):
        return _Unit(None, "")
    n, secs = (
        units.parse_cell(first[count_i], "summary"),
        units.parse_cell(first[time_i], "summary"),
    )
    if isinstance(n, units.Placeholder) or isinstance(secs, units.Placeholder) or secs[0] <= 0:
        return _Unit(None, "")
    rate = n[0] / secs[0]
    if abs(rate - average) <= _RATE_MATCH * average:
        return _Unit("/s", f"the summary: {first[count_i]} in {first[time_i]} s = {rate:.4g}/s")
    return _Unit(None, "")


def _row_value(t: _Table, row: str) -> float | None:
    for r in t.rows:
        if len(r) >= 2 and r[0].lower() == row:
            cell = units.parse_cell(r[1], f"{t.heading} / {r[0]}")
            return None if isinstance(cell, units.Placeholder) else cell[0]
    return None


def _read(
    name: str, cell: str, where: str, default: _Unit, method: str, warnings: list[str]
) -> MetricValue:
    """One metric from one cell: converted to the registry unit, or unavailable with the reason."""
    parsed = units.parse_cell(cell, where)
    if isinstance(parsed, units.Placeholder):
        return registry_metric(name, None, "measured", method, f"not reported: {parsed!r} cell")
    value, cell_unit = parsed
    unit = cell_unit or default.unit
    if unit is None:
        warnings.append(f"{where}: no unit in the cell, column, heading or summary: not imported")
        return registry_metric(
            name, None, "measured", method, "no unit in the report (cell, column, heading)"
        )
    target = registry_metric(name, 0.0, "measured", method).unit
    if unit == "/s":
        converted, exact = value, True
    else:
        converted, exact = units.convert(value, unit, target, where)
    src = "the cell" if cell_unit else default.source
    how = f"{method}; {value:g} {unit} (unit from {src})"
    if not exact:
        how += f"; {unit} read as decimal ({unit[0]}B = 10^n bytes): estimated"
    return registry_metric(name, converted, "measured" if exact else "estimated", how)


def to_record(text: str, label: str) -> BenchmarkRecord:
    tables = _tables(text)
    fields = {
        m.group("key").strip().lower(): m.group("value").strip() for m in _FIELD.finditer(text)
    }
    title = next((ln.lstrip("#").strip() for ln in text.splitlines() if ln.startswith("# ")), label)
    value_tables = [t for t in tables if [h.lower() for h in t.header[:1]] == ["metric"]]
    value_tables = [t for t in value_tables if t.column("value") == 1]
    latency = [t for t in value_tables if t.heading.lower().startswith("latency")]
    throughput = [t for t in value_tables if t.heading.lower().startswith("throughput")]
    if not latency and not throughput:
        raise InputError(
            "markdown report holds no Latency or Throughput table (| Metric | Value |)"
        )
    summary = next(
        (t for t in tables if [h.lower() for h in t.header[:2]] == ["batch", "conc"]), None
    )
    warnings: list[str] = []
    if len(latency) > 1 or len(throughput) > 1:
        warnings.append("report holds several configurations; the first one was imported")
    metrics: dict[str, MetricValue] = {}
    details: dict[str, object] = {}
    if latency:
        t = latency[0]
        unit = _table_unit(t, summary, "latency")
        cells = {r[0].lower(): r[1] for r in t.rows if len(r) >= 2}
        for row, name in _LATENCY_ROWS.items():
            method = f"markdown report: {t.heading} / {row}"
            if row not in cells:
                metrics[name] = registry_metric(
                    name, None, "measured", method, f"no {row} row in the report"
                )
                continue
            metrics[name] = _read(name, cells[row], f"{t.heading} / {row}", unit, method, warnings)
    if throughput:
        t = throughput[0]
        unit = _table_unit(t, summary, "throughput")
        cells = {r[0].lower(): r[1] for r in t.rows if len(r) >= 2}
        name, method = "throughput_samples_per_sec", f"markdown report: {t.heading} / average"
        if "average" in cells:
            metrics[name] = _read(
                name, cells["average"], f"{t.heading} / Average", unit, method, warnings
            )
        else:
            metrics[name] = registry_metric(name, None, "measured", method, "no average row")
        percentiles = {}
        for k, cell in cells.items():
            if k.startswith("p") and not isinstance(
                parsed := units.parse_cell(cell, f"{t.heading} / {k}"), units.Placeholder
            ):
                percentiles[k] = parsed[0]
        details["throughput_percentiles"] = percentiles
    if summary and summary.rows:
        first = summary.rows[0]
        for key, i in (("batch_size", 0), ("concurrency", 1)):
            count = units.parse_cell(first[i], f"summary / {summary.header[i]}")
            if not isinstance(count, units.Placeholder):
                details[key] = int(count[0])
    dashboard = next(
        (t for t in tables if t.header and t.column("metric") == 0 and t.column("avg")), None
    )
    if dashboard is not None:
        _dashboard(dashboard, metrics, warnings)
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
        unknown={
            "world_size": "a markdown report does not record the number of processes",
            "per_rank_batch": "a markdown report records one batch size, not one per rank",
            "backend": "a markdown report does not record a communication backend",
            "nodes": "a markdown report does not record nodes",
            **({} if "batch_size" in details else {"global_batch": "no Batch column"}),
        },
    )


def _dashboard(t: _Table, metrics: dict[str, MetricValue], warnings: list[str]) -> None:
    """`GPU Memory (MB)` max -> memory_peak_mib; `GPU Utilization (%)` avg -> device util."""
    max_i, avg_i = t.column("max"), t.column("avg")
    for row in t.rows:
        if len(row) != len(t.header):
            continue
        label = row[0]
        unit = _Unit(units.unit_in_parentheses(label), f"row label '{label}'")
        if label.lower().startswith("gpu memory") and max_i is not None:
            metrics["memory_peak_mib"] = _read(
                "memory_peak_mib",
                row[max_i],
                f"{label} / Max",
                unit,
                "markdown dashboard: GPU Memory max",
                warnings,
            )
        elif label.lower().startswith("gpu utilization") and avg_i is not None:
            metrics["device_utilization_percent"] = _read(
                "device_utilization_percent",
                row[avg_i],
                f"{label} / Avg",
                unit,
                "markdown dashboard: GPU Utilization avg",
                warnings,
            )
