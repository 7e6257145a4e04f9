"""The live view of `minicluster watch`: all ranks up to 32, the worst ranks and a node summary
above, the stalled and straggling ranks named, user text printed as it is."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from fixtures import rank_writer  # the one shared writer of rank files (tests/fixtures)
from rich.console import Console

from minicluster.analysis.tail import RunTail
from minicluster.analysis.watch import snapshot
from minicluster.report.watch import final_lines, status_line, view


def _snap(run_dir: Path, last_steps: list[int], **kw: Any) -> dict[str, Any]:
    rank_writer.write_static(run_dir, last_steps, **kw)
    tail = RunTail(run_dir, window=50)
    now = rank_writer.T0 + max(last_steps) * rank_writer.STEP_S
    tail.look(now)
    return snapshot(tail, now, 5.0)


def _text(renderable: Any) -> str:
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(renderable)
    return out.getvalue()


def test_a_small_job_shows_every_rank_and_names_what_is_wrong(tmp_path: Path) -> None:
    snap = _snap(tmp_path, [80, 80, 20, 80], compute_ms={1: 9.0})
    text = _text(view(snap))
    assert "STALLED: rank 2 on " in text and "at step 20" in text
    assert "STRAGGLER: rank 1 on " in text
    rows = [
        line.split()
        for line in text.splitlines()
        if line.split()[1:2] in (["0"], ["1"], ["2"], ["3"])
    ]
    assert [r[1] for r in rows] == ["0", "1", "2", "3"]
    assert "nodes" not in text  # one node: no node summary
    assert "STALLED" in status_line(snap) and "STRAGGLER" in status_line(snap)


def test_above_32_ranks_the_worst_ranks_and_every_node_are_shown(tmp_path: Path) -> None:
    steps = [60] * 40
    steps[37] = 5  # left behind
    extra = {r: {"node_rank": r // 8, "hostname": f"h{r // 8}"} for r in range(40)}
    snap = _snap(tmp_path, steps, compute_ms={13: 9.0}, header_extra=extra)
    text = _text(view(snap))
    assert "worst 16 of 40 ranks" in text
    rank_part, node_part = text.split("\nnodes")
    ranks_shown = [
        ln.split()[3]
        for ln in rank_part.splitlines()
        if ln.startswith(" node ") and ln.split()[3].isdigit()
    ]
    assert len(ranks_shown) == 16
    assert ranks_shown[:2] == ["37", "13"]  # the stalled rank, then the straggler
    nodes = [
        ln.split()
        for ln in node_part.splitlines()
        if ln.startswith(" node ") and ln.split()[1].isdigit()
    ]
    assert [(n[1], n[3]) for n in nodes] == [(str(i), "8") for i in range(5)]  # 8 ranks each


def test_user_text_is_printed_as_it_is(tmp_path: Path) -> None:
    markup = "[bold]host[/bold]"
    snap = _snap(tmp_path, [80, 80, 20], header_extra={2: {"hostname": markup}})
    assert f"rank 2 on {markup} at step" in _text(view(snap))


def test_the_final_lines_give_the_runs_own_verdict(tmp_path: Path) -> None:
    snap = _snap(tmp_path, [19, 19])
    snap["ended"] = {
        "status": "failed",
        "failed_ranks": [0, 1],
        "stragglers": [],
        "faults_detected": [{"kind": "hang", "rank": 1, "step": 20, "evidence": "killed"}],
        "errors": ["rank 0: timed out"],
        "verdicts": ["run_failed"],
        "exit_code": 3,
    }
    snap["exit_code"] = 3
    lines = final_lines(snap)
    assert lines[0] == "watch: the run ended: FAILED (run failed) (exit 3)"
    assert "  detected: hang rank 1 at step 20: killed" in lines
    assert json.dumps(snap)  # the snapshot is JSON as it is


def test_above_16_nodes_the_worst_nodes_are_shown(tmp_path: Path) -> None:
    steps = [40] * 160
    steps[150] = 3  # on node 18
    extra = {r: {"node_rank": r // 8, "hostname": f"h{r // 8}"} for r in range(160)}
    text = _text(view(_snap(tmp_path, steps, header_extra=extra)))
    node_part = text.split("\nworst 16 of 20 nodes")[1]
    nodes = [ln.split() for ln in node_part.splitlines() if ln.startswith(" node ")]
    assert len([n for n in nodes if n[1].isdigit()]) == 16
    assert nodes[1][:2] == ["node", "18"]  # after the header row: the node with the stall


def test_a_rank_that_failed_before_its_first_step_says_so() -> None:
    """A factory whose build raised (a new user's): the line read 'after step None'."""
    from minicluster.report.watch import problem_lines

    snap = {
        "job_stall": None,
        "stalled": [],
        "stragglers": [],
        "culprits": [],
        "failed": [{"rank": 0, "node": "node 0", "last_step": None, "error": "UserCodeError"}],
    }
    lines = [text for text, _ in problem_lines(snap)]
    assert lines == ["FAILED: rank 0 on node 0 before its first step: UserCodeError"]


def test_a_window_too_short_to_judge_reads_not_judged_yet_never_healthy(tmp_path: Path) -> None:
    """Every rank finished, no result.json yet, 13 steps in 3 s: the header and the piped status
    line say "not judged yet" and why, and nowhere "healthy"."""
    snap = _snap(tmp_path, [12, 12], total=13)
    assert snap["not_judged"] and snap["problems"] == []
    text = _text(view(snap))
    assert "not judged yet" in text and "healthy" not in text
    assert "< 5 s" in text  # why
    line = status_line(snap)
    assert "not judged yet (the recent measured steps span" in line and "healthy" not in line


def test_an_ended_run_leads_with_its_verdict_and_names_the_slow_link(tmp_path: Path) -> None:
    """A slow link the all-reduce's busbw found names no rank: with 2 ranks it is the link
    between them (was `slow_link rank None`); the verdict comes first, the completion apart
    (was `status ok` above a finding)."""
    snap = _snap(tmp_path, [19, 19])
    snap["state"] = "ended"
    snap["ended"] = {
        "status": "ok",
        "failed_ranks": [],
        "stragglers": [],
        "faults_detected": [
            {"kind": "slow_link", "rank": None, "step": None, "evidence": "busbw 25% of 0.7"}
        ],
        "errors": [],
        "verdicts": ["slow_link"],
        "exit_code": 1,
    }
    snap["exit_code"] = 1
    lines = final_lines(snap)
    assert lines[0] == "watch: the run ended: SLOW LINK (run finished) (exit 1)"
    assert lines[1] == "  detected: slow_link on the link between ranks 0 and 1: busbw 25% of 0.7"
    assert "None" not in "\n".join(lines)
    assert "ended: SLOW LINK (run finished)" in _text(view(snap))
