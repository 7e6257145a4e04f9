"""The command line's flags: one parser, one sub-parser per command, each naming its handler.

Handlers are named as `module:function` inside `minicluster.cli` and imported only when that
command runs, so `--help` and the analysis commands start without torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from minicluster import __version__
from minicluster.core import collective_defs
from minicluster.core.config import PATTERNS, REQUIRABLE_MEASUREMENTS
from minicluster.core.units import format_size


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minicluster",
        description="Distributed-training validation harness: run instrumented DDP ranks, "
        "merge their records into one result, compare results honestly.",
    )
    parser.add_argument("--version", action="version", version=f"minicluster {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="launch N local ranks, run the workload, aggregate, summarize")
    p.add_argument("-c", "--config", type=Path, help="YAML config (default: built-in default job)")
    p.add_argument("--nproc", type=int, help="ranks to start (default: config run.nproc, 2)")
    p.add_argument(
        "--launcher",
        choices=["torchrun"],
        default="torchrun",
        help="how ranks are started (default: torchrun)",
    )
    p.add_argument("--out", type=Path, help="output directory (default: runs/<run_id>)")
    add_report_flags(p)
    add_require(p)
    add_fault_args(p)
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
    p.set_defaults(handler="run:validate")

    p = sub.add_parser(
        "sweep", help="one run per world size in one session; scaling efficiency table and plot"
    )
    p.add_argument("-c", "--config", type=Path, help="YAML config (default: built-in default job)")
    p.add_argument(
        "--world-sizes",
        default="1,2,4",
        metavar="N,N,...",
        help="world sizes to run, comma-separated; the smallest is the baseline (default: 1,2,4)",
    )
    p.add_argument(
        "--mode",
        choices=["weak", "strong"],
        default="weak",
        help="weak: the config's per-rank batch on every rank; strong: one global batch split "
        "over the ranks (default: weak)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
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
    add_report_flags(p)
    add_require(p)
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
        help=f"comma list of {', '.join(collective_defs.OPS)} (default: config, all five)",
    )
    p.add_argument(
        "--sizes",
        metavar="MIN:MAX",
        help="message sizes in bytes, MIN:MAX doubling or one size; K/M/G = 1024^n "
        f"(default: config, else {format_size(collective_defs.DEFAULT_MIN_BYTES)}:"
        f"{format_size(collective_defs.GPU_DEFAULT_MAX_BYTES)} on a GPU, "
        f"{format_size(collective_defs.DEFAULT_MIN_BYTES)}:"
        f"{format_size(collective_defs.CPU_DEFAULT_MAX_BYTES)} on CPU)",
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
    p.set_defaults(handler="run:collectives")

    p = sub.add_parser("worker", help="per-rank entry for an outside launcher (torchrun, srun)")
    p.add_argument("-c", "--config", type=Path, help="YAML config (default: built-in default job)")
    p.add_argument("--out", type=Path, required=True, help="output directory shared by the ranks")
    p.add_argument("--run-id", help=argparse.SUPPRESS)
    p.add_argument(
        "--no-aggregate",
        action="store_true",
        help="rank 0 does not write result.json (the launcher aggregates)",
    )
    add_require(p)
    p.set_defaults(handler="run:worker")

    p = sub.add_parser("aggregate", help="re-build result.json from the rank files of a run")
    p.add_argument("dir", type=Path, help="run directory (holds ranks/)")
    p.set_defaults(handler="results:aggregate")

    p = sub.add_parser("report", help="render a result: terminal summary, Markdown, HTML")
    p.add_argument("result", type=Path, help="a result.json, or a run or sweep directory")
    add_report_flags(p)
    p.set_defaults(handler="results:report")

    p = sub.add_parser(
        "compare", help="compare results of any supported format; exit 1 on a gated regression"
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
        "run below half of it has a slow link, exit 1 (default: config run.expect_busbw_gbps; "
        "none: the link is not judged)",
    )
    p.add_argument(
        "--collective-timeout",
        type=float,
        metavar="SECONDS",
        help="how long a rank waits in a collective before the run fails (default: config, 300)",
    )


def command_names() -> list[str]:
    """Every sub-command of `minicluster`, sorted."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(subparsers.choices)
