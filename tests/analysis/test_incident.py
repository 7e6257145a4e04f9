"""The C4 incident class of a failed or slow run (`analysis.incident`), from the result's own
records: failure order, Flight Recorder diagnosis, link check and stragglers."""

from __future__ import annotations

from typing import Any

from minicluster.analysis import incident


def _event(rank: int, kind: str, cause: bool = True, step: int = 20) -> dict[str, Any]:
    return {
        "rank": rank,
        "node_rank": 0,
        "hostname": "vm",
        "kind": kind,
        "cause": cause,
        "step": step,
        "evidence": f"rank {rank} {kind}",
    }


def _healthy() -> dict[str, Any]:
    return {
        "failure_order": None,
        "stragglers": [],
        "link": {"slow": False, "judged": True},
    }


def test_a_healthy_run_has_no_incident() -> None:
    assert incident.classify(_healthy()) is None
    assert incident.classify({}) is None


def test_a_rank_that_died_first_is_a_crash_or_a_kill_of_that_rank() -> None:
    result = _healthy() | {"failure_order": [_event(3, "crash"), _event(0, "aborted", cause=False)]}
    found = incident.classify(result)
    assert found is not None
    assert (found["kind"], found["ranks"], found["decided_from"]) == ("crash", [3], "failure_order")
    assert found["node"] == {"node_rank": 0, "hostname": "vm"}
    result["failure_order"][0]["kind"] = "kill"
    assert (incident.classify(result) or {})["kind"] == "kill"


def test_a_rank_that_stopped_while_its_peers_timed_out_is_a_non_comm_hang() -> None:
    result = _healthy() | {"failure_order": [_event(1, "hang"), _event(0, "aborted", False)]}
    found = incident.classify(result)
    assert found is not None
    assert (found["kind"], found["ranks"]) == ("non_comm_hang", [1])
    assert "hung outside communication" in found["evidence"]


def test_every_rank_timing_out_in_its_own_collective_is_a_comm_hang() -> None:
    result = _healthy() | {"failure_order": [_event(0, "timeout"), _event(1, "timeout")]}
    found = incident.classify(result)
    assert found is not None
    assert (found["kind"], found["ranks"]) == ("comm_hang", [0, 1])
    assert found["link"] is not None


def _group(seq: int | None, never: list[int], in_flight: list[int]) -> dict[str, Any]:
    return {
        "process_group": "0",
        "seq": seq,
        "never_entered": never,
        "in_flight": in_flight,
        "mismatch": [],
        "verdict": f"collective #{seq}: never entered by rank(s) {never}",
    }


def test_flight_recorder_dumps_decide_a_hang_first() -> None:
    # the ends alone say "timeout" on both ranks, the dumps say rank 1 never entered #42
    result = _healthy() | {"failure_order": [_event(0, "timeout"), _event(1, "timeout")]}
    dumps = {"desync": True, "groups": [_group(42, [1], [0])]}
    found = incident.classify(result, dumps)
    assert found is not None
    assert (found["kind"], found["ranks"], found["decided_from"]) == (
        "non_comm_hang",
        [1],
        "flight_recorder",
    )
    assert "#42" in found["evidence"]
    # every rank inside the same collective, none retired: the collective itself hangs
    agree = {"desync": False, "groups": [_group(None, [], [0, 1])]}
    found = incident.classify(result, agree)
    assert found is not None
    assert (found["kind"], found["ranks"], found["decided_from"]) == (
        "comm_hang",
        [0, 1],
        "flight_recorder",
    )


def _straggler(rank: int) -> dict[str, Any]:
    return {
        "rank": rank,
        "node_rank": 0,
        "hostname": "vm",
        "compute_ms_median": 30.0,
        "others_compute_ms_median": 10.0,
        "excess_pct": 200.0,
        "slowest_in_steps": 20,
        "steps_compared": 20,
    }


def test_a_straggler_is_non_comm_slow_and_a_slow_link_comm_slow() -> None:
    found = incident.classify(_healthy() | {"stragglers": [_straggler(1)]})
    assert found is not None
    assert (found["kind"], found["ranks"], found["decided_from"]) == (
        "non_comm_slow",
        [1],
        "stragglers",
    )
    link = {"slow": True, "measured_busbw_gbps": 0.1, "expected_busbw_gbps": 1.0, "ratio": 0.1}
    found = incident.classify(_healthy() | {"link": link})
    assert found is not None
    assert (found["kind"], found["ranks"], found["decided_from"]) == ("comm_slow", [], "link")
    assert "10% of the expected" in found["evidence"]


def test_dumps_missing_a_rank_cannot_call_a_comm_hang() -> None:
    """The rank without a dump may be the one stuck outside: the ends of the ranks decide."""
    result = _healthy() | {"failure_order": [_event(1, "hang"), _event(0, "aborted", False)]}
    partial = {"desync": False, "groups": [_group(None, [], [0]) | {"no_dump": [1]}]}
    found = incident.classify(result, partial)
    assert found is not None
    assert (found["kind"], found["ranks"], found["decided_from"]) == (
        "non_comm_hang",
        [1],
        "failure_order",
    )


def test_an_intermittent_culprit_without_a_straggler_is_non_comm_slow() -> None:
    culprit = {
        "rank": 1,
        "node_rank": 0,
        "hostname": "vm",
        "kind": "intermittent",
        "cost_pct": 48.0,
        "cost_ms": 400.0,
        "evidence": "late by ~80 ms in every 5th step",
    }
    found = incident.classify(_healthy() | {"culprits": [culprit]})
    assert found is not None
    assert (found["kind"], found["ranks"], found["decided_from"]) == (
        "non_comm_slow",
        [1],
        "culprits",
    )
    assert "48%" in found["evidence"] and "intermittent" in found["evidence"]


def test_every_rank_raising_the_same_exception_blames_the_code_not_a_rank_or_node() -> None:
    """A model whose forward raises on every rank (a recorded shape: both ranks' summaries say
    the same ValueError, 0.3 ms apart): not a crash of whichever rank wrote first."""
    same = "raised ValueError: shape mismatch in my layer"
    events = [_event(1, "exception", step=0) | {"evidence": same}]
    events.append(_event(0, "exception", step=0) | {"evidence": same})
    found = incident.classify(_healthy() | {"world_size": 2, "failure_order": events})
    assert found is not None
    assert (found["kind"], found["ranks"]) == ("crash", [0, 1])
    assert found["node"] == {"node_rank": 0, "hostname": "vm"}  # both ran there
    assert "every rank (2 of 2)" in found["evidence"] and "not of one rank" in found["evidence"]
    across = [events[0], events[1] | {"node_rank": 1, "hostname": "vm2"}]
    found = incident.classify(_healthy() | {"world_size": 2, "failure_order": across})
    assert found is not None and found["node"] is None
    assert "not of one rank or node" in found["evidence"]
    # one rank of three raising it, or two different errors: that rank is named, as before
    assert (incident.classify(_healthy() | {"world_size": 3, "failure_order": events}) or {})[
        "ranks"
    ] == [1]
    events[1] = events[1] | {"evidence": "raised RuntimeError: CUDA out of memory"}
    assert (incident.classify(_healthy() | {"world_size": 2, "failure_order": events}) or {})[
        "ranks"
    ] == [1]


def test_a_run_its_users_input_stopped_has_no_incident() -> None:
    same = "raised UserCodeError: workload.factory m.py:build: make_batch gave ..."
    events = [_event(r, "exception", step=0) | {"evidence": same} for r in (0, 1)]
    result = _healthy() | {"world_size": 2, "failure_order": events, "bad_input": same}
    assert incident.classify(result) is None


def test_the_same_error_is_one_rule_for_the_errors_and_the_incident() -> None:
    """`rank_status.same_error` decides for both: every rank's own error the same text. A cause
    without evidence is no shared error (the incident said `every rank (2 of 2) None`)."""
    from minicluster.analysis import rank_status

    assert rank_status.same_error(["E: x", "E: x"], 2) == "E: x"
    assert rank_status.same_error(["E: x", "E: y"], 2) is None
    assert rank_status.same_error(["E: x"], 2) is None  # one rank of two
    assert rank_status.same_error(["E: x"], 1) is None  # one rank: nothing shared
    assert rank_status.same_error([None, None], 2) is None
    assert rank_status.same_error(["", ""], 2) is None
    events = [_event(r, "exception", step=0) | {"evidence": None} for r in (1, 0)]
    found = incident.classify(_healthy() | {"world_size": 2, "failure_order": events})
    assert found is None or "every rank" not in found["evidence"]


def test_ranks_stopped_together_without_a_cause_blame_no_one_first() -> None:
    """The launcher's process group killed with SIGKILL (a new user's trial): both ranks stopped
    in step 224, no exit code or peer error; rank 0's last record was 4 ms earlier, which made it
    'crash on rank 0'. Two ranks that stopped in different steps still have a first one."""
    result = _healthy() | {
        "failure_order": [_event(0, "rank_failure", step=224), _event(1, "rank_failure", step=224)]
    }
    found = incident.classify(result)
    assert found is not None
    assert (found["kind"], found["ranks"]) == ("crash", [0, 1])
    assert "no rank failed first" in found["evidence"]
    assert found["node"] == {"node_rank": 0, "hostname": "vm"}
    result["failure_order"][1]["step"] = 230
    assert (incident.classify(result) or {})["ranks"] == [0]
