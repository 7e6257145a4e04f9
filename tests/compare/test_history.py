"""`minicluster history`: a real SQLite database, two writers at once, and the check's verdicts
(since when, by how much, what else changed, not judged on too short a history)."""

from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from minicluster.cli import main
from minicluster.compare.history import History, Provenance, Run
from minicluster.compare.history_check import change_points, check
from minicluster.interop import load

FIX = Path(__file__).resolve().parents[1] / "fixtures"
CLEAN = FIX / "cases" / "23-thermal-drift-excused-by-spread" / "clean.result.json"
DRIFT = FIX / "cases" / "23-thermal-drift-excused-by-spread" / "drift.result.json"


def _copy(tmp: Path, name: str, scale: float, commit: str = "c") -> Path:
    """A copy of the recorded clean run with its timings scaled (a distinct result)."""
    d = json.loads(CLEAN.read_text())
    d["run_id"] = name
    for key, mv in d["metrics"].items():
        if isinstance(mv.get("value"), (int, float)):
            if key.endswith("_ms"):
                mv["value"] *= scale
            elif key in ("throughput_samples_per_sec",):
                mv["value"] /= scale
    d["steps"]["series"] = None
    p = tmp / f"{name}.json"
    p.write_text(json.dumps(d))
    return p


def _writer(db: str, files: list[str]) -> None:
    import sys

    from minicluster.cli import main as cli_main

    sys.exit(cli_main(["history", "add", *files, "--db", db]))


@pytest.mark.timeout(120)
def test_two_writers_at_once_never_corrupt_the_database(tmp_path: Path) -> None:
    """Two processes each add 20 distinct results to one database at the same time: all 40 are
    there, each once, and SQLite's integrity check passes."""
    files = [str(_copy(tmp_path, f"r{i:02d}", 1 + i / 1000)) for i in range(40)]
    db = str(tmp_path / "h.sqlite")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db, files[k::2])) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(90)
    assert [p.exitcode for p in procs] == [0, 0]
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 40
    assert con.execute("SELECT count(DISTINCT run_id) FROM runs").fetchone()[0] == 40
    n_metrics = con.execute("SELECT count(*) FROM metrics").fetchone()[0]
    assert n_metrics == 40 * len(json.loads(CLEAN.read_text())["metrics"])


def test_add_list_show_and_the_same_result_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_SHA", "0123456789abcdef")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("MINICLUSTER_HISTORY_DB", raising=False)
    assert main(["history", "add", str(CLEAN), "--label", "runner=ci-1"]) == 0
    assert main(["history", "add", str(CLEAN)]) == 0
    out = capsys.readouterr().out
    assert "added #1" in out and "already recorded #1" in out
    db = tmp_path / "xdg" / "minicluster" / "history.sqlite"
    assert db.is_file()  # the default file under the user's data directory
    assert main(["history", "show", "1"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["git_commit"] == "0123456789abcdef" and run["labels"] == {"runner": "ci-1"}
    assert run["fingerprint"]["fields"]["workload"] == "mlp"
    assert run["values"]["latency_p50_ms"] > 0
    assert main(["history", "list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
    assert main(["history", "show", "9"]) == 2
    assert main(["history", "add", str(CLEAN), "--label", "nokey"]) == 2


def test_check_needs_a_history_then_names_the_regression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "h.sqlite")
    scales = [1.0, 1.03, 0.98, 1.01, 0.99, 1.02]
    for i, s in enumerate(scales[:2]):
        main(["history", "add", str(_copy(tmp_path, f"b{i}", s)), "--db", db, "--commit", f"c{i}"])
    # two comparable runs: not judged, exit 2 (not_judged in the exit-code policy), said
    assert (
        main(["history", "check", str(DRIFT), "--db", db, "--json", str(tmp_path / "c.json")]) == 2
    )
    data = json.loads((tmp_path / "c.json").read_text())
    assert any("not judged" in n for n in data["notes"]) and data["verdict"] == "not_judged"
    assert all(m["verdict"] == "not_judged" for m in data["metrics"])
    for i, s in enumerate(scales[2:], start=2):
        main(["history", "add", str(_copy(tmp_path, f"b{i}", s)), "--db", db, "--commit", f"c{i}"])
    capsys.readouterr()
    code = main(
        [
            "history",
            "check",
            str(DRIFT),
            "--db",
            db,
            "--json",
            str(tmp_path / "c.json"),
            "--html",
            str(tmp_path / "c.html"),
            "--junit",
            str(tmp_path / "c.xml"),
        ]
    )
    assert code == 1
    data = json.loads((tmp_path / "c.json").read_text())
    regs = {m["metric"]: m for m in data["metrics"] if m["verdict"] == "regression"}
    assert {"step_time_mean_ms", "latency_p50_ms", "throughput_samples_per_sec"} <= set(regs)
    step = regs["step_time_mean_ms"]
    assert step["change_pct"] > 20 and step["since"]["runs_at_new_level"] == 1
    assert step["baseline_runs"] == [1, 2, 3, 4, 5, 6]
    assert len(step["trend"]) == 7 and step["trend"][-1]["candidate"]
    html = (tmp_path / "c.html").read_text()
    assert 'data-plot="trend-step_time_mean_ms"' in html
    from junitparser import JUnitXml

    suite = next(iter(JUnitXml.fromfile(str(tmp_path / "c.xml"))))
    failed = {c.name for c in suite if c.result and c.result[0].__class__.__name__ == "Failure"}
    assert "step_time_mean_ms" in failed
    # an identical-looking run: no regression
    assert main(["history", "check", str(_copy(tmp_path, "same", 1.0)), "--db", db]) == 0


def test_a_regression_that_began_earlier_is_dated_to_its_first_run() -> None:
    """Two earlier runs already at the slower level, then the candidate: since the first of
    them (its commit), not only this run."""
    rec = load(CLEAN)
    base = float(rec.measured("step_time_mean_ms").value)  # type: ignore[union-attr]
    rng = np.random.default_rng(1)
    values = list(base * (1 + 0.02 * rng.standard_normal(8))) + [base * 1.3, base * 1.31]
    history = [
        Run(
            i + 1,
            f"t{i}",
            None,
            None,
            "x",
            "x",
            "minicluster",
            None,
            None,
            "ok",
            "training",
            "k",
            {},
            {},
            f"commit{i}",
            None,
            {},
            {"step_time_mean_ms": v},
        )
        for i, v in enumerate(values)
    ]
    rec.metrics["step_time_mean_ms"] = replace(rec.metrics["step_time_mean_ms"], value=base * 1.29)
    res = check(rec, history, ("step_time_mean_ms",))
    m = res.metrics[0]
    assert m.verdict == "regression"
    assert m.since is not None and m.since["run"] == 9 and m.since["git_commit"] == "commit8"
    assert m.since["runs_at_new_level"] == 3
    assert "since run #9 (commit commit8" in m.reason


def test_an_established_new_level_becomes_the_baseline() -> None:
    x = np.log(np.array([10.0, 10.1, 9.9, 10.0, 12.0, 12.1, 11.9, 12.0, 12.05, 12.0]))
    assert change_points(x, 0.05) == [4]
    rec = load(CLEAN)
    history = [
        Run(
            i + 1,
            f"t{i}",
            None,
            None,
            "x",
            "x",
            "minicluster",
            None,
            None,
            "ok",
            "training",
            "k",
            {},
            {},
            None,
            None,
            {},
            {"step_time_mean_ms": float(np.exp(v))},
        )
        for i, v in enumerate(x)
    ]
    rec.metrics["step_time_mean_ms"] = replace(rec.metrics["step_time_mean_ms"], value=12.02)
    m = check(rec, history, ("step_time_mean_ms",), settle=5).metrics[0]
    assert m.verdict == "no_change" and "it is the baseline" in m.reason


def test_what_else_changed_is_said(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    with History(db) as h:
        for i in range(4):
            p = _copy(tmp_path, f"v{i}", 1 + i / 200)
            d = json.loads(p.read_text())
            d["platform"]["torch"] = "2.12.0+cpu"
            p.write_text(json.dumps(d))
            h.add(load(p), str(p), p.read_bytes(), Provenance(f"c{i}", None, {}))
        runs = h.comparable(load(CLEAN).fingerprint or {}, (), 30)
    assert len(runs) == 4
    res = check(load(CLEAN), runs)
    assert any(line.startswith("framework_version: 2.12.0+cpu -> 2.13") for line in res.changed)


def test_a_file_that_is_not_a_history_database_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "h.sqlite"
    bad.write_text("not a database")
    assert main(["history", "list", "--db", str(bad)]) == 2
    assert main(["history"]) == 2


@pytest.mark.parametrize("width", ["80", "120"])
def test_the_check_table_never_cuts_a_value(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    width: str,
) -> None:
    """Issue 26: terminal tables cut values at 80-100 columns; the history check's table drops
    whole columns that do not fit instead (and says so)."""
    db = str(tmp_path / "h.sqlite")
    for i, s in enumerate([1.0, 1.03, 0.98, 1.01, 0.99, 1.02]):
        main(["history", "add", str(_copy(tmp_path, f"b{i}", s)), "--db", db])
    monkeypatch.setenv("COLUMNS", width)
    capsys.readouterr()
    assert main(["history", "check", str(DRIFT), "--db", db]) == 1
    out = capsys.readouterr().out
    assert "…" not in out, [line for line in out.splitlines() if "…" in line][:3]
    assert "throughput_samples_per_sec" in out and "REGRESSION" in out


@pytest.mark.parametrize("status", ["failed", "incomplete"])
def test_a_run_that_did_not_finish_ok_fails_the_check_as_compare_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], status: str
) -> None:
    """A hung (failed) or interrupted candidate whose partial numbers look like the history's:
    `history check` exits 1 as `compare` of the same runs does, and says why."""
    db = str(tmp_path / "h.sqlite")
    base = [_copy(tmp_path, f"b{i}", s) for i, s in enumerate([1.0, 1.02, 0.99, 1.01])]
    for p in base:
        assert main(["history", "add", str(p), "--db", db]) == 0
    cand = _copy(tmp_path, "hung", 1.0)
    d = json.loads(cand.read_text())
    d["status"] = status
    cand.write_text(json.dumps(d))
    assert main(["compare", str(base[0]), str(cand)]) == 1
    capsys.readouterr()
    out = tmp_path / "c.json"
    page = tmp_path / "c.html"
    argv = ["history", "check", str(cand), "--db", db, "--json", str(out), "--html", str(page)]
    assert main(argv) == 1
    assert f"FAILED: hung.json: run status is &#x27;{status}&#x27;" in page.read_text()
    said = capsys.readouterr().out
    assert f"run status is '{status}'" in said and "no regression" not in said
    data = json.loads(out.read_text())
    assert data["gate_failed"] and data["unfinished"] == f"hung.json: run status is '{status}'"
    assert all(m["verdict"] == "not_judged" for m in data["metrics"])
    # the same run finished ok passes
    assert main(["history", "check", str(_copy(tmp_path, "fine", 1.0)), "--db", db]) == 0


def test_the_same_run_from_another_file_is_recorded_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A copy of a run's result whose bytes differ (re-aggregated, re-indented) is the same run
    (same run_id): the second add says so and skips it, exit 0; what was recorded stays."""
    db = str(tmp_path / "h.sqlite")
    first = _copy(tmp_path, "r1", 1.0)
    copy = tmp_path / "copy" / "result.json"
    copy.parent.mkdir()
    d = json.loads(first.read_text())
    d["aggregated_at"] = "2026-12-06T00:00:00+00:00"
    copy.write_text(json.dumps(d, indent=1))
    assert main(["history", "add", str(first), "--db", db]) == 0
    assert main(["history", "add", str(copy.parent), "--db", db]) == 0
    out = capsys.readouterr().out
    assert "added #1" in out and "already recorded #1" in out and "run r1" in out
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*), min(source) FROM runs").fetchone() == (1, str(first))
    # another run is still added
    assert main(["history", "add", str(_copy(tmp_path, "r2", 1.0)), "--db", db]) == 0
    assert "added #2" in capsys.readouterr().out


def _open(db: str, barrier: Any, q: Any) -> None:
    barrier.wait()
    try:
        with History(Path(db)):
            q.put(0)
    except Exception as e:  # noqa: BLE001 - the test counts every failure, whatever it is
        q.put(repr(e))


@pytest.mark.timeout(120)
def test_processes_creating_one_database_at_the_same_moment_all_open_it(tmp_path: Path) -> None:
    """Six processes open one new database at the same moment, ten times over: every open
    succeeds. (The switch to WAL used to answer 'database is locked' at once, without the busy
    timeout, in about 3% of opens: a `history add` in CI failed on it.)"""
    ctx = mp.get_context("fork")
    errors: list[Any] = []
    for t in range(10):
        db = str(tmp_path / f"h{t}.sqlite")
        barrier, q = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_open, args=(db, barrier, q)) for _ in range(6)]
        for p in procs:
            p.start()
        got = [q.get(timeout=90) for _ in procs]
        for p in procs:
            p.join(30)
        errors += [g for g in got if g != 0]
    assert errors == []


def test_another_programs_database_is_refused_and_left_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "theirs.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE orders(id INTEGER)")
    con.commit()
    con.close()
    before = db.read_bytes()
    assert main(["history", "add", str(CLEAN), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "not a minicluster history database" in err and len(err.strip().splitlines()) == 1
    con = sqlite3.connect(db)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"orders"}
    con.close()
    assert db.read_bytes() == before


NOISY = FIX / "cases" / "30-history-noisy-baselines"


@pytest.mark.timeout(120)
def test_a_change_the_runs_cannot_resolve_is_not_judged_never_no_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three real clean runs 70% apart, then a real straggler run at +101% step time (the
    new-user trial's): was "no regression", exit 0. The +101% is not "no change": NOT JUDGED
    (exit 2) where the candidate's own checks passed, and FAILED its own checks (exit 1) with its
    straggler named where they did not. With no comparable run: NOT JUDGED, exit 2."""
    db = str(tmp_path / "h.sqlite")
    History(Path(db)).con.close()  # an empty history (`check` never makes one)
    strag = NOISY / "strag.result.json"
    assert main(["history", "check", str(strag), "--db", db]) == 1  # its own straggler
    said = capsys.readouterr().out
    assert "NOT JUDGED: 0 comparable earlier run(s)" in said and "no regression" not in said
    assert "straggler rank 1" in said
    # the same numbers without the run's own findings: nothing judged, so exit 2
    d = json.loads(strag.read_text())
    d["run_id"] = "no-findings"
    d["faults"]["detected"], d["culprits"], d["stragglers"], d["incident"] = [], [], [], None
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(d))
    assert main(["history", "check", str(plain), "--db", db]) == 2
    assert "NOT JUDGED: 0 comparable" in capsys.readouterr().out
    for name in ("h1", "h2", "h3"):
        assert main(["history", "add", str(NOISY / f"{name}.result.json"), "--db", db]) == 0
    capsys.readouterr()
    out = tmp_path / "c.json"
    assert main(["history", "check", str(plain), "--db", db, "--json", str(out)]) == 2
    said = capsys.readouterr().out
    assert "NOT JUDGED" in said and "no regression" not in said
    data = json.loads(out.read_text())
    step = next(m for m in data["metrics"] if m["metric"] == "step_time_mean_ms")
    assert step["change_pct"] > 90 and step["verdict"] == "not_judged"
    assert "inconclusive" in step["reason"] and "step_time_mean_ms" in data["not_judged"]
    assert data["verdict"] == "not_judged" and not data["gate_failed"]
    # the real straggler run: its own findings listed, the gate fails (as compare fails a run
    # that did not finish ok), the metrics still not judged
    xml = tmp_path / "c.xml"
    assert main(["history", "check", str(strag), "--db", db, "--junit", str(xml)]) == 1
    said = capsys.readouterr().out
    assert "FAILED its own checks (straggler, culprit)" in said and "NOT JUDGED" in said
    assert "candidate's own finding: straggler rank 1" in said
    assert "own checks" in xml.read_text()


def test_no_change_needs_a_history_that_could_have_seen_a_regression() -> None:
    """A small change is "no change" only when the runs could detect a few thresholds' worth:
    the same candidate against tight runs is judged, against runs ten times as spread it is
    not (its smallest detectable change is many thresholds)."""
    rec = load(CLEAN)
    base = rec.measured("step_time_mean_ms")
    assert base is not None and base.value is not None

    def runs(spread: float) -> list[Run]:
        values = base.value * (1 + spread * np.array([0.0, 1.0, -1.0, 0.5, -0.5]))
        return [
            Run(
                *(i + 1, f"t{i}", None, None, "x", "x", "minicluster", None, None, "ok"),
                *("training", "k", {}, {}, None, None, {}, {"step_time_mean_ms": float(v)}),
            )
            for i, v in enumerate(values)
        ]

    tight = check(rec, runs(0.005), ("step_time_mean_ms",)).metrics[0]
    assert tight.verdict == "no_change", tight.reason
    wide = check(rec, runs(0.2), ("step_time_mean_ms",)).metrics[0]
    assert wide.verdict == "not_judged" and "inconclusive" in wide.reason
    assert wide.mde_pct is not None and wide.mde_pct >= 15


def test_a_run_whose_own_checks_failed_is_never_a_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The new-user trial: straggler runs (finished ok, their own checks exit 1) entered the
    history as baselines, silently by `history add` and by `history check --add` of a run the
    check had just FAILED; a healthy run then read `REGRESSION`. They are recorded, marked
    `checks_failed` and said so, and never a baseline: the healthy run is NOT JUDGED (too short
    a history), as with failed or interrupted runs."""
    db = str(tmp_path / "h.sqlite")
    src = json.loads((NOISY / "strag.result.json").read_text())
    strags = []
    for i in range(3):
        d = dict(src, run_id=f"strag{i}")
        p = tmp_path / f"strag{i}.json"
        p.write_text(json.dumps(d))
        strags.append(p)
    assert main(["history", "add", str(strags[0]), str(strags[1]), "--db", db]) == 0
    err = capsys.readouterr().err
    assert err.count("its own checks failed (straggler") == 2
    assert "recorded, never used as a baseline" in err
    assert main(["history", "check", str(strags[2]), "--db", db, "--add"]) == 1
    out = capsys.readouterr().out
    assert "FAILED its own checks" in out and "recorded as #3 (its own checks failed" in out
    con = sqlite3.connect(db)
    assert [r[0] for r in con.execute("SELECT status FROM runs ORDER BY id")] == [
        "checks_failed"
    ] * 3
    with History(Path(db)) as h:
        fp = load(NOISY / "h1.result.json").fingerprint or {}
        assert h.comparable(fp, (), 30) == []
    assert main(["history", "check", str(NOISY / "h1.result.json"), "--db", db]) == 2
    out = capsys.readouterr().out
    assert "NOT JUDGED: 0 comparable" in out and "REGRESSION" not in out


def test_the_change_is_said_against_the_figure_shown_beside_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The new-user trial's history (step time 17.06, 41.57, 47.22 ms; the run checked 36.25):
    the change was +12.5% "worse ... vs the median of runs #1-#3" while the table showed that
    median, 41.57 (the run is 12.8% faster than it). The change is against the log-scale
    model's level, the geometric mean (32.23): that level is shown, labelled so, and the change
    agrees with it in size and direction."""
    from minicluster.report.history import print_check

    rec = load(CLEAN)
    mv = rec.measured("step_time_mean_ms")
    assert mv is not None and mv.value is not None
    v = mv.value
    values = [v * x / 36.2548 for x in (17.0597, 41.5656, 47.2199)]
    runs = [
        Run(
            *(i + 1, f"t{i}", None, None, "x", "x", "minicluster", None, None, "ok"),
            *("training", "k", {}, {}, None, None, {}, {"step_time_mean_ms": float(x)}),
        )
        for i, x in enumerate(values)
    ]
    result = check(rec, runs, ("step_time_mean_ms",))
    m = result.metrics[0]
    assert m.baseline_level is not None and m.level is not None and m.change_pct is not None
    geo = float(np.exp(np.mean(np.log(values))))
    assert m.baseline_level == pytest.approx(geo) and m.level == pytest.approx(v)
    assert m.change_pct == pytest.approx(100 * (v / geo - 1))
    assert (m.change_pct > 0) == (m.level > m.baseline_level)
    assert "median of runs" not in m.reason
    assert f"baseline level {geo:.4g} (geometric mean of runs #1-#3" in m.reason
    print_check(result)
    out = capsys.readouterr().out
    assert "baseline level" in out and "baseline median" not in out
    row = next(line for line in out.splitlines() if line.strip().startswith("step_time_mean_ms"))
    from minicluster.core.units import format_value

    assert format_value(geo) in row and format_value(float(np.median(values))) not in row


def test_a_missing_database_is_refused_never_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new-user trial: `history check --db typo.sqlite` made an empty database and said NOT
    JUDGED (exit 2, which a CI gate accepting 2 passes, for ever); `history add --db
    /nonexistent/x.sqlite` made the folder. Now: one line, exit 2, nothing made."""
    cand = str(_copy(tmp_path, "c", 1.0))
    typo = tmp_path / "typo.sqlite"
    assert main(["history", "check", cand, "--db", str(typo)]) == 2
    err = capsys.readouterr().err
    assert "no history database there" in err and len(err.strip().splitlines()) == 1
    assert not typo.exists() and list(tmp_path.iterdir()) == [tmp_path / "c.json"]
    assert main(["history", "check", cand, "--db", str(typo), "--add"]) == 2
    assert not typo.exists()
    monkeypatch.setenv("MINICLUSTER_HISTORY_DB", str(typo))
    assert main(["history", "check", cand]) == 2
    assert "$MINICLUSTER_HISTORY_DB" in capsys.readouterr().err and not typo.exists()
    monkeypatch.delenv("MINICLUSTER_HISTORY_DB")
    missing = tmp_path / "no" / "such" / "x.sqlite"
    assert main(["history", "add", cand, "--db", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "folder" in err and "does not exist; make it first" in err
    assert not (tmp_path / "no").exists()
    # the default database (XDG) is made with its folder, as before
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert main(["history", "add", cand]) == 0
    assert (tmp_path / "xdg" / "minicluster" / "history.sqlite").exists()


PAIRWISE_NOT_JUDGED = FIX / "pairwise" / "two_ranks_not_judged.result.json"


def _pairwise_judged(tmp: Path, name: str, scale: float) -> Path:
    """The recorded 2-rank link test as a judged run (--min-busbw given: its speed judged, no
    finding), its busbw scaled: a distinct comparable result."""
    d = json.loads(PAIRWISE_NOT_JUDGED.read_text())
    d["run_id"] = name
    d["pairwise"]["not_judged"] = None
    d["pairwise"]["min_busbw_gbps"] = 0.1
    d["metrics"]["busbw_gbps"]["value"] *= scale
    p = tmp / f"{name}.json"
    p.write_text(json.dumps(d))
    return p


def test_a_candidate_whose_own_run_was_not_judged_is_not_judged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The recorded `collectives --pattern pairwise` run of 2 ranks (its own verdict NOT JUDGED:
    one pair, nothing to judge its speed against) against 4 judged runs of its fingerprint: its
    numbers match the history, and the check passed it (exit 0, "no regression"). A gate never
    passes on a run that could not be judged: NOT JUDGED with its own reason, exit 2, and never
    "failed its own checks"."""
    db = str(tmp_path / "h.sqlite")
    runs = [_pairwise_judged(tmp_path, f"p{i}", s) for i, s in enumerate([1, 1.01, 0.99, 1.005])]
    assert main(["history", "add", *map(str, runs), "--db", db]) == 0
    capsys.readouterr()
    out, xml = tmp_path / "c.json", tmp_path / "c.xml"
    argv = ["history", "check", str(PAIRWISE_NOT_JUDGED), "--db", db, "--json", str(out)]
    assert main([*argv, "--junit", str(xml)]) == 2
    said = capsys.readouterr().out
    head = " ".join(said.split("candidate's own verdict")[0].split())
    assert (
        "NOT JUDGED: the candidate's own run was not judged (pairwise speed: 1 of 1 pairs" in head
    )
    assert "no regression" not in said and "FAILED" not in said and "own checks failed" not in said
    data = json.loads(out.read_text())
    assert data["verdict"] == "not_judged" and not data["gate_failed"]
    assert data["own_not_judged"][0].startswith("pairwise speed: 1 of 1 pairs measured")
    assert all(m["verdict"] == "no_change" for m in data["metrics"])  # the numbers are fine
    assert 'name="own checks"' in xml.read_text() and "<failure" not in xml.read_text()
    # the same run judged passes against the same history
    assert main(["history", "check", str(_pairwise_judged(tmp_path, "ok", 1.0)), "--db", db]) == 0


def test_an_old_database_never_serves_a_run_whose_own_checks_failed_as_a_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database written before `checks_failed` existed holds straggler runs as `ok`: they
    served as baselines there (a healthy run read against stragglers) while a new database
    refused them. Opened once by this minicluster, each such run is read again from its source
    and marked, so the baseline query gives the old database the new one's answer; a run whose
    source is gone is named as unknown."""
    db = tmp_path / "old.sqlite"
    src = json.loads((NOISY / "strag.result.json").read_text())
    strags = []
    for i in range(4):
        p = tmp_path / f"strag{i}.json"
        p.write_text(json.dumps(dict(src, run_id=f"strag{i}")))
        strags.append(p)
    assert main(["history", "add", *map(str, strags), "--db", str(db)]) == 0
    # what an older minicluster wrote: the same rows, status ok, no mark in meta
    con = sqlite3.connect(db)
    con.execute("UPDATE runs SET status = 'ok'")
    con.execute("DELETE FROM meta WHERE key LIKE 'checks_failed%'")
    con.commit()
    con.close()
    strags[3].unlink()  # its source gone: cannot be told
    fp = load(NOISY / "h1.result.json").fingerprint or {}
    with History(db) as h:
        assert [r.id for r in h.comparable(fp, (), 30)] == [4]
        assert h.unverified() == {4}
    con = sqlite3.connect(db)
    assert [r[0] for r in con.execute("SELECT status FROM runs ORDER BY id")] == [
        "checks_failed",
        "checks_failed",
        "checks_failed",
        "ok",
    ]
    con.close()
    capsys.readouterr()
    assert main(["history", "check", str(NOISY / "h1.result.json"), "--db", str(db)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "NOT JUDGED: 1 comparable earlier run(s)" in out and "REGRESSION" not in out
    assert "baseline run(s) #4 were recorded by an older minicluster" in out


def test_a_recorded_candidate_is_never_its_own_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """New-user trial: `history check a1 --db db1.sqlite` with a1 already recorded as #1 gave
    baseline_runs [1, 3, 4, 5]: the candidate was compared with itself. Its own row (same
    bytes, or the same run from a copied file) is never among its baselines, and the count
    follows."""
    db = str(tmp_path / "h.sqlite")
    runs = [_copy(tmp_path, f"b{i}", s) for i, s in enumerate([1.0, 1.03, 0.98, 1.01])]
    assert main(["history", "add", *map(str, runs), "--db", db]) == 0
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "b0.json").write_bytes(runs[0].read_bytes() + b"\n")  # the same run, other bytes
    for cand in (runs[0], copy / "b0.json"):
        out = tmp_path / "c.json"
        capsys.readouterr()
        main(["history", "check", str(cand), "--db", db, "--json", str(out), "--add"])
        data = json.loads(out.read_text())
        assert data["history_runs"] == 3, data["history_runs"]
        for m in data["metrics"]:
            assert 1 not in m["baseline_runs"] and 1 not in [t["run"] for t in m["trend"]]
        assert "already recorded as #1: not counted among its baselines" in " ".join(data["notes"])
        assert not any(n.startswith("recorded as") for n in data["notes"])
    with History(Path(db)) as h:
        assert len(h.runs()) == 4  # --add of a recorded run adds nothing


TINY = FIX / "history" / "tiny_3_steps.result.json"


def _judged_tiny(tmp: Path, name: str, scale: float) -> Path:
    """The recorded 3-step run as if its straggler test had judged it (no `not_judged`), its
    timings scaled: a distinct comparable run that is a baseline."""
    d = json.loads(TINY.read_text())
    d["run_id"], d["not_judged"] = name, None
    for k, mv in d["metrics"].items():
        if isinstance(mv.get("value"), (int, float)) and k.endswith("_ms"):
            mv["value"] *= scale
    p = tmp / f"{name}.json"
    p.write_text(json.dumps(d))
    return p


def test_a_run_whose_own_verdict_was_not_judged_is_never_a_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """New-user trial: a 3-step run (its own verdict NOT JUDGED, exit 2) was recorded `ok` and
    then served as a baseline. It is recorded `not_judged`, said when added, shown by `history
    list`, and never among a check's baselines; a database written before `not_judged` existed
    (even one already back-filled for `checks_failed`) is back-filled the same way, once."""
    db = tmp_path / "h.sqlite"
    judged = [_judged_tiny(tmp_path, f"j{i}", s) for i, s in enumerate([1.0, 1.02, 0.99])]
    assert main(["history", "add", str(TINY), *map(str, judged), "--db", str(db)]) == 0
    err = capsys.readouterr().err
    assert "its own verdict was NOT JUDGED (3 measured step(s)" in err
    assert "recorded, never used as a baseline" in err
    assert main(["history", "list", "--db", str(db), "--json"]) == 0
    listed = {r["id"]: r["status"] for r in json.loads(capsys.readouterr().out)}
    assert listed == {1: "not_judged", 2: "ok", 3: "ok", 4: "ok"}
    cand = _judged_tiny(tmp_path, "cand", 1.01)
    out = tmp_path / "c.json"
    main(["history", "check", str(cand), "--db", str(db), "--json", str(out)])
    data = json.loads(out.read_text())
    assert data["history_runs"] == 3
    assert all(1 not in m["baseline_runs"] for m in data["metrics"]), data["metrics"]
    # what a minicluster before `not_judged` wrote: the row `ok`, checks_failed back-filled
    # already (main's databases), the not_judged mark absent
    con = sqlite3.connect(db)
    con.execute("UPDATE runs SET status = 'ok'")
    con.execute("DELETE FROM meta WHERE key = 'not_judged_marked'")
    con.commit()
    con.close()
    fp = load(cand).fingerprint or {}
    with History(db) as h:
        assert [r.id for r in h.comparable(fp, (), 30)] == [2, 3, 4]
        assert h.unverified() == set()
    con = sqlite3.connect(db)
    assert [r[0] for r in con.execute("SELECT status FROM runs ORDER BY id")] == [
        "not_judged",
        "ok",
        "ok",
        "ok",
    ]
    con.close()


@pytest.mark.parametrize("action", [["list"], ["list", "--json"], ["show", "1"], ["check", "C"]])
def test_reading_never_makes_nor_writes_a_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], action: list[str]
) -> None:
    """New-user trial: `history list --db /tmp/x/nf/x.sqlite` (folder missing) exited 0 with an
    empty table where `history show 3 --db nodb.sqlite` exited 2, and `history list` on a 0-byte
    file wrote a schema into it (0 -> 36,864 bytes). list, show and check refuse a missing
    database, an empty file, a file that is not SQLite and another program's SQLite database
    alike: one line, exit 2, nothing made or written."""
    cand = str(_copy(tmp_path, "c", 1.0))
    argv = ["history", *(cand if a == "C" else a for a in action)]
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database\n")
    foreign = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE t(x)")
    con.commit()
    con.close()
    cases = {
        tmp_path / "nf" / "x.sqlite": "no history database there",
        tmp_path / "nodb.sqlite": "no history database there",
        empty: "is an empty file, not a history database",
        junk: "is not a history database (not a SQLite file)",
        foreign: "is not a minicluster history database (it holds other tables: t)",
    }
    before = {p: p.read_bytes() for p in (empty, junk, foreign)}
    listing = sorted(tmp_path.iterdir())
    for db, message in cases.items():
        capsys.readouterr()
        assert main([*argv, "--db", str(db)]) == 2, db
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--db {db}" in err[0] and message in err[0], err
    assert {p: p.read_bytes() for p in (empty, junk, foreign)} == before
    assert sorted(tmp_path.iterdir()) == listing  # no database, folder, -wal or -shm made
