"""What every aggregation starts from: the run frame (world, ranks, their fates, how the launch
ended) and its one status rule, for training, collectives and the pairwise link test alike."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from minicluster.analysis import envelope, failure_order, nodes, rank_status
from minicluster.analysis.records import RankRecords
from minicluster.core.config import RunConfig


@dataclass(frozen=True)
class Launch:
    """What the launcher said about the run: why it failed (`error`, None when it did not), each
    rank's exit code (negative: killed by that signal), whether the user or a scheduler
    stopped it (Ctrl-C, a SIGTERM at a time limit), and the ranks the launcher itself signalled
    after another rank failed (`stopped`, rank -> signal; None where the launcher did not say)."""

    error: str | None = None
    exit_codes: Mapping[int, int] = field(default_factory=dict)
    interrupted: bool = False
    stopped: Mapping[int, int] | None = None


@dataclass
class RunFrame:
    """One run's records placed: rank 0's header (or the lowest rank's), the config the ranks ran
    with, each rank's node and fate, the failures in the order they happened (causes first), and
    the lines every result's errors start with (the readers' warnings, the fates, the launcher's
    error)."""

    records: list[RankRecords]
    launch: Launch
    head0: dict[str, Any]
    headers: list[dict[str, Any]]
    config: RunConfig
    world_size: int
    by_rank: dict[int, RankRecords]
    where: dict[int, nodes.NodeId]  # each rank's node (analysis.nodes.locate_ranks)
    multi_node: bool
    fates: rank_status.RankStatuses
    errors: list[str]
    failure_order: list[failure_order.FailureEvent]

    @classmethod
    def from_records(cls, records: list[RankRecords], launch: Launch | None = None) -> RunFrame:
        """The frame of `records`; InputError when no rank wrote a header."""
        launch = launch or Launch()
        head0, headers = envelope.rank0_header(records)
        config = envelope.run_config(head0)
        world_size = max(h["world_size"] for h in headers)
        by_rank = {r.rank: r for r in records}
        where = nodes.locate_ranks(records, world_size)
        multi_node = nodes.spans_nodes(where)
        order = failure_order.order(
            by_rank,
            world_size,
            launch.exit_codes,
            launch.stopped,
            launch.interrupted,
            config.run.collective_timeout_s,
        )
        fates = rank_status.classify(
            by_rank,
            world_size,
            dict(launch.exit_codes),
            rank_status.step_where if config.job == "train" else rank_status.bench_where,
            launch.interrupted,
            node_of=nodes.node_names(where) if multi_node else None,
            stopped_victims={  # victims that died without a summary: the launcher stopped them
                e.rank: e.evidence
                for e in order
                if not e.cause and e.rank in by_rank and by_rank[e.rank].summary is None
            },
            first=[e.rank for e in order],
        )
        errors = [w for r in records for w in r.warnings] + fates.errors
        if launch.error:
            errors.append(f"launcher: {launch.error}")
        return cls(
            records=records,
            launch=launch,
            head0=head0,
            headers=headers,
            config=config,
            world_size=world_size,
            by_rank=by_rank,
            where=where,
            multi_node=multi_node,
            fates=fates,
            errors=errors,
            failure_order=order,
        )

    @property
    def job(self) -> str:
        return self.config.job

    def status(self, short_of_plan: str | None = None) -> rank_status.RunStatus:
        """The run's status by the one rule (`rank_status.run_status`); `short_of_plan` says why
        it ran less than planned (a training run's measured steps)."""
        return rank_status.run_status(
            self.fates, self.launch.error, self.launch.interrupted, short_of_plan
        )
