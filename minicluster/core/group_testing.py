"""Adaptive group testing for bad units (ranks or nodes): which groups to test next, and each
test's verdict, as a pure function of the busbw measured so far.

Shared by the rank side (the ranks of `collectives --pattern isolate` / `minicluster isolate`
run it between rounds, each on the same gathered numbers, so all agree on the next round), the
analysis side (which replays the recorded rounds through it: the same records always give the
same verdict) and `scripts/sim_isolate.py` (which drives it with a seeded busbw model). It lives
in `core` because the ranks need it mid-run and `rank` imports only `core`. Stdlib only.

Algorithm (README "Isolating bad nodes"): Li's s-stage group testing (JASA 57, 1962) with
halving at every stage, as in Hwang's binary splitting (JASA 67, 1972); each stage's disjoint
groups run at once (one round):
- round 1 (screen): every unit in a group of `group_size` (the sizes differ by at most one);
- a slow group of 4 units or more is split in halves, each tested alone (split);
- a unit of a slow group of 2 or 3 is tested with a cleared unit (leaf); a slow leaf is tested
  again with another cleared unit (confirm): `confirmations` slow tests beside cleared partners
  (default 2) name it bad, more normal than slow ones clear it (at most 2 x confirmations - 1
  tests);
- a normal group clears its units; idle cleared units run control groups of the tested sizes,
  so each round has healthy groups of the same size to judge against.

A group's test: busbw of an all_reduce over the group's ranks (higher is better). Per round and
group size, the pool is the round's control groups of that size when there are at least
2 x max_bad + 1 of them, else all of that size's groups; with at least 2 x max_bad + 1 groups
the baseline is the pool's median busbw (bad groups cannot move a median of that many), with a
scale of max(MAD x 1.4826, mad_floor), the MAD of ln(busbw / median) over this pool and every
median-judged pool of the rounds before (the job's own spread, better known every round: a
round of 7 controls alone would often guess it low); otherwise the fastest of them, with the scale
`lone_scale` (too few groups for a spread). z = ln(busbw / baseline) / scale; slow when
z < -z, or busbw < min_busbw_gbps (the reference's floor), or any element arrived wrong.

Every slow group is followed up, however many there are (a round's groups run at once, so more
suspects cost group tests, not rounds): a false alarm is cleared by its halves or its leaf
tests. More than max_bad units named bad is said (`more_than_max_bad`): more bad units than the
job was sized for, or a slow fabric.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field, fields, replace
from typing import Any

SCREEN, SPLIT, LEAF, CONFIRM, CONTROL = "screen", "split", "leaf", "confirm", "control"
MAD_NORMAL = 1.4826
SPRT, CONFIRMATIONS = "sprt", "confirmations"
DECISIONS = (SPRT, CONFIRMATIONS)


@dataclass(frozen=True)
class Params:
    """What the search is asked: how many units, how many may be bad, how slow is slow."""

    n_units: int
    max_bad: int = 3
    group_size: int | None = None  # of round 1; None: `auto_group_size`
    z: float = 3.0
    mad_floor: float = 0.05  # the least scale when enough groups give a spread
    lone_scale: float = 0.25  # the scale when too few groups of a size give one
    min_busbw_gbps: float | None = None  # absolute floor (a reference's floor), None: none
    max_rounds: int = 50
    # slow tests beside cleared partners that name a suspect bad (more normal than slow ones
    # clear it first): at most 2 x confirmations - 1 tests
    confirmations: int = 2
    # How a suspect is decided: "sprt" (sequential probability ratio tests, the default) or
    # "confirmations" (the first rule: `confirmations` slow tests; what runs recorded before
    # the SPRT replay with, `params_from_record`).
    decision: str = "sprt"
    alpha: float = 1e-3  # SPRT: a healthy unit named bad (under the noise model), per suspect
    beta: float = 1e-3  # SPRT: a bad unit cleared at its tests beside cleared partners
    group_alpha: float = 0.2  # SPRT: a healthy group split (costs group tests, pulls nobody)
    # SPRT: a group holding a bad unit cleared (a miss). None: 1e-3 on 8 units or more (a bad
    # unit passes 2-4 group stages, each a chance to be missed), 0.05 below 8 (one group stage,
    # judged against the fastest group: weak evidence per test, and the suspects wait for its
    # units as partners; 4 ranks with one bad then take 5 rounds, not 7)
    group_beta: float | None = None
    # The noise model of a healthy test, r = ln(busbw / baseline): (1 - tail_mass) x normal(0,
    # scale) + tail_mass x a slow tail, P(busbw/baseline < x) = tail_mass x x^tail_rate (a busy
    # host slows a group now and then; tests/fixtures/isolate: 9% of healthy groups below 50%).
    tail_mass: float = 0.2
    tail_rate: float = 1.2
    # A bad unit: its groups at bad_lo..bad_hi of healthy (log-uniform) with weight
    # 1 - far_weight, or far slower, bad_far..bad_lo (a link at a few %), the same noise on top.
    bad_lo: float = 0.1
    bad_hi: float = 0.8
    bad_far: float = 0.001
    far_weight: float = 0.15
    # slow tests that must agree before a unit is named bad: one test's evidence is at most
    # ln((1 - beta) / alpha) / min_agree (one stalled reading never names a unit)
    min_agree: int = 4
    # fast tests that must agree before a suspect is cleared: one test's evidence toward healthy
    # is at most |ln(beta / (1 - alpha))| / clear_agree (one fast reading of a bad unit's group,
    # the noise's upper tail, never clears it); 0: no such bound
    clear_agree: int = 2
    group_clear_agree: int = 0  # the same for a group's tests alone (screen, split)
    # control groups per tested size and round when idle cleared units allow (at least
    # 2 x max_bad + 1): more make the round's median robust to a few healthy groups slowed at once
    controls: int = 31
    # a suspect's partners: the cleared units it was tested with least first (False: the ones
    # not met yet first, then in order)
    rotate_partners: bool = True
    max_tests: int = 12  # per suspect unit (stage 1); one still undecided goes to stage 2
    # Stage 2: a unit undecided after max_tests gets up to stage2_tests more tests beside cleared
    # partners, judged by a fresh SPRT (its own evidence, stage 1's set aside) whose bad
    # hypothesis is the unit's own speed: the median ln(busbw / baseline) of its stage-1 tests,
    # kept within bad_far..bad_hi (an alternative fixed before the tests that judge it, so
    # Wald's bounds hold as in stage 1). Still undecided after them: unresolved, never named.
    # 0: no stage 2.
    stage2_tests: int = 16
    group_max_tests: int = 4  # per suspect group; one still undecided is split (as a slow one)

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, got {self.decision}")
        for name in ("alpha", "beta", "group_alpha", "group_beta", "tail_mass"):
            if getattr(self, name) is None and name == "group_beta":
                continue
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if not 0 < self.bad_far < self.bad_lo < self.bad_hi < 1:
            raise ValueError(
                f"need 0 < bad_far < bad_lo < bad_hi < 1, got {self.bad_far}, {self.bad_lo}, "
                f"{self.bad_hi}"
            )
        if not 0 <= self.far_weight < 1:
            raise ValueError(f"far_weight must be in [0, 1), got {self.far_weight}")
        if self.stage2_tests < 0:
            raise ValueError(f"stage2_tests must be >= 0, got {self.stage2_tests}")
        if min(self.clear_agree, self.group_clear_agree, self.controls) < 0:
            raise ValueError("clear_agree, group_clear_agree and controls must be >= 0")
        if min(self.min_agree, self.max_tests, self.group_max_tests) < 1:
            raise ValueError("min_agree, max_tests and group_max_tests must be >= 1")
        if self.n_units < 2:
            raise ValueError(f"group testing needs 2 units or more, got {self.n_units}")
        if self.confirmations < 1:
            raise ValueError(f"confirmations must be >= 1, got {self.confirmations}")
        if self.max_bad < 1:
            raise ValueError(f"max_bad must be >= 1, got {self.max_bad}")
        if self.group_size is not None and not 2 <= self.group_size <= self.n_units:
            raise ValueError(
                f"group_size must be in 2..{self.n_units} (the units), got {self.group_size}"
            )

    @property
    def group_miss(self) -> float:
        """group_beta, or its default for this many units."""
        if self.group_beta is not None:
            return self.group_beta
        return 1e-3 if self.n_units >= 8 else 0.05

    @property
    def first_group_size(self) -> int:
        return self.group_size or auto_group_size(self.n_units)


def params_from_record(recorded: dict[str, Any]) -> Params:
    """The Params a run recorded (its plan's `params`, or a result's `isolate.params`): keys
    this version does not know are left out, and a record without `decision` was made by the
    first rule (`confirmations`), so it replays with that rule (the same verdict as then)."""
    known = {f.name for f in fields(Params)}
    given = {k: v for k, v in recorded.items() if k in known}
    given.setdefault("decision", CONFIRMATIONS)
    # added since: a record without them ran without them (the same verdict as then)
    for name in ("clear_agree", "group_clear_agree", "controls", "stage2_tests", "rotate_partners"):
        given.setdefault(name, 0)
    return Params(**given)


def auto_group_size(n_units: int) -> int:
    """Round 1's group size: 8 on a large job (3 halvings to a leaf), a quarter of the units on a
    small one, never below 2."""
    return max(2, min(8, n_units // 4))


@dataclass
class Group:
    """One group test: its units, why it runs, and (once measured) its busbw and verdict."""

    units: tuple[int, ...]
    role: str
    subject: tuple[int, ...]  # the units the test is about (a leaf's suspect; none for control)
    busbw_gbps: float | None = None  # None: not measured
    wrong: int = 0
    baseline_gbps: float | None = None
    pool: int = 0  # groups the baseline came from
    scale: float | None = None
    z: float | None = None
    slow: bool = False
    why: str | None = None
    llr: float | None = None  # SPRT: ln(P(r | bad) / P(r | healthy)) of this test (capped)


@dataclass
class State:
    """Where the search stands after the rounds replayed so far."""

    params: Params
    rounds: list[list[Group]] = field(default_factory=list)
    status: dict[int, str] = field(default_factory=dict)  # unknown|suspect|cleared|bad
    # pending work, in a fixed order: ("group", units) to test alone, ("unit", u) to test
    # beside a cleared unit
    pending: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    tests: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # unit: (round, group)
    more_than_max_bad: bool = False
    stop_reason: str | None = None
    # ln(busbw / baseline) of every group a median baseline was taken from, over the rounds so
    # far: the job's own spread of healthy groups, which later rounds' scales start from
    spread: list[float] = field(default_factory=list)
    # SPRT: what each pending group is (SCREEN: a round-1 group retested; SPLIT: a half)
    origin: dict[tuple[int, ...], str] = field(default_factory=dict)

    @property
    def bad(self) -> list[int]:
        return sorted(u for u, s in self.status.items() if s == "bad")

    @property
    def unresolved(self) -> list[int]:
        return sorted(u for u, s in self.status.items() if s in ("suspect", "unknown"))


def start(params: Params) -> State:
    """The state before round 1."""
    state = State(params, status={u: "unknown" for u in range(params.n_units)})
    if params.decision == SPRT:
        for g in split_even(list(range(params.n_units)), params.first_group_size):
            state.pending.append(("group", g))
            state.origin[g] = SCREEN
    return state


def split_even(units: list[int], size: int) -> list[tuple[int, ...]]:
    """`units` in consecutive groups of about `size` (sizes differ by at most one, none below
    2 when there are 2 units or more)."""
    n_groups = max(1, len(units) // size)
    base, extra = divmod(len(units), n_groups)
    out, i = [], 0
    for g in range(n_groups):
        k = base + (1 if g < extra else 0)
        out.append(tuple(units[i : i + k]))
        i += k
    return out


def plan(state: State) -> list[Group] | None:
    """The next round's groups (disjoint), or None when the search is over (`stop_reason`)."""
    p = state.params
    if state.stop_reason is not None:
        return None
    if not state.rounds and p.decision == CONFIRMATIONS:
        return [Group(g, SCREEN, g) for g in split_even(list(range(p.n_units)), p.first_group_size)]
    if not state.pending:
        state.stop_reason = "nothing left to test"
        return None
    if len(state.rounds) >= p.max_rounds:
        state.stop_reason = f"max rounds ({p.max_rounds}) reached"
        return None
    busy: set[int] = set()
    groups: list[Group] = []
    cleared = [u for u in range(p.n_units) if state.status[u] == "cleared"]
    for kind, units in state.pending:
        if kind == "group":
            groups.append(Group(units, state.origin.get(units, SPLIT), units))
            busy.update(units)
    for kind, units in state.pending:
        if kind != "unit":
            continue
        (u,) = units
        partners = _partner_order(state, u, cleared, busy)
        if not partners:
            continue  # waits for a free cleared unit (next round), or stops below
        role = CONFIRM if state.tests.get(u) and _leaf_tests(state, u) else LEAF
        groups.append(Group((u, partners[0]), role, (u,)))
        busy.update((u, partners[0]))
    if not groups:
        state.stop_reason = "no cleared unit to test the suspects against"
        # every group slow (below a reference's floor, or a fabric slow everywhere)
        state.more_than_max_bad = len(state.unresolved) > p.max_bad
        return None
    _add_controls(state, groups, cleared, busy)
    return groups


def _leaf_tests(state: State, u: int) -> list[Group]:
    """The unit's tests beside a cleared partner so far."""
    return [
        state.rounds[r][g]
        for r, g in state.tests.get(u, [])
        if state.rounds[r][g].role in (LEAF, CONFIRM)
    ]


def _partner_order(state: State, u: int, cleared: list[int], busy: set[int]) -> list[int]:
    """Free cleared units, the ones `u` has not been tested with first (`rotate_partners`: the
    ones it was tested with least first, so a bad unit wrongly cleared is one partner of many,
    not the one every later test runs beside)."""
    free = [c for c in cleared if c not in busy]
    if state.params.rotate_partners:
        met: dict[int, int] = {}
        for g in _leaf_tests(state, u):
            for x in g.units:
                met[x] = met.get(x, 0) + 1
        return sorted(free, key=lambda c: met.get(c, 0))  # the least met first (stable)
    seen = {x for g in _leaf_tests(state, u) for x in g.units}
    return [c for c in free if c not in seen] + [c for c in free if c in seen]


def _add_controls(state: State, groups: list[Group], cleared: list[int], busy: set[int]) -> None:
    """Control groups of idle cleared units, per tested size, until that size has 2 x max_bad + 1
    of them in the round (enough for a median and a spread of healthy groups alone) or the idle
    cleared units run out."""
    least = 2 * state.params.max_bad + 1
    free = [c for c in cleared if c not in busy]
    sizes = sorted({len(g.units) for g in groups})
    have = dict.fromkeys(sizes, 0)
    # every size its least first, then (`controls`) more, so no size is left without a pool
    for want in (least, max(least, state.params.controls)):
        for size in sizes:
            while have[size] < want and len(free) >= size:
                units, free = tuple(free[:size]), free[size:]
                groups.append(Group(units, CONTROL, ()))
                have[size] += 1


def record(state: State, groups: list[Group]) -> None:
    """Judge one measured round (its groups as `plan` gave them, busbw filled in) and move the
    search on."""
    p = state.params
    r = len(state.rounds)
    state.rounds.append(groups)
    _judge(state, groups)
    for i, g in enumerate(groups):
        for u in g.units:
            state.tests.setdefault(u, []).append((r, i))
    if p.decision == SPRT:
        _record_sprt(state, groups)
        return
    if r == 0:
        for g in groups:
            for u in g.units:
                state.status[u] = "suspect" if g.slow else "cleared"
        state.pending = [item for g in groups if g.slow for item in _narrow(g.units)]
        return
    done = {tuple(g.units) for g in groups if g.role == SPLIT}
    tested = {g.subject[0] for g in groups if g.role in (LEAF, CONFIRM)}
    pending: list[tuple[str, tuple[int, ...]]] = []
    for kind, units in state.pending:
        if kind == "group" and units in done:
            g = next(x for x in groups if x.role == SPLIT and x.units == units)
            if g.slow:
                pending.extend(_narrow(units))
            else:
                for u in units:
                    state.status[u] = "cleared"
        elif kind == "unit" and units[0] in tested:
            u = units[0]
            leaf = _leaf_tests(state, u)
            n_slow = sum(1 for t in leaf if t.slow)
            if n_slow >= p.confirmations:
                state.status[u] = "bad"
            elif len(leaf) - n_slow > n_slow:
                state.status[u] = "cleared"
            else:
                pending.append((kind, units))
        else:
            pending.append((kind, units))  # not scheduled this round (no free partner)
    state.pending = pending
    if len(state.bad) > p.max_bad:
        state.more_than_max_bad = True


def thresholds(p: Params, unit: bool) -> tuple[float, float]:
    """Wald's SPRT bounds (a, b) on the summed evidence: >= a decides bad (a unit) or slow (a
    group), <= b decides healthy. Wald 1945: the error rates are at most alpha / (1 - beta)
    and beta / (1 - alpha) when the noise model holds."""
    alpha, beta = (p.alpha, p.beta) if unit else (p.group_alpha, p.group_miss)
    return math.log((1 - beta) / alpha), math.log(beta / (1 - alpha))


def evidence(tests: list[Group]) -> float:
    """The summed evidence of a suspect's tests (a test not measured adds none)."""
    return sum(g.llr for g in tests if g.llr is not None)


def item_tests(state: State, units: tuple[int, ...]) -> list[Group]:
    """A pending group's own tests (screen or split, alone) so far."""
    return [
        state.rounds[r][i]
        for r, i in state.tests.get(units[0], [])
        if state.rounds[r][i].units == units and state.rounds[r][i].role in (SCREEN, SPLIT)
    ]


def _record_sprt(state: State, groups: list[Group]) -> None:
    """Move the SPRT search on: each suspect tested this round is decided when its summed
    evidence crosses a bound, else tested again next round (at most max_tests times: a group
    still undecided is split, as a slow one; a unit stays unresolved and is never named)."""
    p = state.params
    tested = {g.units for g in groups if g.role in (SCREEN, SPLIT)}
    tested |= {(g.subject[0],) for g in groups if g.role in (LEAF, CONFIRM)}
    pending: list[tuple[str, tuple[int, ...]]] = []
    for kind, units in state.pending:
        if units not in tested:
            pending.append((kind, units))  # not scheduled this round (no free partner)
            continue
        if kind == "group":
            hist = item_tests(state, units)
            high, low = thresholds(p, unit=False)
            lam = evidence(hist)
            if lam >= high or (lam > low and len(hist) >= p.group_max_tests):
                for u in units:
                    state.status[u] = "suspect"
                pending.extend(_narrow(units))
            elif lam <= low:
                for u in units:
                    state.status[u] = "cleared"
            else:
                pending.append((kind, units))
        else:
            (u,) = units
            leaf = _leaf_tests(state, u)
            high, low = thresholds(p, unit=True)
            stage2 = len(leaf) > p.max_tests
            if stage2:
                _stage2_evidence(state, leaf[: p.max_tests], leaf[-1])
                leaf = leaf[p.max_tests :]
            lam = evidence(leaf)
            if lam >= high:
                state.status[u] = "bad"
            elif lam <= low:
                state.status[u] = "cleared"
            elif len(leaf) < (p.stage2_tests if stage2 else p.max_tests + p.stage2_tests):
                pending.append((kind, units))
            # else: undecided after every test: unresolved, never named bad
    state.pending = pending
    if len(state.bad) > p.max_bad:
        state.more_than_max_bad = True


def _stage2_evidence(state: State, stage1: list[Group], g: Group) -> None:
    """A stage-2 test's evidence (replacing the one `_judge` gave it): bad = the unit's speed at
    the median ln(busbw / baseline) of its stage-1 tests (within bad_far..bad_hi), the same
    noise on top; capped as every test is."""
    p = noise_params(state)
    if g.llr is None or math.isinf(g.llr) or g.z is None or g.scale is None:
        return  # not measured, or decisive (below the floor, wrong elements): kept as judged
    rs = [t.z * t.scale for t in stage1 if t.z is not None and t.scale is not None]
    mu = statistics.median(rs) if rs else math.log(p.bad_hi)
    mu = min(max(mu, math.log(p.bad_far)), math.log(p.bad_hi))
    high, low = thresholds(p, unit=True)
    x = llr_at(g.z * g.scale, g.scale, mu, p)
    x = min(x, high / p.min_agree * (1 + 1e-9))
    if p.clear_agree:
        x = max(x, low / p.clear_agree * (1 + 1e-9))
    g.llr = x
    g.slow = x > 0


def llr_at(r: float, scale: float, mu: float, p: Params) -> float:
    """ln(f1(r) / f0(r)) with f1 a unit at speed e^mu exactly (the same noise model shifted by
    mu), f0 the healthy noise model of `llr`."""
    return _healthy_log_density(r - mu, scale, p) - _healthy_log_density(r, scale, p)


def _healthy_log_density(r: float, scale: float, p: Params) -> float:
    """ln f0(r): the healthy noise model of `llr` and `llr_at` (one density for both)."""
    eps, lam = p.tail_mass, p.tail_rate
    f = (1 - eps) * math.exp(-0.5 * (r / scale) ** 2) / (scale * math.sqrt(2 * math.pi))
    if r < 0:
        f += eps * lam * math.exp(lam * r)
    return math.log(max(f, 1e-300))


def llr(r: float, scale: float, p: Params) -> float:
    """ln(f1(r) / f0(r)) of one test, r = ln(busbw / baseline): f0 the healthy noise model
    (normal core of sd `scale`, slow tail tail_mass x tail_rate x e^(tail_rate r) for r < 0),
    f1 a bad unit's (its speed log-uniform in bad_lo..bad_hi, or with weight far_weight in
    bad_far..bad_lo, the same noise on top)."""
    eps, lam = p.tail_mass, p.tail_rate
    f1 = 0.0
    for a, b, weight in (
        (p.bad_lo, p.bad_hi, 1 - p.far_weight),
        (p.bad_far, p.bad_lo, p.far_weight),
    ):
        lo, hi = math.log(a), math.log(b)
        width = hi - lo
        f1 += weight * (1 - eps) * _normal_mass((r - hi) / scale, (r - lo) / scale) / width
        if r < hi:
            tail = math.exp(lam * (r - max(r, lo))) - math.exp(lam * (r - hi))
            f1 += weight * eps / width * tail
    return math.log(max(f1, 1e-300)) - _healthy_log_density(r, scale, p)


def _normal_mass(a: float, b: float) -> float:
    """P(a < Z < b) for a standard normal Z, a <= b, without cancellation in either tail."""
    if a > 0:
        return 0.5 * (math.erfc(a / math.sqrt(2)) - math.erfc(b / math.sqrt(2)))
    return 0.5 * (math.erfc(-b / math.sqrt(2)) - math.erfc(-a / math.sqrt(2)))


def _narrow(units: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    """What a slow group's units are tested as next: its halves, or each unit beside a cleared
    one."""
    if len(units) >= 4:
        half = len(units) // 2
        return [("group", units[:half]), ("group", units[half:])]
    return [("unit", (u,)) for u in units]


def _judge(state: State, groups: list[Group]) -> None:
    """Each measured group's baseline, z and verdict, against the same-size groups of its
    round (and the spread of the median-judged pools of every round so far)."""
    p = state.params
    for size in sorted({len(g.units) for g in groups}):
        same = [g for g in groups if len(g.units) == size and g.busbw_gbps]
        if not same:
            continue
        want = 2 * p.max_bad + 1
        controls = [g for g in same if g.role == CONTROL]
        # known-healthy groups alone when there are enough: suspects must not widen the spread
        pool = controls if len(controls) >= want else same
        what = "control groups" if pool is controls else "groups"
        logs = [math.log(g.busbw_gbps) for g in pool if g.busbw_gbps]
        if len(pool) >= want:
            center = statistics.median(logs)
            state.spread.extend(x - center for x in logs)
            mad = statistics.median(abs(x) for x in state.spread) * MAD_NORMAL
            scale, how = max(mad, p.mad_floor), f"the median of {len(pool)} {what} of {size}"
        else:
            center, scale = max(logs), p.lone_scale
            how = (
                f"the fastest of {len(pool)} groups of {size}"
                if len(pool) > 1
                else f"the only group of {size}"
            )
        baseline = math.exp(center)
        for g in same:
            assert g.busbw_gbps is not None
            g.baseline_gbps, g.pool, g.scale = baseline, len(pool), scale
            g.z = (math.log(g.busbw_gbps) - center) / scale
            why = []
            if g.z < -p.z:
                why.append(
                    f"busbw {g.busbw_gbps:.3g} GB/s = {g.busbw_gbps / baseline:.0%} of {how} "
                    f"({baseline:.3g} GB/s), z {g.z:.1f} < -{p.z:g}"
                )
            below_floor = p.min_busbw_gbps is not None and g.busbw_gbps < p.min_busbw_gbps
            if below_floor:
                why.append(f"busbw {g.busbw_gbps:.3g} GB/s < floor {p.min_busbw_gbps:.3g} GB/s")
            if g.wrong:
                why.append(f"{g.wrong} elements wrong")
            g.slow, g.why = bool(why), "; ".join(why) or None
            if p.decision == SPRT:
                _sprt_verdict(g, noise_params(state), decisive=bool(g.wrong) or below_floor)
    for g in groups:
        if g.busbw_gbps is None:
            g.slow, g.why = True, g.why or "not measured"
            if p.decision == SPRT:
                g.slow, g.llr = False, 0.0  # no evidence either way: tested again


def noise_params(state: State) -> Params:
    """The params with the slow tail no lighter than the job's own: once 30 or more groups were
    judged against a median, tail_mass is raised to what their share below half the median says
    (P(< 1/2) = tail_mass x 2^-tail_rate), never lowered, at most 0.9 (a noisier host than the
    model's gets weaker evidence per test, so no more false pulls, only more tests)."""
    p = state.params
    if len(state.spread) < 30:
        return p
    below = sum(1 for x in state.spread if x < -math.log(2)) / len(state.spread)
    mass = min(0.9, below * 2**p.tail_rate)
    return p if mass <= p.tail_mass else replace(p, tail_mass=mass)


def _sprt_verdict(g: Group, p: Params, decisive: bool) -> None:
    """A judged group's SPRT evidence (`decisive`: below the reference's floor or wrong
    elements: slow for certain), and `slow` as the evidence's sign (what the round shows)."""
    assert g.z is not None and g.scale is not None and g.baseline_gbps and g.busbw_gbps
    if decisive:
        g.llr = math.inf
    else:
        high, low = thresholds(p, unit=True)
        cap = high / p.min_agree * (1 + 1e-9)
        g.llr = min(llr(g.z * g.scale, g.scale, p), cap)
        agree = p.clear_agree if g.role in (LEAF, CONFIRM) else p.group_clear_agree
        if agree:
            g.llr = max(g.llr, low / agree * (1 + 1e-9))
    g.slow = g.llr > 0
    if g.slow and g.why is None:
        g.why = (
            f"busbw {g.busbw_gbps:.3g} GB/s = {g.busbw_gbps / g.baseline_gbps:.0%} of its "
            f"baseline ({g.baseline_gbps:.3g} GB/s): evidence {g.llr:+.2f} toward slow"
        )
    elif not g.slow:
        g.why = None


def replay(
    params: Params, measured: list[list[tuple[tuple[int, ...], float | None, int]]]
) -> State:
    """The search replayed on recorded rounds (each: (units, busbw, wrong) per group, in the
    order planned). ValueError when a recorded round is not what the plan asks for."""
    state = start(params)
    for i, rnd in enumerate(measured, 1):
        groups = plan(state)
        if groups is None:
            raise ValueError(f"round {i} was recorded but the search had stopped before it")
        if [g.units for g in groups] != [tuple(u) for u, _, _ in rnd]:
            raise ValueError(
                f"round {i}: the recorded groups {[list(u) for u, _, _ in rnd]} are not the "
                f"planned {[list(g.units) for g in groups]}"
            )
        for g, (_, busbw, wrong) in zip(groups, rnd, strict=True):
            g.busbw_gbps, g.wrong = busbw, wrong
        record(state, groups)
    plan(state)  # sets stop_reason when the recorded rounds ran to the end
    return state
