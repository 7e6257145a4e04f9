"""A sweep over layouts at one world size (`sweep --layouts`): one row per layout, side by side.

Every figure is the run's own, read from its `result.json` (nothing re-measured here): the
median step time (`latency_p50_ms`, per step the max over ranks), achieved TFLOP/s, the exposed
communication per collective kind (`comm.kinds[].exposed_ms`: per step the max over ranks, median
over steps), the pipeline bubble (`pipeline.bubble_pct`) and memory (peak RSS or device memory;
parameters, gradients and optimizer state of the rank holding the most). A figure the run could
not measure is None with the run's reason, never filled in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from minicluster.core import rundir
from minicluster.core.comm_kinds import KINDS
from minicluster.core.errors import InputError

KIND = "layout_sweep"  # `layouts.json`'s `kind`: a layout sweep
# `validate --layouts`' layouts.json (before it had a kind: none, with `runs` and `reference`)
VALIDATION_KIND = "layout_validation"


def layouts_path(sweep_dir: Path) -> Path:
    return sweep_dir / rundir.LAYOUTS_FILE


def read_layout_sweep(sweep_dir: Path) -> dict[str, Any] | None:
    """The layout sweep's `layouts.json` in `sweep_dir`, or None when it holds none (a validate
    --layouts directory has one too, without `kind`: None)."""
    path = layouts_path(sweep_dir)
    if not sweep_dir.is_dir() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise InputError(f"{path} is not JSON") from None
    return data if isinstance(data, dict) and data.get("kind") == KIND else None


def read_layout_validation(run_dir: Path) -> dict[str, Any] | None:
    """`validate --layouts`' `layouts.json` in `run_dir`, or None when it holds none."""
    path = layouts_path(run_dir)
    if not run_dir.is_dir() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise InputError(f"{path} is not JSON") from None
    if not isinstance(data, dict):
        return None
    if data.get("kind") == VALIDATION_KIND or ("kind" not in data and "runs" in data):
        return data
    return None


def validation_lines(data: dict[str, Any]) -> list[str]:
    """The verdict of a `validate --layouts` directory, then one line per layout."""
    passed = data.get("passed")
    verdict = "PASS" if passed is True else "FAIL" if passed is False else "NOT JUDGED"
    why = data.get("reason")
    lines = [
        f"validate --layouts {data.get('run_id')}: {verdict}"
        + (f": {why}" if why else "")
        + f" (losses against {data.get('reference')}, relative tolerance "
        f"{data.get('rel_tolerance')}, {data.get('precision')})"
    ]
    for run in data.get("runs") or []:
        div = run.get("divergence")
        said = (
            "no losses recorded"
            if not run.get("losses")
            else f"diverges at step {div['step']} ({div['loss']} vs {div['reference']})"
            if div
            else "reference"
            if run.get("layout") == data.get("reference")
            else "agrees"
        )
        lines.append(
            f"  {run.get('layout')} ({run.get('label')}): {run.get('status')}, "
            f"{len(run.get('losses') or [])} steps, {said}; run: {run.get('dir')}"
        )
    return lines


def _metric(result: dict[str, Any], name: str) -> tuple[float | None, str | None]:
    m = (result.get("metrics") or {}).get(name) or {}
    return m.get("value"), m.get("reason")


def row(
    name: str, label: str, run_dir: str, result: dict[str, Any] | None, why: str | None
) -> dict[str, Any]:
    """One layout's row from its run's result (None: the run left none, `why` says why)."""
    out: dict[str, Any] = {"layout": name, "label": label, "dir": run_dir}
    if result is None:
        return {**out, "status": "failed", "reason": why}
    step, step_why = _metric(result, "latency_p50_ms")
    tflops, tflops_why = _metric(result, "achieved_tflops")
    exposed, exposed_why = _metric(result, "exposed_comm_ms")
    peak, peak_why = _metric(result, "memory_peak_mib")
    kinds = {
        k["kind"]: {"exposed_ms": k.get("exposed_ms"), "reason": k.get("reason")}
        for k in ((result.get("comm") or {}).get("kinds") or [])
    }
    pipe = result.get("pipeline") or {}
    state: dict[str, int | None] = {}
    for key in ("params_bytes", "grads_bytes", "optimizer_bytes"):
        values: list[int] = [
            v
            for r in result.get("ranks") or []
            if (v := (r.get("memory") or {}).get(key)) is not None
        ]
        state[key] = max(values) if values else None
    return {
        **out,
        "status": result.get("status"),
        "reason": why,
        "layout_name": (result.get("layout") or {}).get("name"),
        "step_time_ms": step,
        "step_time_reason": step_why,
        "achieved_tflops": tflops,
        "achieved_tflops_reason": tflops_why,
        "exposed_comm_ms": exposed,
        "exposed_comm_reason": exposed_why,
        "exposed_ms_by_kind": kinds,
        "bubble_pct": pipe.get("bubble_pct"),
        "bubble_pct_theory": pipe.get("bubble_pct_theory"),
        "memory_peak_mib": peak,
        "memory_peak_reason": peak_why,
        "max_rank_state_bytes": state,
    }


def _num(value: Any, fmt: str = ".3g") -> str:
    return "-" if value is None else format(value, fmt)


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The side-by-side table (Markdown): one row per layout; '-' where a figure is not
    measured or does not apply (the reason is in layouts.json)."""
    kinds = [k for k in KINDS if any(k in (r.get("exposed_ms_by_kind") or {}) for r in rows)]
    head = [
        "layout",
        "status",
        "step ms (p50)",
        "TFLOP/s",
        "exposed comm ms",
        *[f"exposed {k} ms" for k in kinds],
        "bubble % (theory)",
        "peak MiB",
        "params+grads+optim MiB (max rank)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        by_kind = r.get("exposed_ms_by_kind") or {}
        bubble = r.get("bubble_pct")
        bubble_text = (
            "-" if bubble is None else f"{bubble:.3g} ({_num(r.get('bubble_pct_theory'))})"
        )
        state = r.get("max_rank_state_bytes") or {}
        state_values = [state.get(k) for k in ("params_bytes", "grads_bytes", "optimizer_bytes")]
        state_mib = (
            None if any(v is None for v in state_values) else sum(state_values) / 2**20  # type: ignore[arg-type]
        )
        cells = [
            r["label"],
            str(r.get("status")),
            _num(r.get("step_time_ms"), ".4g"),
            _num(r.get("achieved_tflops")),
            _num(r.get("exposed_comm_ms")),
            *[_num((by_kind.get(k) or {}).get("exposed_ms")) for k in kinds],
            bubble_text,
            _num(r.get("memory_peak_mib"), ".4g"),
            _num(state_mib),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
