"""What a sweep's breakdown and projection add to a report, as text: one "why" line per world size
(where its lost step time went) and the projection's tables (estimated points, and the check
against the measured sizes). Every number comes from the result's `scaling` block."""

from __future__ import annotations

from typing import Any

from minicluster.report.text import TextTable, fmt_num, text

WHY_TITLE = "Where the efficiency went"
# Part key in a breakdown's loss -> its name in a sentence and in the plot legend.
PART_NAMES = {
    "exposed_comm": "exposed all-reduce",
    "straggler_wait": "straggler wait",
    "compute_growth": "compute growth",
    "remainder": "other",
}


def why_lines(result: dict[str, Any]) -> list[str]:
    """Per world size above the baseline: how much of the step was lost and to what (in points
    of the step), e.g. `2 ranks: 46% of the step lost: exposed all-reduce 38 pts, compute growth
    5 pts, other 3 pts`. Parts that round to 0 are left out, except `other` (the remainder)."""
    scaling = result.get("scaling")
    if not isinstance(scaling, dict):
        return []
    n0 = (scaling.get("baseline") or {}).get("world_size")
    lines = []
    for p in scaling.get("points") or []:
        b = p.get("breakdown")
        if not isinstance(b, dict) or p.get("world_size") == n0:
            continue
        head = f"{text(p.get('world_size'))} ranks"
        loss = b.get("loss")
        if b.get("status") != "derived" or not isinstance(loss, dict):
            lines.append(f"{head}: n/a ({text(b.get('reason'))})")
            continue
        pts = loss.get("parts_pts") or {}
        shown = [
            f"{name} {_pts(pts.get(key))}"
            for key, name in PART_NAMES.items()
            if key == "remainder" or _pts(pts.get(key)) not in ("0 pts", "-0 pts")
        ]
        lost = loss.get("lost_pct")
        if isinstance(lost, (int, float)) and lost < 0:
            head += f": {-lost:.0f}% of the step gained over the ideal"
        else:
            head += f": {_pct(lost)} of the step lost"
        line = f"{head}: {', '.join(shown)}"
        if b.get("oversubscribed"):
            line += f" (ranks shared cores: {text(b.get('placement'))})"
        lines.append(line)
    return lines


def why_note(result: dict[str, Any]) -> str:
    """How the why lines were derived (the sweep's own `breakdown_method`)."""
    scaling = result.get("scaling") or {}
    method = scaling.get("breakdown_method")
    return (
        "pts = points of the world size's mean step time; the parts add up to the lost time. "
        + text(method)
        if method
        else ""
    )


def projection_table(result: dict[str, Any]) -> TextTable | None:
    """The projected world sizes (status estimated), with the model, its parameters and inputs."""
    proj = (result.get("scaling") or {}).get("projection")
    if not isinstance(proj, dict):
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
            "note",
        ],
        note=_projection_note(proj),
        numeric={0, 2, 3, 4, 5, 6, 7},
        wrap={8},
    )
    if proj.get("status") != "estimated":
        table.rows.append(
            [", ".join(map(str, proj.get("world_sizes") or [])), "unavailable"]
            + ["n/a"] * 6
            + [text(proj.get("reason"))]
        )
        table.highlight.add(0)
        return table
    for p in proj.get("points") or []:
        table.rows.append(
            [
                text(p.get("world_size")),
                text(p.get("status")),
                fmt_num(p.get("step_time_ms")),
                fmt_num(p.get("throughput_samples_per_sec")),
                fmt_num(p.get("efficiency_pct")),
                fmt_num(p.get("allreduce_ms")),
                fmt_num(p.get("exposed_comm_ms")),
                fmt_num(p.get("compute_ms")),
                text(p.get("reason")) if p.get("reason") else "",
            ]
        )
    return table


def projection_check_table(result: dict[str, Any]) -> TextTable | None:
    """The projection against the measured sizes: predicted vs measured step time, error %."""
    proj = (result.get("scaling") or {}).get("projection")
    check = proj.get("check") if isinstance(proj, dict) else None
    if not isinstance(check, dict):
        return None
    table = TextTable(
        f"Projection check ({text(check.get('kind'))})",
        [
            "world size",
            "fitted on",
            "reference",
            "predicted ms",
            "measured ms",
            "error %",
            "note",
        ],
        note=f"{text(check.get('method'))}. {check_summary(check)}",
        numeric={0, 2, 3, 4, 5},
        wrap={1, 6},
    )
    for e in check.get("entries") or []:
        notes = list(e.get("notes") or [])
        if e.get("reason"):
            notes.insert(0, str(e["reason"]))
        if e.get("oversubscribed"):
            table.highlight.add(len(table.rows))
        table.rows.append(
            [
                text(e.get("world_size")),
                ", ".join(map(str, e.get("fit_sizes") or [])),
                text(e.get("reference_world_size")),
                fmt_num(e.get("predicted_step_time_ms")),
                fmt_num(e.get("measured_step_time_ms")),
                fmt_num(e.get("error_pct")),
                "; ".join(notes),
            ]
        )
    return table


def check_summary(check: dict[str, Any]) -> str:
    """One sentence: the error at the largest measured size and the worst error."""
    entries = check.get("entries") or []
    largest = max(entries, key=lambda e: e.get("world_size") or 0, default=None)
    parts = []
    if largest is not None and largest.get("error_pct") is not None:
        parts.append(
            f"Error at the largest measured size {text(largest.get('world_size'))} (fitted on "
            f"{', '.join(map(str, largest.get('fit_sizes') or []))}): "
            f"{fmt_num(largest['error_pct'])}%"
            + (" (its ranks shared CPU cores)" if largest.get("oversubscribed") else "")
        )
    if len(entries) > 1 and check.get("max_abs_error_pct") is not None:
        parts.append(f"largest |error| {fmt_num(check['max_abs_error_pct'])}%")
        own = check.get("max_abs_error_pct_own_cores")
        if own != check["max_abs_error_pct"]:
            parts.append(f"{fmt_num(own)}% at the sizes whose ranks had their own cores")
    return "; ".join(parts) + "." if parts else ""


def _projection_note(proj: dict[str, Any]) -> str:
    model = proj.get("link") or {}
    parts = [text(proj.get("method"))]
    if model.get("formula"):
        parts.append(f"A(N) per bucket: {model['formula']}.")
    for name, link in (("intra-node link", model.get("intra_node")), ("link", model.get("link"))):
        if not isinstance(link, dict):
            continue
        if model.get("intra_node") and name == "link":
            name = "inter-node link"
        fitted = link.get("fit") or {}
        fit = (
            f", fit rms relative residual {fmt_num(fitted.get('rms_relative_residual_pct'))}% "
            f"({fitted.get('method')})"
            if fitted
            else ""
        )
        parts.append(
            f"{name.capitalize()}: alpha {fmt_num(link.get('alpha_us'))} us, beta "
            f"{fmt_num(link.get('beta_gbps'))} GB/s, {text(link.get('source'))}{fit}."
        )
    if model.get("ranks_per_node"):
        parts.append(f"{model['ranks_per_node']} ranks per node.")
    inputs = proj.get("inputs")
    if isinstance(inputs, dict):
        parts.append(
            f"Inputs from world size R = {text(inputs.get('reference_world_size'))}: per-rank "
            f"compute {fmt_num(inputs.get('per_rank_compute_ms'))} ms, straggler wait "
            f"{fmt_num(inputs.get('straggler_wait_ms'))} ms, other "
            f"{fmt_num(inputs.get('other_ms'))} ms, exposed fraction f = "
            f"{fmt_num(inputs.get('exposed_fraction'))}, {_count(inputs.get('comm_bytes'))} "
            f"gradient bytes in {_count(inputs.get('buckets'))} bucket(s) per step; baseline mean "
            "step "
            f"{fmt_num(inputs.get('baseline_step_time_ms'))} ms at world size "
            f"{text(inputs.get('baseline_world_size'))}."
        )
        parts += [f"Note: {n}." for n in inputs.get("notes") or []]
    return " ".join(parts)


def _count(v: Any) -> str:
    """A per-step count (bytes, buckets; a mean over steps, so possibly fractional)."""
    return f"{v:,.4g}" if isinstance(v, float) and v != int(v) else fmt_num(int(v)) if v else "n/a"


def _pts(v: Any) -> str:
    return f"{v:.0f} pts" if isinstance(v, (int, float)) else "n/a pts"


def _pct(v: Any) -> str:
    return f"{v:.0f}%" if isinstance(v, (int, float)) else "n/a"
