"""Host CPU contention on real runs (issue 25): busy loops in other processes pinned to rank 1's
core make its threads wait on the run queue (`cpu_wait_ms`), and no rank is named a culprit for
it: a late rank is NOT JUDGED (exit 2); a busy thread inside rank 1's own process (its own CPU
time) is still the culprit.

What the 2-core host's other load does to rank 0 (on the other core) is not ours to fix: the
assertions are the ones the measurement supports whatever it does (see each)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from fixtures import busy_thread  # noqa: E402  (the busy thread's sitecustomize, shared)

from minicluster.result.schema import validate_result  # noqa: E402

HOG = "while True: pass"
HOGS_ON_RANK_1_CORE = 2
# Each rank pinned to the core MC_TEST_CORE_<RANK> names (threads it starts later inherit it),
# at the niceness MC_TEST_NICE_<RANK> names, its autogroup's too: the launcher starts each rank in
# a session of its own, and the scheduler shares a core between sessions (autogroups) by their
# niceness first. Rank 1 at 5: the busy loops beside it (nice 0) hold its core about three
# quarters of the time whenever both want it. (At 19 rank 1 could not even start in 60 s.)
PIN = """import os
_rank = os.environ.get("RANK")
_core = os.environ.get("MC_TEST_CORE_" + str(_rank))
if _rank is not None and _core is not None:
    os.sched_setaffinity(0, {int(_core)})
    _nice = int(os.environ.get("MC_TEST_NICE_" + _rank, "0"))
    if _nice:
        os.nice(_nice)
        try:
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(_nice))
        except OSError:
            pass
"""
# No schedstat to read (as on a host without Linux's /proc): the module's directory moved away
NO_SCHEDSTAT = """import os
if os.environ.get("RANK") is not None:
    from minicluster.rank.telemetry import schedstat
    schedstat.TASK_DIR = "/nonexistent/task"
"""
CONFIG = (
    "workload: {name: mlp, per_rank_batch: 32, input_dim: 256, hidden_dim: 512, num_layers: 3}\n"
    "steps: {warmup: 3, measured: 30}\n"
    "run: {nproc: 2, threads_per_rank: 1, collective_timeout_s: 60}\n"
)


def _run(
    python: str, env: dict[str, str], tmp_path: Path, site: str, *extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = busy_thread.with_sitecustomize(env, tmp_path / "site", site)
    config = tmp_path / "job.yaml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    args = [python, "-m", "minicluster", "run", "-c", str(config), "--out", str(out), *extra]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path)
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    assert result["status"] == "ok", proc.stderr[-2000:]
    return proc, result


def _median(out: Path, rank: int, key: str) -> float:
    rows = [json.loads(line) for line in (out / "ranks" / f"rank_{rank:05d}.jsonl").open()]
    return statistics.median(
        r[key] for r in rows if r.get("type") == "step" and not r["warmup"] and r[key] is not None
    )


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs two cores to pin the ranks apart",
)
def test_busy_loops_on_one_ranks_core_are_not_its_fault(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    core0, core1 = sorted(os.sched_getaffinity(0))[:2]
    env = dict(cli_env, MC_TEST_CORE_0=str(core0), MC_TEST_CORE_1=str(core1), MC_TEST_NICE_1="5")
    hogs = []
    for _ in range(HOGS_ON_RANK_1_CORE):
        hog = subprocess.Popen([sys.executable, "-c", HOG])
        os.sched_setaffinity(hog.pid, {core1})
        hogs.append(hog)
    try:
        proc, result = _run(python, env, tmp_path, PIN)
    finally:
        for h in hogs:  # each stopped by its own PID
            h.kill()
        for h in hogs:
            h.wait(timeout=10)
    out = tmp_path / "out"
    found = result.get("host_contention") or []
    print("host_contention:", json.dumps(found), "costs:", [r["cost"] for r in result["ranks"]])
    # The measurement sees the busy loops: rank 1's threads waited on the run queue longer than
    # they ran (measured: 128 ms a step against 7 ms of CPU time; rank 0: 21 against 6).
    assert _median(out, 1, "cpu_wait_ms") >= _median(out, 1, "cpu_ms"), result["ranks"][1]
    # Rank 1 was late (measured: 54 ms a step, cost 65% of the run) through no fault of its own:
    # not a culprit, nor a straggler (nor is rank 0, beside the host's other work on its core).
    assert result["culprits"] == [], result["culprits"]
    assert result["stragglers"] == [], result["stragglers"]
    culprit = [h for h in found if h["finding"] == "culprit"]
    assert [h["rank"] for h in culprit] == [1], found
    (h,) = culprit
    assert h["cpu_wait_excess_ms_per_step"] >= h["share_pct"] / 100 * h["late_ms_per_step"]
    assert h["cpu_excess_ms_per_step"] < h["share_pct"] / 100 * h["late_ms_per_step"]
    assert result["ranks"][1]["cost"]["host_contention"] is True
    # NOT JUDGED, exit 2, and the report says why
    assert proc.returncode == 2, proc.stdout[-2000:]
    said = " ".join(proc.stdout.split())  # the report wraps at the piped width
    assert "NOT JUDGED: rank 1 not judged" in said and "rerun on a quiet host" in said


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_busy_thread_in_the_rank_is_still_the_culprit(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Its threads wait for the CPU each other hold, but its own CPU time rises with its
    lateness: the rank's fault, named."""
    env = dict(cli_env, **{busy_thread.BUSY_RANK_VAR: "1"})
    proc, result = _run(python, env, tmp_path, busy_thread.BUSY_THREAD)
    assert [c["rank"] for c in result["culprits"]] == [1], result.get("host_contention")
    ev = result["ranks"][1]["cost"]["cpu"]
    assert ev["cpu_excess_ms_per_step"] >= 0.5 * ev["late_ms_per_step"], ev
    assert all(h["rank"] != 1 for h in result.get("host_contention") or [])
    assert proc.returncode == 1


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_without_schedstat_the_fields_are_null_and_the_reason_is_said_once(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    proc, result = _run(python, cli_env, tmp_path, NO_SCHEDSTAT)
    out = tmp_path / "out"
    for rank in (0, 1):
        lines = (out / "ranks" / f"rank_{rank:05d}.jsonl").read_text().splitlines()
        steps = [json.loads(x) for x in lines if '"type":"step"' in x]
        assert steps and all(s["cpu_ms"] is None and s["cpu_wait_ms"] is None for s in steps)
        assert all(s["main_cpu_ms"] is None and s["main_cpu_wait_ms"] is None for s in steps)
        summary = json.loads((out / "ranks" / f"rank_{rank:05d}.summary.json").read_text())
        (note,) = [s for s in summary["telemetry"]["sources"] if s["source"] == "cpu_schedstat"]
        assert note["available"] is False and "/nonexistent/task" in note["reason"]
    sources = [s for n in result["telemetry"]["nodes"] for s in n["sources"]]
    assert any(s["source"] == "cpu_schedstat" and not s["available"] for s in sources)
    assert "host_contention" not in result
    assert proc.returncode in (0, 1)  # judged as before the fields (the host's load decides)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_sleeping_loop_thread_is_judged_by_its_own_wait(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Rank format 1.8: every step records the loop thread's own CPU time and run-queue delay,
    within every thread's; a 40 ms sleep in rank 1's forward (the injected straggler) is judged
    by its loop thread's wait, which the sleep does not raise (beside the test suite every
    thread's wait rose 30.8 ms a step with it and the rank was NOT JUDGED: BENCHMARKS.md)."""
    proc, result = _run(python, cli_env, tmp_path, "", "--fault", "straggler:rank=1,delay_ms=40")
    out = tmp_path / "out"
    for rank in (0, 1):
        lines = (out / "ranks" / f"rank_{rank:05d}.jsonl").read_text().splitlines()
        steps = [json.loads(x) for x in lines if '"type":"step"' in x]
        assert steps and all(s["main_cpu_ms"] is not None for s in steps)
        for s in steps:  # one thread of the rank's: within the sum (the µs rounding aside)
            assert s["main_cpu_ms"] <= s["cpu_ms"] + 0.002, s
            assert s["main_cpu_wait_ms"] <= s["cpu_wait_ms"] + 0.002, s
    named = [s for s in result["stragglers"] if s["rank"] == 1]
    named += [c for c in result["culprits"] if c["rank"] == 1]
    print("host_contention:", json.dumps(result.get("host_contention")))
    assert named, (result.get("host_contention"), proc.stdout[-1500:])
    # a straggler carries its CPU figures; a culprit's are in its cost
    ev = named[0].get("cpu") or result["ranks"][1]["cost"]["cpu"]
    assert ev["wait_of"] == "loop_thread", ev
    # the sleep is not the loop thread's wait: it explains little of the 40 ms
    assert ev["cpu_wait_excess_ms_per_step"] < 0.5 * ev["late_ms_per_step"], ev
    assert proc.returncode == 1
