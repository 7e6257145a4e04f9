"""Terminal summary of one run result (rich tables)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.3g}" if abs(value) < 0.01 else f"{value:.2f}"


def print_run_summary(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(stderr=False, highlight=False)
    wl = result["workload"]
    status = result["status"]
    color = {"ok": "green", "failed": "red", "incomplete": "yellow"}.get(status, "white")
    console.print(
        f"[bold]minicluster[/bold] run [cyan]{escape(result['run_id'])}[/cyan]  status "
        f"[{color}]{status}[/{color}]  {result['world_size']} ranks on {result['nodes']} node(s), "
        f"backend {result['backend']}, workload {escape(wl['name'])} (global batch {wl['global_batch']})",
        markup=True,
    )
    metrics = Table(title="Metrics", title_justify="left")
    metrics.add_column("metric", no_wrap=True)
    metrics.add_column("value", justify="right")
    metrics.add_column("unit")
    metrics.add_column("provenance")
    missing: dict[str, list[str]] = {}
    for name, mv in result["metrics"].items():
        if mv["value"] is None:
            missing.setdefault(str(mv.get("reason")), []).append(name)
            continue
        metrics.add_row(name, _fmt(mv["value"]), mv["unit"], mv["status"])
    console.print(metrics)
    for reason, names in missing.items():
        console.print(f"[dim]not measured:[/dim] {', '.join(names)} [dim]({escape(reason)})[/dim]")

    stragglers = {s["rank"] for s in result.get("stragglers", [])}
    ranks = Table(title="Ranks (medians over measured steps, ms)", title_justify="left")
    for col in (
        "rank",
        "host",
        "status",
        "steps",
        "step p50",
        "compute",
        "comm",
        "wait",
        "transfer",
        "exposed",
    ):
        ranks.add_column(col, justify="right" if col not in ("host", "status") else "left")
    for r in result["ranks"]:
        tag = " [bold red]straggler[/bold red]" if r["rank"] in stragglers else ""
        ranks.add_row(
            f"{r['rank']}{tag}",
            escape(str(r.get("hostname"))),
            r["status"],
            str(r["measured_steps"]),
            _fmt(r["step_time_ms"]["p50"]),
            _fmt(r["compute_ms_median"]),
            _fmt(r["comm_ms_median"]),
            _fmt(r["wait_ms_median"]),
            _fmt(r["transfer_ms_median"]),
            _fmt(r["exposed_comm_ms_median"]),
        )
    console.print(ranks)
    for s in result.get("stragglers", []):
        console.print(
            f"[yellow]straggler:[/yellow] rank {s['rank']} compute {s['compute_ms_median']} ms "
            f"vs {s['others_compute_ms_median']} ms on the others (+{s['excess_pct']}%)"
        )
    faults = result.get("faults", {})
    for f in faults.get("injected", []):
        console.print(f"[dim]fault injected:[/dim] {escape(_fault_text(f))}", highlight=False)
    for f in faults.get("detected", []):
        if f["kind"] != "straggler":  # already printed above
            console.print(
                f"[magenta]fault detected:[/magenta] {escape(_fault_text(f))}: "
                f"{escape(f['evidence'])}",
                highlight=False,
            )
    for err in result.get("errors", []):
        console.print(f"[red]error:[/red] {escape(err)}", highlight=False)


def _fault_text(fault: dict[str, Any]) -> str:
    where = f" at step {fault['step']}" if fault.get("step") is not None else ""
    return f"{fault['kind']} on rank {fault['rank']}{where}"
