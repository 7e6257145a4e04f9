"""`minicluster history add|list|show|check`: results in a SQLite database; `check` gates a result
against the last N comparable runs (exit 1 on a regression, saying since when and by how much;
exit 2 when it could not judge: too short a history, or a change the runs cannot resolve)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from minicluster.cli import orchestrate
from minicluster.core.errors import EXIT_OK, InputError
from minicluster.core.exit_policy import code_for

# the statuses a run is recorded with (`compare.history.run_status`); only `ok` is a baseline
STATUSES = ("ok", "failed", "incomplete", "checks_failed", "not_judged")


def _db(args: argparse.Namespace) -> Path:
    from minicluster.compare.history import default_path

    return args.db if args.db is not None else default_path()


def _named(args: argparse.Namespace) -> str | None:
    """How the user named the database (`--db`, `$MINICLUSTER_HISTORY_DB`), or None for the
    default path under XDG_DATA_HOME."""
    from minicluster.compare.history import DB_ENV

    if args.db is not None:
        return "--db"
    return f"${DB_ENV}" if os.environ.get(DB_ENV) else None


def _db_to_write(args: argparse.Namespace) -> Path:
    """The database `add` writes: a named one in a folder that does not exist is refused, as other
    output files are (a typo'd folder is not made); the default's folder is made."""
    path = _db(args)
    named = _named(args)
    if named is not None and not path.parent.exists():
        raise InputError(
            f"{named} {path}: folder {path.parent} does not exist; make it first "
            f"(mkdir -p {path.parent}) or name a database in an existing folder"
        )
    return path


def _db_to_read(args: argparse.Namespace) -> Path:
    """The database `list`, `show` and `check` read: one that does not exist, an empty file or
    any file that is not a minicluster history database is refused (one line, exit 2), and
    nothing is made or written: a typo'd --db would make an empty history, NOT JUDGED for ever
    while the real one fills."""
    from minicluster.compare.history import refuse_unless_history

    path = _db(args)
    refuse_unless_history(path, _named(args) or "the default database")
    return path


def _records(spec: Path, fmt: str | None) -> list[tuple[Any, str, bytes]]:
    """(record, source, bytes) of every run `spec` names: a result, a run or repeats directory,
    an SGLang file of several runs."""
    from minicluster.compare.repeats import side_paths
    from minicluster.core import rundir
    from minicluster.interop.detect import load_runs, split_selector

    several = side_paths(str(spec))
    paths = several[1] if several is not None else [spec]
    out = []
    for p in paths:
        file, _ = split_selector(p)
        file = rundir.result_path(file) if file.is_dir() else file
        for i, rec in enumerate(load_runs(p, fmt)):
            content = file.read_bytes() + f"#{i}".encode()
            out.append((rec, str(file), content))
    return out


def not_a_baseline(rec: Any) -> str | None:
    """Why `rec`, once recorded, is never used as a baseline (a run that did not finish ok,
    whose own checks failed or whose own verdict was NOT JUDGED: `History.comparable` takes
    status ok only), or None."""
    from minicluster.compare.engine import own_checks_failed

    status = rec.details.get("run_status")
    if status not in (None, "ok"):
        return f"run status {status!r}"
    names = own_checks_failed(rec)
    if names:
        return f"its own checks failed ({', '.join(names)})"
    if "not_judged" in (rec.details.get("own_verdicts") or []):
        why = "; ".join(rec.details.get("own_not_judged") or [])
        return "its own verdict was NOT JUDGED" + (f" ({why})" if why else "")
    return None


def no_action(args: argparse.Namespace) -> int:
    raise InputError(
        "history needs an action: add, list, show or check (see minicluster history --help)"
    )


def add(args: argparse.Namespace) -> int:
    """`history add RESULT...`: record each result (its fingerprint, platform, commit, labels)."""
    from minicluster.compare.history import History, Provenance

    prov = Provenance.from_env(args.commit, args.branch, args.label)
    with History(_db_to_write(args)) as db:
        for spec in args.inputs:
            for rec, source, content in _records(spec, args.format):
                run, new = db.add(rec, source, content, prov)
                if new:
                    why = not_a_baseline(rec)
                    if why:
                        print(
                            f"minicluster: {rec.label}: {why}: recorded, never used as a baseline",
                            file=sys.stderr,
                        )
                    print(f"history: added #{run} {rec.label} ({db.path})")
                    continue
                # a second add of one run (the same file, a copy): skipped, exit 0 (nothing wrong)
                run_id = rec.details.get("run_id")
                same = f"run {run_id}" if run_id else "the same result"
                print(
                    f"history: already recorded #{run} {rec.label} ({same}): skipped, nothing "
                    f"added ({db.path})"
                )
    return EXIT_OK


def list_runs(args: argparse.Namespace) -> int:
    """`history list`: the newest runs, one line each (or JSON)."""
    from minicluster.compare.history import History

    with History(_db_to_read(args)) as db:  # reading makes no database, as show and check
        runs = db.runs(args.limit)
    if args.json:
        print(json.dumps([r.to_dict() for r in runs], indent=2))
        return EXIT_OK
    from rich.table import Table

    from minicluster.report.fit import Fitted
    from minicluster.report.terminal import make_console

    # `#` (the ID `history show` takes) and the status are never cut or left out: at a narrow
    # width (or piped, at 120 columns) the least needed columns are left out whole, and named.
    columns = ("#", "status", "added", "label", "workload", "fingerprint", "commit")
    cells = [
        [
            str(r.id),
            r.status or "",
            r.added_at[:19].replace("T", " "),
            r.label,
            str(
                (r.fingerprint.get("fields") or {}).get("workload")
                or (r.fingerprint.get("fields") or {}).get("model")
                or (r.fingerprint.get("fields") or {}).get("ops")
                or "?"
            ),
            r.fingerprint_key,
            (r.git_commit or "")[:12],
        ]
        for r in runs
    ]
    title = f"history {_db(args)} (newest first)"

    def build(cols: list[str]) -> Table:
        table = Table(title=title, title_justify="left")
        for col in cols:
            table.add_column(col, no_wrap=True, min_width=len(col))
        keep = [columns.index(c) for c in cols]
        for row in cells:
            table.add_row(*(row[i] for i in keep))
        return table

    droppable = ("commit", "workload", "fingerprint", "added")
    fitted = Fitted(build, columns, droppable, lambda: (cells, []), title, "--json has")
    with orchestrate.stdout_may_close():
        console = make_console()
        console.print(fitted)
        if any(r.status != "ok" for r in runs):
            console.print(
                "runs whose status is not ok are recorded, never a baseline of `history check`"
            )
    return EXIT_OK


def show(args: argparse.Namespace) -> int:
    """`history show ID`: one run's record (JSON)."""
    from minicluster.compare.history import History

    with History(_db_to_read(args)) as db:
        run = db.get(args.id)
    with orchestrate.stdout_may_close():
        print(json.dumps(run.to_dict(), indent=2))
    return EXIT_OK


def check(args: argparse.Namespace) -> int:
    """`history check RESULT`: exit 1 on a regression against the last N comparable runs."""
    from minicluster.compare.comparability import parse_allowed
    from minicluster.compare.history import History, Provenance
    from minicluster.compare.history_check import check as check_result
    from minicluster.compare.history_check import check_options
    from minicluster.core import metrics as registry

    for name in args.metric or ():  # a typo would gate nothing, and the gate always pass
        if registry.get(name) is None:
            names = ", ".join(sorted(registry.REGISTRY))
            raise InputError(f"--metric {name!r} is not a metric; allowed: {names}")
    allowed = parse_allowed(args.allow_different)
    items = _records(args.result, args.format)
    if len(items) != 1:
        raise InputError(f"{args.result} holds {len(items)} runs: check one (FILE#N, DIR/rI)")
    rec, source, content = items[0]
    if args.last < 1:
        raise InputError(f"--last must be >= 1, got {args.last}")
    check_options(args.threshold, args.alpha, args.settle)
    to_stdout = orchestrate.stdout_outputs([o for o in (args.json, args.html) if o is not None])
    with History(_db_to_read(args)) as db:
        own = db.recorded_as(rec, content)  # already recorded: never its own baseline
        history = db.comparable(rec.fingerprint or {}, allowed, args.last, exclude=own)
        result = check_result(
            rec, history, tuple(args.metric or ()) or None, args.threshold, args.alpha, args.settle
        )
        result.set_aside = db.set_aside(rec.fingerprint or {}, allowed, exclude=own)
        if own is not None:
            result.notes.append(
                f"the candidate is already recorded as #{own}: not counted among its baselines"
            )
        unknown = [r.id for r in history if r.id in db.unverified()]
        if unknown:
            result.notes.append(
                f"baseline run(s) {', '.join(f'#{i}' for i in unknown)} were recorded by an older "
                "minicluster, which did not mark runs whose own checks failed or were not "
                "judged, and their source files cannot be read again to tell: their own checks "
                "are unknown"
            )
        if args.add:
            run, new = db.add(
                rec, source, content, Provenance.from_env(args.commit, args.branch, args.label)
            )
            why = not_a_baseline(rec)
            if new:
                result.notes.append(
                    f"recorded as #{run}" + (f" ({why}: never used as a baseline)" if why else "")
                )
    if args.json:
        orchestrate.write_output(args.json, json.dumps(result.to_dict(), indent=2) + "\n")
    if args.html:
        from minicluster.report.history import history_html

        orchestrate.write_output(args.html, history_html(result))
    if args.junit:
        from minicluster.report.junit import history_cases, to_xml

        orchestrate.write_output(
            args.junit, to_xml("minicluster history check", history_cases(result))
        )
    from minicluster.report.history import print_check

    with orchestrate.stdout_may_close():
        print_check(result, orchestrate.side_console(stderr=to_stdout))
    # a failed or interrupted candidate fails the gate as in `compare`, and so does one whose own
    # checks failed (exit_policy: regression); a check that could not judge every gated metric
    # is not_judged, never a pass
    return code_for([] if result.verdict == "ok" else [result.verdict])
