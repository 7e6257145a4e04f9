"""Who failed first, and how: the run's failures in the order they happened, causes before victims.

When one rank dies, every other rank fails soon after (its collective loses the peer, or times
out waiting for it, or the launcher stops it), so the end states alone name the wrong rank as
often as the right one. Each failure is told from its own evidence:

- `kill`: killed by a signal the launcher did not send (SIGKILL: the kernel's OOM killer is the
  usual sender; SIGTERM: earlyoom, a kubelet eviction, a user's kill);
- `crash`: the process ended by itself without a summary (its own non-zero exit code, or a
  signal of its own fault such as SIGSEGV or SIGABRT);
- `exception`: the rank raised and said so in its summary (a Python exception of its own);
- `hang`: it stopped recording while its peers' collectives timed out waiting for it;
- `timeout`: its own collective timed out and no rank is known to have stopped first;
- `missing`: it left no records at all;
- `aborted`: a victim, failed after a cause: its collective lost the failed peer or timed out
  waiting for it, or the launcher stopped it once another rank had failed.

Hang or crash is decided from exit codes, the signals the launcher says it sent, whether the
peers' collectives timed out and how long after the dead rank's last record they failed. The
causes come first, in time order (a dead rank's time is its last record: it made no progress
after it; a rank that wrote a summary, the summary's time), the victims after them.
"""

from __future__ import annotations

import math
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from minicluster.analysis import nodes
from minicluster.analysis.rank_status import INTERRUPTED_EXIT, PEER_ERROR
from minicluster.analysis.records import RankRecords

KILL, CRASH, EXCEPTION, HANG, TIMEOUT, MISSING, ABORTED, DIED = (
    "kill",
    "crash",
    "exception",
    "hang",
    "timeout",
    "missing",
    "aborted",
    "rank_failure",
)
CAUSES = (KILL, CRASH, EXCEPTION, HANG, TIMEOUT, MISSING, DIED)
# The failure kinds a detected fault (`faults.detected`) is made of: a rank that stopped recording.
DEATHS = (KILL, CRASH, HANG, DIED)
TIMED_OUT = re.compile(r"timed out|timeout", re.IGNORECASE)
# Signals a process gets from its own fault, not from another process.
OWN_FAULT_SIGNALS = frozenset(
    int(s) for s in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL)
)
OUTSIDE_HINT = {
    int(signal.SIGKILL): "the kernel's OOM killer is a common cause: check dmesg",
    int(signal.SIGTERM): "earlyoom, a kubelet eviction or a user's kill are common senders",
}


@dataclass(frozen=True)
class FailureEvent:
    """One rank's failure: its `kind` (see the module), the signal or exit code it ended with,
    about when (`t_unix_s`, None when nothing it wrote says), the step it was in, and why."""

    rank: int
    kind: str
    evidence: str
    t_unix_s: float | None = None
    step: int | None = None
    signal: int | None = None
    exit_code: int | None = None

    @property
    def cause(self) -> bool:
        """It failed of its own (not a victim of another rank's failure)."""
        return self.kind != ABORTED

    def to_dict(self, node: nodes.NodeId) -> dict[str, Any]:
        """As the result's `failure_order` entry, placed on `node`."""
        return {
            "rank": self.rank,
            "node_rank": node.node_rank,
            "hostname": node.hostname,
            "kind": self.kind,
            "cause": self.cause,
            "signal": self.signal,
            "signal_name": signal_name(self.signal),
            "exit_code": self.exit_code,
            "t_unix_s": self.t_unix_s,
            "step": self.step,
            "evidence": self.evidence,
        }


def signal_name(number: int | None) -> str | None:
    """`SIGKILL` for 9; None for None or a number this platform has no name for."""
    if number is None:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def _last_record_t(rec: RankRecords) -> float | None:
    """The wall-clock time of the rank's last step (or collectives) record."""
    values: list[Any] = []
    t = rec.last_of("t_unix_s")
    if t is not None:
        values = [t[0]]
    elif rec.collectives:
        values = [rec.collectives[-1].get("t_unix_s")]
    return _number(values[0]) if values else None


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


@dataclass(frozen=True)
class _Rank:
    rank: int
    rec: RankRecords | None
    code: int | None

    @property
    def summary(self) -> dict[str, Any] | None:
        return self.rec.summary if self.rec is not None else None

    @property
    def error(self) -> str:
        return str((self.summary or {}).get("error") or "")

    @property
    def step(self) -> int | None:
        if self.rec is None or self.rec.header is None:
            return None
        if self.rec.header.get("job") == "collectives":
            return None  # a collectives job has no steps
        last = self.rec.last_step
        return 0 if last is None else last + 1

    @property
    def t(self) -> float | None:
        if self.rec is None:
            return None
        if self.summary is not None:
            own = _number(self.summary.get("t_unix_s"))
            if own is not None:
                return own
        return _last_record_t(self.rec)


def order(
    by_rank: Mapping[int, RankRecords],
    world_size: int,
    exit_codes: Mapping[int, int],
    stopped: Mapping[int, int] | None,
    interrupted: bool = False,
    collective_timeout_s: float | None = None,
) -> list[FailureEvent]:
    """Every failed rank's failure, causes first in time order, then the victims.

    `stopped`: the ranks the launcher signalled itself (None: it did not say). `interrupted`:
    the user or a scheduler stopped the run; a rank it stopped is no failure of its own.
    """
    ranks = [_Rank(r, by_rank.get(r), exit_codes.get(r)) for r in range(world_size)]
    dead = [
        x
        for x in ranks
        if x.rec is not None
        and x.rec.header is not None
        and x.summary is None
        and not (interrupted and not _own_exit(x.code))
    ]
    failed = [
        x for x in ranks if x.summary is not None and x.summary.get("status") not in ("ok", None)
    ]
    if interrupted:
        failed = [x for x in failed if x.summary and x.summary.get("status") != "interrupted"]
    missing = [x for x in ranks if x.rec is None or x.rec.header is None]
    peer_failed = [x for x in failed if PEER_ERROR.search(x.error)]
    own_failed = [x for x in failed if x not in peer_failed]
    peers_timed_out = [x for x in peer_failed if TIMED_OUT.search(x.error)]

    events: list[FailureEvent] = []
    events += [
        FailureEvent(x.rank, EXCEPTION, f"raised {x.error}", x.t, x.step, exit_code=x.code)
        for x in own_failed
    ]
    events += [
        FailureEvent(
            x.rank,
            MISSING,
            "left no records (never started, or its files are missing)",
            exit_code=x.code,
            signal=-x.code if x.code is not None and x.code < 0 else None,
        )
        for x in missing
    ]
    # Causes that need no comparison with the others: an exit of its own, a signal not from
    # the launcher.
    undecided = []
    for x in dead:
        event = _own_death(x, stopped)
        if event is None:
            undecided.append(x)
        else:
            events.append(event)
    others_failed = [e.rank for e in events]
    for x in undecided:
        events.append(
            _stopped_or_hung(x, stopped, others_failed, peer_failed, peers_timed_out, ranks)
        )
    causes = [e for e in events if e.cause]
    if causes:
        names = ", ".join(str(e.rank) for e in _timed(causes))
        for x in peer_failed:
            how = "timed out waiting" if TIMED_OUT.search(x.error) else "failed"
            events.append(
                FailureEvent(
                    x.rank,
                    ABORTED,
                    f"its collective {how} after rank(s) {names} failed"
                    f"{_elapsed(x, causes, collective_timeout_s)}: {x.error}",
                    x.t,
                    x.step,
                    exit_code=x.code,
                )
            )
    else:
        for x in peer_failed:
            kind = TIMEOUT if TIMED_OUT.search(x.error) else EXCEPTION
            events.append(FailureEvent(x.rank, kind, x.error, x.t, x.step, exit_code=x.code))
    causes = _timed([e for e in events if e.cause])
    victims = _timed([e for e in events if not e.cause])
    return causes + victims


def _timed(events: list[FailureEvent]) -> list[FailureEvent]:
    """In time order; failures with no known time after the timed ones, by rank."""
    return sorted(
        events, key=lambda e: (e.t_unix_s is None, e.t_unix_s or 0.0, e.kind == DIED, e.rank)
    )


def _own_exit(code: int | None) -> bool:
    return code is not None and code > 0 and code != INTERRUPTED_EXIT


def _own_death(x: _Rank, stopped: Mapping[int, int] | None) -> FailureEvent | None:
    """A rank that died of its own doing or was killed from outside, as its exit code and the
    launcher's signals say; None when that takes the other ranks' failures to tell."""
    code = x.code
    last = f"; last recorded step {x.step - 1}" if x.step is not None else ""
    if _own_exit(code):
        assert code is not None
        return FailureEvent(
            x.rank,
            CRASH,
            f"process exited by itself with code {code}, without a summary{last}",
            x.t,
            x.step,
            exit_code=code,
        )
    if code is None or code >= 0:
        return None
    sig = -code
    name = signal_name(sig) or f"signal {sig}"
    if sig in OWN_FAULT_SIGNALS:
        return FailureEvent(
            x.rank,
            CRASH,
            f"process died of {name} (signal {sig}, a fault of its own){last}",
            x.t,
            x.step,
            signal=sig,
            exit_code=code,
        )
    if stopped is not None and x.rank not in stopped:
        hint = OUTSIDE_HINT.get(sig)
        return FailureEvent(
            x.rank,
            KILL,
            f"killed by signal {sig} ({name}) from outside the launcher"
            + (f"; {hint}" if hint else "")
            + last,
            x.t,
            x.step,
            signal=sig,
            exit_code=code,
        )
    return None


def _stopped_or_hung(
    x: _Rank,
    stopped: Mapping[int, int] | None,
    others_failed: list[int],
    peer_failed: list[_Rank],
    peers_timed_out: list[_Rank],
    ranks: list[_Rank],
) -> FailureEvent:
    """A dead rank whose end its own exit does not explain: a victim the launcher stopped after
    another rank failed, a hang (its peers timed out waiting for it), or a death seen only by its
    peers."""
    code = x.code
    sig = -code if code is not None and code < 0 else None
    name = signal_name(sig) or (f"signal {sig}" if sig else "")
    last = f"; last recorded step {x.step - 1}" if x.step is not None else ""
    by_launcher = sig is not None and (stopped is None or x.rank in stopped)
    if others_failed and by_launcher:
        who = ", ".join(str(r) for r in others_failed)
        sent = "" if stopped is not None else " (the launcher's record does not list its signals)"
        return FailureEvent(
            x.rank,
            ABORTED,
            f"stopped by the launcher ({name}) after rank(s) {who} failed{sent}",
            x.t,
            x.step,
            signal=sig,
            exit_code=code,
        )
    if peers_timed_out:
        waited = ", ".join(str(p.rank) for p in peers_timed_out)
        then = f"; then stopped by the launcher ({name})" if by_launcher else ""
        return FailureEvent(
            x.rank,
            HANG,
            f"stopped recording; rank(s) {waited} timed out waiting for it{then}{last}",
            x.t,
            x.step,
            signal=sig,
            exit_code=code,
        )
    if sig is not None:
        # The launcher does not say whom it signalled, but it signals only after a failure and
        # none came before this one: the signal came from outside.
        hint = OUTSIDE_HINT.get(sig)
        return FailureEvent(
            x.rank,
            KILL,
            f"killed by signal {sig} ({name}); no other rank failed before it, so not by the "
            "launcher" + (f"; {hint}" if hint else "") + last,
            x.t,
            x.step,
            signal=sig,
            exit_code=code,
        )
    if peer_failed:
        return FailureEvent(
            x.rank,
            CRASH,
            f"stopped recording; the other ranks lost their connection to it (no exit code "
            f"recorded){last}",
            x.t,
            x.step,
        )
    return FailureEvent(
        x.rank,
        DIED,
        f"stopped recording; no exit code or peer error to tell why{last}",
        x.t,
        x.step,
    )


def _elapsed(x: _Rank, causes: list[FailureEvent], timeout_s: float | None) -> str:
    """How long after the first cause's last record this victim's collective failed, against
    the collective timeout: far inside it, nothing hung."""
    first = _timed(causes)[0].t_unix_s
    if first is None or x.t is None:
        return ""
    text = f" ({x.t - first:.2f} s after rank {_timed(causes)[0].rank}'s last record"
    if timeout_s:
        text += f"; collective timeout {timeout_s:g} s"
    return text + ")"
