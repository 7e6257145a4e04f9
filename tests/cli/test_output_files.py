"""A report file that cannot be written is refused before any work starts (exit 2, one line)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from minicluster.cli import main

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "compare"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--nproc", "2", "--md", "/proc/no/such/r.md"], "folder /proc/no/such does not"),
        (["run", "--nproc", "2", "--md", "/proc/r.md"], "cannot write in /proc"),
        (["validate", "--html", "{tmp}"], "is a directory"),
        (["collectives", "--md", "{tmp}/file/c.md"], "cannot write in"),
        (["sweep", "--world-sizes", "1,2", "--html", "{tmp}/file/s.html"], "cannot write in"),
    ],
)
def test_a_bad_report_path_is_refused_before_the_job_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    out = tmp_path / "out"
    started = time.monotonic()
    code = main([a.format(tmp=tmp_path) for a in argv] + ["--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing launched, no output directory claimed
    assert time.monotonic() - started < 5.0


def test_a_report_never_overwrites_a_record_or_an_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A result.json, a rank file or an input named as a report file is refused, and the file
    is left as it was."""
    run = tmp_path / "run"
    (run / "ranks").mkdir(parents=True)
    result = run / "result.json"
    result.write_text((FIX / "mc11_clean_a.json").read_text())
    rank_file = run / "ranks" / "rank_00000.jsonl"
    rank_file.write_text('{"type": "header"}\n')
    other = FIX / "mc11_clean_b.json"
    cases = [
        (["report", str(run), "--md", str(result)], "one of this command's inputs"),
        (["report", str(other), "--html", str(rank_file)], "would overwrite a file"),
        (["compare", str(run), str(other), "--json", str(result)], "one of this command's inputs"),
        (["run", "--md", str(tmp_path / "new" / "result.json")], "would overwrite a file"),
        (["convert", str(result), "--to", "trackiq", "-o", str(result)], "inputs"),
        (["report", str(other), "--html", "/proc/version"], "cannot write in /proc"),
    ]
    before = {p: p.read_bytes() for p in (result, rank_file)}
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert {p: p.read_bytes() for p in (result, rank_file)} == before
    assert not (tmp_path / "new").exists()


def test_no_output_flag_overwrites_a_sweep_table_a_dump_a_rejudged_result_or_a_run_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """New-user trial: `compare --json SWEEP/layouts.json`, `--md RUN/flight_recorder/rank_00000`
    and `--md RUN/result.rejudged-*.json` replaced those records, and `reference record --out
    RUN/result.json --force` replaced a run's result; each is refused now, the file kept."""
    run = tmp_path / "run"
    (run / "flight_recorder").mkdir(parents=True)
    records = {
        run / "layouts.json": '{"kind": "layout_sweep"}\n',
        run / "flight_recorder" / "rank_00000": "a dump\n",
        run / "result.rejudged-20260101-000000.json": "{}\n",
        run / "result.json": (FIX / "mc11_clean_a.json").read_text(),
    }
    for path, text in records.items():
        path.write_text(text)
    a, b = FIX / "mc11_clean_a.json", FIX / "mc11_clean_b.json"
    cases = [
        ["compare", str(a), str(b), "--json", str(run / "layouts.json")],
        ["compare", str(a), str(b), "--md", str(run / "flight_recorder" / "rank_00000")],
        ["compare", str(a), str(b), "--md", str(run / "result.rejudged-20260101-000000.json")],
        ["reference", "record", str(a), "--out", str(run / "result.json"), "--force"],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "would overwrite a file minicluster records" in err, (argv, err)
        assert len(err.strip().splitlines()) == 1
    assert {p: p.read_text() for p in records} == records


GOLDEN_RESULT = Path(__file__).resolve().parents[1] / "golden" / "run_2ranks.result.json"


def test_report_md_dash_is_standard_output_and_never_a_file_named_dash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`report RESULT --md -`: the Markdown on stdout, the terminal summary on stderr (it wrote a
    file called '-' in the working directory before)."""
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(GOLDEN_RESULT), "--md", "-"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("# minicluster run ") and "Ranks (ms)" not in out
    assert "Ranks" in err
    assert list(tmp_path.iterdir()) == []
    assert main(["report", str(GOLDEN_RESULT), "--md", "-", "--html", "-"]) == 2
    assert "only one of" in capsys.readouterr().err


def test_a_node_check_report_on_stdout_is_never_a_file_named_dash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    node_check = FIX.parent / "nodecheck" / "trial_nc1.result.json"
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(node_check), "--md", "-"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("# minicluster node check") and "node check" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["run", "validate", "collectives", "sweep"])
def test_a_report_on_stdout_is_refused_where_the_summary_prints(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([command, "--md", "-", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--md - (standard output)" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "{run}", "--md", "{tmp}/nonexistent/dir/x.md"],
        ["report", "{run}", "--html", "{tmp}/nonexistent/x.html"],
        ["run", "--out", "{tmp}/new", "--md", "{tmp}/nonexistent/x.md"],
        ["compare", "{run}", "{other}", "--junit", "{tmp}/nonexistent/j.xml"],
        ["convert", "{run}/result.json", "--to", "csv", "-o", "{tmp}/nonexistent/x.csv"],
    ],
    ids=lambda a: a[0],
)
def test_an_output_file_in_a_missing_folder_is_refused_not_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """New-user trial: `report runs/h1 --md /nonexistent/dir/x.md` made /nonexistent/dir (rc 0):
    a typo'd folder is one line and exit 2, and nothing is made."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "result.json").write_text((FIX / "mc11_clean_a.json").read_text())
    args = [a.format(run=run, tmp=tmp_path, other=FIX / "mc11_clean_b.json") for a in argv]
    assert main(args) == 2, args
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist; make it first" in err[0], err
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.parametrize(
    ("typed", "named"), [("-o", "-o "), ("--out", "--out "), ("-o{path}", "-o ")]
)
def test_convert_names_its_output_flag_as_typed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], typed: str, named: str
) -> None:
    """New-user trial: `convert ... -o runs/h1/result.json` was refused as "--out"."""
    result = tmp_path / "result.json"
    result.write_text((FIX / "mc11_clean_a.json").read_text())
    flag = [typed.format(path=result)] if "{path}" in typed else [typed, str(result)]
    assert main(["convert", str(result), "--to", "csv", *flag]) == 2
    err = capsys.readouterr().err
    assert f"error: {named}{result} is one of this command's inputs" in err, err


def _history_db(tmp: Path) -> Path:
    """A real history database (`history add`), holding one run."""
    db = tmp / "h.sqlite"
    assert main(["history", "add", str(FIX / "mc11_clean_a.json"), "--db", str(db)]) == 0
    return db


@pytest.mark.parametrize(
    "argv",
    [
        ["history", "check", "{a}", "--db", "{db}", "--html", "{db}"],
        ["history", "check", "{a}", "--db", "{db}", "--json", "{db}"],
        ["history", "check", "{a}", "--db", "{db}", "--junit", "{db}"],
        ["history", "check", "{a}", "--db", "{db}", "--json", "{other}"],
        ["history", "check", "{a}", "--db", "{db}", "--html", "{duck}"],
        ["compare", "{a}", "{b}", "--json", "{other}"],
        ["compare", "{a}", "{b}", "--md", "{other}"],
        ["compare", "{a}", "{b}", "--html", "{duck}"],
        ["compare", "{a}", "{b}", "--junit", "{other}"],
        ["compare", "{a}", "{b}", "--md", "{db}-wal"],
        ["report", "{a}", "--md", "{other}"],
        ["report", "{a}", "--html", "{other}"],
        ["fleet", "{nc}", "--md", "{other}"],
        ["fleet", "{nc}", "--json", "{duck}"],
        ["diagnose", "{a}", "--json", "{other}"],
        ["convert", "{a}", "--to", "csv", "-o", "{other}"],
        ["reference", "record", "{a}", "--out", "{other}", "--force"],
    ],
    ids=lambda a: "-".join(x for x in a if not x.startswith("{")),
)
def test_no_output_flag_overwrites_a_history_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """New-user trial: `history check a4 --db db3.sqlite --html db3.sqlite` (exit 2) left
    db3.sqlite an HTML page, and `compare a1 a2 --json db5.sqlite` (exit 0) replaced a database
    with JSON. An output file that is the command's --db or any history database (SQLite or
    DuckDB by its header, or the -wal file beside one) is one line and exit 2, the file kept."""
    db = _history_db(tmp_path)
    other = tmp_path / "other.sqlite"
    other.write_bytes(db.read_bytes())
    duck = tmp_path / "ducks.db"
    duck.write_bytes(b"\x00" * 8 + b"DUCK" + b"\x00" * 4084)
    capsys.readouterr()
    before = {p: p.read_bytes() for p in (db, other, duck)}
    names = {
        "a": FIX / "mc11_clean_a.json",
        "b": FIX / "mc11_clean_b.json",
        "nc": FIX.parent / "nodecheck" / "trial_nc1.result.json",
        "db": db,
        "other": other,
        "duck": duck,
    }
    args = [a.format(**names) for a in argv]
    assert main(args) == 2, args
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("--db" in err[0] or "database" in err[0]), err
    assert {p: p.read_bytes() for p in (db, other, duck)} == before
    assert not (tmp_path / "h.sqlite-wal").exists() or "-wal" not in argv[-1]


def test_an_output_file_that_is_another_of_the_commands_paths_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--json` naming the history check's default database, or `compare A1,A2 B --md A2`
    (one run of a side), is refused and named."""
    monkeypatch.setenv("MINICLUSTER_HISTORY_DB", str(tmp_path / "env.sqlite"))
    a = tmp_path / "a.json"
    a.write_text((FIX / "mc11_clean_a.json").read_text())
    argv = ["history", "check", str(a), "--json", str(tmp_path / "env.sqlite")]
    assert main(argv) == 2
    assert "this command's history database" in capsys.readouterr().err
    b = FIX / "mc11_clean_b.json"
    assert main(["compare", f"{b},{a}", str(b), "--md", str(a)]) == 2
    assert "one of this command's inputs" in capsys.readouterr().err
