"""Benchmark: the report's own SVG plots against matplotlib's SVG backend, on the same data.

Renders every plot of the shipped golden results (tests/golden/reports/*.result.json: step time,
rank breakdown, scaling, lost time, bus bandwidth, power, temperature) and one comparison plot
(tests/golden/compare_training_runs.json's rows) both ways: minicluster.report (what the HTML
report embeds) and matplotlib (Agg-free SVG backend, text kept as text: svg.fonttype = none, so
its files are the smallest matplotlib writes; each figure the same size in pixels and with the
same marks: lines, markers, bars, reference lines, bands, legend). It prints:

- bytes per plot, each way, and their ratio;
- render time per plot: REPEATS rounds, the two ways interleaved in each round (the order
  alternating), median per way and the ratio matplotlib / own with a 95% interval (bootstrap
  over the rounds of the per-round ratio);
- import time: `import minicluster.report.plots` against `import matplotlib.pyplot` (with the
  svg backend), each in a fresh interpreter, IMPORTS times alternating, median and 95% interval
  of the difference;
- the lines of code of the report's modules that draw plots (fleet, node check, history and
  pairwise also render their tables).

usage: python scripts/bench_plots.py [--repeats 30] [--imports 8]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minicluster.report.comparison_plot import comparison_plot  # noqa: E402
from minicluster.report.plots import (  # noqa: E402
    busbw_plot,
    rank_breakdown_plot,
    run_plots,
    scaling_plot,
    step_time_plot,
)
from minicluster.report.scaling_loss_plot import scaling_loss_plot  # noqa: E402
from minicluster.report.telemetry_plots import power_plot, temperature_plot  # noqa: E402
from minicluster.result.model import RunResult  # noqa: E402

PLOT_MODULES = (
    "svg.py",
    "plots.py",
    "comparison_plot.py",
    "scaling_loss_plot.py",
    "telemetry_plots.py",
    "fleet.py",
    "nodecheck.py",
    "history.py",
    "pairwise.py",
)


# --- matplotlib renderers: the same marks from the same result fields -----------------------


def _mpl() -> Any:
    import matplotlib

    matplotlib.use("svg")
    matplotlib.rcParams["svg.fonttype"] = "none"
    import matplotlib.pyplot as plt

    return plt


def _fig(plt: Any, height_px: int = 340) -> tuple[Any, Any]:
    fig, ax = plt.subplots(figsize=(7.6, height_px / 100), dpi=100)
    return fig, ax


def _svg(plt: Any, fig: Any, ax: Any, title: str) -> str:
    ax.set_title(title, loc="left", fontsize=11)
    ax.grid(True, color="#e3e3e3", linewidth=0.6)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    return buf.getvalue()


def mpl_step_time(plt: Any, r: RunResult) -> str:
    fig, ax = _fig(plt)
    embedded = r.steps_section.embedded if r.steps_section is not None else {}
    for key in sorted(embedded or {}, key=int):
        rec = embedded[key]  # type: ignore[index]
        pts = [(s, t) for s, t in zip(rec["step"], rec["step_time_ms"], strict=True) if t]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=f"rank {key}", linewidth=1.6)
        warm = [s for s, w in zip(rec["step"], rec.get("warmup") or [], strict=False) if w]
        if warm and key == min(embedded or {}, key=int):
            ax.axvspan(warm[0] - 0.5, warm[-1] + 0.5, color="#999", alpha=0.18)
    for name, col in (("latency_p50_ms", "#333"), ("latency_p95_ms", "#C00")):
        v = r.metric_value(name)
        if v is not None:
            ax.axhline(v, color=col, linestyle="--", label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("step time (ms)")
    return _svg(plt, fig, ax, "Step time per rank")


def mpl_rank_breakdown(plt: Any, r: RunResult) -> str:
    ranks = [x for x in r.ranks if x.compute_ms_median is not None]
    fig, ax = _fig(plt, 34 + len(ranks) * 26 + 58)
    left = [0.0] * len(ranks)
    for name, col, attr in (
        ("compute", "#0072B2", "compute_ms_median"),
        ("all-reduce wait", "#D55E00", "wait_ms_median"),
        ("all-reduce transfer", "#009E73", "transfer_ms_median"),
    ):
        vals = [getattr(x, attr) or 0.0 for x in ranks]
        ax.barh([f"rank {x.rank}" for x in ranks], vals, left=left, color=col, label=name)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_xlabel("median time per step (ms)")
    return _svg(plt, fig, ax, "Per-rank step breakdown (medians)")


def mpl_scaling(plt: Any, r: RunResult) -> str:
    fig, ax = _fig(plt)
    s = r.scaling
    assert s is not None
    pts = sorted((p.world_size, p.efficiency_pct) for p in s.points if p.efficiency_pct)
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label="measured")
    if s.projection is not None:
        proj = sorted((p.world_size, p.efficiency_pct) for p in s.projection.points)
        ax.plot([p[0] for p in proj], [p[1] for p in proj], "o--", mfc="white", label="projected")
    ax.axhline(100.0, color="#333", linestyle="--", label="ideal")
    ax.set_xscale("log")
    ax.set_xlabel("world size (ranks)")
    ax.set_ylabel("scaling efficiency (%)")
    return _svg(plt, fig, ax, f"Scaling efficiency ({s.mode} scaling)")


def mpl_scaling_loss(plt: Any, r: RunResult) -> str:
    s = r.scaling
    assert s is not None
    bars = [p for p in s.points if p.breakdown is not None and p.breakdown.loss is not None]
    fig, ax = _fig(plt, 34 + len(bars) * 34 + 62)
    names = [f"{p.world_size} ranks" for p in bars]
    pos, neg = [0.0] * len(bars), [0.0] * len(bars)
    for key, col in (
        ("exposed_comm", "#D55E00"),
        ("straggler_wait", "#E69F00"),
        ("compute_growth", "#0072B2"),
        ("remainder", "#999999"),
    ):
        vals = [float(p.breakdown.loss.parts_pts.get(key) or 0.0) for p in bars]  # type: ignore[union-attr]
        starts = [pos[i] if v >= 0 else neg[i] + v for i, v in enumerate(vals)]
        ax.barh(names, [abs(v) for v in vals], left=starts, color=col, label=key)
        pos = [a + max(v, 0) for a, v in zip(pos, vals, strict=True)]
        neg = [a + min(v, 0) for a, v in zip(neg, vals, strict=True)]
    ax.axvline(0, color="#000")
    ax.set_xlabel("points of the world size's mean step time")
    return _svg(plt, fig, ax, "Where the efficiency went (points of the step lost)")


def mpl_busbw(plt: Any, r: RunResult) -> str:
    fig, ax = _fig(plt)
    c = r.collectives
    assert c is not None
    for op in sorted({x.op for x in c.results}):
        pts = sorted((x.size_bytes, x.busbw_gbps) for x in c.results if x.op == op and x.busbw_gbps)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=op)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("message size (bytes, log scale; K = 1024)")
    ax.set_ylabel("busbw (GB/s, 1 GB = 1e9 B)")
    return _svg(plt, fig, ax, "Bus bandwidth vs message size")


def _mpl_series(plt: Any, r: RunResult, column: str, title: str, y_label: str) -> str:
    fig, ax = _fig(plt)
    t = r.telemetry
    assert t is not None
    starts = [s.points[0][0] for s in t.series if s.points and s.points[0][0] is not None]
    t0 = min(starts) if starts else 0.0
    for s in t.series:
        if column not in s.columns or not s.points:
            continue
        ti, vi = s.columns.index("t_unix_s"), s.columns.index(column)
        pts = [(p[ti] - t0, p[vi]) for p in s.points if p[vi] is not None and p[ti] is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=f"{s.source} {s.id}")
    ax.set_xlabel("time since start of the run (s)")
    ax.set_ylabel(y_label)
    return _svg(plt, fig, ax, title)


def mpl_power(plt: Any, r: RunResult) -> str:
    return _mpl_series(plt, r, "power_w", "Power over time", "power (W)")


def mpl_temperature(plt: Any, r: RunResult) -> str:
    return _mpl_series(plt, r, "temp_c", "Temperature over time", "temperature (°C)")


def _normalized_ratio(row: dict[str, Any]) -> float | None:
    """B/A turned so > 1 is better, as the comparison plot draws it (None: not drawn)."""
    ratio, direction = row.get("ratio"), row.get("direction")
    if not isinstance(ratio, (int, float)) or ratio <= 0 or direction not in ("higher", "lower"):
        return None
    return float(ratio) if direction == "higher" else 1.0 / float(ratio)


def mpl_comparison(plt: Any, rows: list[dict[str, Any]]) -> str:
    shown = [x for x in rows if _normalized_ratio(x) is not None and not x.get("below_floor")]
    fig, ax = _fig(plt, 34 + len(shown) * 20 + 58)
    colors = {"better": "#009E73", "worse": "#D55E00"}
    vals = [max(-2.0, min(2.0, math.log2(_normalized_ratio(x) or 1.0))) for x in shown]
    bars = ax.barh(
        [str(x["metric"]) for x in shown],
        vals,
        color=[colors.get(str(x.get("verdict")), "#999999") for x in shown],
    )
    ax.bar_label(bars, labels=[f"{x.get('delta_pct', 0):+.1f}%" for x in shown], fontsize=8)
    ax.axvline(0, color="#000")
    ax.set_xlabel("B/A turned so right is better (log scale; bars past x4 clipped)")
    return _svg(plt, fig, ax, "B/A per metric, right = better")


MPL: dict[str, Callable[[Any, RunResult], str]] = {
    "step_time": mpl_step_time,
    "rank_breakdown": mpl_rank_breakdown,
    "scaling": mpl_scaling,
    "scaling_loss": mpl_scaling_loss,
    "busbw": mpl_busbw,
    "power": mpl_power,
    "temperature": mpl_temperature,
}


OWN = {
    "step_time": step_time_plot,
    "rank_breakdown": rank_breakdown_plot,
    "scaling": scaling_plot,
    "scaling_loss": scaling_loss_plot,
    "busbw": busbw_plot,
    "power": power_plot,
    "temperature": temperature_plot,
}


# --- measurement ----------------------------------------------------------------------------


def _cases() -> list[tuple[str, Callable[[], str], Callable[[Any], str]]]:
    """(name, own renderer, matplotlib renderer) for every plot of the golden results."""
    cases: list[tuple[str, Callable[[], str], Callable[[Any], str]]] = []
    for path in sorted((ROOT / "tests" / "golden" / "reports").glob("*.result.json")):
        r = RunResult.from_json(json.loads(path.read_text()))
        for p in run_plots(r):
            if p.label not in MPL:
                continue

            def own(r: RunResult = r, label: str = p.label) -> str:
                plot = OWN[label](r)
                return plot.svg if plot is not None else ""

            def mpl(plt: Any, r: RunResult = r, label: str = p.label) -> str:
                return MPL[label](plt, r)

            cases.append((f"{path.name.removesuffix('.result.json')}/{p.label}", own, mpl))
    rows = json.loads((ROOT / "tests" / "golden" / "compare_training_runs.json").read_text())
    pair_rows = [row for pair in rows["comparisons"] for row in pair["rows"]]
    if pair_rows:

        def own_cmp() -> str:
            plot = comparison_plot(pair_rows)
            return plot.svg if plot is not None else ""

        cases.append(
            (
                "compare_training_runs/comparison",
                own_cmp,
                lambda plt: mpl_comparison(plt, pair_rows),
            )
        )
    return cases


def _ci_ratio(ratios: list[float], rng: np.random.Generator) -> tuple[float, float, float]:
    a = np.asarray(ratios)
    boots = np.median(rng.choice(a, size=(2000, len(a)), replace=True), axis=1)
    return float(np.median(a)), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def _import_time(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--imports", type=int, default=8)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    plt = _mpl()
    cases = _cases()
    print(
        f"{len(cases)} plots, {args.repeats} interleaved rounds each (matplotlib "
        f"{__import__('matplotlib').__version__}, svg.fonttype none)\n"
    )
    print(
        f"{'plot':44} {'own B':>8} {'mpl B':>8} {'B x':>6} {'own ms':>8} {'mpl ms':>8} "
        f"{'time x (95% CI)':>22}"
    )
    tot_own = tot_mpl = 0
    all_ratios: list[float] = []
    for name, own, mpl in cases:
        own_svg, mpl_svg = own(), mpl(plt)
        tot_own += len(own_svg.encode())
        tot_mpl += len(mpl_svg.encode())
        t_own, t_mpl, ratios = [], [], []
        for i in range(args.repeats):
            order = (0, 1) if i % 2 == 0 else (1, 0)
            took = [0.0, 0.0]
            for which in order:
                t0 = time.perf_counter()
                own() if which == 0 else mpl(plt)
                took[which] = time.perf_counter() - t0
            t_own.append(took[0])
            t_mpl.append(took[1])
            ratios.append(took[1] / took[0])
        all_ratios += ratios
        med, lo, hi = _ci_ratio(ratios, rng)
        print(
            f"{name:44} {len(own_svg.encode()):8,d} {len(mpl_svg.encode()):8,d} "
            f"{len(mpl_svg.encode()) / len(own_svg.encode()):6.2f} "
            f"{statistics.median(t_own) * 1e3:8.2f} {statistics.median(t_mpl) * 1e3:8.2f} "
            f"{med:8.1f} [{lo:6.1f}, {hi:6.1f}]"
        )
    med, lo, hi = _ci_ratio(all_ratios, rng)
    print(
        f"\nbytes, all plots: own {tot_own:,d}, matplotlib {tot_mpl:,d}: x{tot_mpl / tot_own:.2f}"
    )
    print(f"render time matplotlib / own, all plots: median x{med:.1f} (95% CI {lo:.1f}-{hi:.1f})")

    own_code = "import minicluster.report.plots, minicluster.report.comparison_plot"
    mpl_code = "import matplotlib; matplotlib.use('svg'); import matplotlib.pyplot"
    t_own, t_mpl = [], []
    for i in range(args.imports):
        for which in (0, 1) if i % 2 == 0 else (1, 0):
            (t_own if which == 0 else t_mpl).append(
                _import_time(own_code if which == 0 else mpl_code)
            )
    base = _import_time("pass")
    diffs = [b - a for a, b in zip(t_own, t_mpl, strict=True)]
    d = np.asarray(diffs)
    boots = np.median(rng.choice(d, size=(2000, len(d)), replace=True), axis=1)
    print(
        f"import in a fresh interpreter (bare python {base:.2f} s): own plots "
        f"{statistics.median(t_own):.2f} s, matplotlib.pyplot {statistics.median(t_mpl):.2f} s; "
        f"matplotlib costs +{np.median(d):.2f} s (95% CI {np.percentile(boots, 2.5):.2f}-"
        f"{np.percentile(boots, 97.5):.2f}) more"
    )
    report = ROOT / "minicluster" / "report"
    lines = {m: len((report / m).read_text().splitlines()) for m in PLOT_MODULES}
    print(f"lines of the plotting modules: {sum(lines.values())} ({lines})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
