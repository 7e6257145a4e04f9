"""The command line's flags: one parser, one sub-parser per command, each with its handler.

A flag that sets a config field takes its help text, type, choices and the default it shows from
that field of `core.config` (`config_flag`), and a Ray flag from `RayOptions`: the help cannot
drift from the default the run uses. Handlers (`cli.handlers`) import their command's module
only when it runs, so `--help` and the analysis commands start without torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any, Literal, NoReturn

from minicluster.cli import handlers
from minicluster.core import choices
from minicluster.core.checks import ChecksSection
from minicluster.core.choices import (
    REQUIRABLE_MEASUREMENTS,
    SWEEP_MODE,
    SWEEP_REPEATS,
    SWEEP_WORLD_SIZES,
)
from minicluster.core.config import CollectivesSection, RunSection
from minicluster.core.units import format_size
from minicluster.core.version import __version__
from minicluster.launchers.ray_launch import PLACEMENTS, RayOptions
from minicluster.launchers.torchrun import DEFAULT_RDZV_ID

# The config section each dataclass is, as a YAML key.
_SECTIONS: dict[type, str] = {
    RunSection: "run",
    CollectivesSection: "collectives",
    ChecksSection: "checks",
}

# input formats `--format` can force (interop.record.FORMATS; kept here so --help needs no import)
FORMATS = ("minicluster", "trackiq", "vllm", "markdown", "sglang", "nccl-tests")


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (and exit 2), not the whole usage block:
    `minicluster: error: argument --nproc: invalid int value: 'abc' (see ... --help)`.
    Sub-commands made by `add_subparsers` are of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"minicluster: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="minicluster",
        description="Distributed-training validation harness: run instrumented DDP ranks, "
        "merge their records into one result, compare results honestly.",
    )
    parser.add_argument("--version", action="version", version=f"minicluster {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "run",
        help="launch ranks (here, or this node's share of a job across nodes), run the workload, "
        "aggregate, summarize",
    )
    p.add_argument("-c", "--config", type=Path, help="YAML config (default: built-in default job)")
    config_flag(p, "--nproc", RunSection, "nproc")
    p.add_argument("--out", type=Path, help="output directory (default: runs/<run_id>)")
    p.add_argument(
        "--repeats",
        type=int,
        metavar="K",
        help="run the job K times, one after another, into DIR/r0..r{K-1} with DIR/repeats.json "
        "(each run, and the between-run spread); `compare DIR_A DIR_B` then tests runs as "
        "clusters (default: one run)",
    )
    add_report_flags(p)
    add_junit(p)
    add_require(p)
    add_fault_args(p)
    add_parallel_arg(p)
    add_launcher_args(p)
    add_node_args(p)
    add_dry_run(p)
    add_reference_flags(p, rejudge=False)
    p.set_defaults(handler=handlers.run)

    p = sub.add_parser(
        "validate",
        help="correctness: DDP equals one process on the global batch; replicas stay identical",
    )
    p.add_argument("-c", "--config", type=Path, help="YAML config (default: built-in default job)")
    config_flag(p, "--nproc", RunSection, "nproc", help="ranks to start")
    p.add_argument("--out", type=Path, help="output directory (default: runs/<run_id>)")
    add_report_flags(p)
    add_junit(p)
    add_fault_args(p)
    add_parallel_arg(p)
    p.add_argument(
        "--layouts",
        metavar="L,L,...",
        help="train the same model, seed and global batch under each layout (ddp, fsdp, tp, "
        "fsdp_tp, hsdp, or degree specs separated by ';': dp_shard=2;tp=2) and check the loss "
        "agrees with the first layout's at every step (relative 1e-4 in fp32, 3e-2 in bf16/fp16)",
    )
    add_launcher_args(p)
    add_dry_run(p)
    p.set_defaults(handler=handlers.validate)

    p = sub.add_parser(
        "sweep", help="one run per world size in one session; scaling efficiency table and plot"
    )
    p.add_argument("-c", "--config", type=Path, help="YAML config (default: built-in default job)")
    p.add_argument(
        "--world-sizes",
        metavar="N,N,...",
        help="world sizes to run, comma-separated; the smallest is the baseline (default: "
        f"{SWEEP_WORLD_SIZES})",
    )
    p.add_argument(
        "--mode",
        choices=["weak", "strong"],
        help="weak: the config's per-rank batch on every rank; strong: one global batch split "
        f"over the ranks (default: {SWEEP_MODE}; with --from, what the runs' batches say)",
    )
    p.add_argument(
        "--from",
        dest="from_dirs",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="build the scaling table from finished runs of different world sizes (separate "
        "jobs: one run directory or result.json each) instead of running them; same workload "
        "and batch checked, same formulas and output as a live sweep",
    )
    p.add_argument(
        "--repeats",
        type=int,
        metavar="K",
        help="rounds over all world sizes, interleaved (1,2,4,1,2,4,...); efficiency is the "
        f"median over rounds (default: {SWEEP_REPEATS})",
    )
    p.add_argument(
        "--global-batch",
        type=int,
        metavar="B",
        help="strong mode: the fixed global batch; every world size must divide it "
        "(default: config per-rank batch x largest world size)",
    )
    p.add_argument("--out", type=Path, help="output directory (default: runs/<sweep_id>)")
    add_projection_flags(p)
    add_report_flags(p)
    add_require(p)
    add_parallel_arg(p)
    p.add_argument(
        "--layouts",
        metavar="L;L;...",
        help="one run per layout at one world size (names as validate --layouts takes them: "
        "ddp,fsdp,tp,pp,ep,fsdp_tp,hsdp; or degree specs separated by ';': "
        '"dp_replicate=4;dp_shard=4;dp_shard=2,tp=2;pp=2,dp_replicate=2"), then a table side by '
        "side (step time, TFLOP/s, exposed comm per kind, bubble, memory) in DIR/layouts.md and "
        "DIR/layouts.json; the world size: --world-sizes N, else the largest product of degrees, "
        "else (names only) the config's run.nproc",
    )
    add_launcher_args(p)
    add_dry_run(p)
    p.set_defaults(handler=handlers.sweep)

    p = sub.add_parser(
        "collectives",
        help="collective micro-benchmarks (nccl-tests style): time, algbw, busbw, #wrong per size",
        description="Time each collective at message sizes min..max (doubling) on N local ranks, "
        "after checking its result element by element. time = mean over iterations after "
        "warm-up, max across ranks; algbw = size / time; busbw = algbw x factor (all_reduce "
        "2(n-1)/n; all_gather, reduce_scatter, all_to_all (n-1)/n; broadcast 1), as nccl-tests "
        "reports them. GB/s are decimal (1e9 B/s); sizes use K = 1024. With --pattern "
        "pairwise: every pair of ranks in round-robin rounds of disjoint pairs sends --size "
        "bytes each way by send/recv (busbw = algbw), checked, then timed; exit 1 naming the "
        "slow or wrong pairs and the rank, node or link they share; exit 2 (NOT JUDGED, as in "
        "every command) when the pairs' speed has nothing to be judged against (2 ranks, or a "
        "slow rank among 3, without --min-busbw) and nothing else was found.",
    )
    p.add_argument(
        "-c",
        "--config",
        type=Path,
        help="YAML config with job: collectives (default: built-in, see configs/collectives.yaml)",
    )
    config_flag(p, "--nproc", RunSection, "nproc", help="ranks to start")
    config_flag(p, "--ops", CollectivesSection, "ops", metavar="OP,OP", type=str)
    p.add_argument(
        "--sizes",
        metavar="MIN:MAX",
        help="message sizes in bytes, MIN:MAX doubling or one size; K/M/G = 1024^n "
        "(default: config collectives.min_bytes and max_bytes, "
        f"{format_size(_default(CollectivesSection, 'min_bytes'))}:"
        f"{format_size(choices.GPU_DEFAULT_MAX_BYTES)} on a GPU, "
        f"{format_size(_default(CollectivesSection, 'min_bytes'))}:"
        f"{format_size(choices.CPU_DEFAULT_MAX_BYTES)} on CPU)",
    )
    config_flag(p, "--step-factor", CollectivesSection, "step_factor", metavar="F")
    config_flag(p, "--iters", CollectivesSection, "iters")
    config_flag(p, "--warmup-iters", CollectivesSection, "warmup_iters")
    config_flag(p, "--dtype", CollectivesSection, "dtype")
    config_flag(p, "--pattern", CollectivesSection, "pattern")
    pairwise = p.add_argument_group("pairwise (--pattern pairwise)")
    config_flag(pairwise, "--size", CollectivesSection, "pair_bytes", metavar="SIZE", type=str)
    order = pairwise.add_mutually_exclusive_group()
    schedule = _default(CollectivesSection, "schedule")
    order.add_argument(
        "--concurrent",
        dest="schedule",
        action="store_const",
        const="concurrent",
        help="run each round's disjoint pairs at once"
        + (" (default: config collectives.schedule)" if schedule == "concurrent" else ""),
    )
    order.add_argument(
        "--serial",
        dest="schedule",
        action="store_const",
        const="serial",
        help="run one pair at a time (the host's cores and the switch serve one pair only)"
        + (" (default: config collectives.schedule)" if schedule == "serial" else ""),
    )
    config_flag(pairwise, "--per", CollectivesSection, "per")
    config_flag(pairwise, "--passes", CollectivesSection, "passes", metavar="P")
    config_flag(pairwise, "--recheck-rounds", CollectivesSection, "recheck_rounds", metavar="R")
    config_flag(pairwise, "--outlier-z", CollectivesSection, "outlier_z", metavar="Z")
    config_flag(pairwise, "--min-busbw", CollectivesSection, "min_busbw_gbps", metavar="GBPS")
    pairwise.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="slow_link:rank=R[,peer=P],delay_ms=D",
        help="inject a slow link (repeatable): every send of rank R, or with a peer only the "
        "traffic between R and P (both ways), leaves D ms late",
    )
    config_flag(
        pairwise, "--collective-timeout", RunSection, "collective_timeout_s", metavar="SECONDS"
    )
    p.add_argument("--out", type=Path, help="output directory (default: runs/<run_id>)")
    add_report_flags(p)
    add_launcher_args(p)
    add_dry_run(p)
    p.set_defaults(handler=handlers.collectives)

    p = sub.add_parser(
        "isolate",
        help="bad ranks found by group testing: all_reduce on groups, slow groups split",
        description="Isolation by group testing: all_reduce of --size bytes on groups of ranks "
        "(torch.distributed subgroups of one job), each group's busbw judged against its "
        "round's healthy groups of the same size (and --min-busbw); slow groups are split in "
        "halves, a suspect is tested beside cleared ranks round after round until a sequential "
        "probability ratio test decides (at least 4 slow tests agreeing name it bad, at least 2 "
        "fast ones clear it; still undecided after 12 + 16 tests: UNRESOLVED, not named). Finds "
        "up to --k bad ranks (the pairwise test needs N(N-1)/2 pairs; the rounds needed grow "
        "with the host's noise) and says when more than --k are bad. Prints each round and the verdict; exit 1 when a rank is named bad, "
        "0 when none is. --from DIR judges a finished run's recorded rounds again.",
    )
    p.add_argument(
        "-c", "--config", type=Path, help="YAML config with job: collectives (default: built-in)"
    )
    config_flag(p, "--nproc", RunSection, "nproc", help="ranks to start")
    config_flag(
        p,
        "--size",
        CollectivesSection,
        "pair_bytes",
        metavar="SIZE",
        type=str,
        help="bytes of each all_reduce; K/M/G = 1024^n",
    )
    config_flag(p, "--k", CollectivesSection, "max_bad", dest="max_bad", metavar="K")
    config_flag(p, "--group-size", CollectivesSection, "group_size", metavar="G")
    config_flag(
        p,
        "--z",
        CollectivesSection,
        "isolate_z",
        dest="isolate_z",
        metavar="Z",
        help="a group whose ln(busbw) is below its round's baseline by more than Z scales is slow",
    )
    config_flag(p, "--min-busbw", CollectivesSection, "min_busbw_gbps", metavar="GBPS")
    config_flag(p, "--iters", CollectivesSection, "iters")
    config_flag(p, "--warmup-iters", CollectivesSection, "warmup_iters")
    p.add_argument(
        "--passes",
        type=int,
        metavar="P",
        help="each group test keeps the fastest of P timed loops (default: 5; with -c, the "
        "config's collectives.passes): the decision's noise model was measured at 5",
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="slow_link:rank=R[,peer=P],delay_ms=D",
        help="inject a slow link (repeatable): every send of rank R, or with a peer only the "
        "traffic between R and P, leaves D ms late",
    )
    p.add_argument(
        "--from",
        dest="from_dir",
        type=Path,
        metavar="DIR",
        help="judge the recorded rounds of a finished isolate run again (with --k, --z if given); "
        "starts nothing, writes nothing",
    )
    p.add_argument(
        "--reference",
        type=Path,
        metavar="FILE",
        help="a reference (minicluster-reference/1, e.g. minicluster/references/*.yaml or one "
        "made by `reference record`): its all_reduce busbw for this platform x --floor-pct is "
        "the floor of every group; without a matching figure nothing is judged against it",
    )
    p.add_argument(
        "--floor-pct",
        type=float,
        metavar="PCT",
        help="a group below PCT %% of the reference's busbw is slow (default: 90)",
    )
    p.add_argument("--json", action="store_true", help="per-unit verdicts with evidence as JSON")
    p.add_argument("--out", type=Path, help="output directory (default: runs/<run_id>)")
    add_launcher_args(p)
    add_node_args(p)
    add_dry_run(p)
    add_junit(p)
    p.set_defaults(handler=handlers.isolate)

    p = sub.add_parser("worker", help="per-rank entry for an outside launcher (torchrun, srun)")
    p.add_argument("-c", "--config", type=Path, help="YAML config (default: built-in default job)")
    p.add_argument("--out", type=Path, required=True, help="output directory shared by the ranks")
    p.add_argument("--run-id", help=argparse.SUPPRESS)
    p.add_argument(
        "--no-aggregate",
        action="store_true",
        help="the launcher reads the rank files and aggregates them: the ranks gather nothing "
        "in-band and rank 0 writes no result.json",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="rank 0 writes result.json without printing the summary (the launcher prints it)",
    )
    add_require(p)
    p.set_defaults(handler=handlers.worker)

    p = sub.add_parser(
        "aggregate",
        help="re-build result.json from the rank files of a run",
        description="Re-build result.json from the rank files of a run (or a sweep). With a "
        "threshold flag, re-judge the run by it instead: the result goes to "
        "result.rejudged-STAMP.json beside the recorded result.json (never over it) and what "
        "changed is printed. Thresholds not given are the run's own (its config's checks).",
    )
    p.add_argument("dir", type=Path, help="run directory (holds ranks/)")
    for f in dataclasses.fields(ChecksSection):
        config_flag(
            p,
            f.metadata["flag"],
            ChecksSection,
            f.name,
            help=f"re-judge: {f.metadata['help']}",
            dest=f"check_{f.name}",
            metavar=f.metadata["metavar"],
        )
    add_reference_flags(p, rejudge=True)
    p.set_defaults(handler=handlers.aggregate)

    p = sub.add_parser(
        "watch",
        help="live per-rank view of a running job: progress, stalled and straggling ranks",
        description="Follow the rank files of a running job (any launcher; local disk or a "
        "shared filesystem), reading only what each gained since the last refresh: per rank "
        "its last step, steps/s and p50s over its last --window steps, and how long since its "
        "last record. Ends when result.json appears or no rank file grew for --stall-after "
        "seconds. Exit 0 healthy; 1 a rank stalled, straggling or failed, or the ended run's "
        "finding (an interrupted run: incomplete); 2 bad input, or not judged yet (the recent "
        "steps span under 5 s); 3 the run ended failed.",
    )
    p.add_argument("dir", type=Path, help="run directory (holds ranks/), or a sweep directory")
    p.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between refreshes (default: %(default)g)",
    )
    p.add_argument(
        "--stall-after",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a running rank with no new step for this long is stalled; the watch also ends "
        "when no rank file grew for this long (default: %(default)g)",
    )
    p.add_argument(
        "--window",
        type=int,
        metavar="STEPS",
        help="each rank's recent steps that rates, p50s and the straggler rule use (default: "
        "51,200 / ranks, between 50 and 500)",
    )
    p.add_argument("--once", action="store_true", help="one snapshot, then exit")
    p.add_argument(
        "--json",
        action="store_true",
        help="JSON instead of the table: one snapshot (--once), or one line per refresh",
    )
    p.set_defaults(handler=handlers.watch)

    p = sub.add_parser("report", help="render a result: terminal summary, Markdown, HTML")
    p.add_argument("result", type=Path, help="a result.json, or a run or sweep directory")
    add_report_flags(p)
    p.set_defaults(handler=handlers.report)

    p = sub.add_parser(
        "compare",
        help="compare results of any supported format; exit 1 on a gated regression or an unfinished run",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="RESULT",
        help="minicluster result (file or run dir), TrackIQ JSON, vLLM or SGLang output, "
        "nccl-tests log, markdown report; several runs of one side as A1,A2,A3 or a "
        "`run --repeats` directory (tested as clusters: t over the runs' values); FILE#N picks "
        "the N-th run of an SGLang JSONL file",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        help="the input (one of RESULT) the others are compared to (default: the first)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=5.0,
        help="percent change that counts as a regression (default: %(default)g)",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=0.05,
        help="significance level of the Mann-Whitney U test (default: %(default)g)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="force the input format (default: detected from content)",
    )
    add_allow_different(p)
    p.add_argument("--md", type=Path, help="write the comparison as Markdown (- = stdout)")
    p.add_argument("--html", type=Path, help="write the comparison as one HTML page (- = stdout)")
    p.add_argument("--json", type=Path, help="write the comparison as JSON data (- = stdout)")
    add_junit(p)
    p.set_defaults(handler=handlers.compare)

    p = sub.add_parser(
        "diagnose",
        help="a hang or desync from Flight Recorder dumps: the collective where ranks disagree",
        description="Read every rank's Flight Recorder dump (a failed run's DIR/flight_recorder/, "
        "or the files torch writes under TORCH_FR_DUMP_TEMP_FILE, named by rank) and name the "
        "collective sequence number where the ranks of a process group disagree: who never "
        "entered it, who is still in it, different ops or sizes. Exit 1 on a desync, 2 when "
        "there are no readable dumps or a member of a group left no dump (not judged).",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="DIR|DUMP",
        help="a run directory, a directory of dumps, or dump files (names end in the rank)",
    )
    p.add_argument("--json", type=Path, help="write the diagnosis as JSON data (- = stdout)")
    p.set_defaults(handler=handlers.diagnose)

    p = sub.add_parser(
        "fleet",
        help="node-check results of many nodes side by side: outlier nodes named per metric",
        description="Per metric, the fleet's median and MAD over the nodes, each node's robust "
        "z-score (log scale) and relative score; a node beyond --outlier-z on the bad side of "
        "the metric's direction is an outlier. Exit 1 when a node is an outlier on any gated "
        "metric or its node check failed, 2 when the inputs ran different jobs or no metric was "
        "measured on enough nodes to judge (the robust z needs 5 nodes).",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="RESULT",
        help="one result per node (result.json or its run directory) of the same node-check "
        "job, or one multi-node result",
    )
    p.add_argument(
        "--metric",
        action="append",
        metavar="M",
        help="a metric to judge (repeatable; default: latency_p50_ms, compute_ms, allreduce_ms, "
        "busbw_gbps, memory_peak_mib, and energy_per_step_joules when measured)",
    )
    p.add_argument(
        "--outlier-z",
        type=float,
        default=3.5,
        metavar="Z",
        help="robust z beyond which a node is an outlier (default: %(default)g)",
    )
    p.add_argument(
        "--mad-floor",
        type=float,
        metavar="F",
        help="the smallest MAD of ln(value) counted: a fleet tighter than this has no outlier "
        "within exp(Z x F) of the median (default: 0.1)",
    )
    p.add_argument("--md", type=Path, help="write the fleet report as Markdown (- = stdout)")
    p.add_argument(
        "--html", type=Path, help="write it as one HTML page with strip plots (- = stdout)"
    )
    p.add_argument("--json", type=Path, help="write it as JSON data (- = stdout)")
    add_reference_flags(p, rejudge=False, what="fleet")
    add_junit(p)
    p.set_defaults(handler=handlers.fleet)

    add_history_parser(sub)
    add_reference_parser(sub)

    p = sub.add_parser("convert", help="convert a result of any supported format")
    p.add_argument("input", type=Path, metavar="IN")
    p.add_argument(
        "--to",
        required=True,
        choices=["trackiq", "csv", "parquet", "minicluster"],
        help="output format",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="force the input format (default: detected from content)",
    )
    p.add_argument("-o", "--out", type=Path, help="output file (default or -: stdout)")
    p.set_defaults(handler=handlers.convert)
    p = sub.add_parser("doctor", help="what this machine can measure (GPU, NVML, RAPL, thermal)")
    p.set_defaults(handler=handlers.doctor)
    add_node_check(sub)
    return parser


def add_node_check(sub: argparse._SubParsersAction) -> None:
    """`minicluster node-check`: this node's health (README "Node health")."""
    p = sub.add_parser(
        "node-check",
        help="this node's health before training: GEMM, memory, host-device copies, intra-node "
        "busbw, ECC/XID/PCIe/throttle counters, burn-in; one verdict per check",
        description="Measure this node's devices (each GPU, or the CPU) and read its error "
        "counters; each check is ok, failed, degraded or incomplete (could not run or decide, "
        "with why), with the value, the reference it was judged against and a remediation hint. "
        "Exit 0 nothing failed or degraded (incomplete checks are listed, not failures), 1 a "
        "failed or degraded check, 2 bad input, 3 nothing could be measured.",
    )
    p.add_argument(
        "--level",
        choices=["quick", "medium", "long"],
        default="quick",
        help="quick: seconds (readiness); medium: larger sizes and a 2-minute burn-in; long: a "
        "15-minute burn-in (default: quick)",
    )
    p.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="burn-in: sustained GEMM load on every device for this long, with per-interval "
        "figures and a drift test (default: the level's, 0 for quick)",
    )
    p.add_argument(
        "--intervals",
        type=int,
        metavar="K",
        help="burn-in intervals (per-interval figures; the drift test needs >= 5) (default: 20)",
    )
    p.add_argument(
        "--checks",
        metavar="CHECK,...",
        help="only these checks: gemm, device_memory, host_memory, pcie, busbw, gpu_state, xid, "
        "infiniband, dcgm, burn_in (default: all)",
    )
    p.add_argument(
        "--reference",
        type=Path,
        metavar="FILE",
        help="judge the rates against this reference (minicluster-reference/1, YAML or JSON) "
        "when it is for this node's platform (default: a shipped reference for the platform; "
        "none: rates are reported, not judged)",
    )
    p.add_argument(
        "--floor-pct",
        type=float,
        metavar="PCT",
        help="a rate under this %% of its reference is degraded (default: 90)",
    )
    p.add_argument(
        "--expect-gpus",
        type=int,
        metavar="N",
        help="the GPUs this node must have: fewer visible is a failed check (default: not checked)",
    )
    p.add_argument("--out", type=Path, help="output directory (default: runs/<run_id>)")
    p.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="also write the result here (- = stdout): the machine-readable verdict",
    )
    add_report_flags(p)
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(handler=handlers.node_check)


def add_reference_parser(sub: argparse._SubParsersAction[OneLineParser]) -> None:
    """`reference record`: a site reference from healthy results."""
    p = sub.add_parser(
        "reference",
        help="references: record a site reference (median and spread per metric) from healthy "
        "results",
    )
    p.set_defaults(handler=handlers.reference_no_action)
    actions = p.add_subparsers(dest="reference_command", metavar="ACTION")
    q = actions.add_parser(
        "record",
        help="a site reference from healthy results of one job on one platform",
        description="Make a site reference (minicluster-reference/1, kind site) from healthy "
        "results of one job on one platform (run, collectives or node-check results): per "
        "metric and conditions the median, the MAD and the count. Refused (exit 2) when a "
        "result is not healthy or the results are of different platforms or jobs.",
    )
    q.add_argument("results", type=Path, nargs="+", metavar="RESULT", help="result.json or run dir")
    q.add_argument("--out", type=Path, required=True, help="the reference file (.yaml or .json)")
    q.add_argument("--name", help="the reference's name (default: the file's stem)")
    q.add_argument("--force", action="store_true", help="replace --out when it exists")
    q.set_defaults(handler=handlers.reference_record)


def add_history_parser(sub: argparse._SubParsersAction[OneLineParser]) -> None:
    """`history add|list|show|check` over a SQLite database."""
    p = sub.add_parser(
        "history",
        help="results in a SQLite database: add, list, show; check a result against earlier "
        "comparable runs (change points + between-run spread), exit 1 on a regression",
    )
    p.set_defaults(handler=handlers.history_no_action)
    actions = p.add_subparsers(dest="history_command", metavar="ACTION")

    def db_flag(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--db",
            type=Path,
            help="the history database (default: $MINICLUSTER_HISTORY_DB, else "
            "$XDG_DATA_HOME/minicluster/history.sqlite, ~/.local/share when XDG_DATA_HOME is unset)",
        )

    def provenance_flags(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--commit",
            help="git commit of the code measured (default: $GITHUB_SHA, $CI_COMMIT_SHA, "
            "$BUILDKITE_COMMIT, $GIT_COMMIT, $CIRCLE_SHA1)",
        )
        q.add_argument(
            "--branch",
            help="branch (default: $GITHUB_REF_NAME, $CI_COMMIT_REF_NAME, $BUILDKITE_BRANCH, ...)",
        )
        q.add_argument(
            "--label", action="append", default=[], metavar="KEY=VALUE", help="a label (repeatable)"
        )

    q = actions.add_parser("add", help="record results (fingerprint, platform, commit, labels)")
    q.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="RESULT",
        help="results of any supported format; a `run --repeats` directory adds each run",
    )
    db_flag(q)
    provenance_flags(q)
    q.add_argument("--format", choices=FORMATS, help="force the input format")
    q.set_defaults(handler=handlers.history_add)

    q = actions.add_parser("list", help="the newest recorded runs")
    db_flag(q)
    q.add_argument("--limit", type=int, default=20, help="how many (default: 20)")
    q.add_argument("--json", action="store_true", help="JSON instead of the table")
    q.set_defaults(handler=handlers.history_list_runs)

    q = actions.add_parser("show", help="one recorded run (JSON)")
    q.add_argument("id", type=int, help="its number in `history list`")
    db_flag(q)
    q.set_defaults(handler=handlers.history_show)

    q = actions.add_parser(
        "check",
        help="gate a result against the last N comparable runs: exit 1 on a regression, with "
        "since when, by how much and what else changed",
        description="Per gated metric: the comparable runs' values in the order they were added "
        "and the new one (log scale); change points by ruptures binary segmentation, each kept "
        "when Student's t between its neighbouring levels has p < alpha; the new run is judged "
        "against the level before its own (Student's t on the runs' between-run spread), alpha "
        "divided over the gated metrics. Fewer than 3 comparable runs, or a change the runs "
        "cannot resolve (not significant yet worse by the threshold or more, or a smallest "
        "detectable change of 3x the threshold or more): NOT JUDGED (exit 2). A candidate that "
        "did not finish ok or whose own checks failed fails the gate (exit 1).",
    )
    q.add_argument("result", type=Path, metavar="RESULT", help="the result to check")
    db_flag(q)
    q.add_argument(
        "--last", type=int, default=30, metavar="N", help="comparable runs looked at (default: 30)"
    )
    q.add_argument(
        "--metric",
        action="append",
        metavar="M",
        help="a metric to gate (repeatable; default: throughput, mean step time, latency p50 and "
        "p95, tokens/s, TTFT, TPOT, busbw, memory peak, whichever the result has)",
    )
    q.add_argument("--threshold", type=float, default=5.0, help="percent change gated (default: 5)")
    q.add_argument(
        "--alpha", type=float, default=0.05, help="error rate of the whole check (default: 0.05)"
    )
    q.add_argument(
        "--settle",
        type=int,
        default=5,
        metavar="K",
        help="a new level that has held for K runs becomes the baseline (default: 5)",
    )
    q.add_argument("--format", choices=FORMATS, help="force the input format")
    add_allow_different(q)
    q.add_argument("--add", action="store_true", help="record the result after checking it")
    provenance_flags(q)
    q.add_argument(
        "--json", type=Path, help="write the check, with the trend data, as JSON (- = stdout)"
    )
    q.add_argument(
        "--html", type=Path, help="write it as one HTML page with trend plots (- = stdout)"
    )
    add_junit(q)
    q.set_defaults(handler=handlers.history_check)


def add_junit(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--junit",
        type=Path,
        metavar="FILE",
        help="also write JUnit XML for CI: one test case per verdict (a finding fails)",
    )


def add_reference_flags(p: argparse.ArgumentParser, rejudge: bool, what: str = "run") -> None:
    """`--reference` (a run, or each node of a `fleet`, judged against a reference) and, for
    `run` and `fleet`, its `--floor-pct`; `aggregate` (`rejudge`) takes `--floor-pct` with the
    other threshold flags, from `ChecksSection`, and writes the judged result beside the
    recorded one."""
    written = (
        "; written to result.rejudged-STAMP.json beside the recorded result.json (never over it)"
    )
    judged = (
        "each node's figures (a run's median step time, TFLOP/s and busbw; a node check's "
        "measured figures) as %% of the figure for its platform and job, a node below "
        "--floor-pct is a finding (exit 1); a node of another platform: not judged"
        if what == "fleet"
        else "median step time, TFLOP/s and busbw as %% of the figure for this platform and "
        "job, below --floor-pct is a finding (exit 1); no figure for this platform: not judged"
    )
    p.add_argument(
        "--reference",
        type=Path,
        metavar="FILE",
        help=f"judge the {what} against a reference (minicluster-reference/1: one of "
        "minicluster/references/*.yaml, or a site one from `reference record`): "
        + judged
        + (written if rejudge else ""),
    )
    if rejudge:
        return
    p.add_argument(
        "--floor-pct",
        type=float,
        metavar="PCT",
        help="with --reference: a metric below PCT %% of its reference is a finding, PCT in "
        "(0, 100] (default: checks.reference_floor_pct, 90)",
    )


def add_allow_different(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-different",
        metavar="FIELD,...",
        help="compare even though these defining fields of the fingerprint differ (e.g. "
        "gpu_model,timing_method); by default a difference in any of them means not "
        "comparable: both values shown, no verdict, nothing gated",
    )


def add_report_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--md", type=Path, metavar="FILE", help="also write a Markdown report here")
    p.add_argument(
        "--html", type=Path, metavar="FILE", help="also write a self-contained HTML report here"
    )


def add_projection_flags(p: argparse.ArgumentParser) -> None:
    """`sweep --project` and where the alpha-beta all-reduce model's parameters come from."""
    p.add_argument(
        "--project",
        metavar="N,N,...",
        help="also project step time, throughput and efficiency to these world sizes (status "
        "estimated): alpha-beta ring all-reduce, compute and overlap from the measured runs; "
        "checked against the measured sizes (leave-one-out)",
    )
    p.add_argument(
        "--collectives",
        type=Path,
        metavar="RESULT",
        help="fit the link's alpha and beta to this `minicluster collectives` result's all_reduce "
        "times (default: the sweep runs a short all_reduce size sweep itself)",
    )
    p.add_argument(
        "--link-gbps",
        metavar="GBPS[,GBPS]",
        help="give the link's bandwidth beta instead, decimal GB/s (1e9 B/s; a 100 Gbit/s link "
        "is 12.5), for a network not present here; with --ranks-per-node: the inter-node link, "
        "or two values INTRA,INTER",
    )
    p.add_argument(
        "--link-latency-us",
        metavar="US[,US]",
        help="the link's latency alpha per ring step in microseconds, with --link-gbps (one "
        "value each, or INTRA,INTER)",
    )
    p.add_argument(
        "--ranks-per-node",
        type=int,
        metavar="G",
        help="model a two-level ring: G ranks per node on the intra-node link (two --link values, "
        "or measured here), nodes joined by the inter-node link (--link-gbps/--link-latency-us)",
    )


def add_require(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--require",
        action="append",
        default=[],
        metavar="WHAT",
        choices=REQUIRABLE_MEASUREMENTS,
        help="fail up front (exit 2) when WHAT cannot be measured here "
        "(repeatable; also config telemetry.require)",
    )


def add_fault_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND:key=value,...",
        help="inject a fault (repeatable): straggler:rank=R,delay_ms=D[,from_step=S][,every=N], "
        "pause:rank=R,delay_ms=D[,from_step=S][,every=N] (between steps), "
        "drift:rank=R,ms_per_step=X[,from_step=S], "
        "slow_link:rank=R[,peer=P],delay_ms=D[,from_step=S], crash:rank=R,step=S, "
        "kill:rank=R,step=S[,signal=9|15], "
        "hang:rank=R,step=S, corrupt_grad:rank=R,step=S",
    )
    config_flag(p, "--expect-busbw", ChecksSection, "expect_busbw_gbps", metavar="GBPS")
    config_flag(p, "--collective-timeout", RunSection, "collective_timeout_s", metavar="SECONDS")


def add_parallel_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--parallel",
        metavar="DEGREE=N,...",
        help="the layout, replacing the config's parallel degrees: dp_replicate, dp_shard (FSDP2), "
        "tp, pp, ep, multiplying to the world size; e.g. dp_shard=2,tp=2 (default: config "
        "parallel section; none: DDP over every rank)",
    )


def add_launcher_args(p: argparse.ArgumentParser) -> None:
    """`--launcher` and the Ray launcher's flags."""
    p.add_argument(
        "--launcher",
        choices=["torchrun", "ray"],
        default="torchrun",
        help="how ranks are started: torchrun (local processes), or ray (Ray workers, each "
        "running the same per-rank function) (default: %(default)s)",
    )
    g = p.add_argument_group(
        "Ray (--launcher ray)",
        "Without --ray-address a local Ray instance sized to the job is started and shut down "
        "at the end; with one, the job joins that cluster and leaves it running. Ray's own "
        "output goes to DIR/ray.log.",
    )
    ray_flag(g, "--ray-address", "address", metavar="auto|HOST:PORT")
    ray_flag(g, "--cpus-per-worker", "cpus_per_worker", metavar="C", type=float)
    ray_flag(g, "--gpus-per-worker", "gpus_per_worker", metavar="G", type=float)
    ray_flag(g, "--placement", "placement", choices=list(PLACEMENTS))


def add_node_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "across nodes",
        "Start the same command once per node; the agents meet at the rendezvous endpoint "
        "(torchrun's c10d). Rank 0 gathers every rank's records in-band and writes the result "
        "on its node; the other nodes write node.json saying where it went. Without these "
        "flags every socket listens on 127.0.0.1 only.",
    )
    g.add_argument("--nnodes", type=int, metavar="N", help="nodes in the job")
    g.add_argument(
        "--node-rank",
        type=int,
        metavar="R",
        help="this node's rank, 0..N-1 (default: 0); c10d hands out the node ranks the ranks "
        "record (torchrun's group rank) in its own order",
    )
    g.add_argument(
        "--rdzv-endpoint",
        metavar="HOST:PORT",
        help="where the agents meet: a host every node reaches, and a free port on it",
    )
    g.add_argument(
        "--rdzv-id",
        metavar="ID",
        help=f"the job's rendezvous id, the same on every node (default: {DEFAULT_RDZV_ID})",
    )
    g.add_argument(
        "--nproc-per-node",
        type=int,
        metavar="P",
        help="ranks on each node (torchrun's name for --nproc)",
    )


def add_dry_run(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would start (launcher, world size, nodes, rendezvous, each rank's "
        "command and environment, output directory, config) and exit 0: no rank starts, no "
        "directory is claimed",
    )


def _field(section: type, name: str) -> dataclasses.Field[Any]:
    return next(f for f in dataclasses.fields(section) if f.name == name)


def _default(section: type, name: str) -> Any:
    f = _field(section, name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _shown(value: Any, size: bool = False) -> str:
    """A default as the help shows it."""
    if value is None:
        return "none"
    if isinstance(value, list):
        return ",".join(map(str, value))
    if size:
        return format_size(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def config_flag(
    p: Any, flag: str, section: type, name: str, help: str | None = None, **kwargs: Any
) -> None:
    """A flag that sets config field `section.name`: its help text (unless `help` is given),
    type and choices come from the field, and the help ends with the field's default. The flag
    itself defaults to None: the config's value stands unless the flag is given."""
    f = _field(section, name)
    hint = typing.get_type_hints(section)[name]
    args = typing.get_args(hint)
    if typing.get_origin(hint) is Literal:
        kwargs.setdefault("choices", list(args))
    elif "type" not in kwargs:
        kwargs["type"] = next(t for t in (int, float, str) if t is hint or t in args)
    shown = _shown(_default(section, name), bool(f.metadata.get("size")))
    text = help or f.metadata["help"]
    kwargs["help"] = f"{text} (default: config {_SECTIONS[section]}.{name}, {shown})"
    p.add_argument(flag, **kwargs)
    CONFIG_FLAGS.setdefault(f"{_SECTIONS[section]}.{name}", []).append(flag)


# the flags that set each config key (`collectives.min_busbw_gbps`: `--min-busbw`): an error
# about the key's value given on the command line names the flag typed (cli.main)
CONFIG_FLAGS: dict[str, list[str]] = {}


def ray_flag(p: Any, flag: str, name: str, **kwargs: Any) -> None:
    """A `--launcher ray` flag setting `RayOptions.name`: help and default from the field."""
    f = _field(RayOptions, name)
    shown = "a local Ray instance" if f.default is None else _shown(f.default)
    p.add_argument(flag, help=f"{f.metadata['help']} (default: {shown})", **kwargs)


def command_names() -> list[str]:
    """Every sub-command of `minicluster`, sorted."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(subparsers.choices)
