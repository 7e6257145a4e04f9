"""Power and temperature over the measured window, one line per source, when they were measured."""

from __future__ import annotations

from typing import Any

from minicluster.report import svg
from minicluster.report.svg import Plot
from minicluster.report.text import fmt_num
from minicluster.result.model import RunResult, Telemetry

_SERIES_COLUMNS = {"W": "power_w", "°C": "temp_c"}


_SOURCE_NAMES = {"nvml": "NVML", "rapl": "RAPL", "thermal": "hwmon/thermal zones"}


def _telemetry_lines(telemetry: Telemetry | None, unit: str) -> list[dict[str, Any]]:
    """One line per telemetry source sampling `unit`, as {name, status, method, t_s, values}.

    Reads the sampler's series in `telemetry.series`: `[{"hostname", "source", "id",
    "columns": ["t_unix_s", "power_w", "temp_c"], "points": [[t, power, temp], ...]}]`. Time is
    shown relative to the first sample of the run.
    """
    if telemetry is None:
        return []
    column = _SERIES_COLUMNS[unit]
    series = telemetry.series
    starts = [t for s in series if s.points and (t := s.points[0][0]) is not None]
    t0 = min(starts) if starts else 0.0
    interval = telemetry.sample_interval_ms
    lines = []
    for s in series:
        cols = s.columns
        if column not in cols or "t_unix_s" not in cols or not s.points:
            continue
        ti, vi = cols.index("t_unix_s"), cols.index(column)
        every = f", every {s.every_nth_sample}th sample shown" if s.every_nth_sample > 1 else ""
        source = _SOURCE_NAMES.get(str(s.source), str(s.source))
        lines.append(
            {
                "name": f"{source} {s.id} on {s.hostname}",
                "status": "measured",
                "method": f"{source} sampled every {interval} ms{every}",
                "t_s": [_minus(p[ti], t0) for p in s.points],
                "values": [p[vi] for p in s.points],
            }
        )
    return lines


def _minus(t: float | None, t0: float) -> float | None:
    return None if t is None else t - t0


def _series_plot(result: RunResult, unit: str, label: str, title: str, y_label: str) -> Plot | None:
    chosen = [s for s in _telemetry_lines(result.telemetry, unit) if s["t_s"]]
    lines = []
    for s in chosen:
        pts = [
            (float(t), float(v))
            for t, v in zip(s["t_s"], s["values"], strict=True)
            if v is not None and t is not None
        ]
        if pts:
            lines.append((s, pts))
    if not lines:
        return None
    xs = [p[0] for _, pts in lines for p in pts]
    ys = [p[1] for _, pts in lines for p in pts]
    chart = svg.Chart(
        label,
        title,
        min(xs),
        max(max(xs), min(xs) + 1),
        "time since start of the run (s)",
        0.0,
        max(ys) * 1.15 or 1.0,
        y_label,
    )
    for i, (s, pts) in enumerate(lines):
        name = f"{s.get('name', 'series')} ({s.get('status', 'measured')})"
        dash = "" if s.get("status", "measured") == "measured" else "4 3"
        chart.marks.append(svg.Line(pts, svg.color(i), name, dash=dash))
        chart.legend.append((name, svg.color(i), "line"))
    chart.legend = chart.legend[: svg.MAX_LEGEND]
    methods = sorted({str(s.get("method")) for s, _ in lines if s.get("method")})
    caption = (
        f"{y_label[0].upper()}{y_label[1:]} over time; dashed lines are not measured values "
        f"(status in the legend). Source: {'; '.join(methods) or 'telemetry samples'}."
    )
    energy = result.metrics.get("energy_per_step_joules")
    if unit == "W" and energy is not None and energy.value is not None:
        caption += f" Energy per step: {fmt_num(energy.value)} J ({energy.status})."
    return Plot(label, title, svg.render(chart), caption)


def power_plot(result: RunResult) -> Plot | None:
    """Power over time, one line per source.

    Reads the sampler's series in `telemetry.series` (see `_telemetry_lines`) and the metric
    `energy_per_step_joules` for the caption.
    """
    return _series_plot(result, "W", "power", "Power over time", "power (W)")


def temperature_plot(result: RunResult) -> Plot | None:
    """Temperature over time, one line per source (`telemetry.series`)."""
    return _series_plot(result, "°C", "temperature", "Temperature over time", "temperature (°C)")
