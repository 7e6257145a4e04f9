"""The launcher's own signals, read from torchrun's log records: the wording is torch's, so a
contract test pins it against the installed torch, and the reader is tested on records made by
torch's own logger."""

from __future__ import annotations

import inspect
import logging
import signal
from pathlib import Path

import pytest

pytest.importorskip("torch")

from minicluster.launchers.torchrun import (  # noqa: E402
    CLOSING_SIGNAL_MSG,
    ELASTIC_API_LOGGER,
    FORCED_KILL_MSG,
    ClosingSignals,
)


def test_torch_still_logs_the_closing_signals_in_these_words() -> None:
    from torch.distributed.elastic.multiprocessing import api

    assert api.logger.name == ELASTIC_API_LOGGER
    source = inspect.getsource(api.SubprocessContext._close)
    assert f'"{CLOSING_SIGNAL_MSG}"' in source
    assert '"Unable to shutdown process %s via %s, forcefully exiting via %s"' in source
    assert FORCED_KILL_MSG == "Unable to shutdown process %s via %s, forcefully exiting via %s"


def test_closing_signals_are_read_by_pid_and_mapped_to_ranks() -> None:
    from torch.distributed.elastic.multiprocessing import api

    with ClosingSignals() as closing:
        api.logger.warning(CLOSING_SIGNAL_MSG, 4242, signal.SIGTERM.name)
        api.logger.warning(CLOSING_SIGNAL_MSG, 4343, signal.SIGTERM.name)
        api.logger.warning(FORCED_KILL_MSG, 4343, signal.SIGTERM, signal.SIGKILL)
        api.logger.warning("something else %s", 1)
    api.logger.warning(CLOSING_SIGNAL_MSG, 4444, "SIGTERM")  # after the run: not counted
    assert closing.sent == {4242: 15, 4343: 9}
    assert closing.by_rank({0: 4242, 1: 4343, 2: 9999}) == {0: 15, 1: 9}
    assert logging.getLogger(ELASTIC_API_LOGGER).handlers.count(closing) == 0


def test_a_ctrl_c_leaks_no_torch_warnings_but_a_failure_keeps_its_closing_signals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The agent's "Received SIGINT death signal" and the closing signals after it are dropped
    (Ctrl-C: minicluster says "interrupted"); closing signals without a death signal (a worker
    failed) are still logged and read. The wording is pinned against torch's source."""
    from torch.distributed.elastic.agent.server import api as agent_api
    from torch.distributed.elastic.multiprocessing import api

    from minicluster.launchers.torchrun import (
        DEATH_SIGNAL_MSG,
        ELASTIC_AGENT_LOGGER,
        QuietOnDeathSignal,
    )

    assert agent_api.logger.name == ELASTIC_AGENT_LOGGER
    assert f'"{DEATH_SIGNAL_MSG}"' in inspect.getsource(agent_api.SimpleElasticAgent.run)
    with caplog.at_level(logging.WARNING), ClosingSignals() as closing, QuietOnDeathSignal():
        api.logger.warning(CLOSING_SIGNAL_MSG, 4242, signal.SIGTERM.name)  # a failure's victim
        agent_api.logger.warning(DEATH_SIGNAL_MSG, signal.SIGINT)
        api.logger.warning(CLOSING_SIGNAL_MSG, 4343, signal.SIGINT.name)
        api.logger.warning("something else %s", 1)
    said = [r.getMessage() for r in caplog.records]
    assert said == ["Sending process 4242 closing signal SIGTERM", "something else 1"]
    assert closing.sent == {4242: 15}
    assert not logging.getLogger(ELASTIC_AGENT_LOGGER).filters


def test_torch_still_logs_a_failed_worker_in_these_words() -> None:
    from torch.distributed.elastic.multiprocessing import api

    from minicluster.launchers.torchrun import FAILED_MSG

    assert f'"{FAILED_MSG}"' in inspect.getsource(api)


def test_failure_lines_are_held_from_the_printer_but_still_read_and_released_or_dropped() -> None:
    """torchrun's lines about a failed worker are held back from the handlers that print them
    (minicluster may have one clearer line), while `ClosingSignals` still reads them; released,
    they print as torch would have; dropped, they never print."""
    import io

    from torch.distributed.elastic.multiprocessing import api

    from minicluster.launchers.torchrun import FAILED_MSG, HeldFailureLines

    stream = io.StringIO()
    printer = logging.StreamHandler(stream)
    api.logger.addHandler(printer)
    try:
        for keep in (True, False):
            with ClosingSignals() as closing, HeldFailureLines() as held:
                api.logger.warning(CLOSING_SIGNAL_MSG, 4242, signal.SIGTERM.name)
                api.logger.error(FAILED_MSG, 2, 0, 4243, "python")
                api.logger.warning("something else %s", 1)
            assert closing.sent == {4242: 15}
            assert stream.getvalue() == "something else 1\n"
            held.release() if keep else held.drop()
            held.release()  # once only
            said = stream.getvalue().splitlines()
            if keep:
                assert said[1:] == [
                    "Sending process 4242 closing signal SIGTERM",
                    "failed (exitcode: 2) local_rank: 0 (pid: 4243) of binary: python",
                ]
            else:
                assert said == ["something else 1"]
            assert not printer.filters
            stream.truncate(0)
            stream.seek(0)
    finally:
        api.logger.removeHandler(printer)


def test_only_ranks_that_refused_the_input_or_were_stopped_for_it_drop_the_lines(
    tmp_path: Path,
) -> None:
    import json

    from minicluster.core import rundir
    from minicluster.launchers.torchrun import rejected_as_bad_input

    rundir.rank_summary(tmp_path, 0).parent.mkdir(parents=True)

    def summary(rank: int, bad_input: str | None) -> None:
        body = {"format": "minicluster-rank/1.6", "run_id": "r", "rank": rank, "world_size": 2}
        body |= {"hostname": "h", "status": "failed", "last_step": -1, "error": "e"}
        body |= {"bad_input": bad_input}
        rundir.rank_summary(tmp_path, rank).write_text(json.dumps(body))

    summary(0, "workload.factory x.py:build: build(ctx) raised ValueError: boom")
    assert rejected_as_bad_input(tmp_path, {0: 2, 1: -15}, {1: 15})
    assert rejected_as_bad_input(tmp_path, {0: 2}, {})
    assert not rejected_as_bad_input(tmp_path, {0: 2, 1: -15}, {})  # killed from outside
    assert not rejected_as_bad_input(tmp_path, {0: 2, 1: 1}, {})  # a rank crashed
    assert not rejected_as_bad_input(tmp_path, {0: 2, 1: 2}, {})  # rank 1 left no reason
    summary(1, None)
    assert not rejected_as_bad_input(tmp_path, {1: 2}, {})  # exit 2 without a reason
    assert not rejected_as_bad_input(tmp_path, {1: -15}, {1: 15})  # nobody refused
