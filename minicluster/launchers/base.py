"""The launcher interface: what a launcher would start (`LaunchPlan`) and how the ranks it
started ended (`LaunchOutcome`), one shape for every launcher.

After torchx's scheduler API: `plan(cfg, out_dir, run_id)` decides everything and starts
nothing (`minicluster run --dry-run` prints it); `run(plan)` starts the ranks, waits and says how
they ended. torchrun on this machine (`launchers.torchrun.LocalTorchrun`), this node's share of a
job across nodes (`launchers.torchrun.NodeTorchrun`) and Ray (`launchers.ray_launch.RayLauncher`)
implement it. The caller then aggregates from wherever the outcome says the records are.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from minicluster.core.config import RunConfig
from minicluster.core.rank_format import RankLog

# Where the ranks' records end up: in rank files under the run directory (the launcher reads
# them), or gathered in-band to rank 0 (the ranks' files may be on other nodes).
RecordsKind = Literal["files", "in-band"]


@dataclass(frozen=True)
class RankSlot:
    """One rank the plan starts here, as far as it is known before the launch: `rank` is None
    where the rendezvous hands out global ranks (a job across nodes) or the placement decides
    (Ray); `env` the variables the launcher sets for this rank alone."""

    rank: int | None
    local_rank: int | None
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LaunchPlan:
    """Everything a launcher will start, decided before anything starts.

    `config` is the resolved config the ranks get (written to `config_path` at launch);
    `command` what the launcher runs on this machine, `rank_entry` what every rank runs, and
    `rank_env` the variables every rank gets beyond its identity (RANK, LOCAL_RANK, WORLD_SIZE,
    MASTER_ADDR/PORT), `ranks` the ranks started here. `nnodes` and `nproc_per_node` are None
    where the launcher places the ranks at launch (Ray). `records` says where the ranks'
    records will be.
    """

    launcher: str  # torchrun | torchrun-node | ray
    run_id: str
    out_dir: Path
    config_path: Path
    config: RunConfig
    world_size: int
    nnodes: int | None
    nproc_per_node: int | None
    node_rank: int | None  # this node as started (a job across nodes), else None
    rendezvous: str  # where the ranks meet
    command: tuple[str, ...]
    rank_entry: str
    rank_env: Mapping[str, str]
    ranks: tuple[RankSlot, ...]
    records: RecordsKind
    threads_per_rank: int
    details: Mapping[str, str] = field(default_factory=dict)  # launcher-specific lines

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON data."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["out_dir"], data["config_path"] = str(self.out_dir), str(self.config_path)
        data["config"] = self.config.to_dict()
        data["command"] = list(self.command)
        data["rank_env"], data["details"] = dict(self.rank_env), dict(self.details)
        data["ranks"] = [
            {"rank": r.rank, "local_rank": r.local_rank, "env": dict(r.env)} for r in self.ranks
        ]
        return data

    def lines(self) -> list[str]:
        """The plan for a person: one fact per line."""
        if self.nnodes is None:
            where = "placed at launch"
        elif self.node_rank is None:
            plural = "s" if self.nproc_per_node != 1 else ""
            where = f"{self.nproc_per_node} rank{plural} on this machine"
        else:
            where = (
                f"{self.nnodes} nodes x {self.nproc_per_node} ranks; this node started as node "
                f"{self.node_rank}"
            )
        out = [
            f"launcher:      {self.launcher}",
            f"world size:    {self.world_size} ({where})",
            f"rendezvous:    {self.rendezvous}",
            f"run id:        {self.run_id}"
            + (
                " (this node's; the job runs under rank 0's, agreed at the rendezvous)"
                if self.node_rank is not None
                else ""
            ),
            f"output:        {self.out_dir}",
            f"config:        {self.config_path} (the resolved config, written at launch)",
            f"records:       {_RECORDS_TEXT[self.records]}",
            f"threads/rank:  {self.threads_per_rank}",
        ]
        out += [f"{k + ':':<14} {v}" for k, v in self.details.items()]
        if self.command:
            out.append(f"starts:        {shlex.join(self.command)}")
        out.append(f"each rank:     {self.rank_entry}")
        out.append(
            "rank env:      " + " ".join(f"{k}={v}" for k, v in sorted(self.rank_env.items()))
        )
        for slot in self.ranks:
            who = "rank (set at the rendezvous)" if slot.rank is None else f"rank {slot.rank}"
            local = "" if slot.local_rank is None else f" (local rank {slot.local_rank})"
            env = " ".join(f"{k}={v}" for k, v in slot.env.items())
            out.append(f"  {who}{local}" + (f": {env}" if env else ""))
        return out


_RECORDS_TEXT: dict[str, str] = {
    "files": "rank files under the output directory, read by the launcher's process",
    "in-band": "gathered in-band to rank 0 (the ranks' files may sit on other nodes)",
}


@dataclass(frozen=True)
class RecordsAt:
    """Where the records of a launch are, once it ended.

    `dir`: this machine's rank files (always; after a failure the result is built from them).
    `in_band`: every rank's log (`core.rank_format.RankLog`), gathered to rank 0 and handed back
    (Ray: over the driver's pipe as `RankLog.to_wire`, decoded by `from_wire`). `result`: rank 0
    aggregated in-band and wrote this result itself (a job across nodes, on rank 0's node).
    `on_rank0_node`: this node's ranks finished and the result is on rank 0's node (node.json
    here says where, when this node does not see rank 0's files). With none of the three the
    result is built from the files in `dir`.
    """

    dir: Path
    in_band: list[RankLog] | None = None
    result: Path | None = None
    on_rank0_node: bool = False


@dataclass(frozen=True)
class LaunchOutcome:
    """How the ranks of one launch ended, the same for every launcher.

    `error` None when every rank finished, else why not (the launcher's words, ranks named);
    `exit_codes` the non-zero exit codes by global rank (negative: killed by that signal);
    `interrupted` when the user or a scheduler stopped the launch (Ctrl-C, SIGTERM), with
    `error` saying how; `records` where the ranks' records are. `stopped`: the ranks the
    launcher itself signalled once another rank had failed (rank -> signal number), None where
    the launcher does not say; a rank killed by a signal it is not listed under was killed
    from outside the launcher (the kernel's OOM killer, earlyoom, a user's kill).
    """

    records: RecordsAt
    error: str | None = None
    exit_codes: Mapping[int, int] = field(default_factory=dict)
    interrupted: bool = False
    stopped: Mapping[int, int] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.interrupted


class Launcher(Protocol):
    """Starts the ranks of one run: `plan` decides (and starts nothing), `run` starts them."""

    name: str

    def plan(self, cfg: RunConfig, out_dir: Path, run_id: str) -> LaunchPlan: ...

    def run(self, plan: LaunchPlan) -> LaunchOutcome: ...
