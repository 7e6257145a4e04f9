"""The per-rank record format: one typed record per `type`, one codec, one version.

This is the interface between the rank side (which writes) and the analysis side (which reads),
as mlcommons/logging keeps one master list of log keys. Each rank writes `ranks/rank_NNNNN.jsonl`
(see `rundir`): one JSON object per line, `type` first. Each record type is one dataclass below;
its fields, in order, are the keys of its line (`KEYS`). `encode` and `decode` are the only ways
a record becomes a line and back; `RankLog` applies one rank's records in order.

- `header` (first line): who and where the rank is, what it runs; `format` is `FORMAT_VERSION`.
- `roster` (1.2; local rank 0 of each node only, right after the header): every node of the job
  and its ranks, gathered when the ranks started, and where rank 0 writes the result. It lets a
  node that holds only its own ranks' files (no shared filesystem) name the others' nodes.
- `comm_timing` (after the header and the roster; training jobs): the all-reduce timing method
  from `from_step` on. A second one says the worker switched method mid-run; `RankLog` keeps the
  history (`timing_methods`: more than one method reads as `mixed`).
- `step`: one per training step, flushed as it ends (the replica checksums only on steps where
  the replica check ran).
- `collective`: one per (op, message size) of a collectives job.
- `pair_plan` and `pair`: the pairwise link test (`collectives.pattern: pairwise`): one plan
  (who takes part, on which node; the schedule follows from it, `core.pairs`), then one record
  per pair the rank was in; then `pair_recheck`: one per re-measure of a pair the passes flagged
  slow and of the healthy pairs measured beside it (`core.pair_recheck`), on the ranks in it.
- `isolate_plan` and `isolate_round`: isolation by group testing (`collectives.pattern: isolate`):
  one plan (units, nodes, size, the search's parameters), then one record per round with every
  group's units, role, time and busbw (the same numbers on every rank: they were gathered before
  the next round was planned, `core.group_testing`).

At its end the rank writes `rank_NNNNN.summary.json` atomically (`Summary`, no `type` key).

Versions: adding a key or a record type bumps the minor version; readers accept every 1.x file
and headers from before the version existed (no `format` key). A key this reader does not know
(a newer 1.x writer's) is kept in the record's `extra` and written back; a record of a type it
does not know is kept as `Unknown` and otherwise ignored. Adding a record type is one dataclass
here and its place in `RECORD_CLASSES` (a `RankLog` keeps it in `others`, aggregation finds it
in `RankRecords.other`); adding a step key is one field of `Step` (default None, so older files
still decode; aggregation keeps it as a column).
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from minicluster.core import comm_methods, rundir
from minicluster.core.errors import InputError

FORMAT_NAME = "minicluster-rank"
# 1.1: step comm_reason, comm_timing.from_step (no issue_delay_ms); 1.2: header `node_rank`,
# the `roster` record; 1.3: pair_plan and pair records (the pairwise link test), header `ray`;
# 1.4: the header's config has a `checks` section (the verdict thresholds, before in `run`).
# 1.5: step `gap_ms` (the host time between two steps), `comm_kinds` (per collective kind),
# `pp_stage`/`pp_busy_ms`/`pp_schedule_ms` (pipeline stages); isolate_plan and isolate_round
# records (group testing); `t_unix_s` and `bad_input` on the summary. All optional.
# 1.6: step `syncs_ms` and `sync_groups` (the sync points of a step), `sync_kinds` and
# `sync_bus_bytes` (each call's kind and bytes x busbw factor); the `pair_recheck` record (the
# pairwise re-measure of flagged pairs); the summary's `traceback`. All optional: a 1.5 file
# reads as before. 1.7: step `cpu_ms` and `cpu_wait_ms` (the rank's threads' CPU time and
# run-queue delay over the step, `rank.telemetry.schedstat`). Optional: a 1.6 file reads as before.
# 1.8: step `main_cpu_ms` and `main_cpu_wait_ms` (the same of the training-loop thread alone).
# Optional: a 1.7 file reads as before (the contention rule then takes every thread's wait).
FORMAT_VERSION = f"{FORMAT_NAME}/1.8"


class RecordError(InputError):
    """A line that is not a record this format knows how to read (a required key is missing)."""


def _key(name: str) -> dict[str, Any]:
    """Field metadata: the field's JSON key where it cannot be its Python name (`pass`)."""
    return {"key": name}


@dataclass(kw_only=True, slots=True)
class Record:
    """Base of every record: `TYPE` is its `type` key; `extra` keeps keys this reader does not
    know (a newer 1.x writer's), written back after the known ones."""

    TYPE: ClassVar[str] = ""
    # Keys written only when their value is not None (e.g. the replica checksums of a step).
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset()
    # Written with a `type` key (every line of the rank file; not the summary file).
    TAGGED: ClassVar[bool] = True
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=True)

    def to_json(self) -> dict[str, Any]:
        """The record as the JSON object of its line, keys in `KEYS` order."""
        spec = _spec(type(self))
        out: dict[str, Any] = {"type": self.TYPE} if self.TAGGED else {}
        for key, attr in spec.pairs:
            value = getattr(self, attr)
            if value is None and key in self.OMIT_NONE:
                continue
            out[key] = value
        if self.extra:
            out.update(self.extra)
        return out


@dataclass(frozen=True)
class _Spec:
    pairs: tuple[tuple[str, str], ...]  # (JSON key, attribute), in field order
    keys: frozenset[str]
    required: tuple[str, ...]  # JSON keys a line must have


_SPECS: dict[type[Record], _Spec] = {}


def _spec(cls: type[Record]) -> _Spec:
    """`cls`'s keys and attributes, worked out once per class."""
    spec = _SPECS.get(cls)
    if spec is None:
        spec = _SPECS[cls] = _make_spec(cls)
    return spec


def _make_spec(cls: type[Record]) -> _Spec:
    pairs = []
    required = []
    for f in dataclasses.fields(cls):
        if f.name == "extra":
            continue
        key = f.metadata.get("key", f.name)
        pairs.append((key, f.name))
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(key)
    return _Spec(tuple(pairs), frozenset(k for k, _ in pairs), tuple(required))


def keys_of(cls: type[Record]) -> tuple[str, ...]:
    """The keys of `cls`'s line in order (`type` first for the rank file's records)."""
    own = tuple(k for k, _ in _spec(cls).pairs)
    return ("type", *own) if cls.TAGGED else own


@dataclass(kw_only=True, slots=True)
class Header(Record):
    """Who and where the rank is, and what it runs. `threads` is the number of CPU threads the
    rank used (`torch.set_num_threads`): every later reader takes it from here."""

    TYPE: ClassVar[str] = "header"
    format: str | None = None  # FORMAT_VERSION; absent before 1.1
    run_id: str
    rank: int
    local_rank: int | None = None
    world_size: int
    local_world_size: int | None = None
    node_rank: int | None = None  # 1.2: torchrun's group rank (GROUP_RANK); None when unset
    hostname: str | None = None
    pid: int | None = None
    created_at: str | None = None
    tool_version: str | None = None
    backend: str | None = None
    device: str | None = None
    threads: int | None = None
    launcher: str | None = None
    ray: dict[str, Any] | None = None  # 1.3: under Ray {version, node_id}; else None
    job: str | None = None
    config: dict[str, Any] | None = None  # the resolved RunConfig (config.RunConfig.to_dict)
    workload: dict[str, Any] | None = None  # name, per_rank_batch, seq_len, tokens_per_rank, params
    platform: dict[str, Any] | None = None  # hostname, cpu, cpu_count, memory, gpu, versions


@dataclass(kw_only=True, slots=True)
class Roster(Record):
    """The job's nodes, `[{node_rank, hostname, ranks}]` sorted by node rank then hostname, and
    `rank0`: `{hostname, out_dir}` (rank 0's output directory, absolute, on its own node)."""

    TYPE: ClassVar[str] = "roster"
    nodes: list[dict[str, Any]]
    rank0: dict[str, Any] | None = None


ROSTER_NODE_KEYS = ("node_rank", "hostname", "ranks")


@dataclass(kw_only=True, slots=True)
class CommTiming(Record):
    """The all-reduce timing method from step `from_step` on, and why it is not the configured
    one (`fallback`)."""

    TYPE: ClassVar[str] = "comm_timing"
    method: str
    fallback: str | None = None
    from_step: int | None = None  # 1.1; the first record's is 0


@dataclass(kw_only=True, slots=True)
class Step(Record):
    """One training step on one rank, times in ms. Warm-up steps are recorded but excluded from
    statistics. `comm_reason` says why `comm_ms` is null (the timer could not vouch for it)."""

    TYPE: ClassVar[str] = "step"
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset(
        (
            "param_checksum",
            "optim_checksum",
            "grad_applied_checksum",
            "grad_reduced_checksum",
            "comm_kinds",
            "pp_stage",
            "pp_busy_ms",
            "pp_schedule_ms",
            "syncs_ms",
            "sync_groups",
            "sync_kinds",
            "sync_bus_bytes",
        )
    )
    step: int
    warmup: bool = False
    step_time_ms: float | None = None
    fwd_ms: float | None = None
    bwd_ms: float | None = None
    opt_ms: float | None = None
    compute_ms: float | None = None
    comm_ms: float | None = None
    exposed_comm_ms: float | None = None
    buckets: int | None = None
    comm_bytes: int | None = None
    comm_reason: str | None = None  # 1.1
    loss: float | None = None
    t_unix_s: float | None = None
    # Host time before the step's clock started: from the previous step's end (its optimizer
    # step done) to this one's start (the batch, the records written, a pause of any cause). None
    # for the first step. With `opt_ms` it is the rank's own work outside forward and backward.
    gap_ms: float | None = None
    # 1.7: the CPU time of the rank process's threads over the step, and the time they were
    # runnable but waited on a run queue for a CPU (Linux schedstat run_delay; threads seen at
    # the step's start and end only). None where schedstat cannot be read (the summary's
    # telemetry says why: source `cpu_schedstat`).
    cpu_ms: float | None = None
    cpu_wait_ms: float | None = None
    # 1.8: the same of the training-loop thread alone (the one that arrives at the collective;
    # None where it is not listed: the summary's telemetry says why, source `cpu_schedstat_main`)
    main_cpu_ms: float | None = None
    main_cpu_wait_ms: float | None = None
    # The replica check (every `run.replica_check_every` steps): bit sums, exact integers.
    param_checksum: int | None = None
    optim_checksum: int | None = None
    grad_applied_checksum: int | None = None
    grad_reduced_checksum: int | None = None
    # A layout without DDP: per collective kind (core.comm_kinds) {calls, bytes, bus_bytes,
    # time_ms, exposed_ms, untimed} of this step (rank.comm_kinds); absent under DDP.
    comm_kinds: dict[str, dict[str, Any]] | None = None
    # A pipeline layout: this rank's stage, the time its forward/backward chunks ran (union) and
    # the schedule's whole step; the rest of the schedule is bubble (and send/recv waits).
    pp_stage: int | None = None
    pp_busy_ms: float | None = None
    pp_schedule_ms: float | None = None
    # A layout with several collectives per step (FSDP2, TP; rank.comm_kinds, host clock): each
    # collective call of the step in issue order, the time this rank was blocked in it (ms), and
    # its group's lowest global rank (None: unknown). Optional: without them the accounting
    # takes one sync point per step (analysis.accounting).
    syncs_ms: list[float] | None = None
    sync_groups: list[int | None] | None = None
    # Beside them, each call's kind (core.comm_kinds) and its bytes x busbw factor (None: group
    # size unknown): the wait-free transfer of each call, per kind, for the link check under a
    # layout (analysis.fault_detect.layout_link_check).
    sync_kinds: list[str] | None = None
    sync_bus_bytes: list[float | None] | None = None


@dataclass(kw_only=True, slots=True)
class Collective(Record):
    """One (op, message size) of the collectives benchmark on one rank: its mean time per call
    over `iters` (`time_us`), the max of that mean across ranks, and its wrong elements."""

    TYPE: ClassVar[str] = "collective"
    op: str
    size_bytes: int
    nominal_bytes: int
    count: int | None = None
    dtype: str | None = None
    iters: int | None = None
    warmup_iters: int | None = None
    status: str = "unavailable"  # measured | unavailable
    reason: str | None = None
    time_us: float | None = None
    time_us_max: float | None = None
    wrong: int | None = None
    check_reason: str | None = None
    t_unix_s: float | None = None


@dataclass(kw_only=True, slots=True)
class PairPlan(Record):
    """The pairwise link test's plan: who takes part (in schedule order; per node the lowest
    rank of each), the node of every rank, the size and the iterations."""

    TYPE: ClassVar[str] = "pair_plan"
    per: str  # rank | node
    schedule: str  # concurrent | serial
    transport: str | None = None  # send_recv: what carries the bytes
    participants: list[int]
    nodes: list[Any]  # the node of every rank, indexed by rank (core.pairs.node_of)
    size_bytes: int
    nominal_bytes: int | None = None
    count: int | None = None
    dtype: str | None = None
    iters: int | None = None
    warmup_iters: int | None = None
    passes: int = 1  # times the whole schedule runs


@dataclass(kw_only=True, slots=True)
class Pair(Record):
    """One pair and pass the rank took part in: direction ab is a -> b, ba is b -> a (a < b)."""

    TYPE: ClassVar[str] = "pair"
    pass_: int = field(metadata=_key("pass"))
    round: int
    a: int
    b: int
    status: str  # measured | unavailable
    reason: str | None = None
    time_us_ab: float | None = None  # this rank's mean per transfer a -> b (timed loop)
    time_us_ba: float | None = None
    time_us_ab_max: float | None = None  # the max of that mean over the pair's two ranks
    time_us_ba_max: float | None = None
    wrong: int | None = None  # elements received from the peer that differ from the expected
    t_unix_s: float | None = None


@dataclass(kw_only=True, slots=True)
class PairRecheck(Record):
    """One measurement of the re-measure after the passes (`core.pair_recheck`): the flagged pair
    (fa, fb) or a healthy reference (a, b) beside it, in round `round`; times as in `Pair`."""

    TYPE: ClassVar[str] = "pair_recheck"
    fa: int  # the flagged pair this round re-measures
    fb: int
    round: int
    role: str  # flagged | reference
    a: int
    b: int
    status: str  # measured | unavailable
    reason: str | None = None
    time_us_ab: float | None = None
    time_us_ba: float | None = None
    time_us_ab_max: float | None = None
    time_us_ba_max: float | None = None
    t_unix_s: float | None = None


@dataclass(kw_only=True, slots=True)
class IsolatePlan(Record):
    """Isolation by group testing: the units (the ranks tested, per node the lowest rank of each),
    the node of every rank, the size, the iterations and the search's parameters
    (`core.group_testing.Params` as a dict)."""

    TYPE: ClassVar[str] = "isolate_plan"
    per: str  # rank | node
    participants: list[int]  # unit i is rank participants[i]
    nodes: list[Any]
    size_bytes: int
    nominal_bytes: int | None = None
    count: int | None = None
    dtype: str | None = None
    iters: int | None = None
    warmup_iters: int | None = None
    passes: int = 1
    params: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None  # what params' min_busbw_gbps came from


@dataclass(kw_only=True, slots=True)
class IsolateRound(Record):
    """One round of group tests (1-based), every group in the planned order: its units, role,
    the time (mean per all_reduce over `iters`, max over the group's ranks, fastest pass; None
    when not measured), busbw and #wrong."""

    TYPE: ClassVar[str] = "isolate_round"
    round: int
    groups: list[list[int]]
    roles: list[str]
    time_us: list[float | None]
    busbw_gbps: list[float | None]
    wrong: list[int]
    t_unix_s: float | None = None


TRACEBACK_CHARS = 8000  # a summary's traceback keeps its last this many characters


@dataclass(kw_only=True, slots=True)
class Summary(Record):
    """`rank_NNNNN.summary.json`, written atomically at the rank's end (its own file, no `type`).
    `validation`: rank 0 of a run with check_ddp_equivalence; `collectives_recorded`: the
    records of a collectives job; `t_unix_s`: when it was written."""

    TYPE: ClassVar[str] = "summary"
    TAGGED: ClassVar[bool] = False
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset(
        ("validation", "collectives_recorded", "t_unix_s", "bad_input", "traceback")
    )
    format: str | None = None
    run_id: str | None = None
    rank: int | None = None
    world_size: int | None = None
    hostname: str | None = None
    status: str  # ok | failed | interrupted
    last_step: int | None = None
    error: str | None = None
    memory: dict[str, Any] | None = None
    ddp_logging: dict[str, Any] | None = None
    telemetry: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    collectives_recorded: int | None = None
    # When the summary was written (wall clock): for a failed rank, about when its error came,
    # which orders failures across ranks (`analysis.failure_order`).
    t_unix_s: float | None = None
    # The rank stopped on bad input (InputError: a custom model's code failed), in one line.
    bad_input: str | None = None
    # 1.6: a failed rank's Python traceback (its last frames, chained causes included, at most
    # TRACEBACK_CHARS), so a user finds the file and line of an error in their own code.
    traceback: str | None = None


@dataclass(kw_only=True, slots=True)
class Unknown(Record):
    """A record of a type this reader does not know (a newer 1.x writer's): kept, not used."""

    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dict(self.data)


BenchRecord = Collective | PairPlan | Pair
LineRecord = (
    Header
    | Roster
    | CommTiming
    | Step
    | Collective
    | PairPlan
    | Pair
    | PairRecheck
    | IsolatePlan
    | IsolateRound
    | Unknown
)
RECORD_CLASSES: tuple[type[Record], ...] = (
    Header,
    Roster,
    CommTiming,
    Step,
    Collective,
    PairPlan,
    IsolatePlan,
    IsolateRound,
    Pair,
    PairRecheck,
)
# The record class of each type name (what `decode` looks up).
CLASS_OF_TYPE: dict[str, type[Record]] = {cls.TYPE: cls for cls in RECORD_CLASSES}

HEADER, ROSTER, COMM_TIMING, STEP = Header.TYPE, Roster.TYPE, CommTiming.TYPE, Step.TYPE
COLLECTIVE, PAIR_PLAN, PAIR = Collective.TYPE, PairPlan.TYPE, Pair.TYPE
PAIR_RECHECK = PairRecheck.TYPE
RECORD_TYPES = tuple(CLASS_OF_TYPE)
BENCH_TYPES = (COLLECTIVE, PAIR_PLAN, PAIR)
# The keys of each line, in the order the recorder writes them.
HEADER_KEYS = keys_of(Header)
ROSTER_KEYS = keys_of(Roster)
COMM_TIMING_KEYS = keys_of(CommTiming)
STEP_KEYS = tuple(k for k in keys_of(Step) if k not in Step.OMIT_NONE)
STEP_REPLICA_KEYS = tuple(k for k in keys_of(Step) if k in Step.OMIT_NONE)
COLLECTIVE_KEYS = keys_of(Collective)
PAIR_PLAN_KEYS = keys_of(PairPlan)
PAIR_KEYS = keys_of(Pair)
SUMMARY_KEYS = tuple(k for k in keys_of(Summary) if k not in Summary.OMIT_NONE)
SUMMARY_OPTIONAL_KEYS = tuple(k for k in keys_of(Summary) if k in Summary.OMIT_NONE)


def encode(record: Record) -> str:
    """One record as its line (compact JSON, `type` first, no newline)."""
    return encode_json(record.to_json())


def encode_json(obj: dict[str, Any]) -> str:
    """A record's JSON object (`Record.to_json`) as its line."""
    return json.dumps(obj, separators=(",", ":"))


def decode(obj: Any, where: str = "record") -> LineRecord:
    """The typed record of one parsed line. RecordError when it is not a JSON object or lacks a
    key its type requires; InputError for a header in a format version this reader cannot read."""
    if not isinstance(obj, Mapping):
        raise RecordError(f"{where}: not a JSON object")
    kind = obj.get("type")
    cls = CLASS_OF_TYPE.get(kind) if isinstance(kind, str) else None
    if cls is None:
        return Unknown(data=dict(obj))
    if cls is Header:
        check_header(obj, where)  # first: another major version may have other keys
        _check_types(Header, obj, where)  # every reader trusts the header's types
    return _from_json(cls, obj, where)  # type: ignore[return-value]


# per class, per key: (key, its field's type hint, whether a value of each type seen is of it)
_CHECKS: dict[type[Record], list[tuple[str, Any, dict[type, bool]]]] = {}


def _check_types(cls: type[Record], obj: Mapping[str, Any], where: str) -> None:
    """RecordError naming the first key of `obj` whose value is not of its field's type (a
    rank file edited, or cut and joined, so that the header says `"rank": "x"`). `_is_a`
    depends on the value's type alone: its answer is kept per key and type (a header is
    decoded once per rank; asking typing each time was a tenth of `aggregate`'s CPU at
    4,096 ranks)."""
    checks = _CHECKS.get(cls)
    if checks is None:  # once per class
        hints = typing.get_type_hints(cls)
        checks = _CHECKS[cls] = [(key, hints[attr], {}) for key, attr in _spec(cls).pairs]
    for key, hint, seen in checks:
        if key not in obj:
            continue
        value = obj[key]
        ok = seen.get(type(value))
        if ok is None:
            ok = seen[type(value)] = _is_a(value, hint)
        if not ok:
            raise RecordError(
                f"{where}: {cls.TYPE} record's {key} is {type(value).__name__} "
                f"{value!r:.40}, not {_type_text(hint)}"
            )


def _is_a(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_is_a(value, h) for h in typing.get_args(hint))
    base = typing.get_origin(hint) or hint
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, base)


def _type_text(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_text(h) for h in typing.get_args(hint))
    return (
        "null"
        if hint is type(None)
        else getattr(typing.get_origin(hint) or hint, "__name__", str(hint))
    )


def decode_summary(obj: Any, where: str = "summary") -> Summary:
    """The typed summary of a parsed `rank_NNNNN.summary.json`; RecordError when malformed."""
    if not isinstance(obj, Mapping):
        raise RecordError(f"{where}: not a JSON object")
    summary = _from_json(Summary, obj, where)
    assert isinstance(summary, Summary)
    return summary


def _from_json(cls: type[Record], obj: Mapping[str, Any], where: str) -> Record:
    spec = _spec(cls)
    missing = [k for k in spec.required if k not in obj]
    if missing:
        raise RecordError(f"{where}: {cls.TYPE} record lacks {', '.join(missing)}")
    kwargs = {attr: obj[key] for key, attr in spec.pairs if key in obj}
    extra = {k: v for k, v in obj.items() if k not in spec.keys and k != "type"}
    return cls(**kwargs, extra=extra)


def parse_lines(
    data: bytes, name: str, loads: Callable[[bytes], Any] = json.loads
) -> tuple[list[Any], list[str]]:
    """The JSON objects of a rank file's lines, and a warning per line skipped. One parse of the
    whole file as a JSON array (a 1,000-step file in one call, not 1,000); when that fails (a
    line cut by a crash, a malformed line) line by line, each bad line skipped with a warning."""
    body = data.rstrip()
    try:
        return loads(b"[" + body.replace(b"\n", b",") + b"]"), []
    except ValueError:
        pass
    lines = data.split(b"\n")
    last = len(lines) - 1
    out, warnings = [], []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(loads(line))
        except ValueError:
            # cut: the last line, its newline never written (a crash mid-write); a complete
            # line that does not parse is malformed wherever it is
            where = "truncated last line" if i == last else f"malformed line {i + 1}"
            warnings.append(f"{name}: {where} skipped")
    return out, warnings


_TYPE_PREFIXES = (b'{"type":"', b'{"type": "')


def line_type(line: bytes) -> str | None:
    """The `type` of a record line, read from its first bytes without parsing it (the recorder
    writes `type` first); None when the line does not start that way (parse it to know)."""
    for prefix in _TYPE_PREFIXES:
        if line.startswith(prefix):
            end = line.find(b'"', len(prefix))
            return line[len(prefix) : end].decode("ascii", "replace") if end > 0 else None
    return None


def check_header(header: Header | Mapping[str, Any], where: str) -> None:
    """InputError when `header` was written in a format version this reader does not know.

    A header without `format` predates the version (its keys are those of 1.0) and is accepted.
    """
    fmt = header.format if isinstance(header, Header) else header.get("format")
    if fmt is None:
        return
    name, _, version = str(fmt).partition("/")
    if name != FORMAT_NAME or version.split(".")[0] != FORMAT_VERSION.split("/")[1].split(".")[0]:
        raise InputError(
            f"{where}: rank records in format {fmt!r}; this minicluster reads {FORMAT_VERSION} "
            "(any 1.x)"
        )


@dataclass
class RankLog:
    """One rank's records applied in order: what the rank file (or the in-band gather) says.

    Steps are kept as rows (each step's JSON object, as written): the reader turns a million of
    them into columns in one numpy call (`analysis.records`); `steps()` decodes them typed.
    `keep_steps` False counts steps without keeping them (a rank whose records nobody gathers).
    The comm-timing history is every `comm_timing` record in order: a switch mid-run reads as
    `mixed` wherever the log is read.
    """

    header: Header | None = None
    roster: Roster | None = None
    timing: list[CommTiming] = field(default_factory=list)
    step_rows: list[dict[str, Any]] = field(default_factory=list)
    bench: list[BenchRecord] = field(default_factory=list)
    summary: Summary | None = None
    # Records of the other known types, by type, in order: a record type added to
    # RECORD_CLASSES is kept here (and read by `RankRecords.other`) with no other change.
    others: dict[str, list[Record]] = field(default_factory=dict)
    unknown: int = 0  # records of types this reader does not know
    keep_steps: bool = True
    steps_seen: int = 0
    last_step: int | None = None

    def apply(self, record: LineRecord | Summary, as_json: dict[str, Any] | None = None) -> None:
        """Add one record (in the order the rank wrote them); `as_json`: its JSON object when
        the caller already made it (a step is kept as that row)."""
        if isinstance(record, Step):
            self._add_step(as_json if as_json is not None else record.to_json(), record.step)
        elif isinstance(record, (Collective, PairPlan, Pair)):
            self.bench.append(record)
        elif isinstance(record, CommTiming):
            self.timing.append(record)
        elif isinstance(record, Header):
            self.header = record
        elif isinstance(record, Roster):
            self.roster = record
        elif isinstance(record, Summary):
            self.summary = record
        elif isinstance(record, Unknown):
            self.unknown += 1
        else:
            self.others.setdefault(record.TYPE, []).append(record)

    def apply_json(self, objs: list[Any], where: str) -> list[str]:
        """Add parsed lines in order: steps as rows (not decoded one by one), every other record
        decoded; a warning per record that could not be (skipped). InputError for a header in a
        format version this reader cannot read."""
        warnings: list[str] = []
        rows = [o for o in objs if type(o) is dict and o.get("type") == STEP]  # nearly all
        if len(rows) < len(objs):
            for obj in objs:
                if not (type(obj) is dict and obj.get("type") == STEP):
                    try:
                        self.apply(decode(obj, where))
                    except RecordError as e:
                        warnings.append(f"{e}; skipped")
        if rows:
            self.steps_seen += len(rows)
            last = rows[-1].get("step")
            self.last_step = last if isinstance(last, int) else None
            if self.keep_steps:
                self.step_rows.extend(rows)
        return warnings

    def read_summary(self, path: Path | str, who: str) -> str | None:
        """Apply the summary file at `path` when it is there; a warning naming `who` when it is
        unreadable (then treated as missing)."""
        try:
            with open(path, "rb", buffering=0) as f:  # unbuffered: no isatty, no buffer
                data = f.readall()
        except FileNotFoundError:
            return None
        except OSError as e:
            return f"{who}: summary unreadable ({e}); treated as missing"
        try:
            self.summary = decode_summary(json.loads(data), os.path.basename(path))
        except ValueError as e:  # malformed JSON, or a RecordError
            return f"{who}: summary unreadable ({e}); treated as missing"
        return None

    def _add_step(self, row: dict[str, Any], step: int | None) -> None:
        self.steps_seen += 1
        self.last_step = step
        if self.keep_steps:
            self.step_rows.append(row)

    def to_wire(self) -> dict[str, Any]:
        """The log as JSON data: its records' objects (steps as their rows) and its summary's,
        for a boundary that carries only JSON (the Ray driver's pipe); `from_wire` reads it."""
        head = [r for r in (self.header, self.roster) if r is not None]
        records = [r.to_json() for r in (*head, *self.timing)]
        records += self.step_rows
        records += [r.to_json() for r in self.bench]
        records += [r.to_json() for kept in self.others.values() for r in kept]
        return {
            "records": records,
            "summary": self.summary.to_json() if self.summary is not None else None,
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str) -> RankLog:
        """The log `to_wire` made, decoded as a rank file is (RecordError when malformed)."""
        log = cls()
        warnings = log.apply_json(list(data.get("records") or []), where)
        if warnings:
            raise RecordError(warnings[0])
        if data.get("summary") is not None:
            log.summary = decode_summary(data["summary"], where)
        return log

    def steps(self) -> list[Step]:
        """The kept steps as typed records (for small uses: hot paths read `step_rows`)."""
        out = []
        for row in self.step_rows:
            step = decode(row, "step")
            assert isinstance(step, Step)
            out.append(step)
        return out

    @property
    def rank(self) -> int | None:
        if self.header is not None:
            return self.header.rank
        return self.summary.rank if self.summary is not None else None

    def timing_methods(self) -> list[str]:
        """The all-reduce timing methods the rank used, in order (more than one: it switched
        mid-run). A 1.0 file without a comm_timing record timed with the comm hook."""
        return [t.method for t in self.timing] or [comm_methods.HOOK_HOST_CLOCK]


def read_log(
    run_dir: Path,
    rank: int,
    loads: Callable[[bytes], Any] = json.loads,
    keep_steps: bool = True,
) -> tuple[RankLog, list[str]]:
    """One rank's log from `run_dir/ranks/` (its record file and summary, either may be
    missing), and a warning per line or file skipped. InputError when the record file cannot be
    read or its header is in a format version this reader cannot read."""
    log = RankLog(keep_steps=keep_steps)
    warnings: list[str] = []
    path = rundir.rank_jsonl(run_dir, rank)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = None
    except OSError as e:
        raise InputError(f"cannot read {path}: {e}") from None
    if data is not None:
        objs, warnings = parse_lines(data, path.name, loads)
        warnings += log.apply_json(objs, str(path))
    summary_warning = log.read_summary(rundir.rank_summary(run_dir, rank), f"rank {rank}")
    if summary_warning:
        warnings.append(summary_warning)
    return log, warnings
