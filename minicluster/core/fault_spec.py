"""Fault specifications: parse `KIND:key=value,...` strings into typed, checked FaultSpec records.

Stdlib only, so bad `--fault` input is rejected before any rank starts; the rank-side
injection lives in `minicluster.rank.faults`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minicluster.core.errors import ConfigError

# kind -> (required keys, optional keys). Every value is an int (ranks, steps, milliseconds).
# slow_link without a peer slows every link of `rank` (its NIC); with `peer`, only the link
# between the two ranks, in both directions. The shapes in time of a slow rank: `every=N` (an
# intermittent straggler or pause: steps from_step, from_step + N, ...), `from_step` (an onset),
# `drift` (a delay growing by ms_per_step each step from from_step: thermal throttling). A
# straggler's delay sits in forward compute; a pause's between two steps (after the optimizer
# step: a GC, a checkpoint shard write, a log flush).
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "straggler": (("rank", "delay_ms"), ("from_step", "every")),
    "pause": (("rank", "delay_ms"), ("from_step", "every")),
    "drift": (("rank", "ms_per_step"), ("from_step",)),
    "slow_link": (("rank", "delay_ms"), ("peer", "from_step")),
    "crash": (("rank", "step"), ()),
    # The rank sends itself `signal` (9 SIGKILL, as the kernel's OOM killer; 15 SIGTERM, as
    # earlyoom or a kubelet eviction) before `step`: a kill from outside the launcher.
    "kill": (("rank", "step"), ("signal",)),
    "hang": (("rank", "step"), ()),
    "corrupt_grad": (("rank", "step"), ()),
}


# Upper bounds, so a value the clock or the step counter cannot hold is bad input up front
# (time.sleep overflows near 2**63 ns): a delay of at most an hour, ranks and steps in int32.
MAX_VALUE = {
    "rank": 2**31 - 1,
    "peer": 2**31 - 1,
    "step": 2**31 - 1,
    "from_step": 2**31 - 1,
    "delay_ms": 3_600_000,
    "ms_per_step": 60_000,
    "every": 2**31 - 1,
    "signal": 64,
}
KILL_SIGNALS = (9, 15)  # SIGKILL, SIGTERM: what the OOM killer and earlyoom send
DEFAULT_KILL_SIGNAL = 9


@dataclass(frozen=True)
class FaultSpec:
    """One fault to inject on one rank (or, for a slow link with a `peer`, on the link between
    two ranks). `step` is where a one-shot fault fires; `from_step` is where a persistent delay
    starts (0: from the first step); `every` N > 0 makes it fire only every Nth step from there
    (0: every step); `ms_per_step`: a drift's growth per step."""

    kind: str
    rank: int
    step: int | None = None
    delay_ms: int | None = None
    from_step: int = 0
    peer: int | None = None
    every: int = 0
    ms_per_step: int | None = None
    signal: int | None = None  # a kill's signal (None: DEFAULT_KILL_SIGNAL)

    def __str__(self) -> str:
        keys = ["rank", *(["peer"] if self.peer is not None else []), *KINDS[self.kind][0][1:]]
        if self.from_step:
            keys.append("from_step")
        if self.every:
            keys.append("every")
        if self.signal is not None:
            keys.append("signal")
        return f"{self.kind}:" + ",".join(f"{k}={getattr(self, k)}" for k in keys)

    def delay_at_ms(self, step: int) -> float:
        """The delay this persistent fault (straggler, pause, drift) adds at `step`, in ms."""
        if step < self.from_step or (self.every and (step - self.from_step) % self.every):
            return 0.0
        if self.kind == "drift":
            return float((self.ms_per_step or 0) * (step - self.from_step))
        return float(self.delay_ms or 0)

    @property
    def endpoints(self) -> tuple[int, ...]:
        """The ranks that act on this fault: the rank, and the peer of a per-link slow link."""
        return (self.rank,) if self.peer is None else (self.rank, self.peer)


def parse(text: str) -> FaultSpec:
    """`straggler:rank=1,delay_ms=40` -> FaultSpec; ConfigError naming what is wrong."""
    kind, sep, rest = text.strip().partition(":")
    if kind not in KINDS:
        raise ConfigError(
            f"--fault {text!r}: unknown fault kind {kind!r}; allowed: {', '.join(KINDS)}"
        )
    values: dict[str, Any] = {}
    for item in rest.split(",") if sep and rest.strip() else []:
        key, eq, value = item.strip().partition("=")
        if not eq:
            raise ConfigError(f"--fault {text!r}: expected key=value, got {item.strip()!r}")
        if key.strip() in values:
            raise ConfigError(f"--fault {text!r}: {key.strip()} is given twice")
        values[key.strip()] = value.strip()
    return from_mapping({"kind": kind, **values}, source=f"--fault {text!r}")


def from_mapping(data: Any, source: str = "faults") -> FaultSpec:
    """A fault from a config mapping (`{kind: crash, rank: 1, step: 3}`) or a `--fault` string."""
    if isinstance(data, str):
        return parse(data)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a fault must be a mapping or a KIND:key=value string")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{source}: unknown fault kind {kind!r}; allowed: {', '.join(KINDS)}")
    required, optional = KINDS[kind]
    given = {k: v for k, v in data.items() if k != "kind" and v is not None}
    # A mapping written back by to_dict carries every field; a default is not "given".
    for key in ("from_step", "every"):
        if given.get(key) == 0 and key not in optional:
            given.pop(key)
    unknown = sorted(set(given) - set(required) - set(optional))
    if unknown:
        raise ConfigError(
            f"{source}: {kind} takes no key {unknown[0]!r}; keys: {', '.join(required + optional)}"
        )
    missing = [k for k in required if k not in given]
    if missing:
        raise ConfigError(f"{source}: {kind} needs {', '.join(missing)} (e.g. {_example(kind)})")
    ints = {k: _int(source, k, v) for k, v in given.items()}
    if "signal" in ints and ints["signal"] not in KILL_SIGNALS:
        raise ConfigError(
            f"{source}: signal must be one of {', '.join(map(str, KILL_SIGNALS))} "
            f"(SIGKILL, SIGTERM), got {ints['signal']}"
        )
    return FaultSpec(kind=kind, **ints)


def check_against_run(faults: tuple[FaultSpec, ...], world_size: int, total_steps: int) -> None:
    """ConfigError for a fault on a rank outside the world or at a step the run never reaches,
    or a per-link slow link that a training run's all-reduce (over every rank) cannot see; two
    faults of one kind on one rank (`check_distinct`)."""
    check_distinct(faults)
    for f in faults:
        _check_ranks(f, world_size)
        if f.peer is not None and world_size > 2:
            raise ConfigError(
                f"fault {f}: a training run's gradient all-reduce spans all {world_size} ranks, "
                "so no traffic runs on the link between two of them alone; give no peer (every "
                "link of the rank) or test the links with `minicluster collectives --pattern "
                "pairwise`"
            )
        for key in ("step", "from_step"):
            value = getattr(f, key)
            if value is not None and value >= total_steps:
                raise ConfigError(
                    f"fault {f}: {key} {value} is never reached (steps 0..{total_steps - 1})"
                )


# What a collectives job (the pairwise link test) can take: it has no training steps, so only a
# slow link applies, from the start.
BENCHMARK_KINDS = ("slow_link",)
# The collectives patterns that take faults: the pairwise link test and isolation.
FAULT_PATTERNS = ("pairwise", "isolate")


def check_against_benchmark(faults: tuple[FaultSpec, ...], world_size: int, pairwise: bool) -> None:
    """ConfigError for a fault a collectives job cannot act on: any fault outside the pairwise
    link test, a kind other than slow_link, a `from_step` (there are no steps), or a rank or peer
    outside the world; two faults of one kind on one rank or link (`check_distinct`)."""
    check_distinct(faults)
    if faults and not pairwise:
        raise ConfigError(
            f"fault {faults[0]}: only the pairwise link test (--pattern pairwise) and isolation "
            "(minicluster isolate) take faults"
        )
    for f in faults:
        if f.kind not in BENCHMARK_KINDS:
            raise ConfigError(
                f"fault {f}: a collectives job has no training steps; it takes only "
                f"{', '.join(BENCHMARK_KINDS)} faults"
            )
        if f.from_step:
            raise ConfigError(f"fault {f}: a collectives job has no steps; leave out from_step")
        _check_ranks(f, world_size)


_DELAY_KINDS = ("straggler", "pause", "drift", "slow_link")


def check_distinct(faults: tuple[FaultSpec, ...]) -> None:
    """ConfigError for two faults of one kind on one target: the same rank, or for a slow link
    with a peer the same link (either way round). The rank would apply both (delays add up)
    while the result lists two faults the detectors are judged against; one spec says it.
    Different kinds on one rank, and a rank's NIC beside one of its links, stay allowed."""
    seen: dict[tuple[str, int, frozenset[int] | None], FaultSpec] = {}
    for f in faults:
        link = None if f.peer is None else frozenset((f.rank, f.peer))
        key = (f.kind, f.rank if link is None else -1, link)
        if key in seen:
            on = f"rank {f.rank}" if link is None else f"the link {f.rank}-{f.peer}"
            adds = " (their delays would add up)" if f.kind in _DELAY_KINDS else ""
            raise ConfigError(
                f"fault {f}: {on} already has a {f.kind} fault ({seen[key]}); give one "
                f"{f.kind} per {'rank' if link is None else 'link'}{adds}"
            )
        seen[key] = f


def _check_ranks(f: FaultSpec, world_size: int) -> None:
    for key in ("rank", "peer"):
        value = getattr(f, key)
        if value is not None and value >= world_size:
            raise ConfigError(
                f"fault {f}: {key} {value} is outside the world (ranks 0..{world_size - 1})"
            )
    if f.peer is not None and f.peer == f.rank:
        raise ConfigError(f"fault {f}: peer is the rank itself; a link joins two ranks")


def _int(source: str, key: str, value: Any) -> int:
    try:
        number = int(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or (isinstance(value, float) and value != number):
        raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
    if number < 0:
        raise ConfigError(f"{source}: {key} must be >= 0, got {number}")
    limit = MAX_VALUE[key]
    if number > limit:
        raise ConfigError(f"{source}: {key} is {number}; must be <= {limit}")
    return number


def _example(kind: str) -> str:
    required, _ = KINDS[kind]
    sample = {"rank": 1, "delay_ms": 40, "step": 3, "ms_per_step": 1}
    return f"{kind}:" + ",".join(f"{k}={sample[k]}" for k in required)
