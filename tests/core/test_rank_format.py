"""The rank record codec: every record type round-trips, older and newer 1.x lines still read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from minicluster.core import rank_format
from minicluster.core.errors import InputError
from minicluster.core.rank_format import (
    Collective,
    CommTiming,
    Header,
    Pair,
    PairPlan,
    RankLog,
    RecordError,
    Roster,
    Step,
    Summary,
    Unknown,
    decode,
    decode_summary,
    encode,
)

GOLDEN_1_0 = Path(__file__).resolve().parents[1] / "golden" / "run_2ranks"

SAMPLES = [
    Header(run_id="r", rank=1, world_size=2, hostname="h", config={"run": {}}, threads=4),
    Roster(nodes=[{"node_rank": 0, "hostname": "h", "ranks": [0, 1]}], rank0={"hostname": "h"}),
    CommTiming(method="ddp_runtime_stats", fallback=None, from_step=0),
    Step(step=3, warmup=False, step_time_ms=1.5, comm_ms=None, comm_reason="stale"),
    Step(step=4, step_time_ms=1.5, param_checksum=2**60 + 1, grad_reduced_checksum=-7),
    Collective(op="all_reduce", size_bytes=1024, nominal_bytes=1024, status="measured"),
    PairPlan(per="rank", schedule="serial", participants=[0, 1], nodes=["a", "b"], size_bytes=8),
    Pair(pass_=1, round=0, a=0, b=1, status="measured", time_us_ab=3.0),
]


@pytest.mark.parametrize("record", SAMPLES, ids=lambda r: type(r).__name__)
def test_every_record_type_round_trips(record: rank_format.Record) -> None:
    line = encode(record)
    assert line.startswith(f'{{"type":"{record.TYPE}"')  # `type` first: line_type reads it
    assert rank_format.line_type(line.encode()) == record.TYPE
    assert decode(json.loads(line)) == record
    assert tuple(json.loads(line)) == tuple(
        k for k in rank_format.keys_of(type(record)) if k in json.loads(line)
    )


def test_pair_writes_its_pass_under_the_json_key() -> None:
    line = json.loads(encode(SAMPLES[-1]))
    assert line["pass"] == 1 and "pass_" not in line
    assert rank_format.PAIR_KEYS[:3] == ("type", "pass", "round")


def test_replica_checksums_are_written_only_where_the_check_ran() -> None:
    assert "param_checksum" not in json.loads(encode(SAMPLES[3]))
    assert tuple(json.loads(encode(SAMPLES[3]))) == rank_format.STEP_KEYS
    assert json.loads(encode(SAMPLES[4]))["param_checksum"] == 2**60 + 1


def test_a_newer_writers_keys_and_record_types_are_kept() -> None:
    obj = {"type": "step", "step": 1, "culprit_ms": 2.5}  # a key from a later 1.x
    step = decode(obj)
    assert isinstance(step, Step) and step.extra == {"culprit_ms": 2.5}
    assert json.loads(encode(step))["culprit_ms"] == 2.5
    unknown = decode({"type": "stage", "stage": 2})
    assert isinstance(unknown, Unknown) and unknown.to_json() == {"type": "stage", "stage": 2}
    log = RankLog()
    log.apply(unknown)
    assert log.unknown == 1


def test_a_line_without_a_required_key_is_refused_by_name() -> None:
    with pytest.raises(RecordError, match="collective record lacks nominal_bytes"):
        decode({"type": "collective", "op": "all_reduce", "size_bytes": 8}, "rank_00000.jsonl")
    with pytest.raises(RecordError, match="not a JSON object"):
        decode([1, 2])
    with pytest.raises(RecordError, match="summary record lacks status"):
        decode_summary({"rank": 0})


def test_a_header_of_another_major_version_is_refused_before_its_keys_are_read() -> None:
    with pytest.raises(InputError, match="minicluster-rank/2.0"):
        decode({"type": "header", "format": "minicluster-rank/2.0"})
    old = decode({"type": "header", "format": "minicluster-rank/1.0", "run_id": "r", "rank": 0,
                  "world_size": 1})  # fmt: skip
    assert isinstance(old, Header)


def test_a_headerless_1_0_file_reads_with_its_extra_keys_and_default_timing() -> None:
    """The golden 2-rank run was written before `format`, `node_rank`, `ray` and `job`; its
    header has a `telemetry` key later versions moved to the summary."""
    log, warnings = rank_format.read_log(GOLDEN_1_0, 0)
    assert warnings == []
    assert log.header is not None and log.header.format is None and log.header.job is None
    assert "telemetry" in log.header.extra
    assert log.timing_methods() == ["ddp_runtime_stats"]
    assert log.timing[0].from_step is None  # 1.0: no from_step
    assert log.summary is not None and log.summary.status == "ok"
    assert log.steps_seen == len(log.step_rows) == log.last_step + 1


def test_the_log_keeps_the_timing_history_in_order() -> None:
    log = RankLog()
    for record in (SAMPLES[0], SAMPLES[2], CommTiming(method="comm_hook_host_clock", from_step=5)):
        log.apply(record)
    assert log.timing_methods() == ["ddp_runtime_stats", "comm_hook_host_clock"]
    assert log.rank == 1


def test_a_log_that_keeps_no_steps_still_counts_them() -> None:
    log = RankLog(keep_steps=False)
    for i in range(3):
        log.apply(Step(step=i))
    assert (log.steps_seen, log.last_step, log.step_rows) == (3, 2, [])


def test_summary_round_trips_without_a_type_key() -> None:
    s = Summary(rank=0, status="ok", last_step=9, collectives_recorded=None)
    data = s.to_json()
    assert "type" not in data and "collectives_recorded" not in data
    assert tuple(data) == rank_format.SUMMARY_KEYS
    assert decode_summary(data) == s


@dataclass(kw_only=True, slots=True)
class _Stage(rank_format.Record):
    """A record type a later layout might add (a pipeline stage's bubble)."""

    TYPE: ClassVar[str] = "stage"
    stage: int
    bubble_ms: float | None = None


def test_a_new_record_type_is_one_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataclass and its place in RECORD_CLASSES (here patched in): it is written, read back
    from the file, kept by the log, sent in-band and seen by aggregation, with no other change."""
    from minicluster.analysis.records import read_rank
    from minicluster.rank.recorder import RankRecorder

    monkeypatch.setattr(
        rank_format, "CLASS_OF_TYPE", {**rank_format.CLASS_OF_TYPE, "stage": _Stage}
    )
    recorder = RankRecorder(tmp_path, 0)
    recorder.start(SAMPLES[0], None)
    recorder.write(_Stage(stage=1, bubble_ms=2.5))  # type: ignore[arg-type]
    recorder.close()
    log, warnings = rank_format.read_log(tmp_path, 0)
    assert warnings == [] and log.others == {"stage": [_Stage(stage=1, bubble_ms=2.5)]}
    assert RankLog.from_wire(log.to_wire(), "test").others == log.others
    assert read_rank(tmp_path, 0).other == {
        "stage": [{"type": "stage", "stage": 1, "bubble_ms": 2.5}]
    }
