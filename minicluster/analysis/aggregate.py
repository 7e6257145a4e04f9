"""Merge per-rank records into one canonical result (`minicluster/1`). Never imports torch.

Input is each rank's records: gathered in-band on rank 0, or read back from `DIR/ranks/` (also
for a broken run, where some ranks left no summary), and what the launcher said (`Launch`).
`aggregate` is a pipeline of named steps: the run frame (`analysis.frame`: world, fates, the
status rule), the step table, the per-rank figures, the metrics, the findings (stragglers,
faults, the link, lost nodes: judged by the `checks` thresholds), the result assembled, and
its fingerprint (`result.fingerprint`: what ran, not the thresholds that judged it) attached. A
collectives run (header `job: collectives`) is merged by `analysis.collectives` (the pairwise
link test by `analysis.pairwise`) from the same frame, in the same envelope.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from minicluster.analysis import (
    accounting,
    contention,
    cost,
    energy,
    envelope,
    fault_detect,
    flops,
    host_cpu,
    incident,
    nodes,
    rank_status,
    time_shape,
    waited,
)
from minicluster.analysis.comm_kinds import comm_section
from minicluster.analysis.frame import Launch, RunFrame
from minicluster.analysis.pipeline import pipeline_section
from minicluster.analysis.records import RankRecords
from minicluster.analysis.run_metrics import (
    telemetry_sources,
    timing_method,
    timing_method_text,
    training_metrics,
)
from minicluster.analysis.steps import JobSteps, StepTable, stats
from minicluster.analysis.stragglers import find_stragglers, not_judged_reason
from minicluster.core.checks import ChecksSection
from minicluster.core.errors import ConfigError
from minicluster.core.forked import Forked, second_core
from minicluster.core.layout import Layout
from minicluster.core.metrics import MetricValue
from minicluster.core.units import format_ranks
from minicluster.result import fingerprint
from minicluster.result.model import FaultKind

# Step fields aggregation never reads: `read_run_dir(..., drop=UNREAD_STEP_FIELDS)` leaves them
# out (a third of the memory of a 4,096-rank run). Every other field, one added later included,
# is kept; a field added to this list must not be read by aggregation (tests/analysis/
# test_step_fields.py compares the result with and without them).
# `main_cpu_ms` (rank format 1.8): the loop thread's CPU time is recorded, not judged (the host
# CPU contention rule takes every thread's CPU time, and the loop thread's wait).
UNREAD_STEP_FIELDS = ("loss", "main_cpu_ms")
# Step fields aggregation reads the last value of only (the failure order's time of a rank's last
# record): `read_run_dir(..., last_only=LAST_ONLY_STEP_FIELDS)` holds that value instead of the
# column (131 MB at 16,384 x 1,000); tests/analysis/test_step_fields.py compares the results.
LAST_ONLY_STEP_FIELDS = ("t_unix_s",)
# ranks from which a second core makes the accounting (`_accounting_child`): below, the fork
# costs more than it saves (and tests aggregate many small runs). Up to SPLIT_MAX_RANKS only:
# the child's matrices are held beside the parent's (at 4,096 ranks the two processes' RSS sum
# to 0.79 GB against one process's 0.54), and 16,384 ranks' 2 GB target was not measured so
SPLIT_MIN_RANKS = 1024
SPLIT_MAX_RANKS = 8192
SPLIT_WAIT_S = 60.0  # the longest wait for its next message (plus this much a rank)
SPLIT_WAIT_PER_RANK_S = 0.01


def aggregate(
    records: list[RankRecords],
    launch: Launch | None = None,
    checks: ChecksSection | None = None,
    aggregated_at: str | None = None,
    flight_recorder: dict[str, Any] | None = None,
    table: JobSteps | None = None,
    consume: bool = False,
) -> dict[str, Any]:
    """The canonical result from all ranks' records (`aggregated_at` fixed for golden tests).

    `launch`: what the launcher said (its error, the ranks' exit codes, whether the user or a
    scheduler interrupted the run: the ranks it stopped are `interrupted`, not failed, and no
    crash or hang is claimed for them). `checks`: the verdict thresholds (None: the ones the
    ranks ran with, from their header). `flight_recorder`: the diagnosis of the run's Flight
    Recorder dumps (`analysis.flight_recorder.diagnose`), when it left any: the incident class
    of a hang is read from it first. `table`: the job's steps when they were reduced
    elsewhere (`analysis.node_reduce`; `records` then hold lean records), None: from `records`.
    `consume`: the caller reads `records` no more (`aggregate DIR`): step fields are let go of
    once their last reader has read them (`accounting.HOST_FIELDS` after the accounting, 262 MB
    at 16,384 x 1,000 steps).
    InputError when no rank wrote a header.
    """
    frame = RunFrame.from_records(records, launch)
    checks = checks if checks is not None else frame.config.checks
    if frame.job == "collectives":
        # imported here: a training run's aggregate does not load them (their modules, and
        # group testing's, were 20 ms of its start)
        from minicluster.analysis.collectives import collectives_result
        from minicluster.analysis.isolate import isolate_result
        from minicluster.analysis.pairwise import pairwise_result

        pattern = frame.config.collectives.pattern
        merge = {"pairwise": pairwise_result, "isolate": isolate_result}.get(
            pattern, collectives_result
        )
        return fingerprint.attach(merge(frame, aggregated_at))
    table = table if table is not None else StepTable(records, frame.world_size)
    measured = [table.measured_steps(r) for r in range(table.world_size)]  # each rank's count
    status = frame.status(_short_of_plan(frame, measured))
    with _accounting_child(frame, table, checks) as child:
        figures = _figures(frame, table)
        metrics = _metrics(frame, figures)
        waits = _waited(table, figures)
        costed = _costs(frame, table, checks, waits, child)
        findings = _findings(
            frame, table, figures, metrics, checks, status.interrupted, waits, costed
        )
        result = _assemble(frame, status, table, figures, metrics, findings, aggregated_at)
        beyond = _beyond_plan(frame, measured)
        if beyond is not None:
            result["errors"].append(beyond)
        culprits = _culprits(frame, table, result["ranks"], checks, costed, consume, child)
    busy = [*findings.contention, *culprits.pop("contention")]
    result.update({k: v for k, v in culprits.items() if v is not None})
    if busy:  # a late rank or a slow link that was the host's other processes' doing
        result["host_contention"] = busy
        result["contention_rule"] = contention.rule_text(
            checks.contention_share_pct, checks.contention_slow_link_pct
        )
    load = host_cpu.host_cpu(table.records, table.indices)
    if load is not None:  # the host's CPU load, for compare and history check
        result["host_cpu"] = load
    short = not_judged_reason(table)
    if short is not None:  # too few steps to name a straggler: never a plain ok
        result["not_judged"] = short
    found = incident.classify(result, flight_recorder)
    if found is not None:  # a healthy run has none: absent, as in results before it
        result["incident"] = found
    return fingerprint.attach(result)  # what ran, never what judged it: checks stay out


def _short_of_plan(frame: RunFrame, measured: list[int]) -> str | None:
    """Why the run measured fewer steps than its config planned, or None; `measured`: each
    rank's measured steps, by rank."""
    planned = frame.config.steps.measured
    if min(measured) >= planned:
        return None
    return f"fewer measured steps than planned ({min(measured)} < {planned})"


def _beyond_plan(frame: RunFrame, measured: list[int]) -> str | None:
    """What to say when a rank holds more measured steps than its config planned (a rank stops
    at its plan: a journal written to after the run), or None."""
    planned = frame.config.steps.measured
    over = [r for r, n in enumerate(measured) if n > planned]
    if not over:
        return None
    most = max(measured[r] for r in over)
    return (
        f"rank{'s' if len(over) > 1 else ''} {format_ranks(over)} recorded more measured steps "
        f"than planned ({most} > {planned}): a rank stops at its plan, so its journal was "
        "written to after the run; the figures count every step"
    )


@dataclass
class _Figures:
    """Per rank its `ranks[]` entry (figures, node, relative score), and the run's per-step
    cross-rank series."""

    ranks: list[dict[str, Any]]
    compute: dict[int, float | None]  # each rank's median compute ms
    series: dict[str, np.ndarray]
    ray_nodes: dict[int, str]


def _figures(frame: RunFrame, table: JobSteps) -> _Figures:
    figures = table.rank_figures()
    ray_nodes = nodes.ray_node_ids(frame.records)
    ranks = [
        _rank_entry(
            rank,
            frame.by_rank.get(rank),
            table,
            figures.get(rank),
            frame.fates.status[rank],
            frame.where[rank],
        )
        | {"ray_node_id": ray_nodes.get(rank)}
        for rank in range(frame.world_size)
    ]
    share = data_ranks(frame) / frame.world_size
    for entry in ranks:
        tflops = flops.rank_tflops(frame.head0, (entry["step_time_ms"] or {}).get("p50"), share)
        if tflops is not None:
            entry["achieved_tflops"] = tflops
    compute = {r["rank"]: r["compute_ms_median"] for r in ranks}
    scores = nodes.rank_scores(compute)
    for entry in ranks:
        entry["performance_score"] = scores[entry["rank"]]
    return _Figures(ranks, compute, table.series(frame.world_size), ray_nodes)


def data_ranks(frame: RunFrame) -> int:
    """Ranks that train on a batch of their own: the world size over the tensor- and
    pipeline-parallel degrees (their ranks share one batch)."""
    lay = _layout(frame)
    if lay is None or frame.config.run.fixed_global_batch:
        return frame.world_size  # every rank's share of the data is trained, by someone
    return frame.world_size // (lay.tp * lay.pp)


def _replica_groups(frame: RunFrame) -> list[list[int]] | None:
    """The ranks that hold the same state (None: every rank, as under DDP)."""
    lay = _layout(frame)
    return lay.replica_groups() if lay is not None else None


def _layout(frame: RunFrame) -> Layout | None:
    try:
        return frame.config.parallel.layout(frame.world_size)
    except ConfigError:  # a run whose ranks never agreed with their config: no layout to name
        return None


def _metrics(frame: RunFrame, figures: _Figures) -> dict[str, MetricValue]:
    workload = frame.head0["workload"]
    metrics = training_metrics(
        figures.series,
        frame.headers,
        frame.by_rank,
        frame.world_size,
        workload["per_rank_batch"],
        workload.get("tokens_per_rank"),
        data_ranks(frame),
    )
    step_max = figures.series["step_time_ms"] if figures.series else np.array([])
    return metrics | flops.run_flops(
        frame.head0, frame.headers, step_max, frame.world_size, data_ranks(frame)
    )


def _waited(table: JobSteps, figures: _Figures) -> waited.WaitedFor:
    """How long the others waited for each rank (`analysis.waited`), against the run's median
    step time (the slowest rank's, per step)."""
    return waited.measure_table(
        table, figures.series.get("step_time_ms") if figures.series else None
    )


@dataclass
class _Findings:
    """What the run is judged to have: stragglers, detected faults (lost nodes and a slow link
    among them), the link verdict, the per-node section, and the error lines they add."""

    stragglers: list[dict[str, Any]]
    detected: list[dict[str, Any]]
    link: dict[str, Any]
    node_section: list[dict[str, Any]]
    errors: list[str]
    # stragglers and a slow link not named: host CPU contention (`analysis.contention`)
    contention: list[dict[str, Any]]


def _findings(
    frame: RunFrame,
    table: JobSteps,
    figures: _Figures,
    metrics: dict[str, MetricValue],
    checks: ChecksSection,
    interrupted: bool,
    waits: waited.WaitedFor,
    costed: _Costs,
) -> _Findings:
    fates = frame.fates
    stragglers = find_stragglers(
        table,
        checks.straggler_threshold_pct,
        checks.straggler_min_excess_ms,
        checks.straggler_min_steps_pct,
        waited=waits,
        min_waited_pct=checks.min_waited_for_pct,
    )
    # each step's CPU time and wait, [rank x step], made only when there is something to judge
    # by them (two matrices of 131 MB at 16,384 x 1,000)
    cpu = (
        contention.cpu_steps(table.records, sorted(r.rank for r in table.records), table.indices)
        if stragglers or checks.expect_busbw_gbps is not None
        else None
    )
    busy: list[dict[str, Any]] = []
    stragglers, cleared = contention.gate_stragglers(stragglers, table.records, cpu, checks)
    # one rank, one cause: a rank NOT JUDGED in one role (culprit, straggler) is not named in the
    # other
    stragglers = contention.one_cause(stragglers, cleared, costed.costs, costed.cleared)
    for rank, ev in cleared.items():  # slow because its threads waited for a CPU
        entry = _entry(frame, "straggler", rank, ev)
        entry["text"] = contention.rank_line("straggler", rank, ev, _host_of(frame, rank))
        busy.append(entry)
    node_section = nodes.nodes_section(
        frame.where,
        table,
        figures.compute,
        missing=fates.of(rank_status.MISSING),
        failed=fates.failed,
        stragglers=[s["rank"] for s in stragglers],
        aborted=fates.of(rank_status.ABORTED),
        ray_nodes=figures.ray_nodes,
    )
    lay = _layout(frame)
    if lay is not None and not lay.is_ddp:  # per collective kind, from each call's wait-free time
        link = fault_detect.layout_link_check(frame.records, checks, frame.world_size)
    else:
        busbw = metrics.get("busbw_gbps")
        link = fault_detect.link_check(
            busbw.to_dict() if busbw else {"value": None, "reason": "no measured steps"},
            checks,
            frame.world_size,
            figures.series.get("busbw_gbps") if figures.series else None,
        )
    if link.get("slow") and frame.head0.get("backend") == "gloo":
        transfer = figures.series.get("allreduce_transfer_ms") if figures.series else None
        _link_contended(link, table, cpu, checks, frame, busy, transfer)
    detected = fault_detect.detect(
        frame.records, stragglers, frame.failure_order, _replica_groups(frame)
    )
    stopped = set(fates.of(rank_status.INTERRUPTED, rank_status.ABORTED))
    if interrupted:  # ranks the interrupt stopped neither crashed nor hung
        detected = [
            d for d in detected if not FaultKind.of(d["kind"]).death or d["rank"] not in stopped
        ]
    lost = (
        []
        if interrupted
        else nodes.lost_nodes(node_section, frame.records, frame.multi_node, frame.launch.error)
    )
    if lost:
        # A rank elsewhere that stopped with no cause of its own (its agent stopped it once the
        # lost node was gone) is explained by the lost node: no fault of its own is claimed.
        on_lost = {r for d in lost for r in d["ranks"]}
        detected = [d for d in detected if d["kind"] != "rank_failure" or d["rank"] in on_lost]
    detected += lost
    if "per_kind" in link:
        detected += fault_detect.layout_slow_link_fault(link)
    else:
        detected += fault_detect.slow_link_fault(link)
    for finding in (*stragglers, *detected):
        nodes.place(finding, frame.where)
    errors = [
        f"rank {d['rank']}: {d['kind']} at step {d['step']}: {d['evidence']}"
        for d in detected
        if FaultKind.of(d["kind"]).correctness
    ]
    errors += [f"node lost: {d['evidence']}" for d in lost]
    return _Findings(stragglers, detected, link, node_section, errors, busy)


def _host_of(frame: RunFrame, rank: int | None) -> str | None:
    node = frame.where.get(rank) if rank is not None else None
    return node.label() if node is not None else None


def _entry(frame: RunFrame, finding: str, rank: int | None, ev: dict[str, Any]) -> dict[str, Any]:
    """A `host_contention` entry: the finding not named, the rank, its node, the evidence."""
    node = frame.where.get(rank) if rank is not None else None
    return {
        "finding": finding,
        "rank": rank,
        "node_rank": node.node_rank if node is not None else None,
        "hostname": node.hostname if node is not None else None,
        **{k: v for k, v in ev.items() if k not in ("contention", "rank")},
    }


def _link_contended(
    link: dict[str, Any],
    table: JobSteps,
    cpu: contention.CpuSteps | None,
    checks: ChecksSection,
    frame: RunFrame,
    busy: list[dict[str, Any]],
    transfer: np.ndarray | None,
) -> None:
    """A slow link on a gloo run whose ranks' threads waited for a CPU a large share of the
    step, and more than the transfer fell short of the expected busbw: not judged (`link`
    updated, the entry added to `busy`). `transfer`: the run's per-step transfer times."""
    ratio = link.get("ratio")
    if cpu is None or transfer is None or ratio is None or not 0 < ratio < 1:
        return
    times = np.asarray(transfer, dtype=np.float64)
    times = times[np.isfinite(times)]
    if not times.size:
        return
    # the transfer time at the judged busbw (its p75, or the median: `link_check`), less the
    # time at the expected busbw (ratio = judged / expected)
    quantile = 100.0 - fault_detect.LINK_QUANTILE if "judged_busbw_gbps" in link else 50.0
    shortfall = float(np.percentile(times, quantile)) * (1.0 - ratio)
    by_rank = {r.rank: r for r in table.records}
    columns = [by_rank[rank].columns for rank in cpu.ranks]
    if all("step_time_ms" in c for c in columns):
        step_time = accounting.field_matrices(columns, cpu.steps, ("step_time_ms",), prev=False)[
            "step_time_ms"
        ]
    else:  # a node reduction's lean records: the step's parts, kept whole (= step_time_ms)
        parts = accounting.field_matrices(columns, cpu.steps, ("fwd_ms", "bwd_ms", "opt_ms"), False)
        step_time = parts["fwd_ms"] + parts["bwd_ms"] + parts["opt_ms"]
    ev = contention.link_contention(
        cpu,
        np.asarray(step_time, dtype=np.float64),
        shortfall,
        checks.contention_slow_link_pct,
    )
    if ev is None or not ev["contention"]:
        return
    text = contention.link_line(ev, _host_of(frame, ev["rank"]))
    entry = _entry(frame, "slow_link", ev["rank"], ev)
    entry["text"] = text
    busy.append(entry)
    link.update(slow=False, judged=False, reason=f"not judged: host CPU contention: {text}")


def _accounting_child(
    frame: RunFrame, table: JobSteps, checks: ChecksSection
) -> AbstractContextManager[Forked | None]:
    """From `SPLIT_MIN_RANKS` to `SPLIT_MAX_RANKS` ranks, with a second core (`second_core`): a
    forked child (`core.forked`) that makes the accounting and what is made of it alone while
    this process makes the figures, waits, findings and ranks: first the costs and the CPU
    figures of the ranks they name (`_costs` gates them), then the accounting section, those
    ranks' shapes and the run's time structure (`_culprits`). Else (or when the child fails)
    this process makes them itself, the same; a context that holds no child then."""
    if not SPLIT_MIN_RANKS <= len(frame.records) <= SPLIT_MAX_RANKS or not second_core():
        return nullcontext(None)

    def work(send: Callable[[Any], None]) -> None:
        acc = accounting.account(frame.records, table)
        costs = cost.rank_costs(acc, checks.culprit_cost_pct, checks.culprit_min_ms_per_step)
        # the CPU figures and shapes of every rank the cost rule names: `_costs` then sets
        # some of them not culprits (the others did not wait for them)
        send((costs, contention.culprits_cpu(acc, costs, frame.records, checks)))
        send(_accounted(frame, acc, costs))

    return Forked(work)


def _accounted(
    frame: RunFrame, acc: accounting.Accounting, costs: dict[int, dict[str, Any]]
) -> tuple[dict[str, Any], dict[int, dict[str, Any]], list[dict[str, Any]]]:
    """What `_culprits` makes of the accounting: `result.json`'s `accounting` (with each node's
    cost on a job across nodes), the shape of each rank `costs` name a culprit, and the time
    structure's findings of the whole run (`time_shape.run_findings`)."""
    section = accounting.section(acc)
    if frame.multi_node:
        section["node_cost"] = cost.node_costs(acc, nodes.node_names(frame.where))
    return section, cost.culprit_shapes(acc, costs), time_shape.run_findings(acc)


@dataclass
class _Costs:
    """The accounting of every step, each rank's cost (analysis.cost), the evidence of the
    others' wait for each culprit (analysis.waited) and the culprits the cost rule named whose
    lateness was host CPU contention (analysis.contention), by rank: made before the findings,
    so that a rank is NOT JUDGED for one cause in both its roles (`contention.one_cause`)."""

    acc: accounting.Accounting | None  # None: made by `_accounting_child`
    costs: dict[int, dict[str, Any]]
    evidence: dict[int, dict[str, Any]]
    cleared: dict[int, dict[str, Any]]


def _costs(
    frame: RunFrame,
    table: JobSteps,
    checks: ChecksSection,
    waits: waited.WaitedFor,
    child: Forked | None = None,
) -> _Costs:
    """The culprits above `checks.culprit_cost_pct` (analysis.accounting, analysis.cost) that
    the others waited for (`analysis.waited`: not a culprit when the interval of the others'
    wait for it is not above `checks.min_waited_for_pct` of the step time; when that wait could
    not be measured the cost rule alone names it), less those that were host CPU contention.
    `child`: `_accounting_child`, which made the costs (and the CPU figures of the ranks they
    name), unless it failed."""
    got = child.receive(_child_wait_s(frame)) if child is not None else None
    acc = None
    if got is not None:
        costs, judged = got
        evidence = waited.gate_culprits(costs, waits, checks.min_waited_for_pct)
    else:
        acc = accounting.account(frame.records, table)
        costs = cost.rank_costs(acc, checks.culprit_cost_pct, checks.culprit_min_ms_per_step)
        # gated first: the CPU figures are made only for the ranks still named
        evidence = waited.gate_culprits(costs, waits, checks.min_waited_for_pct)
        judged = contention.culprits_cpu(acc, costs, frame.records, checks)
    cleared = contention.gate_culprits(costs, judged)
    return _Costs(acc, costs, evidence, cleared)


def _child_wait_s(frame: RunFrame) -> float:
    """The longest wait for `_accounting_child`'s next message: far beyond its work's time."""
    return SPLIT_WAIT_S + SPLIT_WAIT_PER_RANK_S * len(frame.records)


def _culprits(
    frame: RunFrame,
    table: JobSteps,
    ranks: list[dict[str, Any]],
    checks: ChecksSection,
    costed: _Costs,
    consume: bool = False,
    child: Forked | None = None,
) -> dict[str, Any]:
    """Each rank's cost (into its `ranks[]` entry), the culprits (`_costs`), the accounting and
    the time structure; the culprits NOT JUDGED for host CPU contention (`contention`).
    `child`: `_accounting_child` (when `_costs` had its costs), which made the accounting
    section, the named ranks' shapes and the run's time structure, unless it failed."""
    acc, costs, evidence = costed.acc, costed.costs, costed.evidence
    made = child.receive(_child_wait_s(frame)) if child is not None and acc is None else None
    if made is None:
        acc = acc if acc is not None else accounting.account(frame.records, table)
        made = _accounted(frame, acc, costs)
    section, shapes, run_findings = made
    if consume:  # the accounting holds their sum (its host time); nothing after reads them
        for rec in frame.records:
            rec.release(accounting.HOST_FIELDS)
    busy = []  # the culprits the cost rule named that were host CPU contention
    for rank, ev in costed.cleared.items():
        entry = _entry(frame, "culprit", rank, ev)
        entry["cost_pct"] = costs[rank]["cost_pct"]
        entry["text"] = contention.rank_line("culprit", rank, ev, _host_of(frame, rank))
        busy.append(entry)
    for entry in ranks:
        if entry["rank"] in costs:
            entry["cost"] = costs[entry["rank"]]
    where = {r: (node.node_rank, node.hostname, node.label()) for r, node in frame.where.items()}
    culprits = cost.culprits(costs, where, shapes) if costs else None
    for c in culprits or []:
        c.update(evidence[c["rank"]], min_waited_pct=checks.min_waited_for_pct)
    structure = None if culprits is None else time_shape.culprit_structure(culprits) + run_findings
    return {
        # absent when nothing could be accounted for; [] when accounted and nobody is a culprit
        "culprits": culprits,
        "culprit_rule": {
            "threshold_pct": checks.culprit_cost_pct,
            "alpha": cost.ALPHA,
            "min_ms_per_step": checks.culprit_min_ms_per_step,
            "text": cost.rule_text(checks.culprit_cost_pct, checks.culprit_min_ms_per_step),
        },
        "accounting": section,
        "time_structure": structure,
        "contention": busy,
    }


def _assemble(
    frame: RunFrame,
    status: rank_status.RunStatus,
    table: JobSteps,
    figures: _Figures,
    metrics: dict[str, MetricValue],
    findings: _Findings,
    aggregated_at: str | None,
) -> dict[str, Any]:
    errors = frame.errors + status.errors + findings.errors
    method = timing_method(frame.records)
    if method == "mixed":
        errors.append(f"all-reduce timing: {timing_method_text(frame.records)}")
    head0, fates = frame.head0, frame.fates
    per_rank_batch = head0["workload"]["per_rank_batch"]
    result = envelope.top_level(
        head0,
        frame.headers,
        status.status,
        frame.world_size,
        aggregated_at,
        findings.node_section,
    )
    result.update(
        {
            "timing_method": method,
            "link": findings.link,
            "workload": {
                "name": head0["workload"]["name"],
                "workload_type": "training",
                "per_rank_batch": per_rank_batch,
                "global_batch": None
                if per_rank_batch is None
                else per_rank_batch * data_ranks(frame),
                "seq_len": head0["workload"].get("seq_len"),
                "params": head0["workload"].get("params"),
            },
            "metrics": {name: mv.to_dict() for name, mv in metrics.items()},
            "ranks": figures.ranks,
            "stragglers": findings.stragglers,
            "failed_ranks": fates.failed,
            "aborted_ranks": fates.of(rank_status.ABORTED),
            "interrupted": status.interrupted,
            "failure_order": [
                e.to_dict(frame.where.get(e.rank, nodes.UNKNOWN)) for e in frame.failure_order
            ]
            or None,
            "steps": table.steps_section(figures.series),
            "scaling": None,
            "collectives": None,
            "faults": {
                "injected": result["config"].get("faults", []),
                "detected": findings.detected,
            },
            "validation": fault_detect.validation_section(
                frame.records, frame.config.run, findings.detected, _replica_groups(frame)
            ),
            "errors": errors,
            "telemetry": energy.telemetry_section(telemetry_sources(frame.by_rank), metrics),
        }
    )
    if result["failure_order"] is None:
        del result["failure_order"]  # no rank failed: absent, as in results before it
    bad = [
        r.summary["bad_input"] for r in frame.records if r.summary and r.summary.get("bad_input")
    ]
    if bad:  # the user's input stopped the ranks (exit 2): the first rank's words
        result["bad_input"] = bad[0]
    lay = _layout(frame)
    result["layout"] = lay.to_dict() if lay is not None else None
    result["precision"] = frame.config.run.precision
    result["compile"] = frame.config.run.compile
    result["comm"] = comm_section(frame.records, frame.world_size)
    if lay is not None and lay.pp > 1:
        result["pipeline"] = pipeline_section(
            frame.records, lay.pp_schedule, lay.pp_microbatches, lay.pp
        )
    return result


_FIGURES = (
    "compute_ms_median",
    "compute_ms_mean",
    "comm_ms_median",
    "exposed_comm_ms_median",
    "wait_ms_median",
    "transfer_ms_median",
)


def _rank_entry(
    rank: int,
    rec: RankRecords | None,
    table: JobSteps,
    figures: dict[str, Any] | None,
    status: str,
    node: nodes.NodeId,
) -> dict[str, Any]:
    """One rank's row of `ranks[]` (`figures`: its StepTable.rank_figures, None without steps);
    a rank without records is placed by the job's roster."""
    header = rec.header if rec else None
    summary = rec.summary if rec else None
    figures = figures or {"step_time_ms": stats(np.array([])), **dict.fromkeys(_FIGURES)}
    return {
        "rank": rank,
        "hostname": node.hostname,
        "node_rank": node.node_rank,
        "local_rank": header["local_rank"] if header else None,
        "device": header["device"] if header else None,
        "threads": header.get("threads") if header else None,
        "status": status,
        "steps_recorded": rec.n_steps if rec else 0,
        "measured_steps": table.measured_steps(rank),
        "last_step": rec.last_step if rec else None,
        "step_time_ms": figures["step_time_ms"],
        **{k: figures[k] for k in _FIGURES},
        "memory": summary.get("memory") if summary else None,
        "ddp_logging": summary.get("ddp_logging") if summary else None,
        "error": summary.get("error") if summary else None,
    }
