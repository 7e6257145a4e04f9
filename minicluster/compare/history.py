"""The history of results in a SQLite database (stdlib `sqlite3`): add a result with its
fingerprint, platform, git commit and labels; list, show; the last N comparable runs' values of a
metric for `history check` (compare/history_check.py).

SQLite, not DuckDB, by measurement (scripts/bench_history_db.py, BENCHMARKS.md): adding one run
took 7.4 ms vs 51 ms, the last 30 comparable values 0.10 ms vs 12 ms, and DuckDB refuses a second
writing process (a file lock) where SQLite in WAL mode with a busy timeout serialises them. Every
write is one `BEGIN IMMEDIATE` transaction, so two writers at once never interleave; a result
already recorded (same bytes) is not added twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minicluster.core import clock
from minicluster.core.errors import InputError
from minicluster.interop.record import BenchmarkRecord
from minicluster.result.fingerprint import key

SCHEMA_VERSION = 1
DB_ENV = "MINICLUSTER_HISTORY_DB"
# where CI systems put the commit and branch being built
COMMIT_ENV = ("GITHUB_SHA", "CI_COMMIT_SHA", "BUILDKITE_COMMIT", "GIT_COMMIT", "CIRCLE_SHA1")
BRANCH_ENV = (
    "GITHUB_REF_NAME",
    "CI_COMMIT_REF_NAME",
    "BUILDKITE_BRANCH",
    "GIT_BRANCH",
    "CIRCLE_BRANCH",
)
BUSY_TIMEOUT_S = 60.0

DDL = (
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS runs(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        added_at TEXT NOT NULL,
        created_at TEXT,
        run_id TEXT,
        label TEXT NOT NULL,
        source TEXT NOT NULL,
        format TEXT NOT NULL,
        tool TEXT,
        tool_version TEXT,
        status TEXT,
        workload_type TEXT NOT NULL,
        fingerprint_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        platform TEXT NOT NULL,
        git_commit TEXT,
        git_branch TEXT,
        labels TEXT NOT NULL,
        content_sha256 TEXT NOT NULL UNIQUE)""",
    "CREATE INDEX IF NOT EXISTS runs_by_fingerprint ON runs(fingerprint_key, id)",
    """CREATE TABLE IF NOT EXISTS metrics(
        run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        metric TEXT NOT NULL,
        value REAL,
        unit TEXT NOT NULL,
        status TEXT NOT NULL,
        n_samples INTEGER,
        samples TEXT,
        PRIMARY KEY(run, metric))""",
)


def default_path() -> Path:
    """$MINICLUSTER_HISTORY_DB, else $XDG_DATA_HOME/minicluster/history.sqlite (XDG_DATA_HOME
    defaults to ~/.local/share)."""
    if os.environ.get(DB_ENV):
        return Path(os.environ[DB_ENV])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "minicluster" / "history.sqlite"


def refuse_unless_history(path: Path, how: str) -> None:
    """InputError (one line) unless `path` is a minicluster history database, checked without
    writing anything: the commands that only read a history (`list`, `show`, `check`) never
    make a database (a typo'd --db would be an empty history for ever) nor write a schema into
    a file that is not one (an empty file, another program's data). `how` names where the path
    came from (`--db`, `$MINICLUSTER_HISTORY_DB`, "the default database")."""
    where = f"{how} {path}"
    if not path.exists():
        raise InputError(
            f"{where}: no history database there (`history add` makes it); check the path"
        )
    if path.is_dir():
        raise InputError(f"{where} is a directory, not a history database; name its file")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise InputError(f"{where}: cannot read it: {e.strerror or e}") from None
    if not head:
        raise InputError(
            f"{where} is an empty file, not a history database (`history add` makes one); "
            "check the path"
        )
    if head != b"SQLite format 3\x00":
        raise InputError(f"{where} is not a history database (not a SQLite file); check the path")
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {
                r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            schema = (
                con.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if "meta" in tables
                else None
            )
        finally:
            con.close()
    except sqlite3.Error as e:
        raise InputError(f"{where} is not a minicluster history database: {e}") from None
    if schema is None or "runs" not in tables:
        held = f" (it holds other tables: {', '.join(sorted(tables)[:5])})" if tables else ""
        raise InputError(f"{where} is not a minicluster history database{held}; check the path")


@dataclass(frozen=True)
class Provenance:
    """Where a result came from: its git commit and branch and the user's labels."""

    git_commit: str | None
    git_branch: str | None
    labels: dict[str, str]

    @staticmethod
    def from_env(commit: str | None, branch: str | None, labels: list[str] | None) -> Provenance:
        """Flags first, then the CI environment (GITHUB_SHA, CI_COMMIT_SHA, ...); labels are
        KEY=VALUE (InputError otherwise)."""
        commit = commit or next((os.environ[k] for k in COMMIT_ENV if os.environ.get(k)), None)
        branch = branch or next((os.environ[k] for k in BRANCH_ENV if os.environ.get(k)), None)
        parsed: dict[str, str] = {}
        for text in labels or []:
            k, sep, v = text.partition("=")
            if not sep or not k.strip():
                raise InputError(f"--label {text!r}: expected KEY=VALUE")
            parsed[k.strip()] = v.strip()
        return Provenance(commit, branch, parsed)


@dataclass
class Run:
    """One recorded run (a row of `runs`, with its metric values when asked for)."""

    id: int
    added_at: str
    created_at: str | None
    run_id: str | None
    label: str
    source: str
    format: str
    tool: str | None
    tool_version: str | None
    status: str | None
    workload_type: str
    fingerprint_key: str
    fingerprint: dict[str, Any]
    platform: dict[str, Any]
    git_commit: str | None
    git_branch: str | None
    labels: dict[str, str]
    values: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class History:
    """An open history database (create it on first use). Use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise InputError(f"cannot open the history database {path}: {e}") from None
        try:
            self.con.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            self._refuse_foreign(path)  # before anything is written, WAL's header byte too
            self._to_wal()
            self.con.execute("PRAGMA foreign_keys=ON")
            with self.transaction():
                for stmt in DDL:
                    self.con.execute(stmt)
                row = self.con.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if row is None:
                    self.con.execute(
                        "INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                    )
                elif int(row[0]) > SCHEMA_VERSION:
                    raise InputError(
                        f"{path}: history schema {row[0]} is newer than this minicluster's "
                        f"({SCHEMA_VERSION}): upgrade minicluster"
                    )
                self._mark_checks_failed()
        except sqlite3.DatabaseError as e:
            self.con.close()
            raise InputError(f"{path} is not a minicluster history database: {e}") from None

    def _refuse_foreign(self, path: Path) -> None:
        """InputError for a database that holds tables but not minicluster's `meta` with its
        schema: another program's data, which minicluster must not write its tables into."""
        tables = {
            row[0] for row in self.con.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if tables and "meta" not in tables:
            raise InputError(
                f"{path} is not a minicluster history database (it holds other tables: "
                f"{', '.join(sorted(tables)[:5])}); name another --db"
            )

    def _to_wal(self) -> None:
        """Switch the database to WAL. The switch needs the exclusive lock, and SQLite answers
        'database is locked' at once, without its busy handler, when another process holds a
        lock while this one reads (deadlock avoidance; seen with two writers creating one
        database at the same moment): retry until the busy timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        delay = 0.005
        while True:
            try:
                self.con.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _mark_checks_failed(self) -> None:
        """Once per database and rule (inside the opening transaction): a database written
        before runs whose own checks failed were recorded `checks_failed`, or before runs whose
        own verdict was NOT JUDGED were recorded `not_judged`, holds them as `ok`, a baseline
        like any other. Each `ok` minicluster run of such a database is read again from its
        source (the same bytes, by their digest) and given the status `run_status` gives it now,
        so the baseline query gives an old database the answer a new one gives. A run whose
        source is gone or changed cannot be told: its id is kept under `unverified` (`history
        check` names those among its baselines)."""
        marked = {
            row[0]
            for row in self.con.execute(
                "SELECT key FROM meta WHERE key IN (?, ?)", (_MARKED, _MARKED_NOT_JUDGED)
            )
        }
        if marked == {_MARKED, _MARKED_NOT_JUDGED}:
            return
        unverified = set(self.unverified())
        rows = self.con.execute(
            "SELECT id, source, content_sha256 FROM runs WHERE status = 'ok' "
            "AND format = 'minicluster'"
        ).fetchall()
        for run, source, digest in rows:
            status = _status_from_source(Path(source), digest)
            if status is None:
                unverified.add(int(run))
            elif status != "ok":
                self.con.execute("UPDATE runs SET status = ? WHERE id = ?", (status, run))
        for mark in {_MARKED, _MARKED_NOT_JUDGED} - marked:
            self.con.execute("INSERT INTO meta VALUES (?, '1')", (mark,))
        self.con.execute(
            f"INSERT OR REPLACE INTO meta VALUES ('{_UNVERIFIED}', ?)",
            (json.dumps(sorted(unverified)),),
        )

    def unverified(self) -> set[int]:
        """Runs recorded `ok` by a minicluster that did not mark runs whose own checks failed
        (or whose own verdict was NOT JUDGED), and whose source could not be read again to tell
        (`_mark_checks_failed`)."""
        row = self.con.execute(f"SELECT value FROM meta WHERE key='{_UNVERIFIED}'").fetchone()
        return set(json.loads(row[0])) if row else set()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction, taken before anything is read (BEGIN IMMEDIATE): a second
        writer waits for it (busy timeout) instead of interleaving."""
        self.con.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def add(
        self, record: BenchmarkRecord, source: str, content: bytes, prov: Provenance
    ) -> tuple[int, bool]:
        """Record `record` (read from `source`, whose bytes are `content`): (its id, whether it
        was added now; False when the same result, or a result of the same run (its run_id),
        was already recorded: one run is one point of the history, never two)."""
        digest = hashlib.sha256(content).hexdigest()
        fp = record.fingerprint or {}
        with self.transaction():
            known = self.recorded_as(record, content)
            if known is not None:
                return known, False
            cur = self.con.execute(
                "INSERT INTO runs(added_at, created_at, run_id, label, source, format, tool, "
                "tool_version, status, workload_type, fingerprint_key, fingerprint, platform, "
                "git_commit, git_branch, labels, content_sha256) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    clock.utc_now_iso(),
                    record.details.get("timestamp"),
                    record.details.get("run_id"),
                    record.label,
                    source,
                    record.source_format,
                    record.tool,
                    record.tool_version,
                    run_status(record),
                    record.workload_type,
                    key(fp),
                    json.dumps(fp, sort_keys=True),
                    json.dumps(_platform(record), sort_keys=True),
                    prov.git_commit,
                    prov.git_branch,
                    json.dumps(prov.labels, sort_keys=True),
                    digest,
                ),
            )
            run = int(cur.lastrowid or 0)
            self.con.executemany(
                "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run,
                        name,
                        mv.value,
                        mv.unit,
                        mv.status,
                        len(record.samples.get(name, [])) or None,
                        json.dumps(record.samples[name]) if name in record.samples else None,
                    )
                    for name, mv in record.metrics.items()
                ],
            )
        return run, True

    def recorded_as(self, record: BenchmarkRecord, content: bytes) -> int | None:
        """The id `record` (whose bytes are `content`) is recorded under: the same bytes, or the
        same run (its run_id) from another file (a copied directory); None when it is not."""
        digest = hashlib.sha256(content).hexdigest()
        row = self.con.execute("SELECT id FROM runs WHERE content_sha256 = ?", (digest,)).fetchone()
        run_id = record.details.get("run_id")
        if row is None and run_id is not None:
            row = self.con.execute(
                "SELECT id FROM runs WHERE run_id = ? ORDER BY id LIMIT 1", (run_id,)
            ).fetchone()
        return None if row is None else int(row[0])

    def runs(
        self,
        limit: int | None = None,
        fingerprint_key: str | None = None,
        before: int | None = None,
    ) -> list[Run]:
        """Runs, newest first (optionally of one fingerprint, added before run id `before`)."""
        where: list[str] = []
        args: list[str | int] = []
        if fingerprint_key is not None:
            where.append("fingerprint_key = ?")
            args.append(fingerprint_key)
        if before is not None:
            where.append("id < ?")
            args.append(before)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit else "")
        cur = self.con.execute(sql, args)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        return [self._run(r) for r in rows]

    def get(self, run_id: int) -> Run:
        cur = self.con.execute("SELECT * FROM runs WHERE id = ?", (run_id,))
        row = cur.fetchone()
        if row is None:
            raise InputError(f"{self.path}: no run #{run_id}")
        names = [d[0] for d in cur.description]
        return self._run(dict(zip(names, row, strict=True)))

    def _run(self, r: dict[str, Any]) -> Run:
        values = {
            m: v
            for m, v, status in self.con.execute(
                "SELECT metric, value, status FROM metrics WHERE run = ?", (r["id"],)
            )
            if status != "unavailable"
        }
        return Run(
            id=r["id"],
            added_at=r["added_at"],
            created_at=r["created_at"],
            run_id=r["run_id"],
            label=r["label"],
            source=r["source"],
            format=r["format"],
            tool=r["tool"],
            tool_version=r["tool_version"],
            status=r["status"],
            workload_type=r["workload_type"],
            fingerprint_key=r["fingerprint_key"],
            fingerprint=json.loads(r["fingerprint"]),
            platform=json.loads(r["platform"]),
            git_commit=r["git_commit"],
            git_branch=r["git_branch"],
            labels=json.loads(r["labels"]),
            values=values,
        )

    def comparable(
        self,
        fp: dict[str, Any],
        allowed: tuple[str, ...],
        last: int,
        before: int | None = None,
        exclude: int | None = None,
    ) -> list[Run]:
        """The last `last` runs (oldest first) whose fingerprint matches `fp` on every defining
        field except `allowed`, status ok, other than run `exclude` (the candidate's own row when
        it is already recorded: never its own baseline)."""
        from minicluster.compare.comparability import check

        if not allowed:
            found = [
                r for r in self.runs(None, key(fp), before) if r.status == "ok" and r.id != exclude
            ][:last]
        else:
            found = []
            for r in self.runs(None, None, before):
                if r.id == exclude:
                    continue
                if r.status == "ok" and check(r.fingerprint, fp, allowed).comparable:
                    found.append(r)
                    if len(found) >= last:
                        break
        return list(reversed(found))

    def set_aside(
        self, fp: dict[str, Any], allowed: tuple[str, ...], exclude: int | None = None
    ) -> dict[str, int]:
        """How many runs `comparable` would match but for their status (never baselines: a run
        that failed, was interrupted, failed its own checks or was NOT JUDGED), per status."""
        from minicluster.compare.comparability import check

        out: dict[str, int] = {}
        runs = self.runs(None, key(fp), None) if not allowed else self.runs(None, None, None)
        for r in runs:
            if r.id == exclude or r.status == "ok" or r.status is None:
                continue
            if allowed and not check(r.fingerprint, fp, allowed).comparable:
                continue
            out[r.status] = out.get(r.status, 0) + 1
        return out


# meta keys: the database's `ok` runs were checked for own checks that failed (a database made
# before `checks_failed` existed is checked once, when first opened), and which could not be
_MARKED = "checks_failed_marked"
# and for runs whose own verdict was NOT JUDGED (a database made before `not_judged` existed)
_MARKED_NOT_JUDGED = "not_judged_marked"
_UNVERIFIED = "checks_failed_unverified"


def _status_from_source(source: Path, digest: str) -> str | None:
    """The status `run_status` gives the run recorded from `source` with content digest
    `digest` (the file's bytes and `#N`, N its index in the file), or None when the file is gone,
    unreadable or no longer holds those bytes."""
    from minicluster.interop.detect import load_runs

    try:
        content = source.read_bytes()
        records = load_runs(source)
    except (OSError, InputError, ValueError):
        return None
    for i, rec in enumerate(records):
        if hashlib.sha256(content + f"#{i}".encode()).hexdigest() == digest:
            return run_status(rec)
    return None


# the status of a run that finished ok but whose own checks failed (a straggler, a culprit, wrong
# numbers, a slow link: its own command exited 1): recorded, never a baseline (`comparable`)
CHECKS_FAILED = "checks_failed"
# the status of a run that finished ok but whose own verdict was NOT JUDGED (too few steps for
# the straggler test, too few pairs: its own command exited 2): recorded, never a baseline
NOT_JUDGED = "not_judged"


def run_status(record: BenchmarkRecord) -> str:
    """The status a run is recorded with: its run status (`failed`, `incomplete`), else
    `checks_failed` when its own checks failed, else `not_judged` when its own verdict was NOT
    JUDGED, else `ok`. Only `ok` runs are baselines: a straggler run as a baseline flatters every
    candidate, and makes a healthy one look worse; a run its own checks could not judge (3
    measured steps) is no known-good level either."""
    from minicluster.compare.engine import own_checks_failed

    status = record.details.get("run_status") or "ok"
    if status == "ok" and own_checks_failed(record):
        return CHECKS_FAILED
    if status == "ok" and "not_judged" in (record.details.get("own_verdicts") or []):
        return NOT_JUDGED
    return str(status)


def _platform(record: BenchmarkRecord) -> dict[str, Any]:
    """What else could change between runs of one fingerprint: versions and the host."""
    d = record.details
    return {
        "tool_version": record.tool_version,
        "framework_version": d.get("framework_version"),
        "os": d.get("os"),
        "hardware": record.hardware,
        "launcher": d.get("launcher"),
        # the ranks' CPU time and run-queue delay a step (`history check` tells a busier host
        # from a slower job by them: compare.host_load); absent where not recorded
        **({"host_cpu": d["host_cpu"]} if d.get("host_cpu") else {}),
    }
