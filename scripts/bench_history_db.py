"""SQLite (stdlib) vs DuckDB for `minicluster history`, on the operations history needs: add one
run (a runs row and ~25 metric rows in one transaction), query the last N comparable runs' values
of one metric (by fingerprint key), and two processes adding at once.

Usage: python scripts/bench_history_db.py [--runs 2000] [--adds 200]
Prints the median time per operation (ms) with its interquartile range, and what happened with
two concurrent writers. DuckDB is not a minicluster dependency: `pip install duckdb` to run its
half (skipped with a line otherwise).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

METRICS = [f"metric_{i:02d}" for i in range(25)]
KEYS = [f"fp{i:03d}" for i in range(40)]
DDL = [
    "CREATE TABLE runs(id INTEGER PRIMARY KEY, added_at TEXT, fingerprint_key TEXT, "
    "fingerprint TEXT, git_commit TEXT, labels TEXT)",
    "CREATE INDEX runs_fp ON runs(fingerprint_key, id)",
    "CREATE TABLE metrics(run INTEGER, metric TEXT, value DOUBLE, unit TEXT, status TEXT, "
    "samples TEXT, PRIMARY KEY(run, metric))",
]
QUERY = (
    "SELECT m.value FROM runs r JOIN metrics m ON m.run = r.id WHERE r.fingerprint_key = ? "
    "AND m.metric = ? ORDER BY r.id DESC LIMIT ?"
)


def _sqlite(path: Path) -> Any:
    import sqlite3

    con = sqlite3.connect(path, timeout=60, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA busy_timeout=60000")
    return con


def _duck(path: Path) -> Any:
    import duckdb

    return duckdb.connect(str(path))


def _add(con: Any, kind: str, run_id: int) -> None:
    samples = json.dumps([round(random.random(), 4) for _ in range(50)])
    con.execute("BEGIN IMMEDIATE" if kind == "sqlite" else "BEGIN TRANSACTION")
    con.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?)",
        [run_id, "2026-12-04T00:00:00", random.choice(KEYS), "{}", "abc", "{}"],
    )
    con.executemany(
        "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)",
        [[run_id, m, random.random(), "ms", "measured", samples] for m in METRICS],
    )
    con.execute("COMMIT")


def _time(fn: Any, n: int) -> tuple[float, float, float]:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append(1000 * (time.perf_counter() - t0))
    q = statistics.quantiles(times, n=4)
    return statistics.median(times), q[0], q[2]


def _writer(kind: str, path: str, start: int, n: int, out: Any) -> None:
    try:
        con = _sqlite(Path(path)) if kind == "sqlite" else _duck(Path(path))
        for i in range(n):
            _add(con, kind, start + i)
        con.close()
        out.put((start, "ok"))
    except Exception as e:  # the result is what we measure
        out.put((start, f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"))


def bench(kind: str, runs: int, adds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f"hist-{kind}-"))
    path = tmp / f"h.{kind}"
    con = _sqlite(path) if kind == "sqlite" else _duck(path)
    for stmt in DDL:
        con.execute(stmt)
    t0 = time.perf_counter()
    for i in range(runs):
        _add(con, kind, i)
    fill = time.perf_counter() - t0
    add = _time(lambda i: _add(con, kind, runs + i), adds)
    query = _time(
        lambda i: con.execute(QUERY, [KEYS[i % len(KEYS)], METRICS[i % 25], 30]).fetchall(), adds
    )
    con.close()
    size = os.path.getsize(path) / 2**20
    print(
        f"{kind:7s} fill {runs} runs {fill:.1f} s; add one run: median {add[0]:.2f} ms "
        f"(IQR {add[1]:.2f}-{add[2]:.2f}); last 30 comparable values of one metric: median "
        f"{query[0]:.2f} ms (IQR {query[1]:.2f}-{query[2]:.2f}); file {size:.1f} MiB"
    )
    out: Any = mp.Queue()
    procs = [
        mp.Process(target=_writer, args=(kind, str(path), 10_000_000 * (k + 1), 100, out))
        for k in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    results = [out.get() for _ in procs]
    print(f"{kind:7s} two processes adding 100 runs each at once: {results}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--adds", type=int, default=200)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    bench("sqlite", args.runs, args.adds)
    try:
        import duckdb  # noqa: F401
    except ImportError:
        print("duckdb  not installed: skipped (pip install duckdb)")
        return
    bench("duckdb", args.runs, args.adds)


if __name__ == "__main__":
    main()
