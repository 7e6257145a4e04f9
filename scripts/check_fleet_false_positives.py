"""How often `minicluster fleet` names a node among healthy ones, and whether it names a straggler
(issue 17).

Runs B batches of N clean node checks (`tests/fixtures/fleet/node_check.yaml`), the N of a batch
at the same time, as the nodes of a fleet run (on one shared host, runs made minutes apart differ
by the load of that minute, which no fleet statistic can see through), and one batch with a
straggler on one node. Then, per batch: whether `fleet` names anyone among all N, and among every
subset of N - 1; the same for several MAD floors (the evidence for `--mad-floor`'s default); and
whether the straggler batch names the straggler and only it. Exit 0 when no clean fleet named a
node and the straggler was named alone, 1 otherwise, 3 when a run failed.

Usage: python scripts/check_fleet_false_positives.py [--batches 3] [--nodes 8] [--delay-ms 200]
       [--out DIR] [--from BATCH_DIR ...]
A batch of 8 takes about 100 s on this project's 2-core VM.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minicluster.analysis.fleet import MAD_FLOOR_FRAC, fleet  # noqa: E402

CONFIG = ROOT / "tests" / "fixtures" / "fleet" / "node_check.yaml"
FLOORS = (0.0, 0.05, 0.1, 0.15, 0.2)


def batch(out: Path, nodes: int, fault: str | None = None, faulty: int = 0) -> list[Path]:
    """N node checks at once into out/node1..N (node `faulty` with `fault`); their directories."""
    procs = []
    for i in range(1, nodes + 1):
        extra = ["--fault", fault] if fault and i == faulty else []
        cmd = [sys.executable, "-m", "minicluster", "run", "-c", str(CONFIG)]
        cmd += ["--out", str(out / f"node{i}"), *extra]
        procs.append(
            subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        )
    for i, p in enumerate(procs, start=1):
        _, err = p.communicate()
        if p.returncode not in (0, 1):
            print(f"node{i} in {out} failed (exit {p.returncode}):\n{err.decode()[-2000:]}")
            sys.exit(3)
    return [out / f"node{i}" for i in range(1, nodes + 1)]


def load(dirs: list[Path]) -> list[tuple[str, dict]]:
    return [(str(d), json.loads((d / "result.json").read_text())) for d in dirs]


def named(results: list[tuple[str, dict]], floor: float) -> list[str]:
    return list(fleet(results, None, 3.5, floor)["outliers"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--delay-ms", type=int, default=200)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--from", dest="given", nargs="*", type=Path, default=[])
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="fleet-fp-"))
    batches = [sorted(d.glob("node*")) for d in args.given]
    for b in range(args.batches):
        batches.append(batch(out / f"clean-{b}", args.nodes))
        print(f"batch clean-{b} done", flush=True)
    clean_named = 0
    subsets = {f: [0, 0] for f in FLOORS}
    for dirs in batches:
        results = load(dirs)
        who = named(results, MAD_FLOOR_FRAC)
        clean_named += bool(who)
        print(f"{dirs[0].parent}: {len(results)} clean nodes; named: {', '.join(who) or '-'}")
        for f in FLOORS:
            for sub in itertools.combinations(results, len(results) - 1):
                subsets[f][0] += bool(named(list(sub), f))
                subsets[f][1] += 1
    fault = f"straggler:rank=1,delay_ms={args.delay_ms}"
    faulty = batch(out / "straggler", args.nodes, fault, faulty=args.nodes // 2)
    who = named(load(faulty), MAD_FLOOR_FRAC)
    want = f"node{args.nodes // 2}"
    print(f"straggler batch ({want}: {fault}): named {', '.join(who) or '-'}")
    print()
    print(
        f"clean fleets naming a node (default floor {MAD_FLOOR_FRAC}): {clean_named} of {len(batches)}"
    )
    for f, (hits, total) in subsets.items():
        print(
            f"  subsets of {args.nodes - 1} clean nodes naming one, MAD floor {f:.2f}: {hits} of {total}"
        )
    print(f"straggler named alone: {who == [want]}")
    print(f"runs kept in {out}")
    return 0 if clean_named == 0 and who == [want] else 1


if __name__ == "__main__":
    sys.exit(main())
