"""Where ranks disagree, from their Flight Recorder dumps: the collective sequence number at which
the ranks of a process group part ways, who never entered it, who is still in it, and mismatched
ops or sizes.

Reads torch's dump format (a pickled dict with `version`, `pg_config` and `entries`, one file per
rank, its name ending in the rank: what minicluster writes into `DIR/flight_recorder/` and what
torch writes under `TORCH_FR_DUMP_TEMP_FILE`) without torch: a restricted unpickler that accepts
plain data only (dicts, lists, tuples, strings, numbers), so a dump can never run code. torch's
own analysis (`torch.distributed.flight_recorder`) needs torch, which this layer does not import;
the rule here is the one it applies first: within a process group, every rank issues the same
collectives in the same order (`collective_seq_id`).
"""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from minicluster.core import rundir
from minicluster.core.errors import InputError

_RANK_AT_END = re.compile(r"(\d+)$")


class _PlainData(pickle.Unpickler):
    """Unpickles plain data only: any class or function reference is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused {module}.{name}: a dump holds plain data only")


def read_dump(path: Path) -> tuple[int, dict[str, Any]]:
    """(rank, dump) of one dump file; InputError naming the file when it is not one."""
    match = _RANK_AT_END.search(path.name)
    if match is None:
        raise InputError(f"{path}: a dump's name ends in its rank (e.g. rank_00001)")
    try:
        data = _PlainData(io.BytesIO(path.read_bytes())).load()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    except pickle.UnpicklingError as e:
        refused = str(e).startswith("refused ")  # a class or function in it: name it
        raise InputError(
            f"not a Flight Recorder dump: {path}" + (f" ({e})" if refused else "")
        ) from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError):
        raise InputError(f"not a Flight Recorder dump: {path}") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise InputError(f"not a Flight Recorder dump: {path} (no entries)")
    configs = data.get("pg_config")
    if configs is not None and not isinstance(configs, dict):
        raise InputError(
            f"not a Flight Recorder dump: {path} (pg_config is a {type(configs).__name__}, "
            "not a mapping of process groups)"
        )
    return int(match.group(1)), data


def dump_files(paths: Iterable[Path]) -> list[Path]:
    """The dump files named: files as given; a run directory's `flight_recorder/` files; a
    directory's files whose names end in a rank."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            folder = rundir.flight_recorder_dir(path)
            folder = folder if folder.is_dir() else path
            found = sorted(
                p for p in folder.iterdir() if p.is_file() and _RANK_AT_END.search(p.name)
            )
            if not found:
                raise InputError(f"{path}: no Flight Recorder dumps (rank_NNNNN files) in it")
            out += found
        elif path.is_file():
            out.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return out


def load(paths: Iterable[Path]) -> dict[int, dict[str, Any]]:
    """Every rank's dump, by rank; InputError for two dumps of one rank or an unreadable one."""
    dumps: dict[int, dict[str, Any]] = {}
    where: dict[int, Path] = {}
    for path in dump_files(paths):
        rank, data = read_dump(path)
        if rank in dumps:
            raise InputError(f"rank {rank} has two dumps: {where[rank]} and {path}")
        dumps[rank], where[rank] = data, path
    return dumps


def _members(dumps: dict[int, dict[str, Any]], pg: str) -> list[int]:
    """The ranks of process group `pg` as the dumps' `pg_config` says, else the ranks that
    recorded it."""
    for data in dumps.values():
        configs = data.get("pg_config") or {}
        # torch 2.13 keys the default group '' in pg_config under gloo while its entries say '0'
        config = configs.get(pg) or (configs.get("") if pg == "0" else None)
        ranks = config.get("ranks") if isinstance(config, dict) else None
        if isinstance(ranks, str):
            return [int(r) for r in re.findall(r"\d+", ranks)]
        if isinstance(ranks, list) and all(isinstance(r, int) for r in ranks):
            return list(ranks)
    return sorted(dumps)


def _op(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (
        _freeze(entry.get("profiling_name")),
        _freeze(entry.get("input_sizes")),
        _freeze(entry.get("output_sizes")),
        _freeze(entry.get("input_dtypes")),
    )


def _freeze(value: Any) -> Any:
    """`value` made hashable, so that ops compare by content whatever a dump holds (a dump is
    another program's data: a mapping or set where a list belongs is compared, not a crash)."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted(((repr(k), _freeze(v)) for k, v in value.items()), key=repr))
    if isinstance(value, set | frozenset):
        return tuple(sorted(repr(v) for v in value))
    return value


def _describe(entry: dict[str, Any]) -> str:
    return f"{entry.get('profiling_name')} input sizes {entry.get('input_sizes')}"


def diagnose(dumps: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per process group: the first collective sequence number at which its ranks disagree (some
    never entered it, or entered another op or size), who is still inside it (not retired), the
    ranks with no dump (`not_judged`: nothing can be said of them); and one `verdict` line for
    the first group that disagrees, else for the ranks that left no dump."""
    by_pg: dict[str, dict[int, dict[int, dict[str, Any]]]] = {}
    descs: dict[str, str] = {}  # a group's description (`default_pg`)
    for rank, data in dumps.items():
        for entry in data["entries"]:
            if not isinstance(entry, dict) or entry.get("is_p2p"):
                continue
            seq = entry.get("collective_seq_id")
            pg = entry.get("process_group")
            name = str(pg[0]) if isinstance(pg, list | tuple) and pg else str(pg)
            if isinstance(pg, list | tuple) and len(pg) > 1 and pg[1]:
                descs.setdefault(name, str(pg[1]))
            if isinstance(seq, int) and seq > 0:
                by_pg.setdefault(name, {}).setdefault(rank, {})[seq] = entry
    groups = [_group(pg, descs.get(pg), seqs, dumps) for pg, seqs in sorted(by_pg.items())]
    desync = [g for g in groups if g["seq"] is not None]
    no_dump = sorted({r for g in groups for r in g["no_dump"]})
    if desync:
        verdict = desync[0]["verdict"]
    elif no_dump:
        # The ranks that dumped agree, but nothing is known of the ones that did not.
        verdict = (
            f"not judged for rank(s) {_list(no_dump)}: "
            f"{'it' if len(no_dump) == 1 else 'they'} left no dump in the files given (a rank "
            "that dies before it can dump leaves none: see the run's failure_order); "
            + (
                f"rank {_list(sorted(dumps))}'s dump alone shows no desync"
                if len(dumps) == 1
                else f"the ranks that dumped ({_list(sorted(dumps))}) agree on every "
                "collective they recorded"
            )
        )
    elif groups:
        verdict = "the ranks agree on every collective recorded: no desync in the dumps"
    else:
        verdict = "the dumps hold no collective"
    return {
        "ranks_dumped": sorted(dumps),
        "groups": groups,
        "desync": bool(desync),
        "not_judged": no_dump,
        "verdict": verdict,
    }


def _group(
    pg: str,
    desc: str | None,
    seqs: dict[int, dict[int, dict[str, Any]]],
    dumps: dict[int, dict[str, Any]],
) -> dict[str, Any]:
    members = _members(dumps, pg)
    dumped = [r for r in members if r in dumps]
    no_dump = [r for r in members if r not in dumps]
    # The dumps are ring buffers: compare from the first sequence number every rank still holds.
    start = max((min(s) for s in seqs.values() if s), default=1)
    last = {r: max(seqs[r]) if seqs.get(r) else None for r in dumped}
    out: dict[str, Any] = {
        "process_group": pg,
        "description": desc,
        "ranks": members,
        "no_dump": no_dump,
        "last_entered": {str(r): s for r, s in last.items()},
        "seq": None,
        "op": None,
        "entered": [],
        "never_entered": [],
        "in_flight": [],
        "mismatch": [],
        "verdict": None,
    }
    end = max((s for s in last.values() if s is not None), default=0)
    for seq in range(start, end + 1):
        have = {r: seqs[r][seq] for r in dumped if seq in seqs.get(r, {})}
        missing = [r for r in dumped if r not in have]
        ops: dict[tuple[Any, ...], list[int]] = {}
        for r, e in have.items():
            ops.setdefault(_op(e), []).append(r)
        if not missing and len(ops) == 1:
            continue
        first = have[min(have)]
        out.update(
            seq=seq,
            op=_describe(first),
            entered=sorted(have),
            never_entered=missing,
            in_flight=sorted(r for r, e in have.items() if e.get("retired") is False),
        )
        if len(ops) > 1:
            out["mismatch"] = [
                {"ranks": sorted(rs), "op": _describe(have[min(rs)])}
                for _, rs in sorted(ops.items(), key=lambda kv: min(kv[1]))
            ]
        out["verdict"] = _verdict(out, last)
        return out
    return out


def _verdict(g: dict[str, Any], last: dict[int, int | None]) -> str:
    where = f"process group {g['process_group']}" + (
        f" ({g['description']})" if g["description"] else ""
    )
    if g["mismatch"]:
        parts = "; ".join(f"rank(s) {_list(m['ranks'])}: {m['op']}" for m in g["mismatch"])
        return f"collective #{g['seq']} on {where}: the ranks issued different ops: {parts}"
    never = ", ".join(
        f"{r} (last entered #{last[r]})" if last.get(r) is not None else str(r)
        for r in g["never_entered"]
    )
    text = (
        f"collective #{g['seq']} ({g['op']}) on {where}: entered by rank(s) "
        f"{_list(g['entered'])}, never entered by rank(s) {never}"
    )
    if g["in_flight"]:
        text += f"; still in flight on rank(s) {_list(g['in_flight'])}"
    if g["no_dump"]:
        text += f"; no dump from rank(s) {_list(g['no_dump'])}"
    return text


def _list(ranks: list[int]) -> str:
    return ", ".join(str(r) for r in ranks)
