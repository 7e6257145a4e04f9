"""Site references made from healthy results (`reference record`), and a run judged against one.

`record` reads a fleet of healthy results of one job on one platform (run results, collectives
results, node-check results) and makes a `site` reference (`analysis.references`): per metric and
conditions the median, its spread (the median absolute deviation, MAD) and how many results it
is from. Results of different platforms or jobs, or one that is not healthy, are refused: a
reference made from them would judge nothing.

`judge_run` gives a run's median step time, TFLOP/s and gradient all-reduce busbw a "% of
reference" and a verdict below the floor; without a reference for the run's platform every
figure is "not judged", with the reason.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from scipy.stats import median_abs_deviation

from minicluster.analysis import references
from minicluster.analysis.nodecheck import FORMAT as NODECHECK_FORMAT
from minicluster.analysis.nodecheck import genuinely_incomplete
from minicluster.analysis.verdicts import verdicts
from minicluster.core import metrics as registry
from minicluster.core.errors import InputError
from minicluster.result.model import RunResult

# What a training run is judged on: median step time, the job's TFLOP/s, the gradient
# all-reduce's busbw (metric registry names).
RUN_METRICS = ("latency_p50_ms", "achieved_tflops", "busbw_gbps")


def _platform_of_run(result: RunResult) -> dict[str, Any]:
    """The reference platform keys of a run result: the GPU model and count of its first node,
    else its CPU model (a CPU-only run is matched on the CPU)."""
    nodes = result.platform.nodes
    if not nodes:
        return {}
    node = nodes[0]
    if node.gpus:
        first = node.gpus[0]
        name = first.get("name") if isinstance(first, dict) else str(first)
        return {"gpu_model": name, "gpus_per_node": len(node.gpus)}
    return {"cpu_model": node.cpu} if node.cpu else {}


def platform_of(data: Mapping[str, Any]) -> dict[str, Any]:
    """The platform keys (`references.PLATFORM_KEYS`) of a result of any kind; {} when unknown."""
    if data.get("schema_version") == NODECHECK_FORMAT:
        p = data.get("platform") or {}
        if p.get("gpu_model"):
            return {"gpu_model": p["gpu_model"], "gpus_per_node": p.get("gpus_per_node")}
        return {"cpu_model": p["cpu_model"]} if p.get("cpu_model") else {}
    return _platform_of_run(RunResult.from_json(dict(data)))


def run_conditions(result: RunResult) -> dict[str, Any]:
    """What a training run's figures are measured under: its workload, world size and global
    batch (a figure of another job does not judge it)."""
    return {
        "workload": result.workload.name,
        "world_size": result.world_size,
        "global_batch": result.workload.global_batch,
    }


def _job_of(data: Mapping[str, Any]) -> tuple[Any, ...]:
    if data.get("schema_version") == NODECHECK_FORMAT:
        return ("node-check", data.get("level"))
    r = RunResult.from_json(dict(data))
    if r.kind == "collectives":
        c = r.collectives
        return ("collectives", r.world_size, tuple(c.ops) if c else (), c.dtype if c else None)
    return (r.kind, *run_conditions(r).values())


def _unhealthy(data: Mapping[str, Any]) -> str | None:
    """Why a result is not healthy (None when it is)."""
    if data.get("schema_version") == NODECHECK_FORMAT:
        verdict = data.get("verdict")
        if data.get("status") != "ok" or verdict not in ("ok", "incomplete"):
            return f"status {data.get('status')}, verdict {verdict}"
        # incomplete only because a device this node does not have was not checked (no GPU on
        # a CPU host, no InfiniBand, no DCGM): its measured figures are whole, it is healthy
        genuine = genuinely_incomplete(dict(data))
        if genuine:
            return "incomplete: " + "; ".join(f"{c['id']}: {c['reason']}" for c in genuine)
        return None
    r = RunResult.from_json(dict(data))
    if r.status != "ok":
        return f"status {r.status}"
    found = verdicts(r)
    return f"verdicts {', '.join(found)}" if found else None


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _samples(data: Mapping[str, Any]) -> list[tuple[str, str, str, dict[str, Any], float]]:
    """(metric, unit, direction, conditions, value) of every figure a healthy result measured."""
    out: list[tuple[str, str, str, dict[str, Any], float]] = []

    def add(metric: str, conditions: dict[str, Any], value: Any, unit: str | None = None) -> None:
        m = registry.get(metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            return
        direction = m.direction if m is not None and m.direction in ("higher", "lower") else None
        if direction is None:
            return
        out.append((metric, unit or (m.unit if m else ""), direction, conditions, float(value)))

    if data.get("schema_version") == NODECHECK_FORMAT:
        for c in data.get("checks") or []:
            if isinstance(c, dict) and c.get("metric"):
                add(c["metric"], dict(c.get("conditions") or {}), c.get("value"), c.get("unit"))
        return out
    r = RunResult.from_json(dict(data))
    if r.kind == "collectives" and r.collectives is not None:
        for row in r.collectives.results:
            cond = {
                "op": row.op,
                "size_bytes": row.size_bytes,
                "dtype": r.collectives.dtype,
                "world_size": r.world_size,
            }
            add("busbw_gbps", cond, row.busbw_gbps)
        return out
    cond = run_conditions(r)
    for metric in RUN_METRICS:
        add(metric, cond, r.metric_value(metric))
    return out


def record(
    results: Sequence[tuple[str, Mapping[str, Any]]], name: str, today: str | None = None
) -> references.Reference:
    """A site reference from `results` ((path, parsed JSON) each): per metric and conditions the
    median, MAD and count. InputError (one line) when a result is not healthy, or the results
    are of different platforms or jobs, or nothing was measured."""
    if not results:
        raise InputError("reference record needs at least one result")
    platforms, jobs = {}, {}
    seen: dict[str, str] = {}
    for path, data in results:
        run_id = data.get("run_id")
        if isinstance(run_id, str) and run_id:
            if run_id in seen:  # one run counted twice would weigh its figures double
                raise InputError(f"{path} is run {run_id}, given twice (also {seen[run_id]})")
            seen[run_id] = path
    for path, data in results:
        nodecheck = data.get("schema_version") == NODECHECK_FORMAT
        kind = None if nodecheck else RunResult.from_json(dict(data)).kind
        if kind not in (None, "run", "collectives"):
            raise InputError(
                f"{path} is {_article(str(kind))} {kind} result: {kind} results are not "
                "references (a reference is recorded from run, collectives or node-check results)"
            )
        why = _unhealthy(data)
        if why is not None:
            raise InputError(
                f"{path} is not a healthy result ({why}): a reference is made "
                "from healthy results only"
            )
        platforms[path] = platform_of(data)
        jobs[path] = _job_of(data)
    first = results[0][0]
    if not platforms[first]:
        raise InputError(f"{first} does not say its platform (GPU or CPU model)")
    for path, _ in results[1:]:
        if platforms[path] != platforms[first]:
            raise InputError(
                f"{path} is of another platform ({_shown(platforms[path])}) than {first} "
                f"({_shown(platforms[first])}): record one platform's results"
            )
        if jobs[path] != jobs[first]:
            raise InputError(
                f"{path} is of another job than {first} ({jobs[path]} vs {jobs[first]}): "
                "record one job's results"
            )
    groups: dict[tuple[str, str, str, tuple[tuple[str, Any], ...]], list[float]] = {}
    for _, data in results:
        for metric, unit, direction, cond, value in _samples(data):
            key = (metric, unit, direction, tuple(sorted(cond.items())))
            groups.setdefault(key, []).append(value)
    if not groups:
        raise InputError("the results measured nothing a reference holds")
    date = today or datetime.now(timezone.utc).date().isoformat()
    paths = [p for p, _ in results]
    source = f"site: {len(paths)} healthy results ({', '.join(paths)})"
    figures = tuple(
        references.Figure(
            metric,
            round(statistics.median(values), 6),
            unit,
            direction,  # type: ignore[arg-type]
            dict(cond),
            source,
            date,
            round(float(median_abs_deviation(values)), 6),
            len(values),
        )
        for (metric, unit, direction, cond), values in groups.items()
    )
    return references.Reference(
        name,
        "site",
        platforms[first],
        figures,
        f"recorded by `minicluster reference record` on {date} from {len(paths)} healthy "
        "results: median and MAD per metric",
    )


def _shown(platform: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in platform.items()) or "unknown"


def judge_run(
    result: RunResult, reference: references.Reference, floor_pct: float
) -> dict[str, Any]:
    """The `reference` section of a run result: each of RUN_METRICS as % of the reference figure
    for this platform and job, and the run's verdict (`below_floor` when any is below the floor,
    `ok` when any was judged, else `not_judged` with the reason)."""
    cond = run_conditions(result)
    samples = [(m, cond, result.metric_value(m)) for m in RUN_METRICS]
    return judge_samples(_platform_of_run(result), samples, reference, floor_pct)


def judge_result(
    data: Mapping[str, Any], reference: references.Reference, floor_pct: float
) -> dict[str, Any]:
    """`judge_run`'s section for a result of any kind (a node of a fleet): a run's RUN_METRICS; a
    node check's or a collectives result's every measured figure under its own conditions (the
    figures `record` makes a reference of)."""
    if data.get("schema_version") != NODECHECK_FORMAT:
        run = RunResult.from_json(dict(data))
        if run.kind == "run":
            return judge_run(run, reference, floor_pct)
    samples = [(m, cond, value) for m, _, _, cond, value in _samples(data)]
    return judge_samples(platform_of(data), samples, reference, floor_pct)


def judge_samples(
    platform: Mapping[str, Any],
    samples: Sequence[tuple[str, Mapping[str, Any], float | None]],
    reference: references.Reference,
    floor_pct: float,
) -> dict[str, Any]:
    """The `reference` section of figures measured on `platform` ((metric, conditions, value)
    each): each as % of the reference figure it meets, and the verdict (`below_floor` when any
    is below the floor, `ok` when any was judged, else `not_judged` with the reason)."""
    matched = reference if platform and reference.matches(platform) else None
    rows = [references.judge(matched, m, v, floor_pct, cond) for m, cond, v in samples]
    verdicts_ = [r["verdict"] for r in rows]
    if references.VERDICT_BELOW in verdicts_:
        verdict, reason = (
            references.VERDICT_BELOW,
            "; ".join(
                f"{r['metric']} {r['reason']}"
                for r in rows
                if r["verdict"] == references.VERDICT_BELOW
            ),
        )
    elif references.VERDICT_OK in verdicts_:
        verdict, reason = references.VERDICT_OK, None
    elif matched is None:
        verdict, reason = references.VERDICT_NOT_JUDGED, "no reference for this platform"
    elif not rows:
        verdict, reason = references.VERDICT_NOT_JUDGED, "nothing measured to judge"
    else:
        verdict = references.VERDICT_NOT_JUDGED
        conds = list(dict.fromkeys(_shown(cond) for _, cond, _ in samples))
        reason = f"reference {reference.name} has no figure for this job ({'; '.join(conds)})"
    return {
        "file": reference.path,
        "name": reference.name,
        "kind": reference.kind,
        "platform": dict(platform),
        "floor_pct": floor_pct,
        "verdict": verdict,
        "reason": reason,
        "metrics": [
            {
                "metric": r["metric"],
                "value": r["value"],
                "reference_value": r["reference_value"],
                "pct_of_reference": r["pct_of_reference"],
                "verdict": r["verdict"],
                "reason": r["reason"],
                "source": r["source"],
            }
            for r in rows
        ],
    }
