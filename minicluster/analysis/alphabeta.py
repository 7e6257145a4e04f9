"""The alpha-beta cost model of ring all-reduce (one flat ring, or a two-level ring of nodes), and
its parameters fitted from a measured all_reduce size sweep.

Ring all-reduce of `b` bytes over `n` ranks is a reduce-scatter and an all-gather, each `n - 1`
steps that move `b / n` bytes (Thakur, Rabenseifner & Gropp, "Optimization of Collective
Communication Operations in MPICH", IJHPCA 2005; Patarasuk & Yuan 2009):

    t(n, b) = 2(n-1) * alpha + 2(n-1)/n * b / beta

alpha: latency of one step (us); beta: link bandwidth in decimal GB/s (1 GB = 1e9 B), which is
what nccl-tests' busbw = algbw x 2(n-1)/n estimates, so a measured busbw is comparable with it.

Two levels (G ranks per node, M = n / G nodes): reduce-scatter and all-gather inside each node,
an all-reduce of each rank's `b / G` shard across the nodes (NCCL's tree/ring hierarchy reduced
to rings):

    t = 2(G-1) * alpha_intra + 2(G-1)/G * b / beta_intra + 2(M-1) * alpha_inter
        + 2(M-1)/M * (b / G) / beta_inter
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from minicluster.core.errors import InputError
from minicluster.result.model import RunResult

FLAT_FORMULA = "t(n, bytes) = 2(n-1) * alpha + 2(n-1)/n * bytes / beta"
TWO_LEVEL_FORMULA = (
    "t(n, bytes) = 2(G-1) * alpha_intra + 2(G-1)/G * bytes / beta_intra + 2(M-1) * alpha_inter "
    "+ 2(M-1)/M * (bytes / G) / beta_inter, G ranks per node, M = n / G nodes (n <= G: one "
    "flat ring on the intra-node link)"
)
# Relative residual at which the robust fit starts to discount a point (a noisy small size).
_FIT_SCALE = 0.1
# Below this share of the largest size's time, the fitted bandwidth term is noise, not a measure.
_MIN_BANDWIDTH_SHARE = 0.001


@dataclass(frozen=True)
class Link:
    """Alpha-beta parameters of one link: `alpha_us` per ring step, `beta_gbps` decimal GB/s.

    `source` says how they were obtained; `fit` holds the fit's diagnostics when fitted.
    """

    alpha_us: float
    beta_gbps: float
    source: str
    fit: dict[str, Any] | None = None

    def ring_us(self, n: int, n_bytes: float) -> float:
        """Flat ring all-reduce of `n_bytes` over `n` ranks in us (module formula); 0 at n = 1."""
        if n < 1:
            raise ValueError(f"world size must be >= 1, got {n}")
        # bytes / (GB/s) = bytes / (beta * 1e9) s = bytes / (beta * 1e3) us
        return 2 * (n - 1) * self.alpha_us + 2 * (n - 1) / n * n_bytes / (self.beta_gbps * 1e3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alpha_us": self.alpha_us,
            "beta_gbps": self.beta_gbps,
            "source": self.source,
            "fit": self.fit,
        }


@dataclass(frozen=True)
class LinkModel:
    """The all-reduce cost model: one flat ring on `link`, or with `intra` and `ranks_per_node`
    a two-level ring (`intra` inside a node, `link` between nodes)."""

    link: Link
    intra: Link | None = None
    ranks_per_node: int | None = None

    def __post_init__(self) -> None:
        if (self.intra is None) != (self.ranks_per_node is None):
            raise ValueError("a two-level model needs both the intra-node link and ranks_per_node")
        if self.ranks_per_node is not None and self.ranks_per_node < 1:
            raise ValueError(f"ranks_per_node must be >= 1, got {self.ranks_per_node}")

    @property
    def formula(self) -> str:
        return FLAT_FORMULA if self.intra is None else TWO_LEVEL_FORMULA

    @property
    def measured(self) -> bool:
        """Whether every link was fitted to a measurement (not given for another network)."""
        return all(link.fit is not None for link in (self.link, self.intra) if link is not None)

    def fits(self, n: int) -> str | None:
        """Why world size `n` cannot be modelled (a partial node), or None."""
        g = self.ranks_per_node
        if g is not None and n > g and n % g:
            return f"{n} ranks do not fill whole nodes of {g} ranks (--ranks-per-node)"
        return None

    def allreduce_us(self, n: int, n_bytes: float, messages: float = 1.0) -> float:
        """All-reduce time in us of `n_bytes` sent as `messages` equal all-reduces (DDP buckets):
        the bandwidth terms depend on the total bytes only, the latency terms count per message.
        ValueError for a world size that does not fill whole nodes."""
        if self.intra is None or self.ranks_per_node is None:
            return self.link.ring_us(n, n_bytes) + (messages - 1) * self.link.ring_us(n, 0.0)
        if (why := self.fits(n)) is not None:
            raise ValueError(why)
        g = self.ranks_per_node
        if n <= g:
            return self.intra.ring_us(n, n_bytes) + (messages - 1) * self.intra.ring_us(n, 0.0)
        m = n // g
        one = self.intra.ring_us(g, n_bytes) + self.link.ring_us(m, n_bytes / g)
        latency = self.intra.ring_us(g, 0.0) + self.link.ring_us(m, 0.0)
        return one + (messages - 1) * latency

    def to_dict(self) -> dict[str, Any]:
        return {
            "formula": self.formula,
            "levels": "flat ring" if self.intra is None else "two-level ring",
            "link": self.link.to_dict(),
            "intra_node": self.intra.to_dict() if self.intra else None,
            "ranks_per_node": self.ranks_per_node,
        }


def given_link(gbps: float, latency_us: float, what: str) -> Link:
    """A link whose parameters the user gave (`what` names the flags); InputError when not > 0."""
    if not gbps > 0:
        raise InputError(f"{what}: the bandwidth must be > 0 GB/s, got {gbps}")
    if not latency_us >= 0:
        raise InputError(f"{what}: the latency must be >= 0 us, got {latency_us}")
    return Link(latency_us, gbps, f"given ({what}: {gbps:g} GB/s, {latency_us:g} us)")


def fit_link(sizes_bytes: Sequence[float], times_us: Sequence[float], n: int, source: str) -> Link:
    """Alpha and beta of `t = 2(n-1) alpha + 2(n-1)/n bytes / beta` from all_reduce times at `n`.

    Robust least squares (scipy.optimize.least_squares, soft-L1 loss) on relative residuals,
    so every size counts alike whatever its time and a noisy point is discounted; alpha >= 0,
    beta > 0. ValueError with fewer than two sizes, n < 2, or times that do not grow with size.
    """
    from scipy.optimize import least_squares

    x = np.asarray(sizes_bytes, float)
    t = np.asarray(times_us, float)
    if n < 2:
        raise ValueError(f"an all_reduce over {n} rank moves no data: fit needs 2+ ranks")
    if np.unique(x).size < 2 or not np.all(t > 0):
        raise ValueError("fit needs positive all_reduce times at two or more sizes")
    # t = a + b * bytes, each row divided by its time: relative residuals.
    design = np.column_stack([np.ones_like(x), x]) / t[:, None]
    start = np.linalg.lstsq(design, np.ones_like(t), rcond=None)[0]
    start = np.maximum(start, [0.0, 1e-12])
    got = least_squares(
        lambda p: design @ p - 1.0,
        start,
        bounds=([0.0, 0.0], [np.inf, np.inf]),
        loss="soft_l1",
        f_scale=_FIT_SCALE,
    )
    a_us, b_us_per_byte = (float(v) for v in got.x)
    largest = int(np.argmax(x))
    if not b_us_per_byte * x[largest] > _MIN_BANDWIDTH_SHARE * t[largest]:
        raise ValueError(
            "the all_reduce times do not grow with the size (the bandwidth term is under "
            f"{_MIN_BANDWIDTH_SHARE:.1%} of the time at the largest size): no bandwidth to fit; "
            "measure up to larger sizes"
        )
    rel = design @ got.x - 1.0
    return Link(
        alpha_us=a_us / (2 * (n - 1)),
        beta_gbps=2 * (n - 1) / n / (b_us_per_byte * 1e3),
        source=source,
        fit={
            "world_size": n,
            "sizes": int(x.size),
            "min_bytes": float(x.min()),
            "max_bytes": float(x.max()),
            "rms_relative_residual_pct": float(100 * np.sqrt(np.mean(rel**2))),
            "max_relative_residual_pct": float(100 * np.max(np.abs(rel))),
            "method": "scipy.optimize.least_squares, soft-L1 loss (scale "
            f"{_FIT_SCALE:g}) on relative residuals of t = a + b * bytes; alpha = a / (2(n-1)), "
            "beta = 2(n-1)/n / b",
        },
    )


def link_from_collectives(result: RunResult, label: str) -> Link:
    """The link fitted to the all_reduce rows of a collectives result (`label` names it).

    Rows that were measured and checked right (0 wrong elements) are used. InputError when the
    result is not a collectives run with such rows at two or more sizes on 2+ ranks.
    """
    coll = result.collectives
    if coll is None:
        raise InputError(
            f"{label}: not a collectives result (no collectives block); make one with "
            "`minicluster collectives --ops all_reduce`"
        )
    n = coll.world_size or result.world_size
    rows = [
        (r.size_bytes, float(r.time_us))
        for r in coll.results
        if r.op == "all_reduce"
        and isinstance(r.time_us, (int, float))
        and r.wrong in (0, None)
        and r.status == "measured"
    ]
    if not isinstance(n, int) or n < 2:
        raise InputError(f"{label}: an all_reduce over {n} rank moves no data; need 2+ ranks")
    if len({size for size, _ in rows}) < 2:
        raise InputError(
            f"{label}: needs measured, correct all_reduce times at two or more sizes "
            f"(has {len(rows)}); run `minicluster collectives --ops all_reduce --sizes 1K:8M`"
        )
    sizes = [float(size) for size, _ in rows]
    source = (
        f"fitted to the all_reduce times of collectives run {result.run_id} ({n} ranks, "
        f"{result.backend}, {len(rows)} sizes)"
    )
    try:
        return fit_link(sizes, [t for _, t in rows], n, source)
    except ValueError as e:
        raise InputError(f"{label}: {e}") from None
