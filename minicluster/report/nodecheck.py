"""The node-check report: the verdict line, the checks (worst first, each with its value, the
reference it was judged against and the remediation), what could not be checked and why, the
headline metrics, the burn-in per interval; as terminal tables, Markdown and one HTML page.
Renders, never computes: every figure comes from `analysis.nodecheck`'s result."""

from __future__ import annotations

from html import escape
from typing import Any

from rich.console import Console
from rich.markup import escape as rich_escape

from minicluster.report import svg
from minicluster.report.html import PAGE_CSS, figure
from minicluster.report.html import table_html as html_table
from minicluster.report.markdown import md_escape
from minicluster.report.markdown import table_lines as md_table
from minicluster.report.svg import Plot
from minicluster.report.terminal import make_console, print_fitted
from minicluster.report.text import TextTable, fmt_num, text

_ORDER = {"failed": 0, "degraded": 1, "incomplete": 2, "ok": 3}
_STYLE = {"ok": "green", "incomplete": "yellow", "degraded": "bold red", "failed": "bold red"}


def num(value: Any) -> str:
    """4 significant digits: node-check rates span 0.01 (a CPU's TFLOP/s) to 4,000 (HBM GB/s)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return text(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _judged(c: dict[str, Any]) -> str:
    j = c.get("judged") or {}
    if j.get("pct_of_reference") is not None:
        return f"{j['pct_of_reference']:.0f}% of {num(j.get('reference_value'))} ({j.get('reference')})"
    if c.get("metric"):
        return "not judged"
    return ""


def checks_table(result: dict[str, Any], terminal: bool = False) -> TextTable:
    """Every check but the incomplete ones (listed apart), worst first; `terminal`: the
    reference and the remediation folded into the reason, for narrow screens."""
    headers = ["check", "verdict", "value", "vs reference", "reason", "remediation"]
    if terminal:
        headers = ["check", "verdict", "value", "reason"]
    t = TextTable(
        "Checks",
        headers,
        note="failed: wrong results or past a hard limit; degraded: works, below what it should; "
        "ok: checked and fine (a rate without a reference for this platform is not judged). "
        "Incomplete checks are listed apart.",
        numeric={2},
        wrap={3} if terminal else {4, 5},
    )
    rows = [c for c in result["checks"] if c["verdict"] != "incomplete"]
    for c in sorted(rows, key=lambda c: _ORDER[c["verdict"]]):
        if c["verdict"] in ("failed", "degraded"):
            t.highlight.add(len(t.rows))
        value = c.get("value")
        shown = f"{num(value)} {c.get('unit', '')}".strip() if value is not None else ""
        if terminal:
            reason = c["reason"]
            if c.get("remediation"):
                reason += f" -> {c['remediation']}"
            t.rows.append([c["id"], c["verdict"], shown, reason])
        else:
            t.rows.append(
                [c["id"], c["verdict"], shown, _judged(c), c["reason"], c.get("remediation") or ""]
            )
    return t


def incomplete_table(result: dict[str, Any]) -> TextTable:
    t = TextTable(
        "Could not check",
        ["check", "why"],
        note="Incomplete: the check could not run or decide here. Not a failure, not a pass.",
        wrap={1},
    )
    for entry in result["incomplete"]:
        t.rows.append([entry["check"], entry["reason"]])
    return t


def metrics_table(result: dict[str, Any]) -> TextTable:
    t = TextTable(
        "Headline figures (what `minicluster fleet` compares across nodes)",
        ["metric", "value", "unit", "conditions", "device"],
        note="The slowest device's figure at the conditions shown (a synchronous job runs at its "
        "slowest device's pace).",
        numeric={1},
        wrap={3, 4},
    )
    for name, m in result["metrics"].items():
        cond = ", ".join(f"{k}={v}" for k, v in (m.get("conditions") or {}).items())
        devices = f" (slowest of {m['devices']})" if (m.get("devices") or 1) > 1 else ""
        t.rows.append([name, num(m.get("value")), m["unit"], cond, f"{m.get('device')}{devices}"])
    return t


def burn_in_table(result: dict[str, Any]) -> TextTable | None:
    burn = result.get("burn_in")
    if not burn or not burn.get("intervals"):
        return None
    devices = sorted({d for iv in burn["intervals"] for d in iv["devices"]})
    t = TextTable(
        f"Burn-in: {burn['dtype']} GEMM n = {burn['n']}, {fmt_num(burn['duration_s'])} s",
        ["t (s)", *(f"{d} TFLOP/s" for d in devices), "state"],
        note="Per interval: each device's GEMM rate and, where NVML answers, temperature and "
        "clock event reasons (hex).",
        numeric=set(range(len(devices) + 1)),
    )
    for iv in burn["intervals"]:
        states = []
        for d in devices:
            s = (iv["devices"].get(d) or {}).get("state") or {}
            bits = s.get("throttle_reasons")
            parts = [f"{s['temperature_c']} C"] if s.get("temperature_c") is not None else []
            if bits:
                parts.append(f"0x{int(bits):x}")
            if s.get("cpu_mhz"):
                parts.append(f"{s['cpu_mhz']:.0f} MHz")
            if parts:
                states.append(f"{d}: {' '.join(parts)}")
        t.rows.append(
            [
                f"{iv['t_s']:.1f}",
                *(num((iv["devices"].get(d) or {}).get("tflops")) for d in devices),
                "; ".join(states),
            ]
        )
    return t


def platform_table(result: dict[str, Any]) -> TextTable:
    p = result["platform"]
    t = TextTable("Platform", ["", ""])
    gpus = f"{p.get('gpus_per_node')} x {p.get('gpu_model')}" if p.get("gpu_model") else "none"
    ref = result.get("reference")
    t.rows += [
        ["host", text(p.get("hostname"))],
        [
            "CPU",
            f"{text(p.get('cpu_model'))}, {text(p.get('cpu_sockets'))} socket(s), "
            f"{text(p.get('cpu_affinity'))} core(s) usable",
        ],
        ["GPU", gpus],
        ["driver", text(p.get("driver_version"))],
        [
            "software",
            f"minicluster {result['tool']['version']}, torch {text(p.get('torch'))}, "
            f"python {text(p.get('python'))}, {text(p.get('os'))}",
        ],
        [
            "reference",
            f"{ref['name']} ({ref['kind']})"
            if ref
            else text(result.get("reference_reason") or "none"),
        ],
        ["level", f"{result['level']}; floor {fmt_num(result['floor_pct'])}% of the reference"],
        ["took", f"{fmt_num((result.get('seconds') or {}).get('total'))} s"],
    ]
    return t


def print_node_check(result: dict[str, Any], console: Console | None = None) -> None:
    """The verdict line, the checks, what could not be checked, the headline figures."""
    console = console or make_console()
    style = _STYLE.get(result["verdict"], "white")
    console.print(f"[{style}]{rich_escape(result['verdict_line'])}[/{style}]")
    tables = [checks_table(result, terminal=True), incomplete_table(result), metrics_table(result)]
    burn = burn_in_table(result)
    if burn is not None and len(burn.rows) <= 30:
        tables.append(burn)
    for t in tables:
        if t.rows:
            print_fitted(console, t)


def node_check_markdown(result: dict[str, Any]) -> str:
    host = text(result["platform"].get("hostname"))
    lines = [f"# minicluster node check: {md_escape(host)} ({result['level']})", ""]
    lines += [f"**{md_escape(result['verdict_line'])}**", ""]
    tables = [checks_table(result), incomplete_table(result), metrics_table(result)]
    burn = burn_in_table(result)
    if burn is not None:
        tables.append(burn)
    tables.append(platform_table(result))
    for t in tables:
        lines += md_table(t)
    return "\n".join(lines).rstrip("\n") + "\n"


def node_check_html(result: dict[str, Any]) -> str:
    host = text(result["platform"].get("hostname"))
    title = f"minicluster node check: {host} ({result['level']})"
    verdict = result["verdict"]
    css = "ok" if verdict == "ok" else "incomplete" if verdict == "incomplete" else "failed"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{PAGE_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="verdict"><span class="status status-{css}">{escape(verdict)}</span> '
        f"{escape(result['verdict_line'])}</p>",
    ]
    plot = burn_in_plot(result)
    if plot is not None:
        parts.append(figure(plot))
    tables = [checks_table(result), incomplete_table(result), metrics_table(result)]
    burn = burn_in_table(result)
    if burn is not None:
        tables.append(burn)
    tables.append(platform_table(result))
    parts += [html_table(t) for t in tables]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def burn_in_plot(result: dict[str, Any]) -> Plot | None:
    """GEMM rate per interval of the burn-in, one line per device, with the drift's verdict."""
    burn = result.get("burn_in")
    if not burn or not burn.get("intervals"):
        return None
    devices = sorted({d for iv in burn["intervals"] for d in iv["devices"]})
    series = {
        d: [
            (iv["t_s"], r)
            for iv in burn["intervals"]
            if isinstance(r := (iv["devices"].get(d) or {}).get("tflops"), (int, float))
        ]
        for d in devices
    }
    values = [r for pts in series.values() for _, r in pts]
    times = [t for pts in series.values() for t, _ in pts]
    if not values:
        return None
    hi = max(values) * 1.1
    chart = svg.Chart(
        "node-check-burn-in",
        f"Burn-in: {burn['dtype']} GEMM rate per interval",
        0.0,
        max(times) or 1.0,
        "time into the burn-in (s)",
        0.0,
        hi,
        "TFLOP/s",
    )
    for i, (d, pts) in enumerate(series.items()):
        chart.marks.append(svg.Line(pts, svg.color(i), d, markers="filled"))
    if len(series) > 1:
        # (label, colour, kind): this legend was (colour, label, label), naming each line by
        # its colour code
        chart.legend = [(d, svg.color(i), "line") for i, d in enumerate(series)]
    drift = burn.get("drift") or {}
    said = "; ".join(f"{d}: {(drift.get(d) or {}).get('reason')}" for d in devices)
    caption = (
        f"Each point: calls x 2 n^3 over the interval's device time (n = {burn['n']}); axis from "
        f"0. Drift test (Theil-Sen slope, Mann-Kendall): {said}."
    )
    return Plot(chart.label, chart.title, svg.render(chart), caption)
