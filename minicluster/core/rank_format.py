"""The per-rank record format: its version and every key of every record type, named once.

This is the interface between the rank side (which writes) and the analysis side (which reads),
as mlcommons/logging keeps one master list of log keys. Each rank writes `ranks/rank_NNNNN.jsonl`
(see `rundir`): one JSON object per line, each with a `type`:

- `header` (first line): who and where the rank is, what it runs; `format` is `FORMAT_VERSION`.
- `comm_timing` (after the header, and the roster where there is one; training jobs): the
  all-reduce timing method the rank uses; readers merge it into the header.
- `roster` (1.2; local rank 0 of each node only, right after the header): every node of the job
  and its ranks, gathered when the ranks started, and where rank 0 writes the result. It lets a
  node that holds only its own ranks' files (no shared filesystem) name the others' nodes.
- `step`: one per training step, flushed as it ends (`STEP_KEYS`, plus `STEP_REPLICA_KEYS` on
  steps where the replica check ran).
- `collective`: one per (op, message size) of a collectives job (`COLLECTIVE_KEYS`).
- `pair_plan` and `pair`: the pairwise link test (`collectives.pattern: pairwise`): one plan
  (who takes part, on which node; the schedule follows from it, `core.pairs`), then one record
  per pair the rank was in (`PAIR_KEYS`).

At its end the rank writes `rank_NNNNN.summary.json` atomically (`SUMMARY_KEYS`, plus
`SUMMARY_OPTIONAL_KEYS` where they apply). Adding a key bumps the minor version; readers accept
every 1.x file and headers from before the version existed (no `format` key).
"""

from __future__ import annotations

from typing import Any

from minicluster.core.errors import InputError

FORMAT_NAME = "minicluster-rank"
# 1.1: step comm_reason, comm_timing.from_step (no issue_delay_ms); 1.2: header `node_rank`,
# the `roster` record; 1.3: pair_plan and pair records (the pairwise link test), header `ray`.
FORMAT_VERSION = f"{FORMAT_NAME}/1.3"

HEADER = "header"
COMM_TIMING = "comm_timing"
ROSTER = "roster"
STEP = "step"
COLLECTIVE = "collective"
PAIR_PLAN = "pair_plan"
PAIR = "pair"
RECORD_TYPES = (HEADER, COMM_TIMING, ROSTER, STEP, COLLECTIVE, PAIR_PLAN, PAIR)

HEADER_KEYS = (
    "type",
    "format",
    "run_id",
    "rank",
    "local_rank",
    "world_size",
    "local_world_size",
    "node_rank",  # 1.2: torchrun's group rank (GROUP_RANK); None when the launcher sets none
    "hostname",
    "pid",
    "created_at",
    "tool_version",
    "backend",
    "device",
    "threads",
    "launcher",
    "ray",  # 1.3: under the Ray launcher {version, node_id} (the worker's Ray node); else None
    "job",
    "config",  # the resolved RunConfig as a dict (config.RunConfig.to_dict)
    "workload",  # name, per_rank_batch, seq_len, tokens_per_rank, params
    "platform",  # hostname, cpu, cpu_count, host_memory_total_bytes, gpu, torch, python, os
)
# A second `comm_timing` record says the worker switched method from `from_step` on.
COMM_TIMING_KEYS = ("type", "method", "fallback", "from_step")
# nodes: [{node_rank, hostname, ranks}] sorted by node rank, then hostname; rank0: {hostname,
# out_dir} (rank 0's output directory, absolute, on its own node).
ROSTER_KEYS = ("type", "nodes", "rank0")
ROSTER_NODE_KEYS = ("node_rank", "hostname", "ranks")
STEP_KEYS = (
    "type",
    "step",
    "warmup",  # warm-up steps are recorded but excluded from statistics
    "step_time_ms",
    "fwd_ms",
    "bwd_ms",
    "opt_ms",
    "compute_ms",
    "comm_ms",
    "exposed_comm_ms",
    "buckets",
    "comm_bytes",
    "comm_reason",  # why comm_ms is null (the timer could not vouch for this step), else null
    "loss",
    "t_unix_s",
)
STEP_REPLICA_KEYS = (
    "param_checksum",
    "optim_checksum",
    "grad_applied_checksum",
    "grad_reduced_checksum",
)
COLLECTIVE_KEYS = (
    "type",
    "op",
    "size_bytes",
    "nominal_bytes",
    "count",
    "dtype",
    "iters",
    "warmup_iters",
    "status",
    "reason",
    "time_us",
    "time_us_max",
    "wrong",
    "check_reason",
    "t_unix_s",
)
PAIR_PLAN_KEYS = (
    "type",
    "per",  # rank | node
    "schedule",  # concurrent | serial
    "transport",  # send_recv: what carries the bytes
    "participants",  # ranks taking part, in schedule order (per node: the lowest rank of each)
    "nodes",  # the node of every rank, indexed by rank (core.pairs.node_of)
    "size_bytes",
    "nominal_bytes",
    "count",
    "dtype",
    "iters",
    "warmup_iters",
    "passes",  # times the whole schedule runs
)
# One per pair and pass the rank took part in: direction ab is a -> b, ba is b -> a (a < b).
PAIR_KEYS = (
    "type",
    "pass",
    "round",
    "a",
    "b",
    "status",  # measured | unavailable
    "reason",
    "time_us_ab",  # this rank's mean per transfer a -> b over the back-to-back timed loop
    "time_us_ba",
    "time_us_ab_max",  # the max of that mean over the pair's two ranks
    "time_us_ba_max",
    "wrong",  # elements this rank received from its peer that differ from the expected values
    "t_unix_s",
)
SUMMARY_KEYS = (
    "format",
    "run_id",
    "rank",
    "world_size",
    "hostname",
    "status",  # ok | failed
    "last_step",
    "error",
    "memory",
    "ddp_logging",
    "telemetry",
)
# validation: rank 0 of a run with check_ddp_equivalence; collectives_recorded: collectives jobs.
SUMMARY_OPTIONAL_KEYS = ("validation", "collectives_recorded")


_TYPE_PREFIXES = (b'{"type":"', b'{"type": "')


def line_type(line: bytes) -> str | None:
    """The `type` of a record line, read from its first bytes without parsing it (the recorder
    writes `type` first); None when the line does not start that way (parse it to know)."""
    for prefix in _TYPE_PREFIXES:
        if line.startswith(prefix):
            end = line.find(b'"', len(prefix))
            return line[len(prefix) : end].decode("ascii", "replace") if end > 0 else None
    return None


def check_header(header: dict[str, Any], where: str) -> None:
    """InputError when `header` was written in a format version this reader does not know.

    A header without `format` predates the version (its keys are those of 1.0) and is accepted.
    """
    fmt = header.get("format")
    if fmt is None:
        return
    name, _, version = str(fmt).partition("/")
    if name != FORMAT_NAME or version.split(".")[0] != FORMAT_VERSION.split("/")[1].split(".")[0]:
        raise InputError(
            f"{where}: rank records in format {fmt!r}; this minicluster reads {FORMAT_VERSION} "
            "(any 1.x)"
        )
