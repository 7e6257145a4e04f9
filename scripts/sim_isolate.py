"""Isolation by group testing at 8, 64 and 1,024 nodes: the same decision code the ranks run
(`minicluster.core.group_testing`), driven by a seeded busbw model instead of a fabric.

The model: a group's busbw is a healthy group's busbw x the slowest member's speed (1 for a
healthy node; a bad node's uniform in [--bad-lo, --bad-hi] of healthy, drawn per trial) x a
noise factor. The noise is taken from measured runs here (--spread-from: isolate results of
clean runs, no fault injected, so every group is healthy, the ones that read slow included):
each group's ln(busbw / its round's median of same-size groups), resampled with replacement
(bootstrap), so the simulated spread is the measured one, tails included, and nothing is
assumed about its shape.

Prints per fleet size and number of bad nodes: trials; found (every bad node named and no
healthy one, Wilson 95% interval); rounds (median, max); group tests; false pulls (healthy nodes
named bad, in total); "more than k" said; and the pairwise test's N(N-1)/2 pairs beside it.
Healthy fleets (0 bad) run `--healthy-trials` times (default 100).

Usage: python scripts/sim_isolate.py [--spread-from RESULT_OR_DIR ...] [--trials 200]
       [--healthy-trials 100] [--sizes 8,64,1024] [--seed 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import statistics
import sys
from pathlib import Path

from minicluster.core import group_testing as gt

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPREAD = ROOT / "tests" / "fixtures" / "isolate" / "passes5"  # isolate's --passes 5


def residuals(paths: list[Path]) -> list[float]:
    """ln(busbw / round median) of every group in a round with 2 or more same-size groups, over
    every isolate result under `paths` with no injected fault (a clean run's groups are all
    healthy: the ones that read slow are the noise too)."""
    files = [f for p in paths for f in (sorted(p.rglob("*.json")) if p.is_dir() else [p])]
    out: list[float] = []
    for f in files:
        data = json.loads(f.read_text())
        block = data.get("isolate")
        if not block or (data.get("faults") or {}).get("injected"):
            continue
        for rnd in block["rounds"]:
            by_size: dict[int, list[float]] = {}
            for g in rnd["groups"]:
                if g["busbw_gbps"]:
                    by_size.setdefault(len(g["units"]), []).append(g["busbw_gbps"])
            for bws in by_size.values():
                if len(bws) >= 2:
                    mid = statistics.median(bws)
                    out.extend(math.log(b / mid) for b in bws)
    return out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of k successes in n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def trial(
    n: int,
    k: int,
    noise: list[float],
    rng: random.Random,
    lo: float,
    hi: float,
    params: gt.Params,
) -> tuple[gt.State, set[int]]:
    """One fleet: k bad nodes at random places and speeds, the whole search."""
    bad = set(rng.sample(range(n), k))
    speed = {u: rng.uniform(lo, hi) for u in bad}
    state = gt.start(dataclasses.replace(params, n_units=n))
    while (groups := gt.plan(state)) is not None:
        for g in groups:
            slowest = min(speed.get(u, 1.0) for u in g.units)
            g.busbw_gbps = 10.0 * slowest * math.exp(rng.choice(noise))
        gt.record(state, groups)
    return state, bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spread-from", type=Path, nargs="*", default=[DEFAULT_SPREAD])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--healthy-trials", type=int, default=100)
    ap.add_argument("--sizes", default="8,64,1024")
    ap.add_argument("--bad-lo", type=float, default=0.3)
    ap.add_argument("--bad-hi", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--decision",
        choices=gt.DECISIONS,
        default=gt.Params(n_units=2).decision,
        help="sprt (the default rule) or confirmations (the first rule)",
    )
    ap.add_argument("--confirmations", type=int, default=gt.Params(n_units=2).confirmations)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another decision parameter (core.group_testing.Params), e.g. alpha=1e-3",
    )
    ap.add_argument(
        "--noise-scale",
        type=float,
        default=1.0,
        help="what-if, not a measurement: the measured residuals multiplied by F",
    )
    a = ap.parse_args()
    noise = [x * a.noise_scale for x in residuals(a.spread_from)]
    if len(noise) < 4:
        print(f"too few measured healthy groups in {a.spread_from} ({len(noise)})", file=sys.stderr)
        return 2
    mad = statistics.median(abs(x) for x in noise) * 1.4826
    changes: dict[str, object] = {"decision": a.decision, "confirmations": a.confirmations}
    for item in a.set:
        name, _, value = item.partition("=")
        kind = float if name == "group_beta" else type(getattr(gt.Params(n_units=2), name))
        changes[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    params = gt.Params(n_units=2, **changes)  # type: ignore[arg-type]
    print(
        f"noise: {len(noise)} measured healthy groups' ln(busbw / round median), "
        f"robust sd {mad:.3f}, min {min(noise):.3f} ({math.exp(min(noise)):.0%} of the median), "
        f"max {max(noise):.3f}"
        + (f" (what-if: measured x {a.noise_scale:g})" if a.noise_scale != 1 else "")
        + f"; bad nodes at {a.bad_lo:.0%}-{a.bad_hi:.0%} of healthy; decision: "
        f"{params}"
    )
    print(
        "| nodes | bad | trials | found (95% CI) | rounds median / max | group tests median "
        "| false pulls | said > k | pairwise pairs |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rng = random.Random(a.seed)
    for n in (int(x) for x in a.sizes.split(",")):
        for k in range(4):
            if k >= n // 2:
                continue
            trials = a.healthy_trials if k == 0 else a.trials
            found = false_pulls = said_more = 0
            rounds, tests = [], []
            for _ in range(trials):
                state, bad = trial(n, k, noise, rng, a.bad_lo, a.bad_hi, params)
                named = set(state.bad)
                found += named == bad
                false_pulls += len(named - bad)
                said_more += state.more_than_max_bad
                rounds.append(len(state.rounds))
                tests.append(sum(len(r) for r in state.rounds))
            lo, hi = wilson(found, trials)
            print(
                f"| {n} | {k} | {trials} | {found / trials:.1%} ({lo:.1%}-{hi:.1%}) | "
                f"{statistics.median(rounds):g} / {max(rounds)} | {statistics.median(tests):g} | "
                f"{false_pulls} | {said_more} | {n * (n - 1) // 2:,} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
