"""The canonical result (`result.json`, schema `minicluster/1.x`) as typed sections.

`RunResult.from_json(d)` reads a result of any 1.x (1.0 to the current minor; keys of a newer
minor are kept in each section's `extra`), `to_json()` gives back the same JSON, key order
included. The JSON Schema shipped in the package is generated from these classes
(`minicluster.result.schema.generate_schema`). A field without a default is required in the
schema; every other one may be absent in older results (None, or its empty default, then).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, ClassVar, Literal

from minicluster.core.checks import CHECK_KEYS, ChecksSection
from minicluster.core.errors import InputError
from minicluster.core.metrics import MetricValue
from minicluster.result.section import Constraint, MetricMap, Section, spec

SCHEMA_MAJOR = "minicluster/1"
# 1.1: steps.series (the per-step cross-rank series of the run-level metrics); aborted_ranks,
# interrupted, timing_method, link. 1.2: comm_bytes and buckets in steps.series; a sweep's
# scaling.breakdown_method, points[].breakdown, projection; `nodes` is the per-node section (a
# list; before, the node count), ranks[] and the stragglers and detected faults name their node
# (`node_rank`, `hostname`), ranks[] and nodes[] carry a relative performance score. 1.3: the
# `pairwise` block (the pairwise link test); `ray` (the Ray version, under the Ray launcher),
# ranks[] and nodes[] `ray_node_id`. 1.4: `fingerprint` (the defining fields compare and history
# check, result/fingerprint.py), `imported_from.unread_fields`, imports from sglang and nccl-tests,
# ranks[] `threads` (the CPU threads the rank used). 1.5 (issues 24, 25, 27): `layout`,
# `precision`, `compile` and `comm` (`comm.kinds`, one entry per collective kind) for parallel
# layouts; ranks[] `achieved_tflops` and `cost` (the culprit counterfactual); `culprits`,
# `culprit_rule`, `accounting` (step time split into compute, wait, transfer, exposed, other),
# `time_structure` (intermittent, onset, drift), `incident` (the C4 class), `failure_order`
# (who failed first); `isolate` (group testing), `reference` (a run judged against a site
# reference), `bad_input`; steps.components `jitter_wait`; a sweep's projection `fit_on` and
# `fit_error_pct`, headline_run `left_out`. All optional: a 1.4 file reads as before.
# 1.6: `in_band` (issue 28: what each node sent rank 0 of a job gathered in-band); the pairwise
# re-measure of flagged pairs (`pairwise.recheck_rounds`, `recheck_rule`, `flagged_pairs`,
# `cleared_pairs`, per pair `flagged` and `recheck`); `link.kind`, `link.ranks`, `link.per_kind`
# (the per-kind link check of FSDP2/TP layouts); the pairwise rank rule (`pairwise.rank_rule`,
# `slow_ranks`, `slow_nodes`, `ranks_not_judged`, `not_judged`, per rank and per node
# `best_busbw_gbps`, `others_median_gbps`, `others_pairs`, `z_best`, `slow`); `rejudged` (a
# result judged again after the run, result.rejudged-STAMP.json). All optional: a 1.5 file reads
# as before.
# Readers accept every 1.x.
SCHEMA_VERSION = "minicluster/1.6"

NonNegative = Annotated[int, Constraint(minimum=0)]
Positive = Annotated[int, Constraint(minimum=1)]
RankId = Annotated[int, Constraint(minimum=0)]
Score = Annotated[float, Constraint(minimum=0, maximum=1)]
MeasureStatus = Literal["measured", "unavailable"]
RunStatus = Literal["ok", "failed", "incomplete"]


class FaultKind(str, Enum):
    """What a finding (a detected fault) is; its properties say what it means for the verdict."""

    CRASH = "crash"
    KILL = "kill"  # killed by a signal from outside the launcher (the OOM killer, a user's kill)
    HANG = "hang"
    RANK_FAILURE = "rank_failure"
    NODE_LOST = "node_lost"
    STRAGGLER = "straggler"
    CORRUPT_GRAD = "corrupt_grad"
    REPLICA_DIVERGENCE = "replica_divergence"
    SLOW_LINK = "slow_link"
    UNKNOWN = "unknown"  # a kind of a newer minor version: it neither gates nor kills

    @property
    def correctness(self) -> bool:
        """The run ended, but its numbers are wrong."""
        return self in (FaultKind.CORRUPT_GRAD, FaultKind.REPLICA_DIVERGENCE)

    @property
    def link(self) -> bool:
        """The run ended, but its fabric is slower than expected."""
        return self is FaultKind.SLOW_LINK

    @property
    def death(self) -> bool:
        """A rank that stopped recording (crashed, hung, or failed without saying why)."""
        return self in (FaultKind.CRASH, FaultKind.KILL, FaultKind.HANG, FaultKind.RANK_FAILURE)

    @property
    def gates(self) -> bool:
        """A finding of this kind fails a check of a run that ran (exit code 1)."""
        return self.correctness or self.link

    @classmethod
    def of(cls, kind: object) -> FaultKind:
        """The kind named `kind`; UNKNOWN for a kind this version does not know."""
        try:
            return cls(kind)
        except ValueError:
            return cls.UNKNOWN


# --- envelope ------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Tool(Section):
    name: str
    version: str


@dataclass(kw_only=True)
class RayInfo(Section):
    version: str


@dataclass(kw_only=True)
class PlatformNode(Section):
    """One host the ranks ran on, as its ranks' headers describe it."""

    hostname: str | None = None
    cpu: str | None = None
    cpu_count: int | None = None
    host_memory_total_bytes: int | None = None
    os: str | None = None
    gpus: list[Any] = spec(factory=list)


@dataclass(kw_only=True)
class Platform(Section):
    """The hosts and software of a run; a converted result has `hardware_name`/`os` instead."""

    nodes: list[PlatformNode] = spec(factory=list)
    torch: str | None = None
    python: str | None = spec(None, omit_none=True)
    hardware_name: str | None = spec(None, omit_none=True)
    os: str | None = spec(None, omit_none=True)

    @property
    def hardware(self) -> str | None:
        """The first GPU's name (or the first node's CPU), or a converted result's hardware."""
        if not self.nodes:
            return str(self.hardware_name) if self.hardware_name else None
        node = self.nodes[0]
        if node.gpus:
            first = node.gpus[0]
            if isinstance(first, dict):
                return str(first.get("name") or first.get("model") or first)
            return str(first)
        return str(node.cpu) if node.cpu else None


@dataclass(kw_only=True)
class Workload(Section):
    __schema__: ClassVar[dict[str, Any]] = {
        "if": {"properties": {"workload_type": {"const": "collectives"}}},
        "then": {
            "properties": {"per_rank_batch": {"type": "null"}, "global_batch": {"type": "null"}}
        },
    }

    name: str
    workload_type: Literal["training", "inference", "collectives"]
    per_rank_batch: Positive | None
    global_batch: Positive | None
    seq_len: int | None = None
    params: int | None = None


@dataclass(kw_only=True)
class LinkCheck(Section):
    """The gradient all-reduce's busbw judged against an expected figure, or why not."""

    judged: bool = False
    slow: bool = False
    expected_busbw_gbps: float | None = None
    measured_busbw_gbps: float | None = None
    ratio: float | None = spec(
        None, doc="the judged busbw (judged_busbw_gbps, else the measured one) / the expected"
    )
    below_pct: float | None = None
    reason: str | None = None
    judged_busbw_gbps: float | None = spec(
        None,
        omit_none=True,
        doc="the figure judged: p75 of the per-step busbw (the faster steps, which host load "
        "perturbs least); absent in results before it",
    )
    judged_busbw_interval: list[float] | None = spec(
        None,
        omit_none=True,
        doc="its 95% bootstrap interval over steps; slow only when the upper bound is below "
        "below_pct of the expected figure",
    )
    judged_statistic: str | None = spec(None, omit_none=True)
    kind: str | None = spec(
        None,
        omit_none=True,
        doc="under FSDP2 or TP: the collective kind furthest below the expectation (the headline "
        "figures are its); absent: DDP's gradient all-reduce",
    )
    ranks: list[int] | None = spec(
        None, omit_none=True, doc="under FSDP2 or TP: the ranks whose calls were judged"
    )
    per_kind: list[dict[str, Any]] | None = spec(
        None,
        omit_none=True,
        doc="under FSDP2 or TP: each kind's calls, median and p75 wait-free busbw, interval, "
        "ratio and verdict; the link is slow when every judged kind is",
    )


@dataclass(kw_only=True)
class ReferenceFigureCheck(Section):
    """One metric of a run judged against a reference figure (`aggregate --reference`)."""

    metric: str
    value: float | None
    reference_value: float | None = None
    pct_of_reference: float | None = spec(
        None, doc="value / reference (reference / value for a lower-is-better metric), in %"
    )
    verdict: Literal["ok", "below_floor", "not_judged"]
    reason: str | None = None
    source: str | None = None


@dataclass(kw_only=True)
class ReferenceCheck(Section):
    """The run judged against a reference (`aggregate DIR --reference FILE`): median step time,
    TFLOP/s and the gradient all-reduce busbw as % of the reference figure for this platform and
    job; not judged (with the reason) without one."""

    file: str | None = None
    name: str
    kind: Literal["published", "site"]
    platform: dict[str, Any] = spec(factory=dict, doc="the run's platform keys it was matched on")
    floor_pct: float
    verdict: Literal["ok", "below_floor", "not_judged"]
    reason: str | None = None
    metrics: list[ReferenceFigureCheck] = spec(factory=list)


# --- per node, per rank --------------------------------------------------------------------


@dataclass(kw_only=True)
class NodeEntry(Section):
    """One node (launcher agent) of the job: its ranks, their fate and its medians (1.2)."""

    __schema_name__: ClassVar[str | None] = "node"

    node_rank: RankId | None = spec(doc="torchrun's group rank; null when the launcher gave none")
    hostname: str | None
    ranks: list[RankId]
    status: Literal["ok", "failed", "missing", "aborted"] = spec(
        doc="aborted: its ranks stopped because a rank on another node failed"
    )
    failed_ranks: list[RankId]
    missing_ranks: list[RankId]
    aborted_ranks: list[RankId] = spec(factory=list)
    measured_steps: NonNegative | None = spec(None, nullable=False)
    step_time_ms_median: float | None = None
    compute_ms_median: float | None = None
    allreduce_ms_median: float | None = None
    slowest_rank: RankId | None = None
    slowest_rank_compute_ms_median: float | None = None
    stragglers: list[RankId] = spec(factory=list)
    performance_score: Score | None
    ray_node_id: str | None = spec(
        None, omit_none=True, doc="1.3: the node's Ray node ID (Ray launcher); null otherwise"
    )

    @property
    def flagged(self) -> bool:
        """Not ok, or holding a straggler: a report shows it first."""
        return self.status != "ok" or bool(self.stragglers)


@dataclass(kw_only=True)
class StepTimeStats(Section):
    """Percentiles of one rank's measured step times (ms)."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean: float | None = None
    n: int | None = None


@dataclass(kw_only=True)
class RankCost(Section):
    """What a rank cost the run (analysis.cost): the wall time saved had it run at the other
    ranks' pace between sync points, with a bootstrap interval over steps, and its excess over
    the next most costly rank (what the culprit rule judges)."""

    cost_ms: float | None = None
    cost_pct: float | None = None
    cost_pct_interval: list[float] | None = None
    confidence: float | None = None
    excess_pct: float | None = spec(None, omit_none=True)
    p_value: float | None = spec(None, omit_none=True)
    last_arrival_steps: int | None = None
    steps_compared: int | None = None
    culprit: bool | None = spec(None, omit_none=True)
    cpu: CpuEvidence | None = spec(
        None,
        omit_none=True,
        doc="(issue 25) a rank the cost rule named: its CPU time and run-queue delay against the other "
        "ranks' on the steps it arrived last (analysis.contention); absent otherwise",
    )
    host_contention: bool | None = spec(
        None,
        omit_none=True,
        doc="(issue 25) true when the cost rule named the rank but its lateness was its threads "
        "waiting for a CPU other processes held: not a culprit (host_contention)",
    )


@dataclass(kw_only=True)
class CpuEvidence(Section):
    """A late rank's CPU figures against the other ranks' median, ms per step over the steps
    judged (analysis.contention; from the steps' cpu_ms and cpu_wait_ms, rank format 1.7)."""

    late_ms_per_step: float | None = spec(
        None, doc="its own work (a straggler: compute) above the other ranks' median"
    )
    cpu_wait_excess_ms_per_step: float | None = spec(
        None,
        doc="its threads' run-queue delay (time runnable, waiting for a CPU) above the others'",
    )
    cpu_excess_ms_per_step: float | None = spec(
        None, doc="its threads' CPU time above the others' (a busy thread of its own raises it)"
    )
    cpu_wait_ms_mean: float | None = None
    others_cpu_wait_ms_mean: float | None = None
    unexplained_ms_per_step: float | None = spec(
        None,
        doc="late_ms_per_step less the CPU wait excess: the rule that named the rank judges it",
    )
    steps_judged: int | None = None
    share_pct: float | None = spec(
        None, doc="checks.contention_share_pct: the share of the lateness the wait must cover"
    )
    wait_of: Literal["loop_thread", "all_threads"] | None = spec(
        None,
        omit_none=True,
        doc="whose run-queue delay the wait figures are: the training-loop thread's (step "
        "main_cpu_wait_ms, rank format 1.8) or every thread's sum (cpu_wait_ms; 1.7 records)",
    )
    all_threads_cpu_wait_excess_ms_per_step: float | None = spec(
        None,
        omit_none=True,
        doc="wait_of loop_thread: every thread's run-queue delay above the others', beside it",
    )


@dataclass(kw_only=True)
class WaitedFor(Section):
    """The evidence a named rank (a culprit, a straggler) carries of the others' wait for it
    (analysis.waited). Its fields come first in the schema's properties of the sections that
    take it; the JSON keeps the order the analysis wrote."""

    waited_for_ms: float | None = spec(
        None,
        omit_none=True,
        doc="how long the other ranks waited for this rank in the collectives, ms per step "
        "(analysis.waited; absent in results before it)",
    )
    waited_for_ms_interval: list[float] | None = spec(
        None, omit_none=True, doc="the 95% bootstrap interval over steps of waited_for_ms"
    )
    waited_for_floor_ms: float | None = spec(
        None,
        omit_none=True,
        doc="the floor the interval's lower bound had to exceed: min_waited_pct of the median "
        "step time",
    )
    waited_for_steps: int | None = spec(
        None, omit_none=True, doc="the steps in which the others waited for this rank"
    )
    min_waited_pct: float | None = spec(None, omit_none=True)
    waited_for_reason: str | None = spec(
        None,
        omit_none=True,
        doc="why the others' wait could not be measured (the rank was named without it)",
    )


@dataclass(kw_only=True)
class Culprit(WaitedFor):
    """A rank whose cost to the run is above the threshold and significant, with the shape of
    its lateness in time (`kind`: persistent, intermittent, onset, drift) and the evidence."""

    rank: int | None = None
    node: str | None = None
    node_rank: int | None = spec(None, omit_none=True)
    hostname: str | None = spec(None, omit_none=True)
    kind: str
    cost_pct: float
    cost_ms: float
    cost_pct_interval: list[float] | None = None
    steps: list[int] = spec(factory=list, doc="the steps the rank was late in")
    shape: dict[str, Any] | None = spec(None, omit_none=True)
    summary: str | None = spec(None, omit_none=True)
    evidence: str


@dataclass(kw_only=True)
class HostCpu(Section):
    """The ranks' CPU time and run-queue delay, mean per rank per measured step (issue 25,
    analysis.host_cpu): how much of a step the host's other processes held the ranks' CPU.
    `compare` and `history check` judge no timing row between two runs whose difference in
    run-queue delay explains their difference in step time."""

    cpu_ms: Annotated[float, Constraint(minimum=0)] = spec(
        doc="the rank's threads' CPU time, ms per step (mean over ranks)"
    )
    cpu_wait_ms: Annotated[float, Constraint(minimum=0)] = spec(
        doc="the rank's threads' run-queue delay (schedstat run_delay): ms per step they were "
        "runnable but waited for a CPU (mean over ranks)"
    )
    ranks: Positive
    steps: Positive
    threads: Literal["all", "main"] = spec(
        doc="whose time: 'all' (every thread of the rank) or 'main' (its training loop's)"
    )


@dataclass(kw_only=True)
class HostContention(Section):
    """A finding not named because the host's other processes held the CPU (issue 25,
    analysis.contention): a culprit or straggler late through its threads' run-queue delay, or a
    slow link on a CPU run whose ranks' threads waited for a CPU a large share of the step."""

    finding: Literal["culprit", "straggler", "slow_link"]
    rank: int | None = None
    node_rank: int | None = None
    hostname: str | None = None
    text: str = spec(doc="the one line the report prints: NOT JUDGED and why")
    cost_pct: float | None = spec(None, omit_none=True, doc="a culprit's cost (ranks[].cost)")
    late_ms_per_step: float | None = spec(None, omit_none=True)
    cpu_wait_excess_ms_per_step: float | None = spec(None, omit_none=True)
    cpu_excess_ms_per_step: float | None = spec(None, omit_none=True)
    cpu_wait_ms_mean: float | None = spec(None, omit_none=True)
    others_cpu_wait_ms_mean: float | None = spec(None, omit_none=True)
    unexplained_ms_per_step: float | None = spec(None, omit_none=True)
    share_pct: float | None = spec(None, omit_none=True)
    wait_of: Literal["loop_thread", "all_threads"] | None = spec(
        None, omit_none=True, doc="a culprit or straggler: whose run-queue delay (CpuEvidence)"
    )
    all_threads_cpu_wait_excess_ms_per_step: float | None = spec(None, omit_none=True)
    also_not_judged: Literal["culprit", "straggler"] | None = spec(
        None,
        omit_none=True,
        doc="one rank, one cause: the rank's other role, not named either (a culprit NOT JUDGED "
        "is no straggler, and the reverse)",
    )
    cpu_wait_ms_median: float | None = spec(
        None, omit_none=True, doc="slow_link: the rank's median run-queue delay per step"
    )
    step_time_ms_median: float | None = spec(None, omit_none=True)
    cpu_wait_pct: float | None = spec(
        None, omit_none=True, doc="slow_link: cpu_wait_ms_median / step_time_ms_median, percent"
    )
    threshold_pct: float | None = spec(
        None, omit_none=True, doc="slow_link: checks.contention_slow_link_pct"
    )
    transfer_shortfall_ms: float | None = spec(
        None,
        omit_none=True,
        doc="slow_link: the judged transfer time less the time at the expected busbw, ms per "
        "step; the wait must cover share_pct of it",
    )
    steps_judged: int | None = None


@dataclass(kw_only=True)
class RankMemory(Section):
    """A rank's memory: the process's peak (RSS; CUDA max allocated on a GPU) and, where the rank
    measured them at its end, the bytes of its parameters, gradients and optimizer state."""

    rss_peak_bytes: int | None = spec(None, omit_none=True)
    host_total_bytes: int | None = spec(None, omit_none=True)
    cuda_max_allocated_bytes: int | None = spec(None, omit_none=True)
    cuda_total_bytes: int | None = spec(None, omit_none=True)
    params_bytes: int | None = spec(
        None, omit_none=True, doc="1.5: the model's parameters on this rank (its shard, if sharded)"
    )
    grads_bytes: int | None = spec(
        None, omit_none=True, doc="1.5: the gradients allocated on this rank at its last step"
    )
    optimizer_bytes: int | None = spec(
        None,
        omit_none=True,
        doc="1.5: the optimizer's state tensors on this rank (momentum, moments)",
    )


@dataclass(kw_only=True)
class RankEntry(Section):
    """One rank of the job: where it ran, its fate, its records and its per-step medians."""

    __schema_name__: ClassVar[str | None] = "rank"

    rank: RankId
    hostname: str | None = None
    node_rank: RankId | None = None
    local_rank: int | None = None
    device: str | None = None
    threads: Positive | None = spec(
        None,
        omit_none=True,
        doc="1.4: the CPU threads the rank used (its header's threads); null when its header "
        "did not say",
    )
    status: Literal["ok", "failed", "missing", "aborted", "interrupted"] = spec(
        doc="failed/missing: the culprit; aborted: stopped because another rank failed (1.1); "
        "interrupted: Ctrl-C or SIGTERM (1.1)"
    )
    steps_recorded: NonNegative
    measured_steps: NonNegative
    last_step: int | None = None
    step_time_ms: StepTimeStats | None = spec(None, omit_none=True)
    compute_ms_median: float | None = spec(None, omit_none=True)
    compute_ms_mean: float | None = spec(
        None,
        omit_none=True,
        doc="1.2: mean over the rank's measured steps of compute_ms (a sweep's typical per-rank "
        "compute)",
    )
    comm_ms_median: float | None = spec(None, omit_none=True)
    exposed_comm_ms_median: float | None = spec(None, omit_none=True)
    wait_ms_median: float | None = spec(None, omit_none=True)
    transfer_ms_median: float | None = spec(None, omit_none=True)
    collectives_recorded: NonNegative | None = spec(None, omit_none=True)
    memory: RankMemory | None = None
    ddp_logging: dict[str, Any] | None = spec(None, omit_none=True)
    error: str | None = None
    ray_node_id: str | None = spec(
        None,
        omit_none=True,
        doc="1.3: the Ray node ID of the rank's worker (Ray launcher); null otherwise",
    )
    performance_score: Score | None = spec(None, omit_none=True)
    achieved_tflops: float | None = spec(
        None,
        omit_none=True,
        doc="1.5: the rank's model TFLOP/s at its own median step time (its batch's FLOPs / "
        "that time); absent when the workload's FLOPs are unknown",
    )
    cost: RankCost | None = spec(
        None,
        omit_none=True,
        doc="what the rank cost the run: the wall time saved had it run at the others' pace "
        "(analysis.cost); absent when not accounted",
    )

    @property
    def rss_peak_bytes(self) -> int | float | None:
        rss = self.memory.rss_peak_bytes if self.memory is not None else None
        return rss if isinstance(rss, (int, float)) else None

    @property
    def step_p50_ms(self) -> float | None:
        return self.step_time_ms.p50 if self.step_time_ms is not None else None


@dataclass(kw_only=True)
class Straggler(WaitedFor):
    """A rank named a straggler: its compute against the others', with the test that named it."""

    rank: int | None = None
    compute_ms_median: float | None = None
    others_compute_ms_median: float | None = None
    excess_pct: float | None = None
    threshold_pct: float | None = None
    min_excess_ms: float | None = spec(None, omit_none=True)
    attributed_to: str | None = spec(None, omit_none=True)
    slowest_in_steps: int | None = spec(None, omit_none=True)
    steps_compared: int | None = spec(None, omit_none=True)
    min_steps_pct: float | None = spec(None, omit_none=True)
    sign_test_p: float | None = spec(None, omit_none=True)
    node_rank: int | None = spec(None, omit_none=True)
    hostname: str | None = spec(None, omit_none=True)
    cpu: CpuEvidence | None = spec(
        None,
        omit_none=True,
        doc="(issue 25) its CPU time and run-queue delay against the other ranks' over the "
        "measured steps (analysis.contention, as a culprit's ranks[].cost.cpu); absent when not "
        "measured",
    )

    @property
    def placed(self) -> bool:
        """The straggler names its node (1.2)."""
        return "node_rank" in self.keys() or "hostname" in self.keys()


# --- findings ------------------------------------------------------------------------------


@dataclass(kw_only=True)
class InjectedFault(Section):
    """A fault the run was told to inject (the config's `faults` entry)."""

    __schema_name__: ClassVar[str | None] = "fault"

    kind: str
    rank: RankId | None = spec(
        doc="null when the evidence names no rank (1.1: a slow link judged from the "
        "all-reduce's busbw)"
    )
    step: RankId | None = spec(None, omit_none=True)
    evidence: str | None = spec(None, omit_none=True, nullable=False)


@dataclass(kw_only=True)
class Finding(Section):
    """A detected fault, with the evidence it was found from (never from the injected list)."""

    kind: str
    rank: RankId | None = spec(
        doc="null when the evidence names no rank (1.1: a slow link judged from the "
        "all-reduce's busbw)"
    )
    step: RankId | None
    evidence: str
    attributed_to: str | None = spec(None, omit_none=True)
    peer: int | None = spec(None, omit_none=True)
    ranks: list[int] | None = spec(None, omit_none=True)
    node_rank: int | None = spec(None, omit_none=True)
    hostname: str | None = spec(None, omit_none=True)

    @property
    def fault_kind(self) -> FaultKind:
        """The kind as a FaultKind (UNKNOWN: a kind of a newer version; `kind` keeps its name)."""
        return FaultKind.of(self.kind)

    @property
    def gates(self) -> bool:
        """It fails a check of a run that ran (wrong numbers, a slow link): exit code 1."""
        return self.fault_kind.gates

    @property
    def placed(self) -> bool:
        """The finding names its node (1.2)."""
        return self.hostname is not None or self.node_rank is not None


@dataclass(kw_only=True)
class IncidentNode(Section):
    """The node of an incident's rank."""

    node_rank: int | None = None
    hostname: str | None = None


@dataclass(kw_only=True)
class Incident(Section):
    """The class of a failed or slow run's incident, after Alibaba C4 (HPCA'25), with the rank,
    node or link (`analysis.incident`)."""

    kind: Literal["comm_hang", "non_comm_hang", "comm_slow", "non_comm_slow", "crash", "kill"] = (
        spec(
            doc="comm_hang: the collective itself hangs (every rank inside it); non_comm_hang: a "
            "rank hung outside communication while its peers waited in a collective; comm_slow: "
            "the transfer is slow (wait-free busbw below the expectation); non_comm_slow: a rank's "
            "own work is slow (a straggler); crash/kill: a rank died (see failure_order)"
        )
    )
    ranks: list[int] = spec(doc="the ranks it is on (empty for the job's links)")
    node: IncidentNode | None = None
    link: str | None = spec(None, doc="the link or transport, for a comm incident")
    evidence: str
    decided_from: Literal["failure_order", "flight_recorder", "link", "stragglers", "culprits"] = (
        spec(
            doc="what recorded it: the order of failures, the Flight Recorder dumps, the link "
            "check, the straggler rule or the cost of the top culprit"
        )
    )


@dataclass(kw_only=True)
class FailureEvent(Section):
    """One rank's failure in `failure_order`: causes first, in time order, then the victims."""

    __schema_name__: ClassVar[str | None] = "failure"

    rank: RankId
    node_rank: int | None = None
    hostname: str | None = None
    kind: Literal[
        "kill", "crash", "exception", "hang", "timeout", "missing", "aborted", "rank_failure"
    ] = spec(
        doc="kill: a signal from outside the launcher; crash: ended by itself (its own exit code "
        "or a signal of its own fault); exception: raised (its summary says what); hang: stopped "
        "recording while its peers timed out waiting; timeout: its own collective timed out and "
        "no rank is known to have stopped first; missing: left no records; aborted: a victim of "
        "an earlier failure; rank_failure: stopped recording, nothing tells why"
    )
    cause: bool = spec(doc="it failed of its own (false: a victim)")
    signal: int | None = spec(None, doc="the signal that ended it (exit code -N)")
    signal_name: str | None = None
    exit_code: int | None = None
    t_unix_s: float | None = spec(
        None,
        doc="about when it failed: a dead rank's last record (no progress after it), else when "
        "its summary was written; null when nothing it wrote says",
    )
    step: NonNegative | None = spec(None, doc="the step it was in; null for a collectives job")
    evidence: str


@dataclass(kw_only=True)
class Faults(Section):
    injected: list[InjectedFault]
    detected: list[Finding]


@dataclass(kw_only=True)
class ValidationCheck(Section):
    """One correctness check: replica checksums compared (`every`, `steps_checked`,
    `divergence`), or DDP against one process (`steps`, the max differences, the tolerance)."""

    name: Literal["replica_consistency", "ddp_equivalence"]
    passed: bool
    every: int | None = spec(None, omit_none=True)
    steps_checked: int | None = spec(None, omit_none=True)
    divergence: dict[str, Any] | None = spec(None, omit_none=True)
    steps: int | None = spec(None, omit_none=True)
    world_size: int | None = spec(None, omit_none=True)
    max_abs_diff: float | None = spec(None, omit_none=True)
    max_rel_diff: float | None = spec(None, omit_none=True)
    rel_tolerance: float | None = spec(None, omit_none=True)
    method: str | None = spec(None, omit_none=True)
    reason: str | None = spec(None, omit_none=True)


@dataclass(kw_only=True)
class Validation(Section):
    """The correctness checks the run was configured for and their verdict."""

    passed: bool
    reason: str | None
    checks: list[ValidationCheck]


# --- steps and telemetry -------------------------------------------------------------------


@dataclass(kw_only=True)
class StepsSection(Section):
    """Where the per-rank step records are, the per-step cross-rank series the run-level metrics
    come from, and every rank's steps embedded unless there are too many."""

    __schema_name__: ClassVar[str | None] = "steps"

    rank_files: str | None = spec(None, omit_none=True)
    series: dict[str, list[float | None]] | None = spec(
        None,
        omit_none=True,
        schema={
            "properties": {"step": {"type": "array", "items": {"type": "integer"}}},
        },
    )
    embedded: dict[str, dict[str, list[Any]]] | None = spec(None, omit_none=True)
    reason: str | None = spec(None, omit_none=True)


@dataclass(kw_only=True)
class InBandNode(Section):
    """What one node's leader sent rank 0 in-band."""

    node_rank: int | None = None
    hostname: str | None = None
    ranks: list[int] = spec(factory=list)
    leader: int | None = spec(None, doc="the rank that gathered the node's logs and sent its share")
    sent: Literal["node reduction", "rank logs"] | None = None
    bytes_to_rank0: NonNegative | None = spec(None, doc="the bytes of the node's share to rank 0")
    rank_log_bytes: NonNegative | None = spec(
        None, doc="the bytes the node's ranks' logs take, as the per-rank gather sends them"
    )
    reduce_ms: float | None = spec(None, doc="the leader's time to reduce the node's logs")
    reduce_error: str | None = spec(None, doc="why the node could not reduce")


@dataclass(kw_only=True)
class Rejudged(Section):
    """A result judged again after the run, written beside its recorded result.json as
    result.rejudged-STAMP.json (`aggregate DIR --straggler-threshold ...`, `aggregate DIR
    --reference FILE`): how, and when."""

    __schema_name__: ClassVar[str | None] = "rejudged"

    by: Literal["thresholds", "reference"] = spec(
        doc="thresholds: other verdict thresholds (the `checks` keys, in `overrides`; the "
        "result's config.checks holds every one it was judged by); reference: a site reference "
        "(the result's `reference` section)"
    )
    at: str = spec(doc="when it was judged again (UTC, ISO 8601)")
    recorded_result: str | None = spec(
        None,
        doc="the run's recorded result it was written beside (never over), relative to the run "
        "directory; null when the run had none (judged from its rank files)",
    )
    overrides: dict[str, float] = spec(
        factory=dict, doc="the thresholds given on the command line (by: thresholds)"
    )


@dataclass(kw_only=True)
class InBandSection(Section):
    """How a job's records reached rank 0 in-band (no shared filesystem), node by node."""

    __schema_name__: ClassVar[str | None] = "in_band"

    method: Literal["node reductions", "rank logs"] | None = spec(
        None,
        doc="node reductions: every node's leader sent its node's reduction; rank logs: every "
        "rank's log reached rank 0 (a node could not reduce: see reason)",
    )
    reason: str | None = spec(None, doc="why rank logs were sent instead of node reductions")
    bytes_to_rank0: NonNegative | None = None
    rank_log_bytes: NonNegative | None = spec(
        None, doc="what the per-rank gather (every rank's log to rank 0) would have sent"
    )
    measure: str | None = spec(None, doc="how the bytes were counted")
    nodes: list[InBandNode] = spec(factory=list)


@dataclass(kw_only=True)
class TelemetrySource(Section):
    """One energy, power or thermal source of a node and what it read over the window."""

    source: str | None = None
    scope: str | None = None
    id: str | int | None = None
    available: bool | None = None
    reason: str | None = None
    readings: dict[str, Any] = spec(factory=dict)
    rank: int | None = None


@dataclass(kw_only=True)
class TelemetryNode(Section):
    hostname: str | None = None
    sources: list[TelemetrySource] = spec(factory=list)
    energy_j: Any = None


@dataclass(kw_only=True)
class TelemetrySeries(Section):
    """A sampler's series: `columns` (t_unix_s, power_w, temp_c) and `points`, one row each."""

    hostname: str | None = None
    source: str | None = None
    id: str | int | None = None
    scope: str | None = spec(None, omit_none=True)
    columns: list[str] = spec(factory=list)
    every_nth_sample: int = 1
    points: list[list[float | None]] = spec(factory=list)


@dataclass(kw_only=True)
class Telemetry(Section):
    """Per-node and per-device readings, totals, and the power/temperature series."""

    sample_interval_ms: float | None = None
    totals: dict[str, MetricValue] = spec(factory=MetricMap)
    nodes: list[TelemetryNode] = spec(factory=list)
    devices: list[Any] = spec(factory=list)
    ranks: list[Any] = spec(factory=list)
    series: list[TelemetrySeries] = spec(factory=list)


# --- a sweep's scaling block ---------------------------------------------------------------

LossParts = Annotated[
    dict[str, float | None],
    Constraint(
        required=["exposed_comm", "straggler_wait", "compute_growth", "remainder"],
        properties={
            k: {"type": ["number", "null"]}
            # jitter_wait (1.5): split off straggler_wait, which before it held both
            for k in (
                "exposed_comm",
                "straggler_wait",
                "jitter_wait",
                "compute_growth",
                "remainder",
            )
        },
        additionalProperties=False,
    ),
]


@dataclass(kw_only=True)
class LostTime(Section):
    """Above the baseline: the lost step time and the parts that add up to it."""

    step_time_ms: float | None = spec(None, nullable=False)
    ideal_step_time_ms: float | None = spec(None, nullable=False)
    lost_ms: float
    lost_pct: float | None
    parts_ms: LossParts
    parts_pts: LossParts


@dataclass(kw_only=True)
class StepComponents(Section):
    """The mean per-step parts of a world size's median round (ms)."""

    step_time: float | None
    per_rank_compute: float | None
    straggler_wait: float | None
    jitter_wait: float | None = spec(
        None,
        omit_none=True,
        doc="1.5: per-step max compute beyond the slowest rank's mean (per-step jitter, no rank "
        "to blame); before 1.5 it was part of straggler_wait",
    )
    exposed_comm: float | None
    other: float | None
    transfer: float | None = None


@dataclass(kw_only=True)
class Breakdown(Section):
    """1.2: the mean per-step parts of the point's median round and, above the baseline, the
    lost step time split into parts that add up to it (see breakdown_method)."""

    __schema__: ClassVar[dict[str, Any]] = {
        "if": {"properties": {"status": {"const": "unavailable"}}},
        "then": {"required": ["reason"], "properties": {"reason": {"type": "string"}}},
        "else": {"required": ["components_ms", "loss"]},
    }

    status: Literal["derived", "unavailable"]
    reason: str | None
    rounds: list[Positive] = spec(factory=list)
    steps: int | None = spec(None, omit_none=True)
    components_ms: StepComponents | None = spec(None, nullable=False, omit_none=True)
    comm_bytes: float | None = None
    buckets: float | None = None
    oversubscribed: bool | None = None
    placement: str | None = spec(None, nullable=False, omit_none=True)
    loss: LostTime | None = None


@dataclass(kw_only=True)
class SweepRunEntry(Section):
    """One run of a world size in a sweep: where it is and how it went."""

    __schema_name__: ClassVar[str | None] = "sweep_run"

    dir: str | None = None
    round: int | None = None
    run_id: str | None = None
    status: str | None = None
    throughput_samples_per_sec: float | None = None
    step_time_p50_ms: float | None = None
    stragglers: list[int] = spec(factory=list)
    failed_ranks: list[int] = spec(factory=list)
    error: str | None = None


_UNAVAILABLE_THEN_NULL_EFFICIENCY = {
    "allOf": [
        {
            "if": {"properties": {"status": {"const": "unavailable"}}},
            "then": {
                "properties": {"efficiency_pct": {"type": "null"}, "reason": {"type": "string"}},
                "required": ["reason"],
            },
            "else": {"properties": {"efficiency_pct": {"type": "number"}}},
        }
    ]
}


@dataclass(kw_only=True)
class ScalingPoint(Section):
    """One world size of a sweep: medians over its ok runs and its scaling efficiency."""

    __schema__: ClassVar[dict[str, Any]] = _UNAVAILABLE_THEN_NULL_EFFICIENCY

    world_size: Positive
    per_rank_batch: int | None = None
    global_batch: int | None = None
    status: Literal["measured", "derived", "estimated", "unavailable"]
    efficiency_pct: float | None
    efficiency_pct_min: float | None = None
    efficiency_pct_max: float | None = None
    efficiency_pct_rounds: list[float | None] = spec(factory=list)
    reason: str | None = None
    runs_ok: int | None = None
    throughput_samples_per_sec: float | None = None
    step_time_p50_ms: float | None = None
    compute_ms: float | None = None
    allreduce_ms: float | None = None
    exposed_comm_ms: float | None = None
    communication_overhead_percent: float | None = None
    stragglers: list[int] = spec(factory=list)
    runs: list[SweepRunEntry] = spec(factory=list)
    breakdown: Breakdown | None = spec(None, nullable=False, omit_none=True)


@dataclass(kw_only=True)
class ScalingBaseline(Section):
    world_size: Positive
    kind: str
    metric: str | None = spec(None, omit_none=True)
    value: float | None
    unit: str
    runs_ok: int | None = spec(None, omit_none=True)


@dataclass(kw_only=True)
class HeadlineRun(Section):
    """The run whose per-rank sections, metrics and plots a sweep result carries."""

    dir: str
    run_id: str
    world_size: int
    round: int
    why: str
    left_out: list[int] | None = spec(
        None,
        nullable=False,
        omit_none=True,
        doc="world sizes above the headline's with no ok run, whose partial figures it leaves out",
    )


@dataclass(kw_only=True)
class LinkFit(Section):
    """How alpha and beta were fitted to measured all_reduce times."""

    world_size: int | None = None
    sizes: int | None = None
    min_bytes: int | None = None
    max_bytes: int | None = None
    rms_relative_residual_pct: float | None = None
    max_relative_residual_pct: float | None = None
    method: str | None = None


@dataclass(kw_only=True)
class LinkParams(Section):
    alpha_us: Annotated[float, Constraint(minimum=0)]
    beta_gbps: Annotated[float, Constraint(exclusiveMinimum=0)]
    source: str
    fit: LinkFit | None = None


@dataclass(kw_only=True)
class ProjectionLink(Section):
    formula: str
    levels: str | None = spec(None, omit_none=True)
    link: LinkParams
    intra_node: LinkParams | None = None
    ranks_per_node: Positive | None


_UNAVAILABLE_POINT = {
    "if": {"properties": {"status": {"const": "unavailable"}}},
    "then": {
        "required": ["reason"],
        "properties": {"reason": {"type": "string"}, "efficiency_pct": {"type": "null"}},
    },
    "else": {"required": ["step_time_ms"]},
}


@dataclass(kw_only=True)
class ProjectionPoint(Section):
    __schema__: ClassVar[dict[str, Any]] = _UNAVAILABLE_POINT

    world_size: Positive
    status: Literal["estimated", "unavailable"]
    reason: str | None = None
    per_rank_batch: int | None = None
    global_batch: int | None = None
    compute_ms: float | None = None
    straggler_wait_ms: float | None = None
    allreduce_ms: float | None = None
    exposed_comm_ms: float | None = None
    other_ms: float | None = None
    step_time_ms: float | None = spec(None, nullable=False, omit_none=True)
    throughput_samples_per_sec: float | None = None
    efficiency_pct: float | None
    fit_error_pct: float | None = spec(
        None,
        omit_none=True,
        doc="the projection's fit error (largest |error_pct| of its check): every projected "
        "figure carries it",
    )
    fit_on: str | None = spec(
        None, omit_none=True, doc="what the fit was made on: the link, the reference world size"
    )


@dataclass(kw_only=True)
class ProjectionInputs(Section):
    """What the projection starts from: the reference world size's measured parts."""

    reference_world_size: int | None = None
    per_rank_compute_ms: float | None = None
    straggler_wait_ms: float | None = None
    other_ms: float | None = None
    exposed_fraction: float | None = None
    allreduce_offset_ms: float | None = spec(None, omit_none=True)
    allreduce_calibration: float | None = spec(None, omit_none=True)
    comm_bytes: float | None = None
    buckets: float | None = None
    baseline_world_size: int | None = None
    baseline_step_time_ms: float | None = None
    notes: list[str] = spec(factory=list)


@dataclass(kw_only=True)
class ProjectionCheckEntry(Section):
    world_size: int
    fit_sizes: list[int] = spec(factory=list)
    measured_step_time_ms: float | None = None
    oversubscribed: bool | None = None
    status: str
    reason: str | None = None
    reference_world_size: int | None = None
    predicted_step_time_ms: float | None = None
    error_pct: float | None = None
    notes: list[str] = spec(factory=list)


@dataclass(kw_only=True)
class ProjectionCheck(Section):
    """The projection checked against the measured world sizes."""

    kind: str | None = None
    method: str | None = None
    entries: list[ProjectionCheckEntry] = spec(factory=list)
    largest_error_pct: float | None = None
    max_abs_error_pct: float | None = None
    max_abs_error_pct_own_cores: float | None = spec(None, omit_none=True)


@dataclass(kw_only=True)
class Projection(Section):
    """1.2: sweep --project: step time, throughput and efficiency past the measured world sizes,
    estimated with the alpha-beta all-reduce model, and checked against the measured sizes."""

    __schema__: ClassVar[dict[str, Any]] = {
        "if": {"properties": {"status": {"const": "unavailable"}}},
        "then": {"properties": {"reason": {"type": "string"}}},
        "else": {"properties": {"link": {"type": "object"}, "inputs": {"type": "object"}}},
    }

    status: Literal["estimated", "unavailable"]
    reason: str | None
    world_sizes: list[Positive]
    formula: str
    method: str
    link: ProjectionLink | None
    inputs: ProjectionInputs | None = None
    points: list[ProjectionPoint]
    check: ProjectionCheck | None
    fit_error_pct: float | None = spec(
        None,
        omit_none=True,
        doc="the largest |error_pct| of the check (over the sizes whose ranks had their own "
        "cores, when any did); above 50% the projection is refused (status unavailable)",
    )
    fit_on: str | None = spec(None, omit_none=True, doc="what the fit was made on, in one line")


@dataclass(kw_only=True)
class Scaling(Section):
    """A sweep's scaling block: efficiency per world size against the baseline, and why."""

    mode: Literal["weak", "strong"]
    world_sizes: Annotated[list[Positive], Constraint(minItems=1)]
    repeats: Positive
    order: str | None = spec(None, omit_none=True)
    metric: str
    formula: str
    method: str | None = spec(None, omit_none=True)
    baseline: ScalingBaseline
    per_rank_batch: int | None = None
    global_batch: int | None = None
    threads_per_rank: int | None = None
    warnings: list[str] = spec(factory=list)
    breakdown_method: str | None = spec(
        None,
        nullable=False,
        omit_none=True,
        doc="1.2: how each point's breakdown splits the lost step time",
    )
    points: list[ScalingPoint]
    projection: Projection | None = spec(None, nullable=False, omit_none=True)
    headline_run: HeadlineRun | None = spec(None, nullable=False, omit_none=True)

    def point(self, world_size: int) -> ScalingPoint | None:
        return next((p for p in self.points if p.world_size == world_size), None)


# --- collective benchmarks -----------------------------------------------------------------


@dataclass(kw_only=True)
class CollectiveRow(Section):
    """One (op, size) of a collectives benchmark: nccl-tests' row."""

    __schema__: ClassVar[dict[str, Any]] = {
        "allOf": [
            {
                "if": {
                    "properties": {"status": {"const": "unavailable"}},
                    "required": ["status"],
                },
                "then": {
                    "properties": {
                        "time_us": {"type": "null"},
                        "busbw_gbps": {"type": "null"},
                        "reason": {"type": "string"},
                    },
                    "required": ["reason"],
                },
            }
        ]
    }

    op: str
    size_bytes: NonNegative
    nominal_bytes: int | None = spec(None, omit_none=True)
    count: NonNegative | None = spec(None, nullable=False, omit_none=True)
    time_us: Annotated[float, Constraint(exclusiveMinimum=0)] | None = None
    algbw_gbps: Annotated[float, Constraint(minimum=0)] | None = None
    busbw_gbps: Annotated[float, Constraint(minimum=0)] | None
    wrong: NonNegative | None = None
    wrong_ranks: list[int] = spec(factory=list)
    status: MeasureStatus = "measured"
    reason: str | None = None
    ranks_reported: int | None = spec(None, omit_none=True)


@dataclass(kw_only=True)
class Collectives(Section):
    """A collectives benchmark: one row per (op, size), with the rule and formulas used."""

    rule: str | None = spec(None, nullable=False, omit_none=True)
    formulas: dict[str, Any] | None = spec(None, nullable=False, omit_none=True)
    dtype: str | None = None
    element_bytes: int | None = spec(None, omit_none=True)
    size_multiple_bytes: int | None = spec(None, omit_none=True)
    iters: Positive | None = None
    warmup_iters: NonNegative | None = None
    world_size: Positive | None = spec(None, nullable=False, omit_none=True)
    root: int | None = spec(None, omit_none=True)
    ops: list[str] = spec(factory=list)
    wrong_total: NonNegative | None = spec(None, nullable=False, omit_none=True)
    results: list[CollectiveRow]


# --- the pairwise link test ----------------------------------------------------------------

_Time = Annotated[float, Constraint(exclusiveMinimum=0)]
_Busbw = Annotated[float, Constraint(minimum=0)]


@dataclass(kw_only=True)
class PairEntry(Section):
    """One pair of the pairwise link test: both directions' time and busbw, and its verdict."""

    __schema__: ClassVar[dict[str, Any]] = {
        "allOf": [
            {
                "if": {
                    "properties": {"status": {"const": "unavailable"}},
                    "required": ["status"],
                },
                "then": {"properties": {"busbw_gbps": {"type": "null"}, "slow": {"const": False}}},
            }
        ]
    }

    a: RankId
    b: RankId
    node_a: str | None = None
    node_b: str | None = None
    round: int | None = None
    status: MeasureStatus
    reason: str | None = None
    time_us_ab: _Time | None = None
    time_us_ba: _Time | None = None
    time_us_ab_passes: list[float] = spec(factory=list)
    time_us_ba_passes: list[float] = spec(factory=list)
    busbw_ab_gbps: _Busbw | None = None
    busbw_ba_gbps: _Busbw | None = None
    time_us: _Time | None = None
    busbw_gbps: _Busbw | None
    wrong: NonNegative | None
    z: float | None = None
    slow: bool
    why_slow: str | None = None
    flagged: bool | None = spec(
        None,
        omit_none=True,
        doc="slow by the passes alone (the rule before the re-measure); absent before it",
    )
    recheck: PairRecheck | None = spec(
        None, omit_none=True, doc="the re-measure of a flagged pair; null when not flagged"
    )


@dataclass(kw_only=True)
class PairRecheck(Section):
    """The re-measure of a pair the passes flagged slow, beside healthy pairs (core.pair_recheck):
    per round the flagged pair's busbw / the healthy pair's measured right before or after it."""

    status: Literal["slow", "cleared", "not_remeasured"] = spec(
        doc="slow: slow against the healthy pairs too; cleared: not, so not slow; "
        "not_remeasured: no round to judge by (reason), the passes' verdict stands"
    )
    reason: str | None = None
    flagged_why: str | None = spec(None, doc="why the passes flagged it")
    references: list[Annotated[list[int], Constraint(minItems=2, maxItems=2)]] = spec(
        factory=list, doc="the healthy pairs measured beside it, in turn"
    )
    rounds: int = spec(0, doc="rounds with both the pair and its reference measured")
    ratios: list[float] = spec(factory=list, doc="per round: busbw / the reference's busbw")
    busbw_gbps: list[float] = spec(factory=list, doc="per round: the pair's re-measured busbw")
    ratio_median: float | None = None
    ratio_upper: float | None = spec(
        None, doc="one-sided upper confidence bound of the median ratio (sign test)"
    )
    busbw_upper_gbps: float | None = None
    confidence: float | None = spec(None, doc="of the upper bounds (one-sided)")
    cut: float | None = spec(
        None, doc="exp(-outlier_z x mad_floor_frac): the ratio the re-measure judges by"
    )
    still_slow_by: list[str] = spec(factory=list, doc="the rules it is still slow by: z, min_busbw")
    text: str | None = None


@dataclass(kw_only=True)
class Suspect(Section):
    """What the slow pairs point at: one link, a rank or a node (or nothing)."""

    kind: Literal["link", "rank", "node"] | None
    ranks: list[int]
    nodes: list[str]
    text: str | None


@dataclass(kw_only=True)
class PairDistribution(Section):
    """The measured pairs' busbw distribution the slow pairs are judged against."""

    n: int | None = None
    median: float | None = None
    min: float | None = None
    max: float | None = None
    log_scale: bool | None = None
    mad: float | None = None
    scale: float | None = None
    mad_floored: bool | None = None
    reason: str | None = None


@dataclass(kw_only=True)
class PairwiseRank(Section):
    """One rank (or node) of the link test: the median over the pairs it took part in."""

    rank: int
    node: str | None = None
    pairs: int | None = None
    pairs_measured: int | None = None
    busbw_gbps_median: float | None = None
    time_us_median: float | None = None
    slow_pairs: int | None = None
    best_busbw_gbps: float | None = spec(
        None, omit_none=True, doc="the rank rule: busbw of its fastest pair"
    )
    others_median_gbps: float | None = spec(
        None, omit_none=True, doc="the rank rule: median busbw of the pairs without it"
    )
    others_pairs: int | None = spec(
        None, omit_none=True, doc="the rank rule: how many measured pairs are without it"
    )
    z_best: float | None = spec(
        None,
        omit_none=True,
        doc="the rank rule: robust z of its best pair over the pairs without it",
    )
    slow: bool | None = spec(
        None,
        omit_none=True,
        doc="every pair with it slow against the pairs without it (and on re-measure); "
        "absent when the rank rule could not judge it (3 ranks or fewer)",
    )


@dataclass(kw_only=True)
class PairwiseNode(Section):
    node: str | None = None
    ranks: list[int] = spec(factory=list)
    pairs: int | None = None
    pairs_measured: int | None = None
    busbw_gbps_median: float | None = None
    slow_pairs: int | None = None
    best_busbw_gbps: float | None = spec(
        None, omit_none=True, doc="the slow-node rule: busbw of its fastest cross-node pair"
    )
    others_median_gbps: float | None = spec(
        None, omit_none=True, doc="the slow-node rule: median of the cross-node pairs without it"
    )
    others_pairs: int | None = spec(None, omit_none=True)
    z_best: float | None = spec(None, omit_none=True)
    slow: bool | None = spec(
        None,
        omit_none=True,
        doc="every cross-node pair with it slow against those without it (and on re-measure); "
        "absent where the rule could not judge it (fewer than 3 nodes, one rank per node)",
    )


@dataclass(kw_only=True)
class Pairwise(Section):
    """1.3: the pairwise link test (collectives --pattern pairwise)."""

    per: Literal["rank", "node"]
    schedule: Literal["concurrent", "serial"] | None = spec(None, nullable=False, omit_none=True)
    transport: str | None = None
    rule: str | None = spec(None, omit_none=True)
    formulas: dict[str, Any] | None = spec(None, omit_none=True)
    size_bytes: Positive | None = None
    nominal_bytes: int | None = spec(None, omit_none=True)
    count: int | None = spec(None, omit_none=True)
    dtype: str | None = spec(None, omit_none=True)
    iters: int | None = spec(None, omit_none=True)
    warmup_iters: int | None = spec(None, omit_none=True)
    passes: int | None = spec(None, omit_none=True)
    participants: list[RankId]
    labels: list[str] = spec(factory=list)
    rank_nodes: list[Any] = spec(factory=list)
    rounds: int | None = spec(None, omit_none=True)
    outlier_z: Annotated[float, Constraint(exclusiveMinimum=0)] | None = spec(
        None, nullable=False, omit_none=True
    )
    min_busbw_gbps: Annotated[float, Constraint(exclusiveMinimum=0)] | None = None
    mad_floor_frac: Annotated[float, Constraint(minimum=0)] | None = spec(
        None, nullable=False, omit_none=True
    )
    distribution: PairDistribution = spec(factory=PairDistribution)
    pairs: list[PairEntry]
    matrix_gbps: list[list[_Busbw | None]] = spec(
        doc="[i][j]: busbw of direction participants[i] -> participants[j]"
    )
    slow_pairs: list[Annotated[list[int], Constraint(minItems=2, maxItems=2)]]
    recheck_rounds: int | None = spec(
        None, nullable=False, omit_none=True, doc="rounds of the re-measure (0: none)"
    )
    recheck_rule: str | None = spec(None, omit_none=True)
    flagged_pairs: list[Annotated[list[int], Constraint(minItems=2, maxItems=2)]] | None = spec(
        None, nullable=False, omit_none=True, doc="slow by the passes alone, before the re-measure"
    )
    cleared_pairs: list[Annotated[list[int], Constraint(minItems=2, maxItems=2)]] | None = spec(
        None, nullable=False, omit_none=True, doc="flagged, re-measured and cleared"
    )
    wrong_total: NonNegative
    suspect: Suspect
    rank_rule: str | None = spec(None, omit_none=True)
    slow_ranks: list[int] | None = spec(
        None,
        nullable=False,
        omit_none=True,
        doc="ranks (nodes with per: node) every pair with which is slow against the pairs "
        "without them, and stayed slow on re-measure",
    )
    slow_nodes: list[str] | None = spec(
        None,
        nullable=False,
        omit_none=True,
        doc="per-rank runs with 2+ ranks on a node and 3+ nodes: nodes every cross-node pair "
        "with which is slow against the cross-node pairs without them, and stayed slow",
    )
    ranks_not_judged: str | None = spec(
        None, omit_none=True, doc="why the rank rule judged no rank (3 ranks or fewer)"
    )
    not_judged: str | None = spec(
        None,
        omit_none=True,
        doc="why the pairs' speed was not judged (1-2 pairs, or 3 ranks with one rank's both "
        "pairs slow, without --min-busbw): exit 1, NOT JUDGED",
    )
    per_rank: list[PairwiseRank] = spec(factory=list)
    per_node: list[PairwiseNode] = spec(factory=list)
    verdict: str


# --- isolation by group testing -------------------------------------------------------------


@dataclass(kw_only=True)
class IsolateGroup(Section):
    """One group test of a round: its units, why it ran, its busbw and verdict."""

    units: list[int]
    names: list[str] = spec(factory=list)
    ranks: list[RankId] = spec(factory=list)
    role: Literal["screen", "split", "leaf", "confirm", "control"]
    subject: list[str] = spec(factory=list)
    busbw_gbps: _Busbw | None
    wrong: NonNegative | None = None
    baseline_gbps: _Busbw | None = None
    pool: int | None = None
    scale: float | None = None
    ratio: float | None = None
    z: float | None = None
    # the SPRT evidence of this test toward slow (absent: the first rule, or decisive: below a
    # reference's floor or wrong elements)
    llr: float | None = spec(None, omit_none=True)
    slow: bool
    why: str | None = None


@dataclass(kw_only=True)
class IsolateRoundEntry(Section):
    """One round: its disjoint groups, run at once."""

    round: Positive
    groups: list[IsolateGroup]
    slow: list[str] = spec(factory=list)


@dataclass(kw_only=True)
class IsolateEvidence(Section):
    """One test a unit took part in."""

    round: Positive
    group: int
    role: str
    with_: list[str] = spec(factory=list, key="with")
    subject: bool | None = None
    busbw_gbps: _Busbw | None = None
    ratio: float | None = None
    z: float | None = None
    llr: float | None = spec(None, omit_none=True)
    slow: bool | None = None


@dataclass(kw_only=True)
class IsolateUnit(Section):
    """One unit's (rank's or node's) verdict and the tests behind it."""

    unit: int
    name: str
    ranks: list[RankId] = spec(factory=list)
    node: str | None = None
    status: Literal["bad", "cleared", "suspect", "unknown"]
    why: str | None = None
    evidence: list[IsolateEvidence] = spec(factory=list)


@dataclass(kw_only=True)
class Isolate(Section):
    """Isolation by group testing (minicluster isolate): the rounds, every unit's verdict with
    its evidence, the bad units, the reference floor used."""

    per: Literal["rank", "node"]
    transport: str | None = None
    algorithm: str | None = spec(None, omit_none=True)
    rule: str | None = spec(None, omit_none=True)
    formulas: dict[str, Any] | None = spec(None, omit_none=True)
    size_bytes: Positive | None = spec(None, omit_none=True)
    dtype: str | None = spec(None, omit_none=True)
    iters: int | None = spec(None, omit_none=True)
    warmup_iters: int | None = spec(None, omit_none=True)
    passes: int | None = spec(None, omit_none=True)
    params: dict[str, Any] | None = spec(None, omit_none=True)
    reference: str | None = None
    n_units: NonNegative
    pairwise_pairs: NonNegative | None = None
    complete: bool
    rounds: list[IsolateRoundEntry]
    units: list[IsolateUnit]
    bad: list[str]
    more_than_max_bad: bool
    unresolved: list[str] = spec(factory=list)
    stop_reason: str | None = None
    rounds_run: NonNegative
    groups_tested: NonNegative | None = None
    wrong_total: NonNegative
    verdict: str


# --- a converted result --------------------------------------------------------------------


@dataclass(kw_only=True)
class ImportedFrom(Section):
    """A result converted from another format: where it came from, and every canonical field
    the source does not record (null in the result) with the reason."""

    format: Literal["minicluster", "trackiq", "vllm", "markdown", "sglang", "nccl-tests"]
    label: str | None = spec(None, nullable=False, omit_none=True)
    converted_by: str | None = spec(None, nullable=False, omit_none=True)
    warnings: list[str] = spec(factory=list)
    unknown_fields: dict[str, str]
    unread_fields: list[str] = spec(
        factory=list,
        doc="fields of the source file the importer does not read (listed, never dropped silently)",
    )


@dataclass(kw_only=True)
class Fingerprint(Section):
    """What the result ran: the defining fields that decide whether two results are
    comparable (docs/compare.md); a field the result does not record is null, with the reason
    under unknown. Built by `minicluster.result.fingerprint`."""

    version: Positive
    fields: Annotated[dict[str, str | int | float | None], Constraint(required=["workload_type"])]
    unknown: dict[str, str]


# --- the result ----------------------------------------------------------------------------


@dataclass(kw_only=True)
class LayoutSection(Section):
    """The parallel layout a training run ran in: its degrees (product = world size), the one
    DeviceMesh's dims outermost first, and whether FSDP2 wrapped the model."""

    label: str = spec(doc="the degrees other than 1, as --parallel takes them (dp_shard=2,tp=2)")
    name: str = spec(doc="the parallelisms in use: DDP, FSDP, HSDP, TP, PP, EP joined by +")
    dp_replicate: Positive
    dp_shard: Positive
    tp: Positive
    pp: Positive
    ep: Positive
    fsdp: bool
    mesh: list[list[Any]] = spec(doc="[dim, size] pairs of the DeviceMesh, outermost first")
    pp_schedule: str | None = None
    pp_microbatches: int | None = None
    pp_stages: int | None = spec(None, omit_none=True)


@dataclass(kw_only=True)
class CommKindRank(Section):
    """One rank's figures of one collective kind (medians over measured steps)."""

    rank: int
    calls_per_step: float | None
    bytes_per_step: float | None
    time_ms: float | None
    exposed_ms: float | None
    wait_ms: float | None = None


@dataclass(kw_only=True)
class CommKind(Section):
    """One collective kind a training step issues (all_gather, reduce_scatter, all_reduce,
    send_recv, all_to_all, broadcast): calls and bytes per step, time in flight, exposed time,
    busbw (nccl-tests factors) and how it was timed; null figures with a reason when untimed."""

    kind: str
    label: str | None = None
    calls_per_step: float | None
    bytes_per_step: float | None
    time_ms: float | None
    exposed_ms: float | None
    transfer_ms: float | None = None
    wait_ms: float | None = None
    busbw_gbps: float | None
    status: str
    method: str | None
    reason: str | None = None
    untimed_calls: int | None = None
    wait_transfer: str | None = None
    per_rank: list[CommKindRank] = spec(factory=list)


@dataclass(kw_only=True)
class CommSection(Section):
    """Communication per collective kind (`kinds`), one definition for every layout."""

    method: str | None
    method_text: str | None = None
    definitions: dict[str, Any] | None = None
    overhead: dict[str, Any] | None = spec(None, omit_none=True)
    kinds: list[CommKind] = spec(factory=list)


@dataclass(kw_only=True)
class RunResult(Section):
    """One run's canonical result: a training run, a sweep (with `scaling`), a collectives
    benchmark (`collectives`), a pairwise link test (`pairwise`), or a converted import
    (`imported_from`)."""

    __schema_name__: ClassVar[str | None] = "result"
    __schema__: ClassVar[dict[str, Any]] = {
        "if": {
            "not": {
                "anyOf": [
                    {"required": ["imported_from"]},
                    {"required": ["bad_input"], "properties": {"bad_input": {"type": "string"}}},
                ]
            }
        },
        "then": {
            "description": "a result made by a minicluster run that built its workload: every "
            "set-up field is known",
            "properties": {
                "created_at": {"type": "string"},
                "world_size": {"type": "integer"},
                "nodes": {"not": {"type": "null"}},
                "workload": {
                    "if": {"properties": {"workload_type": {"const": "collectives"}}},
                    "else": {
                        "properties": {
                            "per_rank_batch": {"type": "integer"},
                            "global_batch": {"type": "integer"},
                        }
                    },
                },
            },
        },
    }

    schema_version: Annotated[str, Constraint(pattern=r"^minicluster/1(\.[0-9]+)?$")] = spec(
        doc="minicluster/1 and every 1.x: additive changes bump the minor version; readers "
        "accept them all"
    )
    run_id: Annotated[str, Constraint(minLength=1)]
    created_at: str | None
    aggregated_at: str | None = spec(None, nullable=False, omit_none=True)
    status: RunStatus
    tool: Tool
    launcher: str
    ray: RayInfo | None = spec(
        None,
        omit_none=True,
        doc="1.3: under the Ray launcher, the Ray version the ranks ran on; null otherwise",
    )
    backend: str | None
    world_size: Positive | None
    nodes: list[NodeEntry] | NonNegative | None = spec(
        doc="1.2: one object per node (launcher agent), ordered by node rank then hostname. "
        "Before 1.2 (and in results converted from formats without per-node data) an integer: "
        "the node count; null in a converted result whose source did not record it."
    )
    config: dict[str, Any]
    platform: Platform
    timing_method: str | None = spec(
        None,
        omit_none=True,
        doc="1.1: how comm_ms was taken on every rank (ddp_runtime_stats, comm_hook_host_clock, "
        "comm_hook_cuda_events), 'mixed' when ranks differ; null for a collectives run",
    )
    link: LinkCheck | None = spec(
        None,
        omit_none=True,
        doc="1.1: the gradient all-reduce's busbw judged against an expected figure "
        "(--expect-busbw), or why it was not judged",
    )
    workload: Workload
    metrics: dict[str, MetricValue]
    ranks: list[RankEntry]
    stragglers: list[Straggler] = spec(factory=list)
    culprits: list[Culprit] | None = spec(
        None,
        omit_none=True,
        doc="the ranks whose cost to the run is above checks.culprit_cost_pct and significant, "
        "most costly first ([]: none; absent: not accounted)",
    )
    culprit_rule: dict[str, Any] | None = spec(None, omit_none=True)
    host_contention: list[HostContention] | None = spec(
        None,
        omit_none=True,
        doc="(issue 25) culprits, stragglers and a slow link not named because the host's other "
        "processes held the CPU (the ranks' threads' run-queue delay, analysis.contention): "
        "NOT JUDGED (exit 2) when nothing else was found; absent when none",
    )
    contention_rule: str | None = spec(None, omit_none=True, doc="(issue 25) the rule, in words")
    host_cpu: HostCpu | None = spec(
        None,
        omit_none=True,
        doc="(issue 25) the ranks' CPU time and run-queue delay per step, mean over ranks and "
        "measured steps; absent where the records have no schedstat fields",
    )
    not_judged: str | None = spec(
        None,
        omit_none=True,
        doc="why the straggler and culprit checks could not be judged: fewer measured steps "
        "than the straggler sign test needs to reach p < 0.05 with this many ranks (5 with 2 "
        "ranks); absent when judged. With no other finding the verdict is NOT JUDGED (exit 2)",
    )
    accounting: dict[str, Any] | None = spec(
        None,
        omit_none=True,
        doc="per step and rank host + compute + wait + transfer against each rank's period, with "
        "the stated tolerance; per step the last arrival and its lateness (analysis.accounting)",
    )
    time_structure: list[dict[str, Any]] | None = spec(
        None,
        omit_none=True,
        doc="findings with a shape in time: each culprit's (scope rank: persistent, "
        "intermittent with period_steps, onset with from_step, drift with slope_ms_per_step), "
        "bimodal step times (kind bimodal: Hartigan's dip, p_value, modes_ms, mode_steps; scope "
        "run: the step time, scope rank: a rank's own work) and the step time's own drift or "
        "onset (scope run), each with its evidence",
    )
    failed_ranks: list[int] = spec(factory=list)
    aborted_ranks: list[int] = spec(
        factory=list, doc="1.1: ranks whose collective failed because another rank failed"
    )
    interrupted: bool = spec(
        False,
        doc="1.1: the user or a scheduler stopped the run; status is incomplete unless a rank "
        "failed on its own",
    )
    failure_order: list[FailureEvent] | None = spec(
        None,
        omit_none=True,
        doc="every failed rank's failure, the first failure in time first, causes before "
        "victims; absent when no rank failed",
    )
    incident: Incident | None = spec(
        None,
        omit_none=True,
        doc="the C4 class of a failed or slow run's incident; absent (or null) for a healthy run",
    )
    steps: StepsSection | str | None = spec(
        doc="rank_files: where the per-rank JSONL lie; series (1.1): the per-step cross-rank "
        "series every run-level component is the median of (1.2: with comm_bytes and buckets, "
        "the gradient bytes and DDP buckets all-reduced per step); embedded: every rank's "
        "steps, unless too many"
    )
    scaling: Scaling | None = spec(None, omit_none=True)
    collectives: Collectives | None = spec(None, omit_none=True)
    faults: Faults
    validation: Validation | None = spec(None, omit_none=True)
    errors: list[str]
    telemetry: Telemetry | None = spec(None, omit_none=True)
    bad_input: str | None = spec(
        None,
        omit_none=True,
        doc="the ranks stopped on bad input (a custom model whose code fails to import, build "
        "or run), in one line naming the file, the function and the exception; the run exits 2",
    )
    pairwise: Pairwise | None = spec(
        None, omit_none=True, doc="1.3: the pairwise link test (collectives --pattern pairwise)"
    )
    isolate: Isolate | None = spec(
        None, omit_none=True, doc="isolation by group testing (minicluster isolate)"
    )
    reference: ReferenceCheck | None = spec(
        None,
        omit_none=True,
        doc="the run judged against a reference (aggregate --reference): % of reference and "
        "a verdict below the floor",
    )
    imported_from: ImportedFrom | None = spec(
        None,
        nullable=False,
        omit_none=True,
        doc="a result converted from another format (minicluster convert): where it came "
        "from, and every canonical field the source does not record (null in this result) "
        "with the reason",
    )
    layout: LayoutSection | None = spec(
        None, omit_none=True, doc="a training run's parallel layout (DDP is dp_replicate=N)"
    )
    precision: Literal["fp32", "bf16", "fp16"] | None = spec(
        None, omit_none=True, doc="a training run's compute precision (run.precision)"
    )
    compile: bool | None = spec(
        None, omit_none=True, doc="whether the model ran under torch.compile (run.compile)"
    )
    comm: CommSection | None = spec(
        None, omit_none=True, doc="communication per collective kind a training step issues"
    )
    fingerprint: Fingerprint | None = spec(None, nullable=False, omit_none=True)
    in_band: InBandSection | None = spec(
        None,
        omit_none=True,
        doc="a job gathered in-band by node (across nodes, no shared filesystem): what each "
        "node sent rank 0, in bytes, beside what its ranks' logs would have taken",
    )
    rejudged: Rejudged | None = spec(
        None,
        omit_none=True,
        doc="1.6: present only in a result judged again after the run "
        "(result.rejudged-STAMP.json): how and when; the recorded result.json has none",
    )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResult:
        """The result of JSON object `data` (any 1.x); InputError for a result of another major
        version (written by a newer minicluster) or one that is not a result at all."""
        if not isinstance(data, dict):
            raise InputError(f"not a minicluster result: a JSON {type(data).__name__}")
        check_version(data.get("schema_version"))
        try:
            return super().from_json(data)
        except ValueError as e:
            raise InputError(f"not a minicluster result: {e}") from None

    # What the result is, and what readers ask of it everywhere.

    @property
    def kind(self) -> Literal["sweep", "pairwise", "isolate", "collectives", "run"]:
        """What made it: a sweep (scaling block), the pairwise link test, isolation by group
        testing, a collectives benchmark, or a run."""
        if self.scaling is not None:
            return "sweep"
        if self.pairwise is not None:
            return "pairwise"
        if self.isolate is not None:
            return "isolate"
        return "collectives" if self.collectives is not None else "run"

    @property
    def node_entries(self) -> list[NodeEntry]:
        """The per-node section ([] for results before 1.2, which hold only a count)."""
        return (
            [n for n in self.nodes if isinstance(n, NodeEntry)]
            if isinstance(self.nodes, list)
            else []
        )

    @property
    def node_count(self) -> int | None:
        """How many nodes ran the job: the per-node section's length (1.2), or the count older
        and converted results hold; None when unknown."""
        if isinstance(self.nodes, list):
            return len(self.nodes)
        return self.nodes if isinstance(self.nodes, int) and self.nodes > 0 else None

    @property
    def steps_section(self) -> StepsSection | None:
        return self.steps if isinstance(self.steps, StepsSection) else None

    @property
    def series(self) -> dict[str, list[float | None]] | None:
        """The per-step cross-rank series of the run-level metrics (1.1), or None."""
        steps = self.steps_section
        return steps.series if steps is not None and isinstance(steps.series, dict) else None

    def metric_value(self, name: str) -> float | None:
        """Metric `name`'s value as a float, None when absent or not measured."""
        mv = self.metrics.get(name)
        value = mv.value if mv is not None else None
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def is_training(self) -> bool:
        return self.workload.workload_type == "training"

    @property
    def checks(self) -> ChecksSection | None:
        """The verdict thresholds the run was judged by: its config's `checks` section (rank
        format 1.4), or the same keys under `run` in results from before that section; None for
        a collectives or pairwise run (nothing judges it by them, whatever an older config held
        under `run`) and when the config holds neither (a converted result). A threshold the
        config does not name is the default it was judged by."""
        if self.collectives is not None or self.pairwise is not None:
            return None
        section = self.config.get("checks")
        if not isinstance(section, dict):
            run = self.config.get("run")
            section = {k: run[k] for k in CHECK_KEYS if k in run} if isinstance(run, dict) else {}
            if not section:
                return None
        return ChecksSection(**{k: v for k, v in section.items() if k in CHECK_KEYS})


def check_version(version: object) -> None:
    """InputError unless `version` is `minicluster/1` or a 1.x: a result of another major
    version (written by a newer minicluster) is refused in one line."""
    major = re.match(r"minicluster/([0-9]+)", version) if isinstance(version, str) else None
    if major is None:
        raise InputError(f"not a minicluster result (schema_version {version!r})")
    if major.group(1) != "1":
        raise InputError(
            f"result schema {version} is from a newer minicluster; this one "
            f"({SCHEMA_VERSION}) reads {SCHEMA_MAJOR}.x: upgrade minicluster to read it"
        )


@dataclass
class SweepResult:
    """A sweep's own result: the result of its headline run (the run whose per-rank sections,
    metrics and plots it carries; `scaling.headline_run` says which and why) under the sweep's
    id, times and status, with the scaling block, the scaling efficiency at the headline's world
    size, its fingerprint (what the headline ran), and one error line per run of the sweep that
    did not end ok.

    `to_result()` is the canonical result of the sweep (what `result.json` of a sweep directory
    holds); the headline run's own result is left as it is.
    """

    headline: RunResult
    scaling: Scaling
    sweep_id: str
    created_at: str
    aggregated_at: str
    status: RunStatus
    scaling_efficiency: MetricValue
    fingerprint: Fingerprint | None = None
    run_errors: list[str] = dataclasses.field(default_factory=list)

    def to_result(self) -> RunResult:
        steps = self.headline.steps
        head = self.scaling.headline_run
        if isinstance(steps, StepsSection) and isinstance(steps.rank_files, str) and head:
            # the rank files lie in the headline run's sub-directory of the sweep directory
            steps = dataclasses.replace(steps, rank_files=f"{head.dir}/{steps.rank_files}")
        metrics = MetricMap(self.headline.metrics)
        metrics["scaling_efficiency_pct"] = self.scaling_efficiency
        return dataclasses.replace(
            self.headline,
            run_id=self.sweep_id,
            created_at=self.created_at,
            aggregated_at=self.aggregated_at,
            status=self.status,
            scaling=self.scaling,
            steps=steps,
            metrics=metrics,
            errors=[*self.headline.errors, *self.run_errors],
            fingerprint=self.fingerprint or self.headline.fingerprint,
        )

    def to_json(self) -> dict[str, Any]:
        return self.to_result().to_json()
