"""Score culprit attribution on real runs: fault kinds x episodes beside healthy runs, one session.

Each episode runs `minicluster run` with one fault on a rank drawn at random; the healthy runs
are spread evenly through the shuffled sequence, so every faulty run has healthy runs beside it
in time, under the same load. Printed: the confusion matrix (injected kind -> the top culprit's
kind, or none), top-1 culprit accuracy (the top culprit is the injected rank), false verdicts (a
culprit in a healthy run), the cost error and the time to verdict (`aggregate` of the finished
run). Rates with Wilson 95% intervals, medians with bootstrap 95% intervals (fixed seed: the
same saved runs always score the same).

The cost error of an episode is the injected rank's `cost_pct` (`ranks[].cost`: the what-if of
the run's own records) minus the measured cost: 100 x (the faulty run's accounted wall time -
the reference's) / the faulty run's, where the reference is the median wall time of the 3
healthy runs nearest in time (`nearest`) or of all healthy runs (`all`). The A/A control scores
each healthy run the same way against the other healthy runs (its costliest rank's `cost_pct`
against its measured difference): the noise floor of the measurement.

    python scripts/check_attribution.py --episodes 5 --healthy 30 --out /tmp/attribution
    python scripts/check_attribution.py --score /tmp/attribution/attribution.json   # re-score
    python scripts/check_attribution.py --out /tmp/attribution --rescore   # re-aggregate first
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

# the busy thread's sitecustomize, shared with the e2e tests (tests/fixtures/busy_thread.py)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures import busy_thread  # noqa: E402

CONFIG = (
    "workload: {name: mlp, per_rank_batch: 32, input_dim: 128, hidden_dim: 256, num_layers: 2}\n"
    "steps: {warmup: 3, measured: 40}\n"
    "run: {nproc: 2, threads_per_rank: 1, collective_timeout_s: 60}\n"
)
BUSY = "busy_thread"  # a real source the injector did not make (fixtures.busy_thread)
# kind name -> (fault spec with {rank}, or None for BUSY; the culprit kind it should be named as)
KINDS: dict[str, tuple[str | None, str]] = {
    "intermittent": ("straggler:rank={rank},delay_ms=80,every=5", "intermittent"),
    "intermittent3": ("straggler:rank={rank},delay_ms=30,every=3", "intermittent"),
    "pause": ("pause:rank={rank},delay_ms=40,every=4", "intermittent"),
    "pause_persistent": ("pause:rank={rank},delay_ms=15", "persistent"),
    "persistent": ("straggler:rank={rank},delay_ms=20", "persistent"),
    "persistent_small": ("straggler:rank={rank},delay_ms=8", "persistent"),
    "onset": ("straggler:rank={rank},delay_ms=30,from_step=22", "onset"),
    "pause_onset": ("pause:rank={rank},delay_ms=30,from_step=22", "onset"),
    "drift": ("drift:rank={rank},ms_per_step=2,from_step=3", "drift"),
    BUSY: (None, "persistent"),
}
NEAREST = 3  # healthy runs nearest in time that make the `nearest` reference
CONFIDENCE = 0.95
RESAMPLES = 2000


# ---------------------------------------------------------------- running


def plan_runs(kinds: list[str], episodes: int, healthy: int, seed: int) -> list[dict[str, Any]]:
    """The sequence: each kind `episodes` times on a random rank, shuffled, with the healthy runs
    spread evenly through it (one every len/healthy runs), so each has faulty runs beside it."""
    rng = random.Random(seed)
    faulty = [{"kind": k, "rank": rng.randrange(2)} for k in kinds for _ in range(episodes)]
    rng.shuffle(faulty)
    total = len(faulty) + healthy
    at = {round((j + 0.5) * total / healthy - 0.5) for j in range(healthy)} if healthy else set()
    plan, it = [], iter(faulty)
    for i in range(total):
        plan.append({"kind": "healthy", "rank": None} if i in at else next(it))
    return plan


def _run(out: Path, kind: str, rank: int | None) -> tuple[dict[str, Any], int, float, float]:
    cmd = [sys.executable, "-m", "minicluster", "run", "-c", str(out.parent / "job.yaml")]
    cmd += ["--out", str(out)]
    env = dict(os.environ, MINICLUSTER_PROGRESS="0")
    spec = KINDS[kind][0] if kind in KINDS else None
    if spec:
        cmd += ["--fault", spec.format(rank=rank)]
    if kind == BUSY:
        assert rank is not None
        env = busy_thread.with_busy_thread(env, out.parent / "site", rank)
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    end = time.time()
    if not (out / "result.json").exists():
        raise SystemExit(f"{out}: the run left no result.json: {proc.stderr[-800:]}")
    return _aggregate(out), proc.returncode, start, end


def _aggregate(out: Path) -> dict[str, Any]:
    """The run's result aggregated again from its records by this checkout (timed)."""
    env = dict(os.environ, MINICLUSTER_PROGRESS="0")
    start = time.perf_counter()
    agg = [sys.executable, "-m", "minicluster", "aggregate", str(out)]
    subprocess.run(agg, capture_output=True, text=True, env=env, timeout=600, check=False)
    verdict_s = time.perf_counter() - start
    result: dict[str, Any] = json.loads((out / "result.json").read_text())
    result["_verdict_s"] = verdict_s
    return result


def row_of(entry: dict[str, Any], out: Path, result: dict[str, Any]) -> dict[str, Any]:
    """What the scoring needs of one run (saved, so a set can be scored again without it)."""
    culprits = result.get("culprits") or []
    top = culprits[0] if culprits else None
    costs = {}
    for r in result.get("ranks") or []:
        c = r.get("cost") or {}
        if c.get("cost_pct") is not None:
            costs[str(r["rank"])] = c["cost_pct"]
    tol = (result.get("accounting") or {}).get("tolerance") or {}
    wall = tol.get("run_accounted_ms")
    return {
        **entry,
        "out": str(out),
        "status": result.get("status"),
        "named": top["kind"] if top else "none",
        "named_rank": top["rank"] if top else None,
        "top_cost_pct": top["cost_pct"] if top else None,
        "culprits": [[c["rank"], c["kind"], c["cost_pct"]] for c in culprits],
        "rank_cost_pct": costs,
        "wall_ms": float(wall) if wall is not None else None,
        "verdict_s": result["_verdict_s"],
    }


# ---------------------------------------------------------------- scoring (pure)


def confusion(rows: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """Injected kind -> Counter of the top culprit's kind ('none': no culprit)."""
    out: dict[str, Counter[str]] = {}
    for r in rows:
        out.setdefault(r["kind"], Counter())[r["named"]] += 1
    return out


def wilson(k: int, n: int) -> tuple[float, float] | None:
    """The Wilson 95% interval of k successes in n (None for n = 0)."""
    if n == 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def median_ci(values: list[float], seed: int = 0) -> tuple[float, float, float] | None:
    """The median and its bootstrap (percentile) interval; fixed seed, so deterministic. None
    for fewer than 2 values."""
    if len(values) < 2:
        return None
    import numpy as np
    from scipy.stats import bootstrap

    data = np.asarray(values, dtype=float)
    res = bootstrap(
        (data,),
        np.median,
        n_resamples=RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return float(np.median(data)), float(ci.low), float(ci.high)


def _mid(r: dict[str, Any]) -> float:
    return (r["start"] + r["end"]) / 2 if r.get("start") is not None else float(r["index"])


def reference(rows: list[dict[str, Any]], i: int, how: str) -> float | None:
    """The reference wall time for run `i`: the median of the healthy runs (itself left out)
    nearest in time (`nearest`, NEAREST of them), of the NEAREST after those (`next`: a second,
    disjoint reference) or of all of them (`all`)."""
    me = rows[i]
    healthy = [r for j, r in enumerate(rows) if j != i and r["kind"] == "healthy" and r["wall_ms"]]
    if how in ("nearest", "next"):
        healthy = sorted(healthy, key=lambda r: abs(_mid(r) - _mid(me)))
        healthy = healthy[:NEAREST] if how == "nearest" else healthy[NEAREST : 2 * NEAREST]
    if not healthy:
        return None
    return statistics.median(r["wall_ms"] for r in healthy)


def measured_pct(wall: float, ref: float) -> float:
    """The measured cost: the share of the run's wall time a run without the fault did not take."""
    return 100.0 * (wall - ref) / wall


def estimated_pct(r: dict[str, Any]) -> float | None:
    """The what-if's cost of the run: the injected rank's cost_pct; in a healthy run (A/A) the
    costliest rank's."""
    costs = r.get("rank_cost_pct") or {}
    if r["kind"] == "healthy":
        return max(costs.values()) if costs else None
    return costs.get(str(r["rank"]))


def cost_errors(rows: list[dict[str, Any]], how: str, healthy: bool) -> list[dict[str, float]]:
    """Per faulty run (or, `healthy`, per healthy run: the A/A control) its estimated and measured
    cost and the error in points (estimated - measured)."""
    out = []
    for i, r in enumerate(rows):
        if (r["kind"] == "healthy") != healthy or not r["wall_ms"]:
            continue
        est, ref = estimated_pct(r), reference(rows, i, how)
        if est is None or ref is None:
            continue
        m = measured_pct(r["wall_ms"], ref)
        out.append({"index": i, "estimated": est, "measured": m, "error": est - m})
    return out


def within_run(out: Path, spec: str, rank: int) -> dict[str, float] | None:
    """`within_acc` of a run directory's records (None when they cannot be accounted for)."""
    from minicluster.analysis import accounting
    from minicluster.analysis.records import read_run_dir
    from minicluster.analysis.steps import StepTable
    from minicluster.core import fault_spec

    try:
        records = read_run_dir(Path(out), workers=1)
    except (OSError, ValueError):
        return None
    if len(records) < 2:
        return None
    acc = accounting.account(records, StepTable(records, max(r.rank for r in records) + 1))
    return within_acc(acc, fault_spec.parse(spec), rank)


def within_acc(acc: Any, fault: Any, rank: int) -> dict[str, float] | None:
    """The what-if checked inside one run, free of the load's drift between runs: over the steps
    the fault acted in (its schedule: every Nth step, or from a step on), the measured extra time
    of each step over the median of the run's own fault-free steps, against the cost the what-if
    charged the rank in those steps; both in % of the run's accounted wall time. None for a fault
    in (almost) every step (fewer than 5 steps either way)."""
    import numpy as np

    if acc.n == 0 or rank not in acc.ranks:
        return None
    on = np.array([fault.delay_at_ms(int(s)) > 0 for s in acc.steps])
    if on.sum() < 5 or (~on).sum() < 5:
        return None
    step = acc.accounted
    wall = float(step.sum())
    charged = np.where(acc.last == acc.ranks.index(rank), acc.lateness, 0.0)
    measured = float((step[on] - np.median(step[~on])).sum())
    return {
        "steps": int(on.sum()),
        "measured": 100.0 * measured / wall,
        "estimated": 100.0 * float(charged[on].sum()) / wall,
    }


def within_errors(rows: list[dict[str, Any]], kinds: dict[str, Any]) -> list[dict[str, Any]]:
    """`within_run` of every faulty row that has one (saved in the row, else computed from its
    run directory), with the error in points."""
    out = []
    for r in rows:
        spec = (kinds.get(r["kind"]) or [None])[0]
        if r["kind"] == "healthy" or not spec:
            continue
        w = r.get("within")
        if "within" not in r and r.get("out"):
            w = within_run(Path(r["out"]), spec.format(rank=r["rank"]), r["rank"])
        if w:
            out.append(dict(w, kind=r["kind"], error=w["estimated"] - w["measured"]))
    return out


def reference_noise(rows: list[dict[str, Any]]) -> list[float]:
    """Per faulty run the measured cost against its nearest healthy runs minus that against the
    next nearest (two disjoint references at the run's own scale, in points): what the reference
    alone moves the cost error by, the noise floor of the cross-run measurement."""
    out = []
    for i, r in enumerate(rows):
        if r["kind"] == "healthy" or not r["wall_ms"]:
            continue
        a, b = reference(rows, i, "nearest"), reference(rows, i, "next")
        if a is not None and b is not None:
            out.append(measured_pct(r["wall_ms"], a) - measured_pct(r["wall_ms"], b))
    return out


def _rate(label: str, k: int, n: int) -> str:
    ci = wilson(k, n)
    if ci is None:
        return f"{label}: n/a"
    return f"{label}: {k}/{n} = {100 * k / n:.0f}% (95% CI {100 * ci[0]:.0f}-{100 * ci[1]:.0f}%)"


def _median_line(label: str, values: list[float], unit: str, band: float | None = 5.0) -> str:
    """`label: median (its interval), range, n`, and how many are within +-band."""
    m = median_ci(values)
    if m is None:
        return f"{label}: n/a (n={len(values)})"
    sign = "+" if band is not None else ""
    text = (
        f"{label}: median {m[0]:{sign}.2f} {unit} (95% CI {m[1]:{sign}.2f} to {m[2]:{sign}.2f}), "
        f"range {min(values):{sign}.2f} to {max(values):{sign}.2f}, n={len(values)}"
    )
    if band is not None:
        within = sum(1 for v in values if abs(v) <= band)
        text += f", within +-{band:g}: {within}"
    return text


def score(rows: list[dict[str, Any]], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every figure of the set, printed and returned (deterministic for the same rows)."""
    lines: list[str] = []
    healthy = [r for r in rows if r["kind"] == "healthy"]
    faulty = [r for r in rows if r["kind"] != "healthy"]
    matrix = confusion(rows)
    named = sorted({n for c in matrix.values() for n in c} | {"none"})
    lines.append("confusion (injected -> top culprit's kind):")
    lines.append("  " + " " * 17 + "".join(f"{n[:12]:>13}" for n in named))
    for kind, counts in matrix.items():
        lines.append(f"  {kind:<17}" + "".join(f"{counts.get(n, 0):>13}" for n in named))
    top1 = sum(1 for r in faulty if r["named_rank"] == r["rank"])
    kind_ok = sum(1 for r in faulty if r["named"] == KINDS.get(r["kind"], (None, ""))[1])
    false = sum(1 for r in healthy if r["named"] != "none")
    lines.append(_rate("top-1 culprit rank", top1, len(faulty)))
    lines.append(_rate("kind named right", kind_ok, len(faulty)))
    lines.append(_rate("false verdicts in healthy runs", false, len(healthy)))
    figures: dict[str, Any] = {"top1": [top1, len(faulty)], "kind": [kind_ok, len(faulty)]}
    figures["false"] = [false, len(healthy)]
    for how in ("nearest", "all"):
        errs = cost_errors(rows, how, healthy=False)
        aa = cost_errors(rows, how, healthy=True)
        label = f"{NEAREST} nearest healthy runs" if how == "nearest" else "all healthy runs"
        lines.append(f"cost error against {label}:")
        lines.append(_median_line("  faulty runs (points)", [e["error"] for e in errs], "points"))
        lines.append(_median_line("  A/A, healthy runs", [e["error"] for e in aa], "points"))
        lines.append(
            _median_line("  A/A measured difference alone", [e["measured"] for e in aa], "points")
        )
        by_kind: dict[str, list[float]] = {}
        for e in errs:
            by_kind.setdefault(rows[e["index"]]["kind"], []).append(e["error"])
        lines.append(
            "  median per kind: "
            + ", ".join(f"{k} {statistics.median(v):+.1f}" for k, v in by_kind.items())
        )
        figures[how] = {"faulty": errs, "aa": aa}
    noise = reference_noise(rows)
    lines.append(
        _median_line(
            f"reference noise |nearest {NEAREST} - next {NEAREST} healthy runs| (faulty runs)",
            [abs(v) for v in noise],
            "points",
        )
    )
    figures["reference_noise"] = noise
    kinds = (meta or {}).get("kinds") or KINDS
    within = within_errors(rows, kinds)
    lines.append("cost error inside the run (the fault's steps against its own fault-free steps):")
    lines.append(_median_line("  faulty runs (points)", [w["error"] for w in within], "points"))
    figures["within"] = within
    if rows:
        verdict = [r["verdict_s"] for r in rows]
        lines.append(_median_line("time to verdict (aggregate of a run)", verdict, "s", None))
    loads = [x for r in rows for x in (r.get("load_before"), r.get("load_after")) if x is not None]
    if loads:
        lines.append(
            f"load average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f}, median "
            f"{statistics.median(loads):.1f}, on {(meta or {}).get('cpus', '?')} cores"
        )
    print("\n".join(lines))
    figures["lines"] = lines
    return figures


def _print_episodes(rows: list[dict[str, Any]]) -> None:
    near = {e["index"]: e for e in cost_errors(rows, "nearest", healthy=False)}
    for i, r in enumerate(rows):
        e = near.get(i)
        cost = (
            f"est {e['estimated']:5.1f}% meas {e['measured']:5.1f}% err {e['error']:+5.1f}"
            if e
            else ""
        )
        print(
            f"  {i:3d} {r['kind']:<17} rank={r['rank']} -> {r['named']:<12} "
            f"rank={r['named_rank']} wall={r['wall_ms'] or 0:7.0f} ms {cost}"
        )


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"check_attribution: cannot read {path}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if isinstance(data, list):  # the first version saved the rows alone
        data = {"meta": {}, "rows": [dict(r, index=i) for i, r in enumerate(data)]}
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        print(f"check_attribution: {path} is not a saved attribution set", file=sys.stderr)
        raise SystemExit(2)
    return data


def merge(sets: list[dict[str, Any]]) -> dict[str, Any]:
    """Saved sets run side by side (at the same time) as one: rows in time order, renumbered."""
    if len(sets) == 1:
        return sets[0]
    rows = sorted((r for d in sets for r in d["rows"]), key=_mid)
    meta = dict(sets[0].get("meta") or {}, merged=[d.get("meta") for d in sets])
    return {"meta": meta, "rows": [dict(r, index=i) for i, r in enumerate(rows)]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--episodes", type=int, default=5, help="episodes per fault kind")
    ap.add_argument("--healthy", type=int, default=30, help="healthy runs")
    ap.add_argument("--kinds", default=",".join(KINDS), help="fault kinds to run")
    ap.add_argument("--out", type=Path, default=Path("/tmp/minicluster-attribution"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--score",
        type=Path,
        nargs="+",
        help="score saved sets (attribution.json; several: one set, merged in time order), no runs",
    )
    ap.add_argument("--verbose", action="store_true", help="print every episode")
    ap.add_argument(
        "--rescore",
        action="store_true",
        help="aggregate the runs recorded in --out again with this checkout, then score",
    )
    args = ap.parse_args(argv)
    if args.score:
        data = merge([_load(p) for p in args.score])
        if args.verbose:
            _print_episodes(data["rows"])
        score(data["rows"], data.get("meta"))
        return 0
    kinds = args.kinds.split(",")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or args.episodes < 0 or args.healthy < 0:
        print(
            f"check_attribution: unknown kind {unknown[0]!r}"
            if unknown
            else "check_attribution: --episodes and --healthy must be >= 0",
            file=sys.stderr,
        )
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / "attribution.json"
    if args.rescore:
        data = _load(saved)
        data["rows"] = [
            row_of(
                {k: r[k] for k in r if k not in ("named",)},
                Path(r["out"]),
                _aggregate(Path(r["out"])),
            )
            for r in data["rows"]
        ]
        score(data["rows"], data.get("meta"))
        return 0
    (args.out / "job.yaml").write_text(CONFIG)
    plan = plan_runs(kinds, args.episodes, args.healthy, args.seed)
    meta = {
        "command": " ".join(sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "config": CONFIG,
        "kinds": {k: KINDS[k] for k in kinds},
        "seed": args.seed,
    }
    rows: list[dict[str, Any]] = []
    for i, entry in enumerate(plan):
        out = args.out / f"run{i:03d}"
        load_before = os.getloadavg()[0]
        result, code, start, end = _run(out, entry["kind"], entry["rank"])
        entry = dict(
            entry,
            index=i,
            start=start,
            end=end,
            exit_code=code,
            load_before=load_before,
            load_after=os.getloadavg()[0],
        )
        rows.append(row_of(entry, out, result))
        r = rows[-1]
        spec = KINDS[r["kind"]][0] if r["kind"] in KINDS else None
        r["within"] = within_run(out, spec.format(rank=r["rank"]), r["rank"]) if spec else None
        print(
            f"{i + 1}/{len(plan)} {r['kind']} rank={r['rank']} -> {r['named']} "
            f"rank={r['named_rank']} cost={r['top_cost_pct']} wall={r['wall_ms']} "
            f"load={load_before:.1f}",
            flush=True,
        )
        saved.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    score(rows, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
