"""One answer whatever the path: a run's result from its rank journals, from its columnar files
and from per-node reductions (`analysis.node_reduce`) is the same result (metrics, rank and node
figures, findings, the per-kind `comm` section), but for the embedded steps and `in_band`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures import script_module

from minicluster.analysis import node_reduce
from minicluster.analysis.aggregate import aggregate
from minicluster.analysis.records import read_run_dir

AT = "2026-01-01T00:00:00Z"


def by_node(records: list[Any]) -> list[list[Any]]:
    """The records grouped by their header's node (as each node's local rank 0 would hold them)."""
    groups: dict[Any, list[Any]] = {}
    for r in records:
        key = (r.header or {}).get("node_rank", (r.header or {}).get("hostname"))
        groups.setdefault(key, []).append(r)
    return list(groups.values())


def reduced_result(records: list[Any], codec: bool = True) -> dict[str, Any]:
    reductions = [node_reduce.reduce_node(g) for g in by_node(records)]
    if codec:  # through the wire format, as the in-band path would carry it
        reductions = [node_reduce.NodeReduction.from_bytes(r.to_bytes()) for r in reductions]
    return node_reduce.aggregate_reduced(reductions, aggregated_at=AT)


# What differs by path, by design: the embedded steps stay on the nodes (null, with the reason),
# and the in-band section says what each node sent rank 0.
PATH_FIELDS = ("in_band",)
STEPS_PATH_FIELDS = ("embedded", "reason")


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """What must be equal whatever the path: the whole result (metrics, ranks, nodes, findings,
    the per-step accounting, the per-kind `comm` section, ...) but for `PATH_FIELDS` and the
    embedded steps."""
    out = {k: v for k, v in result.items() if k not in PATH_FIELDS}
    out["steps"] = {k: v for k, v in result["steps"].items() if k not in STEPS_PATH_FIELDS}
    return out


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    gen = script_module.load("gen_rank_files")
    cols = tmp_path_factory.mktemp("columns")
    journals = tmp_path_factory.mktemp("journals")
    slow = {13: 1.6}  # a straggler on node 1
    gen.write_run(cols, 24, 60, per_node=8, columns=True, slow=slow)
    gen.write_run(journals, 24, 60, per_node=8, columns=False, slow=slow)
    return cols, journals


def test_synthetic_run_one_answer_from_journals_columns_and_node_reductions(
    synthetic: tuple[Path, Path],
) -> None:
    cols, journals = synthetic
    assert list((cols / "ranks").glob("*.steps.arrow"))
    assert not list((journals / "ranks").glob("*.steps.arrow"))
    from_journals = aggregate(read_run_dir(journals, workers=1), aggregated_at=AT)
    from_columns = aggregate(read_run_dir(cols, workers=1), aggregated_at=AT)
    from_nodes = reduced_result(read_run_dir(cols, workers=1))
    assert len(from_journals["nodes"]) == 3
    assert [s["rank"] for s in from_journals["stragglers"]] == [13]  # a finding to agree on
    assert comparable(from_columns) == comparable(from_journals)
    assert comparable(from_nodes) == comparable(from_journals)
    assert from_nodes["steps"]["embedded"] is None


def test_a_tie_for_the_slowest_compute_counts_as_in_the_step_table(
    synthetic: tuple[Path, Path],
) -> None:
    """Two ranks on different nodes with the same compute times: both are at the max every
    step; the reductions' ties give the straggler's sign test the same counts."""
    records = read_run_dir(synthetic[0], workers=1)
    twin = {r.rank: r for r in records}
    twin[2].columns["compute_ms"] = twin[13].columns["compute_ms"].copy()
    twin[5].columns["compute_ms"] = twin[13].columns["compute_ms"].copy()
    from minicluster.analysis.steps import StepTable

    table = StepTable(records, 24)
    merged = node_reduce.merge([node_reduce.reduce_node(g) for g in by_node(records)])[1]
    for rank in (2, 5, 13, 0):
        assert merged.slowest_in_steps(rank) == table.slowest_in_steps(rank)
    assert comparable(reduced_result(records)) == comparable(aggregate(records, aggregated_at=AT))


def test_a_rank_short_of_steps_and_a_node_without_steps(synthetic: tuple[Path, Path]) -> None:
    """Ranks that measured different steps (one stopped early, one recorded none) merge as the
    step table has them (the steps NaN-aligned, the short rank's figures over its own steps)."""
    records = read_run_dir(synthetic[0], workers=1)
    short = records[9]
    keep = short.columns["step"] < 40
    for k in list(short.columns):
        short.columns[k] = short.columns[k][keep]
    for r in records[16:24]:  # node 2 recorded no step
        r.steps = []
    assert comparable(reduced_result(records)) == comparable(aggregate(records, aggregated_at=AT))


def test_the_codec_round_trips_and_is_per_node_sized(synthetic: tuple[Path, Path]) -> None:
    records = read_run_dir(synthetic[0], workers=1)
    red = node_reduce.reduce_node(by_node(records)[0])
    back = node_reduce.NodeReduction.from_bytes(red.to_bytes())
    assert np.array_equal(back.steps, red.steps)
    for k in node_reduce.KEYS:
        assert np.array_equal(back.max[k], red.max[k], equal_nan=True)
        assert np.array_equal(back.argmin[k], red.argmin[k])
    assert back.figures == red.figures
    with pytest.raises(ValueError):
        node_reduce.NodeReduction.from_bytes(b'{"format": "other/1"}')


def test_the_accounting_is_compared(synthetic: tuple[Path, Path]) -> None:
    """The generated ranks record every field the accounting needs: it is part of what the
    paths agree on, not absent from all three."""
    result = reduced_result(read_run_dir(synthetic[0], workers=1))
    assert result["accounting"]["steps_accounted"] > 0


def _in_band(run_dir: Path, reduce: bool) -> Any:
    """What rank 0 would receive in-band of `run_dir`'s ranks, node by node: each node's
    reduction (`reduce_logs` of its ranks' logs), or its ranks' logs."""
    from minicluster.core import in_band, rank_format

    logs = [rank_format.read_log(run_dir, r)[0] for r in range(24)]
    shares = []
    for node in range(3):
        mine = logs[node * 8 : node * 8 + 8]
        ranks = list(range(node * 8, node * 8 + 8))
        share = in_band.NodeShare(node, f"node{node}", ranks, ranks[0], logs=mine)
        share.log_bytes = sum(in_band.pickled_size(log) for log in mine)
        if reduce:
            share.reduction, share.logs = node_reduce.reduce_logs(mine), []
        shares.append(share)
    return in_band.InBand(shares, [in_band.pickled_size(s) for s in shares])


@pytest.mark.parametrize("reduce", [True, False], ids=["node reductions", "rank logs"])
def test_the_in_band_result_equals_the_files(synthetic: tuple[Path, Path], reduce: bool) -> None:
    journals = synthetic[1]
    got = node_reduce.aggregate_in_band(_in_band(journals, reduce), aggregated_at=AT)
    assert comparable(got) == comparable(
        aggregate(read_run_dir(journals, workers=1), aggregated_at=AT)
    )
    assert got["stragglers"]  # the slow rank on node 1 is found either way
    traffic = got["in_band"]
    assert traffic["method"] == ("node reductions" if reduce else "rank logs")
    from minicluster.result.schema import validate_result

    validate_result(got)
    assert [n["ranks"][0] for n in traffic["nodes"]] == [0, 8, 16]
    if reduce:  # each node's reduction is smaller than its ranks' logs
        for n in traffic["nodes"]:
            assert n["bytes_to_rank0"] < n["rank_log_bytes"] / 2, n


def test_the_sync_points_of_a_parallel_layout_travel_too(synthetic: tuple[Path, Path]) -> None:
    """FSDP2/TP ranks record each step's sync points (`syncs_ms`, `sync_groups`), which the
    accounting sums: a reduction keeps them with the accounting's whole columns."""
    records = read_run_dir(synthetic[0], workers=1)
    for r in records:
        n = r.n_steps
        syncs = np.empty(n, dtype=object)
        groups = np.empty(n, dtype=object)
        for i in range(n):
            syncs[i] = [1.0 + 0.01 * ((r.rank * 7 + i) % 13), 2.0 + 0.02 * ((r.rank + i) % 5)]
            groups[i] = [0, 8 * (r.rank // 8)]
        r.columns["syncs_ms"] = syncs
        r.columns["sync_groups"] = groups
    want = aggregate(records, aggregated_at=AT)
    assert want["accounting"] != aggregate(read_run_dir(synthetic[0], workers=1))["accounting"]
    assert comparable(reduced_result(records)) == comparable(want)


def test_the_cpu_figures_travel_too(synthetic: tuple[Path, Path]) -> None:
    """Each step's `cpu_ms` and `cpu_wait_ms` (rank format 1.7), which the host CPU contention
    rule compares across ranks step by step: the straggler on node 1 waited for a CPU for its
    lateness, and the reduced result says so as the files' does."""
    records = read_run_dir(synthetic[0], workers=1)
    for r in records:
        compute = np.asarray(r.columns["compute_ms"], dtype=float)
        r.columns["cpu_ms"] = np.full(r.n_steps, 2.0)
        # the straggler's compute above the others' (1.6x) was spent waiting on a run queue
        r.columns["cpu_wait_ms"] = (
            compute * (0.6 / 1.6) if r.rank == 13 else np.full(r.n_steps, 0.1)
        )
    want = aggregate(records, aggregated_at=AT)
    assert want["stragglers"] == []
    first = want["host_contention"][0]
    # one rank, one cause: NOT JUDGED as a straggler (and a culprit) in one entry
    assert first["rank"] == 13
    assert "straggler" in (first["finding"], first.get("also_not_judged"))
    got = reduced_result(records)
    assert comparable(got) == comparable(want)
    assert got["host_contention"] == want["host_contention"]


RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded_runs"


@pytest.mark.parametrize("run", ["healthy", "ended_too_few_steps", "fsdp_tp_2d"])
def test_a_recorded_run_split_into_two_nodes_one_answer(run: str) -> None:
    """Real runs (tests/fixtures/recorded_runs: DDP, one ended short of its plan, FSDP2 x TP with
    its own per-kind collectives), their ranks split into two nodes as a two-node job's leaders
    would hold them: the reduced result equals the files' but for the embedded steps, its `comm`
    section included (issue 28: the in-band all-reduce entry had no calls, bytes or busbw, and
    counted the warm-up steps; an FSDP2 x TP run's kinds read as one DDP all-reduce)."""
    records = read_run_dir(RECORDED / run, workers=1)
    half = (len(records) + 1) // 2
    reductions = [
        node_reduce.NodeReduction.from_bytes(node_reduce.reduce_node(g).to_bytes())
        for g in (records[:half], records[half:])
    ]
    want = aggregate(records, aggregated_at=AT)
    got = node_reduce.aggregate_reduced(reductions, aggregated_at=AT)
    assert want["comm"] is not None and want["comm"]["kinds"]
    assert got["comm"] == want["comm"]
    assert comparable(got) == comparable(want)
