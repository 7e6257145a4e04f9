"""Where ranks disagree, from Flight Recorder dumps shaped as torch 2.13 writes them for gloo (no
torch here: the e2e tests make real ones, tests/e2e/test_diagnose_cli.py)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from minicluster.analysis.flight_recorder import diagnose, load
from minicluster.core.errors import InputError


def _entry(seq: int, name: str = "gloo:all_reduce", size: int = 35594, retired: bool = True):
    return {
        "record_id": seq - 1,
        "pg_id": 0,
        "process_group": ("0", "default_pg"),
        "collective_seq_id": seq,
        "p2p_seq_id": 0,
        "op_id": seq,
        "profiling_name": name,
        "input_sizes": [[size]],
        "input_dtypes": ["Float"],
        "output_sizes": [[size]],
        "output_dtypes": ["Float"],
        "state": "scheduled",
        "retired": retired,
        "is_p2p": False,
        "frames": [],
    }


def _dump(folder: Path, rank: int, entries: list[dict[str, Any]], ranks: str = "[0, 1]") -> None:
    data = {
        "version": "2.10",
        "pg_config": {"": {"name": "", "desc": "", "ranks": ranks}},
        "pg_status": {},
        "entries": entries,
    }
    folder.mkdir(exist_ok=True)
    (folder / f"rank_{rank:05d}").write_bytes(pickle.dumps(data))


def test_a_hang_names_the_sequence_number_and_who_never_entered(tmp_path: Path) -> None:
    _dump(tmp_path, 0, [_entry(s) for s in range(1, 15)] + [_entry(15, retired=False)])
    _dump(tmp_path, 1, [_entry(s) for s in range(1, 15)])
    found = diagnose(load([tmp_path]))
    assert found["desync"] is True
    (g,) = found["groups"]
    assert (g["seq"], g["entered"], g["never_entered"], g["in_flight"]) == (15, [0], [1], [0])
    assert found["verdict"] == (
        "collective #15 (gloo:all_reduce input sizes [[35594]]) on process group 0 (default_pg): "
        "entered by rank(s) 0, never entered by rank(s) 1 (last entered #14); still in flight "
        "on rank(s) 0"
    )


def test_different_ops_at_one_sequence_number(tmp_path: Path) -> None:
    _dump(tmp_path, 0, [_entry(1), _entry(2, size=16)])
    _dump(tmp_path, 1, [_entry(1), _entry(2, "gloo:broadcast", 8)])
    (g,) = diagnose(load([tmp_path]))["groups"]
    assert g["seq"] == 2
    assert [m["ranks"] for m in g["mismatch"]] == [[0], [1]]
    assert "gloo:broadcast input sizes [[8]]" in g["verdict"]


def test_ring_buffers_are_compared_where_both_still_hold_entries(tmp_path: Path) -> None:
    _dump(tmp_path, 0, [_entry(s) for s in range(5, 20)])
    _dump(tmp_path, 1, [_entry(s) for s in range(8, 20)])  # a smaller window, same ops
    found = diagnose(load([tmp_path]))
    assert found["desync"] is False and "agree" in found["verdict"]


def test_a_member_without_a_dump_is_named(tmp_path: Path) -> None:
    _dump(tmp_path, 0, [_entry(1), _entry(2, retired=False)], ranks="[0, 1, 2]")
    _dump(tmp_path, 1, [_entry(1)], ranks="[0, 1, 2]")
    (g,) = diagnose(load([tmp_path]))["groups"]
    assert g["no_dump"] == [2] and "no dump from rank(s) 2" in g["verdict"]


class _Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned",))


def test_a_dump_can_never_run_code_and_bad_inputs_are_named(tmp_path: Path) -> None:
    evil = tmp_path / "trace_0"
    evil.write_bytes(pickle.dumps({"entries": [_Boom()]}))
    with pytest.raises(InputError, match="refused posix.system"):
        load([evil])
    with pytest.raises(InputError, match="no Flight Recorder dumps"):
        load([tmp_path / "empty"] if (tmp_path / "empty").mkdir() is None else [])
    (tmp_path / "notes").write_text("x")
    with pytest.raises(InputError, match="name ends in its rank"):
        load([tmp_path / "notes"])
    (tmp_path / "trace_1").write_text("not a pickle")
    with pytest.raises(InputError, match="not a Flight Recorder dump"):
        load([tmp_path / "trace_1"])


def test_a_member_without_a_dump_is_not_judged_and_never_ok(tmp_path: Path) -> None:
    # As a kill run leaves it (/tmp/trial kill: rank 1 SIGKILLed, only rank 0 dumped): the one
    # dump agrees with itself, which says nothing about rank 1.
    _dump(tmp_path, 0, [_entry(s) for s in range(1, 10)])
    found = diagnose(load([tmp_path]))
    assert found["desync"] is False and found["not_judged"] == [1]
    assert found["verdict"].startswith("not judged for rank(s) 1: it left no dump")
    assert "agree" not in found["verdict"].split(";")[0]


def test_diagnose_exits_2_not_0_when_a_member_left_no_dump(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from minicluster.cli import main

    _dump(tmp_path, 0, [_entry(s) for s in range(1, 10)])
    assert main(["diagnose", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert "not judged for rank(s) 1" in out and "ok:" not in out


@pytest.mark.parametrize("pg_config", [5, "x", [1, 2]])
def test_a_dump_whose_pg_config_is_not_a_mapping_is_named(tmp_path: Path, pg_config: Any) -> None:
    # New-user trial: a dump of another shape stopped `diagnose` with an internal error (exit 70).
    path = tmp_path / "rank_00000"
    path.write_bytes(pickle.dumps({"version": "2.10", "pg_config": pg_config, "entries": []}))
    with pytest.raises(InputError, match=r"rank_00000 \(pg_config is a .*, not a mapping"):
        load([path])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("input_sizes", {"a": 1}),
        ("input_sizes", {1, 2}),
        ("profiling_name", ["gloo:all_reduce"]),
        ("input_dtypes", {}),
    ],
)
def test_odd_entry_fields_are_compared_not_a_crash(tmp_path: Path, field: str, value: Any) -> None:
    odd = _entry(3)
    odd[field] = value
    _dump(tmp_path, 0, [_entry(1), _entry(2), odd])
    _dump(tmp_path, 1, [_entry(1), _entry(2), _entry(3)])
    found = diagnose(load([tmp_path]))
    assert found["desync"] is True and found["groups"][0]["seq"] == 3


def test_ranks_that_are_not_numbers_fall_back_to_the_ranks_that_recorded(tmp_path: Path) -> None:
    data = {"version": "2.10", "pg_config": {"": {"ranks": ["a", None]}}, "entries": [_entry(1)]}
    for rank in (0, 1):
        (tmp_path / f"rank_{rank:05d}").write_bytes(pickle.dumps(data))
    found = diagnose(load([tmp_path]))
    assert found["groups"][0]["ranks"] == [0, 1] and found["desync"] is False


def test_one_dump_given_alone_does_not_say_the_other_rank_died(tmp_path: Path) -> None:
    _dump(tmp_path, 0, [_entry(s) for s in range(1, 4)])
    _dump(tmp_path, 1, [_entry(s) for s in range(1, 4)])
    found = diagnose(load([tmp_path / "rank_00000"]))
    assert "left no dump in the files given" in found["verdict"]
