"""`read_run_dir(drop=aggregate.UNREAD_STEP_FIELDS)` (what `aggregate DIR` reads, a third less
memory at 4,096 ranks) gives the same result as reading every field: no field aggregation uses
is left out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fixtures import script_module

from minicluster.analysis import accounting
from minicluster.analysis.aggregate import LAST_ONLY_STEP_FIELDS, UNREAD_STEP_FIELDS, aggregate
from minicluster.analysis.records import read_run_dir

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "run_2ranks"


def _result(run_dir: Path, drop: tuple[str, ...]) -> str:
    result = aggregate(read_run_dir(run_dir, drop=drop), aggregated_at="t")
    return json.dumps(result, sort_keys=True, allow_nan=True)


def test_the_kept_fields_give_the_same_result(tmp_path: Path) -> None:
    assert _result(GOLDEN, UNREAD_STEP_FIELDS) == _result(GOLDEN, ())
    # With replica checksums on every other step (rows of two shapes: the slow path) and a
    # a slow link: fault detection reads checksums and the comm figures busbw comes from.
    run = tmp_path / "run"
    shutil.copytree(GOLDEN, run)
    for rank in (0, 1):
        path = run / "ranks" / f"rank_{rank:05d}.jsonl"
        lines = []
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("type") == "header":  # judged against a link far faster than gloo here
                rec["config"]["run"]["expect_busbw_gbps"] = 1000.0
            if rec.get("type") == "step":
                if rec["step"] % 2 == 0:
                    bump = 1 if rank == 1 and rec["step"] >= 6 else 0
                    rec.update(
                        param_checksum=2**60 + rec["step"] + bump,
                        optim_checksum=7,
                        grad_applied_checksum=2**55 + bump,
                        grad_reduced_checksum=2**55,
                    )
            lines.append(json.dumps(rec))
        path.write_text("\n".join(lines) + "\n")
    full, kept = _result(run, ()), _result(run, UNREAD_STEP_FIELDS)
    assert kept == full
    detected = {d["kind"] for d in json.loads(full)["faults"]["detected"]}
    assert {"slow_link", "corrupt_grad"} <= detected  # the fields were really used
    cols = read_run_dir(run, drop=UNREAD_STEP_FIELDS)[0].columns
    assert not set(cols) & set(UNREAD_STEP_FIELDS) and "compute_ms" in cols


@pytest.mark.parametrize("columns", [True, False], ids=["columnar", "journals"])
def test_last_only_fields_and_consumed_records_give_the_same_result(
    tmp_path: Path, columns: bool
) -> None:
    """What `aggregate DIR` reads (`t_unix_s` held as its last value, the host-time fields let go
    after the accounting) gives the result of every field read and kept: on a run whose rank 13
    left no summary (the failure order then times it by its last step's `t_unix_s`) and whose
    rank 9's journal was cut mid-run (no columnar file: its journal is read), with opt_ms and
    gap_ms that vary per step (the accounting's host time)."""
    run = tmp_path / "run"
    script_module.load("gen_rank_files").write_run(
        run, 24, 60, per_node=4, slow={13: 4.0}, varying=True, columns=columns
    )
    (run / "ranks/rank_00013.summary.json").unlink()
    journal = run / "ranks/rank_00009.jsonl"
    journal.write_text("\n".join(journal.read_text().splitlines()[:40]) + "\n")
    (run / "ranks/rank_00009.summary.json").unlink()
    (run / "ranks/rank_00009.steps.arrow").unlink(missing_ok=True)

    full = read_run_dir(run, workers=1)
    lean = read_run_dir(run, workers=1, drop=UNREAD_STEP_FIELDS, last_only=LAST_ONLY_STEP_FIELDS)
    for a, b in zip(full, lean, strict=True):
        assert not set(LAST_ONLY_STEP_FIELDS) & set(b.columns)
        for key in LAST_ONLY_STEP_FIELDS:
            want, got = a.last_of(key), b.last_of(key)
            assert want is not None and got is not None and want.dtype == got.dtype
            assert want.tobytes() == got.tobytes()  # bit for bit
    want = aggregate(full, aggregated_at="t")
    got = aggregate(lean, aggregated_at="t", consume=True)
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)
    times = {e["rank"]: e["t_unix_s"] for e in want["failure_order"]}
    by_rank = {r.rank: r for r in full}
    for rank in (9, 13):  # their times are their last step's (the field was really read)
        assert times[rank] == float(by_rank[rank].columns["t_unix_s"][-1])
    assert want["accounting"]["steps_accounted"] > 0  # the host time was really made
    for rec in lean:  # consumed: the host-time fields are gone
        assert not set(accounting.HOST_FIELDS) & set(rec.columns)
