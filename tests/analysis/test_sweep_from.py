"""`sweep --from`'s checks: one workload at distinct world sizes, the mode from the batches.

The runs are the golden 2-rank result with world size and batches changed: these tests are
about which runs may be compared, not about their numbers.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from minicluster.analysis.sweep_from import from_finished_runs
from minicluster.core.errors import InputError

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "run_2ranks.result.json"


def _run(world: int, per_rank: int, **config_workload: Any) -> tuple[str, dict[str, Any]]:
    r = copy.deepcopy(json.loads(GOLDEN.read_text()))
    r["world_size"] = world
    r["workload"]["per_rank_batch"] = per_rank
    r["workload"]["global_batch"] = per_rank * world
    r["config"]["workload"].update(config_workload)
    return f"runs/n{world}", r


def test_the_same_per_rank_batch_is_weak_scaling_in_world_size_order() -> None:
    found = from_finished_runs([_run(4, 16), _run(1, 16), _run(2, 16)], None)
    assert found.mode == "weak" and found.world_sizes == [1, 2, 4]
    assert found.per_rank_batch == 16 and found.global_batch is None
    assert [o.planned.world_size for o in found.outcomes] == [1, 2, 4]
    assert [o.dir for o in found.outcomes] == ["runs/n1", "runs/n2", "runs/n4"]


def test_the_same_global_batch_is_strong_scaling() -> None:
    found = from_finished_runs([_run(1, 24), _run(2, 12), _run(3, 8)], None)
    assert found.mode == "strong" and found.global_batch == 24 and found.per_rank_batch is None


@pytest.mark.parametrize(
    ("runs", "mode", "message"),
    [
        ([_run(1, 16)], None, "at least two finished runs"),
        ([_run(2, 16), _run(2, 16)], None, "two runs at world size 2"),
        ([_run(1, 16), _run(2, 10)], None, "share neither the per-rank batch"),
        ([_run(1, 24), _run(2, 12)], "weak", "--mode weak keeps the per-rank batch"),
        ([_run(1, 16), _run(2, 16)], "strong", "--mode strong keeps the global batch"),
        (
            [_run(1, 16), _run(2, 16, hidden_dim=512)],
            None,
            "runs/n2 ran a different workload than runs/n1 (config workload.hidden_dim",
        ),
    ],
)
def test_runs_that_are_not_one_sweep_are_refused(
    runs: list[tuple[str, dict[str, Any]]], mode: Any, message: str
) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(".", r"\.")):
        from_finished_runs(runs, mode)


def test_a_collectives_result_is_refused() -> None:
    where, r = _run(2, 16)
    r["workload"]["workload_type"] = "collectives"
    with pytest.raises(InputError, match="a collectives result"):
        from_finished_runs([_run(1, 16), (where, r)], None)


def test_different_threads_per_rank_are_a_warning() -> None:
    a, b = _run(1, 16), _run(2, 16)
    for r in b[1]["ranks"]:
        r["threads"] = 7  # what each rank recorded in its header
    found = from_finished_runs([a, b], None)
    assert found.threads_per_rank is None
    assert any("threads per rank" in w for w in found.warnings)


def test_threads_are_what_the_ranks_ran_with_not_the_config_default() -> None:
    """`threads_per_rank: 0` (the default) means the host's 2 cores shared by its ranks: the
    1-rank run had 2 threads, the 2-rank run 1 each, as their headers say. That is a warning,
    never "0 threads"."""
    one, two = _run(1, 16), _run(2, 16)
    one[1]["ranks"] = [{**one[1]["ranks"][0], "threads": 2}]
    found = from_finished_runs([one, two], None)
    assert found.threads_per_rank is None
    (warning,) = [w for w in found.warnings if "threads per rank" in w]
    assert "1 rank(s): 2, 2 rank(s): 1" in warning


def test_results_from_before_the_ranks_recorded_threads_derive_them() -> None:
    """No `ranks[].threads`: the config's threads_per_rank, 0 meaning the host's cores shared."""
    one, two = _run(1, 16), _run(2, 16)
    one[1]["ranks"] = one[1]["ranks"][:1]
    for _, r in (one, two):
        for entry in r["ranks"]:
            del entry["threads"]
    found = from_finished_runs([one, two], None)
    (warning,) = [w for w in found.warnings if "threads per rank" in w]
    assert "1 rank(s): 2, 2 rank(s): 1" in warning
