"""The command line's flags: one parser, one sub-parser per command, each naming its handler.

Handlers are named as `module:function` inside `minicluster.cli` and imported only when that
command runs, so `--help` and the analysis commands start without torch.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import NoReturn

from minicluster import __version__
from minicluster.core import choices
from minicluster.core.checks import ChecksSection
from minicluster.core.choices import PATTERNS, REQUIRABLE_MEASUREMENTS
from minicluster.core.units import format_size


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
    p.add_argument(
        "--nproc", type=int, help="ranks to start (per node) (default: config run.nproc, 2)"
    )
    p.add_argument("--out", type=Path, help="output directory (default: runs/<run_id>)")
    add_report_flags(p)
    add_require(p)
    add_fault_args(p)
    add_launcher_args(p)
    add_node_args(p)
    p.set_defaults(handler="run:run")

    p = sub.add_parser(
        "validate",
        help="correctness: DDP equals one process on the global batch; replicas stay identical",
    )
    p.add_argument("-c", "--config", type=Path, help="YAML config (default: built-in default job)")
    p.add_argument("--nproc", type=int, help="ranks to start (default: config run.nproc, 2)")
    p.add_argument("--out", type=Path, help="output directory (default: runs/<run_id>)")
    add_report_flags(p)
    add_fault_args(p)
    add_launcher_args(p)
    p.set_defaults(handler="run:validate")

    p = sub.add_parser(
        "sweep", help="one run per world size in one session; scaling efficiency table and plot"
    )
    p.add_argument("-c", "--config", type=Path, help="YAML config (default: built-in default job)")
    p.add_argument(
        "--world-sizes",
        metavar="N,N,...",
        help="world sizes to run, comma-separated; the smallest is the baseline (default: 1,2,4)",
    )
    p.add_argument(
        "--mode",
        choices=["weak", "strong"],
        help="weak: the config's per-rank batch on every rank; strong: one global batch split "
        "over the ranks (default: weak; with --from, what the runs' batches say)",
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
        "median over rounds (default: 1)",
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
    add_launcher_args(p)
    p.set_defaults(handler="sweep:run_sweep")

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
        "slow or wrong pairs and the rank, node or link they share.",
    )
    p.add_argument(
        "-c",
        "--config",
        type=Path,
        help="YAML config with job: collectives (default: built-in, see configs/collectives.yaml)",
    )
    p.add_argument("--nproc", type=int, help="ranks to start (default: config run.nproc, 2)")
    p.add_argument(
        "--ops",
        metavar="OP,OP",
        help=f"comma list of {', '.join(choices.OPS)} (default: config, all five)",
    )
    p.add_argument(
        "--sizes",
        metavar="MIN:MAX",
        help="message sizes in bytes, MIN:MAX doubling or one size; K/M/G = 1024^n "
        f"(default: config, else {format_size(choices.DEFAULT_MIN_BYTES)}:"
        f"{format_size(choices.GPU_DEFAULT_MAX_BYTES)} on a GPU, "
        f"{format_size(choices.DEFAULT_MIN_BYTES)}:"
        f"{format_size(choices.CPU_DEFAULT_MAX_BYTES)} on CPU)",
    )
    p.add_argument(
        "--step-factor",
        type=int,
        metavar="F",
        help="multiply the size by F from MIN to MAX (nccl-tests -f; default: config, 2)",
    )
    p.add_argument("--iters", type=int, help="timed calls per size (default: config, 20)")
    p.add_argument(
        "--warmup-iters", type=int, help="untimed calls before them (default: config, 5)"
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "float16", "bfloat16"],
        help="element type (default: float32)",
    )
    p.add_argument(
        "--pattern",
        choices=PATTERNS,
        help="all: every op at every size over all ranks; pairwise: the link test of every "
        "pair of ranks, send/recv both ways at one size, slow pairs and the suspect named, "
        "exit 1 on a slow or wrong pair (default: config, all)",
    )
    pairwise = p.add_argument_group("pairwise (--pattern pairwise)")
    pairwise.add_argument(
        "--size",
        metavar="SIZE",
        help="bytes each pair sends each way per transfer; K/M/G = 1024^n (default: config, 64M)",
    )
    order = pairwise.add_mutually_exclusive_group()
    order.add_argument(
        "--concurrent",
        dest="schedule",
        action="store_const",
        const="concurrent",
        help="run each round's disjoint pairs at once (default)",
    )
    order.add_argument(
        "--serial",
        dest="schedule",
        action="store_const",
        const="serial",
        help="run one pair at a time (the host's cores and the switch serve one pair only)",
    )
    pairwise.add_argument(
        "--per",
        choices=["rank", "node"],
        help="rank: every pair of ranks; node: one rank per node, every pair of nodes (needs "
        "ranks on two nodes or more: an outside launcher) (default: config, rank)",
    )
    pairwise.add_argument(
        "--passes",
        type=int,
        metavar="P",
        help="run the whole schedule P times; each pair keeps its fastest pass, so a pair is "
        "slow only when it is slow every time (default: config, 2)",
    )
    pairwise.add_argument(
        "--outlier-z",
        type=float,
        metavar="Z",
        help="a pair whose busbw's robust z (median/MAD over all pairs) is below -Z is slow "
        "(default: config, 3.5)",
    )
    pairwise.add_argument(
        "--min-busbw",
        type=float,
        metavar="GBPS",
        help="a pair below this busbw (GB/s) is slow whatever the others do (default: none)",
    )
    pairwise.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="slow_link:rank=R[,peer=P],delay_ms=D",
        help="inject a slow link (repeatable): every send of rank R, or with a peer only the "
        "traffic between R and P (both ways), leaves D ms late",
    )
    pairwise.add_argument(
        "--collective-timeout",
        type=float,
        metavar="SECONDS",
        help="how long a rank waits for a peer before the run fails (default: config, 300)",
    )
    p.add_argument("--out", type=Path, help="output directory (default: runs/<run_id>)")
    add_report_flags(p)
    add_launcher_args(p)
    p.set_defaults(handler="run:collectives")

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
    p.set_defaults(handler="run:worker")

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
        p.add_argument(
            f.metadata["flag"],
            dest=f"check_{f.name}",
            type=float,
            metavar=f.metadata["metavar"],
            help=f"re-judge: {f.metadata['help']} (config checks.{f.name})",
        )
    p.set_defaults(handler="results:aggregate")

    p = sub.add_parser(
        "watch",
        help="live per-rank view of a running job: progress, stalled and straggling ranks",
        description="Follow the rank files of a running job (any launcher; local disk or a "
        "shared filesystem), reading only what each gained since the last refresh: per rank "
        "its last step, steps/s and p50s over its last --window steps, and how long since its "
        "last record. Ends when result.json appears or no rank file grew for --stall-after "
        "seconds. Exit 0 healthy; 1 a rank stalled, straggling or failed; 2 bad input; 3 the "
        "run ended failed.",
    )
    p.add_argument("dir", type=Path, help="run directory (holds ranks/), or a sweep directory")
    p.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between refreshes (default: 1)",
    )
    p.add_argument(
        "--stall-after",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a running rank with no new step for this long is stalled; the watch also ends "
        "when no rank file grew for this long (default: 30)",
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
    p.set_defaults(handler="watch:watch")

    p = sub.add_parser("report", help="render a result: terminal summary, Markdown, HTML")
    p.add_argument("result", type=Path, help="a result.json, or a run or sweep directory")
    add_report_flags(p)
    p.set_defaults(handler="results:report")

    p = sub.add_parser(
        "compare",
        help="compare results of any supported format; exit 1 on a gated regression or an unfinished run",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="RESULT",
        help="minicluster result (file or run dir), TrackIQ JSON, vLLM JSON, markdown report",
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
        help="percent change that counts as a regression (default: 5)",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=0.05,
        help="significance level of the Mann-Whitney U test (default: 0.05)",
    )
    p.add_argument(
        "--format",
        choices=["minicluster", "trackiq", "vllm", "markdown"],
        help="force the input format (default: detected from content)",
    )
    p.add_argument("--md", type=Path, help="write the comparison as Markdown (- = stdout)")
    p.add_argument("--html", type=Path, help="write the comparison as one HTML page (- = stdout)")
    p.add_argument("--json", type=Path, help="write the comparison as JSON data (- = stdout)")
    p.set_defaults(handler="results:compare")

    p = sub.add_parser(
        "fleet",
        help="node-check results of many nodes side by side: outlier nodes named per metric",
        description="Per metric, the fleet's median and MAD over the nodes, each node's robust "
        "z-score (log scale) and relative score; a node beyond --outlier-z on the bad side of "
        "the metric's direction is an outlier. Exit 1 when a node is an outlier on any gated "
        "metric or its node check failed, 2 when the inputs ran different jobs.",
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
        help="robust z beyond which a node is an outlier (default: 3.5)",
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
    p.set_defaults(handler="fleet:fleet")

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
        choices=["minicluster", "trackiq", "vllm", "markdown"],
        help="force the input format (default: detected from content)",
    )
    p.add_argument("-o", "--out", type=Path, help="output file (default or -: stdout)")
    p.set_defaults(handler="results:convert")
    p = sub.add_parser("doctor", help="what this machine can measure (GPU, NVML, RAPL, thermal)")
    p.set_defaults(handler="doctor:doctor")
    return parser


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
        help="inject a fault (repeatable): straggler:rank=R,delay_ms=D[,from_step=S], "
        "slow_link:rank=R[,peer=P],delay_ms=D[,from_step=S], crash:rank=R,step=S, "
        "hang:rank=R,step=S, corrupt_grad:rank=R,step=S",
    )
    p.add_argument(
        "--expect-busbw",
        type=float,
        metavar="GBPS",
        help="the gradient all-reduce's expected bus bandwidth in GB/s (the fabric's spec or a "
        "known-good measurement, e.g. `minicluster collectives` busbw at the bucket size): a "
        "run below half of it has a slow link, exit 1 (default: config checks.expect_busbw_gbps; "
        "none: the link is not judged)",
    )
    p.add_argument(
        "--collective-timeout",
        type=float,
        metavar="SECONDS",
        help="how long a rank waits in a collective before the run fails (default: config, 300)",
    )


def add_launcher_args(p: argparse.ArgumentParser) -> None:
    """`--launcher` and the Ray launcher's flags."""
    p.add_argument(
        "--launcher",
        choices=["torchrun", "ray"],
        default="torchrun",
        help="how ranks are started: torchrun (local processes), or ray (Ray workers, each "
        "running the same per-rank function) (default: torchrun)",
    )
    g = p.add_argument_group(
        "Ray (--launcher ray)",
        "Without --ray-address a local Ray instance sized to the job is started and shut down "
        "at the end; with one, the job joins that cluster and leaves it running. Ray's own "
        "output goes to DIR/ray.log.",
    )
    g.add_argument(
        "--ray-address",
        metavar="auto|HOST:PORT",
        help="an existing Ray cluster: auto (the one this machine belongs to, as inside "
        "`ray job submit`), or its GCS address",
    )
    g.add_argument(
        "--cpus-per-worker",
        type=float,
        metavar="C",
        help="CPUs each rank's worker reserves, and its CPU threads (whole CPUs) (default: 1)",
    )
    g.add_argument(
        "--gpus-per-worker",
        type=float,
        metavar="G",
        help="GPUs each rank's worker reserves (default: 0; 1 for one GPU per rank on NCCL)",
    )
    g.add_argument(
        "--placement",
        choices=["pack", "spread"],
        help="pack the workers on as few nodes as fit, or spread them across nodes (default: pack)",
    )


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
        help="the job's rendezvous id, the same on every node (default: minicluster)",
    )
    g.add_argument(
        "--nproc-per-node",
        type=int,
        metavar="P",
        help="ranks on each node (torchrun's name for --nproc)",
    )


def command_names() -> list[str]:
    """Every sub-command of `minicluster`, sorted."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(subparsers.choices)
