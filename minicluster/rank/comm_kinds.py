"""Time every collective a training step issues, per kind (`core.comm_kinds`), by wrapping the
Python entry points FSDP2 and DTensor call: `torch.distributed`'s collectives (FSDP2's
all_gather_single / reduce_scatter_single, HSDP's all_reduce, point-to-point) and the functional
collectives of `torch.distributed._functional_collectives` (DTensor's redistributions).

Host clock (gloo): a call's span runs from issue to completion (a synchronous call's return; an
async Work's future, which gloo completes when the data arrived); its blocked time is what the
caller waited (a synchronous call, `Work.wait`). A functional collective is waited at issue (DTensor
consumes its result right away in the layouts built here), so its span is all blocked. Calls on a
group of one rank move no data and are left out. On NCCL the host clock times the launch, not
the transfer: the tracker is not installed there (the kinds are null with that reason).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol

from minicluster.core.comm_kinds import busbw_factor
from minicluster.rank.comm_timing import StepComm, union_ms

# torch.distributed function -> (kind, position and keyword names of the tensor(s) whose bytes
# count, per core.comm_kinds.BYTES_TEXT)
C10D_CALLS: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "all_reduce": ("all_reduce", 0, ("tensor",)),
    "broadcast": ("broadcast", 0, ("tensor",)),
    "all_gather_into_tensor": ("all_gather", 0, ("output_tensor",)),
    "all_gather_single": ("all_gather", 0, ("output_tensor",)),
    "all_gather": ("all_gather", 0, ("tensor_list",)),
    "reduce_scatter_tensor": ("reduce_scatter", 1, ("input",)),
    "reduce_scatter_single": ("reduce_scatter", 1, ("input",)),
    "reduce_scatter": ("reduce_scatter", 1, ("input_list",)),
    "all_to_all_single": ("all_to_all", 1, ("input",)),
    "all_to_all": ("all_to_all", 1, ("input_tensor_list",)),
    "isend": ("send_recv", 0, ("tensor",)),
    "irecv": ("send_recv", 0, ("tensor",)),
    "send": ("send_recv", 0, ("tensor",)),
    "recv": ("send_recv", 0, ("tensor",)),
}
# functional collective -> (kind, position of its group argument, output bytes = input x n)
FUNCOL_CALLS: dict[str, tuple[str, int, bool]] = {
    "all_reduce": ("all_reduce", 2, False),
    "all_gather_single": ("all_gather", 2, True),
    "all_gather_tensor": ("all_gather", 2, True),
    "reduce_scatter_single": ("reduce_scatter", 3, False),
    "reduce_scatter_tensor": ("reduce_scatter", 3, False),
    "all_to_all_single": ("all_to_all", 3, False),
    "broadcast": ("broadcast", 2, False),
}


@dataclass
class Call:
    """One collective call on this rank, host clock in ns."""

    kind: str
    start_ns: int
    nbytes: int
    n: int
    end_ns: int | None = None
    blocked: list[tuple[int, int]] = field(default_factory=list)
    leader: int | None = None  # the lowest global rank of its group; None: unknown


def _nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    return 0


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], pos: int, names: tuple[str, ...]) -> Any:
    for name in names:
        if name in kwargs:
            return kwargs[name]
    return args[pos] if len(args) > pos else None


class Patches:
    """Attributes replaced on their owners (`torch.distributed`, its functional collectives)
    while installed; `uninstall` puts the originals back, last replaced first."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()

    def _patch(self, owner: Any, name: str, wrapper: Any) -> None:
        self._saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, wrapper)


class KindTracker(Patches):
    """Wraps the collective entry points while installed; `take_step()` gives the step's figures
    per kind and resets."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Call] = []
        self.last_kinds: dict[str, dict[str, Any]] = {}  # the last step's, from take_step
        # the last step's sync points: per call in issue order, the ms this rank was blocked in
        # it, its group's lowest global rank, its kind and its bytes x busbw factor (None: the
        # group size is unknown) (`Step.syncs_ms`, `sync_groups`, `sync_kinds`, `sync_bus_bytes`)
        self.last_syncs: list[tuple[float, int | None, str, float | None]] = []
        self._leaders: dict[int, int | None] = {}  # id(group) -> its lowest global rank
        self._works: dict[int, Call] = {}

    def install(self) -> None:
        for name, (kind, pos, names) in C10D_CALLS.items():
            if hasattr(dist, name):
                wrapper = self._c10d_wrapper(getattr(dist, name), kind, pos, names)
                self._patch(dist, name, wrapper)
                if name in ("isend", "irecv"):
                    # P2POp checks its op against distributed_c10d's own isend/irecv (pipelining
                    # builds P2POp(dist.isend, ...)): the same wrapper there too
                    self._patch(dist.distributed_c10d, name, wrapper)
        for name, (kind, gpos, scaled) in FUNCOL_CALLS.items():
            if hasattr(funcol, name):
                self._patch(
                    funcol, name, self._funcol_wrapper(getattr(funcol, name), kind, gpos, scaled)
                )
        self._patch(dist.Work, "wait", self._wait_wrapper(dist.Work.wait))

    def _c10d_wrapper(
        self, original: Callable[..., Any], kind: str, pos: int, names: tuple[str, ...]
    ) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            group = kwargs.get("group")
            n = 2 if kind == "send_recv" else _group_size(group)
            if n is not None and n < 2:
                return original(*args, **kwargs)  # a group of one moves no data
            call = Call(
                kind, time.perf_counter_ns(), _nbytes(_arg(args, kwargs, pos, names)), n or 0
            )
            if kind != "send_recv":  # a pair, not a group: which pair is not kept
                call.leader = self._leader(group, _c10d_leader)
            work = original(*args, **kwargs)
            if isinstance(work, dist.Work):
                # the caller was held while it issued (a slow link holds it until the late
                # call leaves): blocked too
                call.blocked.append((call.start_ns, time.perf_counter_ns()))
                self._works[id(work)] = call
                try:
                    work.get_future().then(lambda _f: _end(call))
                except RuntimeError:  # gloo's send/recv Work has no future: its wait ends it
                    pass
            else:
                call.end_ns = time.perf_counter_ns()
                call.blocked.append((call.start_ns, call.end_ns))
            self.calls.append(call)
            return work

        return wrapped

    def _funcol_wrapper(
        self, original: Callable[..., Any], kind: str, gpos: int, scaled: bool
    ) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if torch.compiler.is_compiling():
                return original(*args, **kwargs)  # traced into a graph: nothing runs here
            group = _arg(args, kwargs, gpos, ("group",))
            n = _funcol_group_size(group)
            if n is not None and n < 2:
                return original(*args, **kwargs)
            nbytes = _nbytes(args[0] if args else kwargs.get("self")) * (n or 1 if scaled else 1)
            start = time.perf_counter_ns()
            out = original(*args, **kwargs)
            if isinstance(out, funcol.AsyncCollectiveTensor):
                out.trigger_wait()
            end = time.perf_counter_ns()
            leader = self._leader(group, _funcol_leader)
            self.calls.append(Call(kind, start, nbytes, n or 0, end, [(start, end)], leader))
            return out

        return wrapped

    def _wait_wrapper(self, original: Callable[..., Any]) -> Callable[..., Any]:
        works = self._works

        def wait(work: Any, *args: Any, **kwargs: Any) -> Any:
            call = works.pop(id(work), None)
            if call is None:
                return original(work, *args, **kwargs)
            start = time.perf_counter_ns()
            out = original(work, *args, **kwargs)
            end = time.perf_counter_ns()
            call.blocked.append((start, end))
            if call.end_ns is None:
                call.end_ns = end
            return out

        return wait

    def _leader(self, group: Any, resolve: Callable[[Any], int | None]) -> int | None:
        key = id(group)
        if key not in self._leaders:
            self._leaders[key] = resolve(group)
        return self._leaders[key]

    def begin_step(self) -> None:
        """Nothing to mark: host clocks of one process share an origin."""

    def take_step(self) -> StepComm:
        """The step's figures over every kind (the union of all spans; the union of all blocked
        time as the exposed part); per kind in `last_kinds` (`Step.comm_kinds`)."""
        self.last_kinds, step = self._figures()
        return step

    def _figures(self) -> tuple[dict[str, dict[str, Any]], StepComm]:
        calls, self.calls = self.calls, []
        self._works.clear()
        self.last_syncs = [
            (
                sum(e - s for s, e in c.blocked) / 1e6,
                c.leader,
                c.kind,
                c.nbytes * busbw_factor(c.kind, c.n) if c.n >= 2 else None,
            )
            for c in calls
        ]
        kinds: dict[str, dict[str, Any]] = {}
        for kind in dict.fromkeys(c.kind for c in calls):
            mine = [c for c in calls if c.kind == kind]
            timed = [c for c in mine if c.end_ns is not None]
            spans = [(c.start_ns / 1e6, c.end_ns / 1e6) for c in timed if c.end_ns is not None]
            blocked = [(s / 1e6, e / 1e6) for c in timed for s, e in c.blocked]
            kinds[kind] = {
                "calls": len(mine),
                "bytes": sum(c.nbytes for c in mine),
                # sum of bytes x factor(n) over timed calls: busbw = this / transfer time
                "bus_bytes": sum(c.nbytes * busbw_factor(kind, c.n) for c in timed if c.n >= 2),
                "time_ms": union_ms(spans) if timed else None,
                "exposed_ms": union_ms(blocked) if timed else None,
                "untimed": len(mine) - len(timed),
            }
        timed_all = [c for c in calls if c.end_ns is not None]
        if not timed_all:
            return kinds, StepComm(None, None, 0, 0, "no collective ran in this step")
        spans = [(c.start_ns / 1e6, c.end_ns / 1e6) for c in timed_all if c.end_ns is not None]
        blocked = [(s / 1e6, e / 1e6) for c in timed_all for s, e in c.blocked]
        step = StepComm(
            comm_ms=union_ms(spans),
            exposed_comm_ms=union_ms(blocked),
            buckets=len(calls),
            bytes=sum(c.nbytes for c in calls),
        )
        return kinds, step


def _end(call: Call) -> None:
    call.end_ns = time.perf_counter_ns()


def _c10d_leader(group: Any) -> int | None:
    """The lowest global rank of a c10d call's group (None: the default group)."""
    try:
        return min(dist.get_process_group_ranks(group or dist.group.WORLD))
    except Exception:  # a group this rank is not in, or a torch that changed: unknown
        return None


def _funcol_leader(group: Any) -> int | None:
    """The lowest global rank of a functional collective's group (None: unknown)."""
    ranks = funcol_group_ranks(group)
    return min(ranks) if ranks else None


def funcol_group_ranks(group: Any) -> list[int] | None:
    """The global ranks of a functional collective's group (a ProcessGroup, a mesh and dim, a
    name); private torch helpers, so anything odd is None."""
    try:
        name = funcol._resolve_group_name(group)
        pg = dist.distributed_c10d._resolve_process_group(name)
        return list(dist.get_process_group_ranks(pg))
    except Exception:
        return None


def _group_size(group: Any) -> int | None:
    try:
        return int(dist.get_world_size(group))
    except Exception:  # a group this rank is not in, or a torch that changed: size unknown
        return None


def _funcol_group_size(group: Any) -> int | None:
    """Size of a functional collective's group (a ProcessGroup, a mesh and dim, a name); private
    torch helpers, so anything odd is None (the call is still timed, its busbw is not)."""
    try:
        name = funcol._resolve_group_name(group)
        return int(dist.distributed_c10d._get_group_size_by_name(name))
    except Exception:
        return None
