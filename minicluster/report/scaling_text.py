"""What a sweep's breakdown and projection add to a report, as text: one "why" line per world size
(where its lost step time went) and the projection's tables (estimated points, and the check
against the measured sizes). Every number comes from the result's `scaling` block."""

from __future__ import annotations

from typing import Any

from minicluster.report.text import TextTable, fmt_num, text
from minicluster.result.model import Projection, ProjectionCheck, RunResult

WHY_TITLE = "Where the efficiency went"
# Part key in a breakdown's loss -> its name in a sentence and in the plot legend.
PART_NAMES = {
    "exposed_comm": "exposed all-reduce",
    "straggler_wait": "straggler wait",
    "jitter_wait": "per-step jitter wait",
    "compute_growth": "compute growth",
    "remainder": "other",
}


def why_lines(result: RunResult) -> list[str]:
    """Per world size above the baseline: how much of the step was lost and to what (in points
    of the step), e.g. `2 ranks: 46% of the step lost: exposed all-reduce 38 pts, compute growth
    5 pts, other 3 pts`. Parts that round to 0 are left out, except `other` (the remainder)."""
    scaling = result.scaling
    if scaling is None:
        return []
    n0 = scaling.baseline.world_size
    lines = []
    for p in scaling.points:
        b = p.breakdown
        if b is None or p.world_size == n0:
            continue
        head = f"{text(p.world_size)} ranks"
        loss = b.loss
        if b.status != "derived" or loss is None:
            lines.append(f"{head}: n/a ({text(b.reason)})")
            continue
        pts = loss.parts_pts
        shown = [
            f"{name} {_pts(pts.get(key))}"
            for key, name in PART_NAMES.items()
            if key in pts and (key == "remainder" or _pts(pts.get(key)) not in ("0 pts", "-0 pts"))
        ]
        lost = loss.lost_pct
        if isinstance(lost, (int, float)) and lost < 0:
            head += f": {-lost:.0f}% of the step gained over the ideal"
        else:
            head += f": {_pct(lost)} of the step lost"
        line = f"{head}: {', '.join(shown)}"
        if b.oversubscribed:
            line += f" (ranks shared cores: {text(b.placement)})"
        lines.append(line)
    return lines


def why_note(result: RunResult) -> str:
    """How the why lines were derived (the sweep's own `breakdown_method`)."""
    method = result.scaling.breakdown_method if result.scaling is not None else None
    return (
        "pts = points of the world size's mean step time; the parts add up to the lost time. "
        + text(method)
        if method
        else ""
    )


def projection_table(result: RunResult) -> TextTable | None:
    """The projected world sizes (status estimated), with the model, its parameters and inputs."""
    proj = result.scaling.projection if result.scaling is not None else None
    if proj is None:
        return None
    table = TextTable(
        "Projection (estimated)",
        [
            "world size",
            "status",
            "step time ms",
            "samples/s",
            "efficiency %",
            "all-reduce ms",
            "exposed ms",
            "compute ms",
            "fit error %",
            "note",
        ],
        note=_refusals(proj) + _projection_note(proj),
        numeric={0, 2, 3, 4, 5, 6, 7, 8},
        wrap={9},
    )
    if proj.status != "estimated":
        table.rows.append(
            [", ".join(map(str, proj.world_sizes)), "unavailable"]
            + ["n/a"] * 6
            + [_fit_error(proj.fit_error_pct), text(proj.reason)]
        )
        table.highlight.add(0)
        return table
    for p in proj.points:
        table.rows.append(
            [
                text(p.world_size),
                text(p.status),
                fmt_num(p.step_time_ms),
                fmt_num(p.throughput_samples_per_sec),
                fmt_num(p.efficiency_pct),
                fmt_num(p.allreduce_ms),
                fmt_num(p.exposed_comm_ms),
                fmt_num(p.compute_ms),
                _fit_error(p.fit_error_pct),
                text(p.reason) if p.reason else "",
            ]
        )
    return table


def _refusals(proj: Projection) -> str:
    """The sizes the projection refused and why, first in the note (the terminal may leave the
    note column out for its width)."""
    refused = [p for p in proj.points if p.status == "unavailable" and p.reason]
    if proj.status != "estimated" or not refused:
        return ""
    return (
        "Not projected: " + "; ".join(f"{p.world_size}: {text(p.reason)}" for p in refused) + ". "
    )


def _fit_error(pct: float | None) -> str:
    """The projection's fit error as a +- band (a result from before it was recorded: n/a)."""
    return f"±{fmt_num(pct)}" if pct is not None else "n/a"


def projection_check_table(result: RunResult) -> TextTable | None:
    """The projection against the measured sizes: predicted vs measured step time, error %."""
    proj = result.scaling.projection if result.scaling is not None else None
    check = proj.check if proj is not None else None
    if check is None:
        return None
    table = TextTable(
        f"Projection check ({text(check.kind)})",
        [
            "world size",
            "fitted on",
            "reference",
            "predicted ms",
            "measured ms",
            "error %",
            "note",
        ],
        note=f"{text(check.method)}. {check_summary(check)}",
        numeric={0, 2, 3, 4, 5},
        wrap={1, 6},
    )
    for e in check.entries:
        notes = list(e.notes)
        if e.reason:
            notes.insert(0, str(e.reason))
        if e.oversubscribed:
            table.highlight.add(len(table.rows))
        table.rows.append(
            [
                text(e.world_size),
                ", ".join(map(str, e.fit_sizes)),
                text(e.reference_world_size),
                fmt_num(e.predicted_step_time_ms),
                fmt_num(e.measured_step_time_ms),
                fmt_num(e.error_pct),
                "; ".join(notes),
            ]
        )
    return table


def check_summary(check: ProjectionCheck) -> str:
    """One sentence: the error at the largest measured size and the worst error."""
    entries = check.entries
    largest = max(entries, key=lambda e: e.world_size or 0, default=None)
    parts = []
    if largest is not None and largest.error_pct is not None:
        parts.append(
            f"Error at the largest measured size {text(largest.world_size)} (fitted on "
            f"{', '.join(map(str, largest.fit_sizes))}): "
            f"{fmt_num(largest.error_pct)}%"
            + (" (its ranks shared CPU cores)" if largest.oversubscribed else "")
        )
    if len(entries) > 1 and check.max_abs_error_pct is not None:
        parts.append(f"largest |error| {fmt_num(check.max_abs_error_pct)}%")
        own = check.max_abs_error_pct_own_cores
        if own != check.max_abs_error_pct:
            parts.append(f"{fmt_num(own)}% at the sizes whose ranks had their own cores")
    return "; ".join(parts) + "." if parts else ""


def _projection_note(proj: Projection) -> str:
    model = proj.link
    parts = [text(proj.method)]
    if proj.fit_on:
        parts.append(
            f"Fit error = the largest |error| of the check below; fitted on {text(proj.fit_on)}."
        )
    if model is not None and model.formula:
        parts.append(f"A(N) per bucket: {model.formula}.")
    links = (("intra-node link", model.intra_node), ("link", model.link)) if model else ()
    for name, link in links:
        if link is None:
            continue
        if model is not None and model.intra_node and name == "link":
            name = "inter-node link"
        fitted = link.fit
        fit = (
            f", fit rms relative residual {fmt_num(fitted.rms_relative_residual_pct)}% "
            f"({fitted.method})"
            if fitted is not None and fitted.to_json()
            else ""
        )
        parts.append(
            f"{name.capitalize()}: alpha {fmt_num(link.alpha_us)} us, beta "
            f"{fmt_num(link.beta_gbps)} GB/s, {text(link.source)}{fit}."
        )
    if model is not None and model.ranks_per_node:
        parts.append(f"{model.ranks_per_node} ranks per node.")
    inputs = proj.inputs
    if inputs is not None:
        parts.append(
            f"Inputs from world size R = {text(inputs.reference_world_size)}: per-rank "
            f"compute {fmt_num(inputs.per_rank_compute_ms)} ms, straggler wait "
            f"{fmt_num(inputs.straggler_wait_ms)} ms, other "
            f"{fmt_num(inputs.other_ms)} ms, exposed fraction f = "
            f"{fmt_num(inputs.exposed_fraction)}, {_count(inputs.comm_bytes)} "
            f"gradient bytes in {_count(inputs.buckets)} bucket(s) per step; baseline mean "
            "step "
            f"{fmt_num(inputs.baseline_step_time_ms)} ms at world size "
            f"{text(inputs.baseline_world_size)}."
        )
        parts += [f"Note: {n}." for n in inputs.notes]
    return " ".join(parts)


def _count(v: Any) -> str:
    """A per-step count (bytes, buckets; a mean over steps, so possibly fractional)."""
    return f"{v:,.4g}" if isinstance(v, float) and v != int(v) else fmt_num(int(v)) if v else "n/a"


def _pts(v: Any) -> str:
    return f"{v:.0f} pts" if isinstance(v, (int, float)) else "n/a pts"


def _pct(v: Any) -> str:
    return f"{v:.0f}%" if isinstance(v, (int, float)) else "n/a"
