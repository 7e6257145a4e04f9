"""What the pairwise link test adds to a report: the busbw matrix (or the worst pairs), the pairs,
the per-rank and per-node medians as text tables, and the heat map. Renders, never computes:
every number and verdict comes from the result's `pairwise` block as aggregation wrote it."""

from __future__ import annotations

import math

from minicluster.core import pair_recheck
from minicluster.core.units import format_size
from minicluster.report import svg
from minicluster.report.svg import Plot
from minicluster.report.text import TextTable, fmt_num, text
from minicluster.result.model import Pairwise, RunResult

TERMINAL_MATRIX_MAX = 16  # above this many ranks the terminal shows the worst pairs instead
HEATMAP_MAX = 64  # cells per side; above it the heat map shows the ranks with the worst medians
SLOW_COLOR = "#D55E00"  # Okabe-Ito vermillion: below the median
FAST_COLOR = "#0072B2"  # Okabe-Ito blue: above it
MID_COLOR = "#F7F7F7"


def pairwise_tables(pw: Pairwise, max_rows: int | None = None) -> list[TextTable]:
    """Matrix (or worst pairs when `max_rows` is set and there are more participants), pairs
    (worst first, at most `max_rows`), per rank, and per node when the ranks span nodes."""
    tables = []
    n = len(pw.participants)
    if max_rows is None or n <= max_rows:
        tables.append(matrix_table(pw))
    tables.append(pairs_table(pw, max_rows))
    tables.append(per_rank_table(pw))
    if len(pw.per_node) > 1:
        tables.append(per_node_table(pw))
    return tables


def _rule_note(pw: Pairwise) -> str:
    size = pw.size_bytes
    size_text = f"{format_size(size)} ({size} B)" if size else "n/a"
    return (
        f"{text(pw.transport)} of {size_text} each way per transfer, "
        f"{text(pw.dtype)}, {text(pw.warmup_iters)} warm-up + "
        f"{text(pw.iters)} timed transfers each way per pair, {text(pw.schedule)} "
        f"rounds, {text(pw.passes)} pass(es); "
        f"{text(pw.rule)}. busbw = algbw = size / time in decimal GB/s (send/recv, "
        "nccl-tests sendrecv)."
    )


def matrix_table(pw: Pairwise) -> TextTable:
    """The N x N busbw matrix: row sends, column receives (GB/s); slow pairs marked `*`."""
    labels = [str(x) for x in pw.labels]
    short = [_short(x) for x in labels]
    slow = {tuple(p) for p in pw.slow_pairs}
    who = pw.participants
    table = TextTable(
        "Bus bandwidth matrix (GB/s)",
        ["from \\ to", *short],
        note="Row sends, column receives: busbw of that direction in GB/s. * marks a slow pair. "
        + _rule_note(pw),
        numeric=set(range(1, len(short) + 1)),
    )
    for i, row in enumerate(pw.matrix_gbps):
        cells = []
        for j, v in enumerate(row):
            mark = "*" if (min(who[i], who[j]), max(who[i], who[j])) in slow else ""
            cells.append("-" if i == j else fmt_num(v) + mark)
        if any((who[i] in p) for p in slow):
            table.highlight.add(i)
        table.rows.append([short[i], *cells])
    return table


def pairs_table(pw: Pairwise, max_rows: int | None = None) -> TextTable:
    """One row per pair, slow and wrong ones first, then the lowest busbw."""
    labels = dict(zip(pw.participants, pw.labels, strict=False))
    rows = sorted(
        pw.pairs,
        key=lambda r: (
            not (r.slow or r.wrong),
            r.busbw_gbps if r.busbw_gbps is not None else -1.0,
        ),
    )
    shown = rows if max_rows is None else rows[:max_rows]
    dist = pw.distribution
    median = dist.median
    note = (
        f"Worst first. z: robust z of the pair's busbw on the log scale over {text(dist.n)} "
        f"measured pairs (median {fmt_num(median)} GB/s, MAD floored at "
        f"{fmt_num(pw.mad_floor_frac)}); slow: z < -{fmt_num(pw.outlier_z)}"
    )
    if pw.min_busbw_gbps is not None:
        note += f" or busbw < {fmt_num(pw.min_busbw_gbps)} GB/s"
    if pw.recheck_rounds is not None:
        note += "; " + pair_recheck.plan_text(pw.recheck_rounds, len(pw.pairs))
        if pw.recheck_rounds and len(pw.pairs) >= 2:
            note += " and stays slow only when slow against them"
    if pw.slow_ranks is not None:
        note += (
            "; a rank whose best pair is slow (the same z) against the pairs without it has "
            "every pair slow"
        )
    note += ". #wrong: received elements that differ from the sender's pattern, both ways."
    if dist.reason:
        note += f" {dist.reason}."
    if len(shown) < len(rows):
        note += f" Showing the worst {len(shown)} of {len(rows)} pairs; all are in result.json."
    table = TextTable(
        "Pairs",
        [
            "pair",
            "round",
            "time (us)",
            "a->b GB/s",
            "b->a GB/s",
            "busbw GB/s",
            "z",
            "#wrong",
            "verdict",
        ],
        note=note,
        numeric={1, 2, 3, 4, 5, 6, 7},
        wrap={8},
    )
    for r in shown:
        verdict = "ok"
        if r.status != "measured":
            verdict = f"not measured: {text(r.reason)}"
        elif r.slow:
            verdict = f"SLOW: {r.why_slow}"
        elif r.recheck is not None and r.recheck.status == "cleared":
            verdict = f"ok: flagged by the passes ({r.recheck.flagged_why}); {r.recheck.text}"
        elif pw.not_judged:  # its speed had nothing to be judged against: not "ok"
            verdict = "speed not judged (see the verdict)"
        if r.wrong:
            verdict = f"WRONG ({r.wrong} elements)" + ("" if verdict == "ok" else f"; {verdict}")
        if verdict not in ("ok", "speed not judged (see the verdict)"):
            table.highlight.add(len(table.rows))
        table.rows.append(
            [
                f"{labels.get(r.a, r.a)} - {labels.get(r.b, r.b)}",
                text(r.round),
                fmt_num(r.time_us),
                fmt_num(r.busbw_ab_gbps),
                fmt_num(r.busbw_ba_gbps),
                fmt_num(r.busbw_gbps),
                fmt_num(r.z),
                text(r.wrong),
                verdict,
            ]
        )
    return table


def per_rank_table(pw: Pairwise) -> TextTable:
    what = "node" if pw.per == "node" else "rank"
    table = TextTable(
        f"Per {what} (median over its pairs)",
        ["rank", "node", "pairs", "busbw GB/s", "time (us)", "slow pairs"],
        note="Median over the pairs the rank took part in of the pair's busbw and time.",
        numeric={2, 3, 4, 5},
    )
    judged = any(r.z_best is not None for r in pw.per_rank)
    if judged:
        # the rank rule (results from issue 25 on): its best pair against the pairs without it
        table.headers += ["best / without it", "z best", what]
        table.numeric |= {6, 7}
        table.note += (
            f" best / without it: its fastest pair's busbw over the median of the pairs without "
            f"it; z best: that pair's robust z over them; SLOW when every pair with the {what} "
            f"is slow (z best < -{fmt_num(pw.outlier_z)}, and on re-measure)."
        )
    for r in pw.per_rank:
        if r.slow_pairs or r.slow:
            table.highlight.add(len(table.rows))
        row = [
            str(r.rank),
            text(r.node),
            f"{r.pairs_measured} / {r.pairs}",
            fmt_num(r.busbw_gbps_median),
            fmt_num(r.time_us_median),
            text(r.slow_pairs),
        ]
        if judged:
            ratio = (
                r.best_busbw_gbps / r.others_median_gbps
                if r.best_busbw_gbps is not None and r.others_median_gbps
                else None
            )
            verdict = "not judged" if r.slow is None else ("SLOW" if r.slow else "ok")
            row += [fmt_num(ratio), fmt_num(r.z_best), verdict]
        table.rows.append(row)
    return table


def per_node_table(pw: Pairwise) -> TextTable:
    table = TextTable(
        "Per node (median over the pairs with a rank on it)",
        ["node", "ranks", "pairs", "busbw GB/s", "slow pairs"],
        numeric={2, 3, 4},
        wrap={1},
    )
    for r in pw.per_node:
        if r.slow_pairs:
            table.highlight.add(len(table.rows))
        table.rows.append(
            [
                text(r.node),
                ", ".join(str(x) for x in r.ranks),
                f"{r.pairs_measured} / {r.pairs}",
                fmt_num(r.busbw_gbps_median),
                text(r.slow_pairs),
            ]
        )
    return table


def pairwise_summary_rows(pw: Pairwise) -> list[list[str]]:
    """The workload and steps rows of a pairwise result's summary."""
    size = pw.size_bytes
    return [
        [
            "workload",
            f"pairwise link test: {text(pw.transport)} of "
            f"{format_size(size) if size else 'n/a'} each way between every pair of "
            f"{pw.per}s ({len(pw.participants)}), "
            f"{text(pw.rounds)} {text(pw.schedule)} rounds",
        ],
        ["batch", "n/a (a link test has no batch)"],
        [
            "steps",
            f"n/a; {text(pw.warmup_iters)} warm-up + {text(pw.iters)} timed "
            f"transfers each way per pair, {text(pw.passes)} pass(es)",
        ],
    ]


def _short(label: str) -> str:
    return label.removeprefix("rank ")


def _color(ratio: float) -> str:
    """Blend from vermillion (a quarter of the median or less) through near-white (the median)
    to blue (1.5x or more), on a log scale."""
    x = math.log2(max(ratio, 1e-9))
    lo, hi = math.log2(0.25), math.log2(1.5)
    if x <= 0:
        t = min(1.0, x / lo)
        return _mix(MID_COLOR, SLOW_COLOR, t)
    return _mix(MID_COLOR, FAST_COLOR, min(1.0, x / hi))


def _mix(a: str, b: str, t: float) -> str:
    ca = [int(a[i : i + 2], 16) for i in (1, 3, 5)]
    cb = [int(b[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02X}" for x, y in zip(ca, cb, strict=True))


def heatmap_plot(result: RunResult) -> Plot | None:
    """The busbw matrix as a heat map: colour = busbw / median of the pairs (log scale), slow
    pairs outlined, unmeasured cells hatched grey; above HEATMAP_MAX participants, the ones with
    the lowest median busbw (every one in a slow pair first), said in the caption.

    Reads the `pairwise` block: `participants`, `labels`, `matrix_gbps` ([i][j]: GB/s of i -> j),
    `slow_pairs`, `distribution.median`, `per_rank[].busbw_gbps_median`.
    """
    pw = result.pairwise
    if pw is None or not pw.matrix_gbps:
        return None
    who = list(pw.participants)
    labels = [str(x) for x in pw.labels]
    matrix = pw.matrix_gbps
    median = pw.distribution.median
    slow = {tuple(p) for p in pw.slow_pairs}
    index = list(range(len(who)))
    if len(who) > HEATMAP_MAX:
        medians = {r.rank: r.busbw_gbps_median for r in pw.per_rank}
        in_slow = {x for p in slow for x in p}
        index = sorted(
            index,
            key=lambda i: (who[i] not in in_slow, medians.get(who[i]) or math.inf),
        )[:HEATMAP_MAX]
        index.sort()
    n = len(index)
    cell = max(6, min(44, 520 // n))
    stops = (1.5, 1.25, 1.0, 0.75, 0.5, 0.25)
    title = "Pairwise bus bandwidth (row sends, column receives)"
    step = max(1, math.ceil(n / 32))
    chart = svg.Chart(
        "pairwise",
        title,
        0.0,
        float(n),
        "receiver",
        y_label="sender",
        x_ticks=[],
        x_grid=False,
        rows=[svg.Row(_short(labels[i]) if k % step == 0 else "") for k, i in enumerate(index)],
        legend=[("busbw / median:", "none", "box")]
        + [
            (f"{r:g}x" + (f" ({fmt_num(r * median)} GB/s)" if median else ""), _color(r), "box")
            for r in stops
        ]
        + [("slow pair", "#000000", "outline")],
        width=70 + n * cell + svg.MARGIN_RIGHT,
        margin_left=70,
        row_pitch=cell,
        bar_h=cell,
        first_row=14,
        bottom_extra=22,
    )
    for k, i in enumerate(index):
        if k % step == 0:
            chart.marks.append(
                svg.Label(k + 0.5, 0, _short(labels[i]), anchor="middle", dy=-(cell / 2 + 10))
            )
        for m, j in enumerate(index):
            if i == j:
                chart.marks.append(svg.Bar(k, m, m + 1, "#DDDDDD", f"{labels[i]} (itself)"))
                continue
            v = matrix[i][j]
            if v is None or not median:
                na = f"{labels[i]} -> {labels[j]}: n/a"
                chart.marks.append(svg.Bar(k, m, m + 1, "#BBBBBB", na))
                continue
            ratio = v / median
            pair = (min(who[i], who[j]), max(who[i], who[j]))
            tip = f"{labels[i]} -> {labels[j]}: {fmt_num(v)} GB/s ({ratio:.2f} x median)"
            if pair in slow:
                tip += ": SLOW pair"
            outline = "#000000" if pair in slow else ""
            chart.marks.append(svg.Bar(k, m, m + 1, _color(ratio), tip, outline=outline))
    shown = (
        f"the {n} of {len(who)} participants with the lowest median busbw (every one in a slow "
        "pair first)"
        if n < len(who)
        else f"all {n} participants"
    )
    caption = (
        f"Bus bandwidth of every direction between {shown}: colour = busbw / median of the "
        f"pairs ({fmt_num(median)} GB/s), log scale, vermillion below, blue above; slow pairs "
        "outlined in black; grey: not measured. Measured: send/recv, busbw = algbw (decimal "
        "GB/s); hover a cell for its value."
    )
    return Plot("pairwise", title, svg.render(chart), caption)
