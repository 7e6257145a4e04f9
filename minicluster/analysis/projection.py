"""A sweep's step time, throughput and efficiency projected to world sizes it did not measure
(status `estimated`), and the projection checked against the sizes it did measure.

Input is the sweep's `scaling` block alone (each point's `breakdown`: the mean per-step parts of
its median round), so a sweep re-built from its directory or from finished runs projects the
same. With R the reference world size (the largest measured size whose ranks did not share CPU
cores; any size when all did):

    t(N) = C(N) + W(N) + f * (A(N) + d) + O
    A(N) = the all-reduce of the step's gradient bytes in its DDP buckets (alphabeta: per bucket
           2(N-1) alpha + 2(N-1)/N bytes_b / beta; the latency term counts once per bucket)
    C(N) = per-rank compute at R (weak scaling); x R / N (strong: the per-rank batch shrinks)
    W(N) = straggler wait at R (0 at N = 1); O = the rest of R's step (data, optimizer, framework)
    f    = R's exposed all-reduce / its all-reduce transfer, clipped to [0, 1] (the overlap)
    d    = R's all-reduce transfer - A(R) when alpha and beta were measured on the runs' own
           link (DDP's all-reduce beyond the micro-benchmark's: bucket handling, the gradient
           division, its timers), kept constant for every N > 1 (it is not a per-hop cost, so it
           does not grow with N); 0 when they were given for another network, or R = 1

Throughput = global batch / t(N); efficiency as the sweep defines it, against the baseline's
measured mean step time. Checked by leaving measured sizes out: fit on the others (on the sizes
below the largest, for the largest), predict the left-out size's step time, report the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minicluster.analysis.alphabeta import LinkModel
from minicluster.analysis.sweep import Mode

FORMULA = "t(N) = C(N) + W(N) + f * (A(N) + d) + O"


@dataclass(frozen=True)
class Measured:
    """One measured world size's step parts (mean ms over its median round's steps)."""

    world_size: int
    step_time_ms: float
    compute_ms: float
    wait_ms: float
    exposed_ms: float
    other_ms: float
    transfer_ms: float | None
    comm_bytes: float | None
    buckets: float | None
    oversubscribed: bool | None


@dataclass(frozen=True)
class Fit:
    """The model's inputs taken from a set of measured sizes (see the module docstring)."""

    reference: Measured
    fit_sizes: list[int]
    overlap: float
    comm_bytes: float
    buckets: float
    offset_ms: float  # d
    notes: list[str]


def measured_points(scaling: dict[str, Any]) -> dict[int, Measured]:
    """world size -> its step parts, for every point of the scaling block with a breakdown."""
    out = {}
    for p in scaling.get("points") or []:
        b = p.get("breakdown") or {}
        c = b.get("components_ms") or {}
        if b.get("status") != "derived" or c.get("step_time") is None:
            continue
        n = int(p["world_size"])
        out[n] = Measured(
            n,
            float(c["step_time"]),
            float(c["per_rank_compute"]),
            # every wait for other ranks' compute: a slow rank's and per-step jitter's
            float(c["straggler_wait"]) + float(c.get("jitter_wait") or 0.0),
            float(c["exposed_comm"]),
            float(c["other"]),
            c.get("transfer"),
            b.get("comm_bytes"),
            b.get("buckets"),
            b.get("oversubscribed"),
        )
    return out


def fit(points: dict[int, Measured], sizes: list[int], model: LinkModel) -> Fit | str:
    """The model's inputs from the measured `sizes` of `points`, or why there are none."""
    pool = [points[n] for n in sorted(sizes)]
    if not pool:
        return "no measured world size to take compute and overlap from"
    own_cores = [m for m in pool if m.oversubscribed is not True]
    ref = (own_cores or pool)[-1]
    notes = []
    if ref.oversubscribed:
        notes.append(
            f"the reference world size {ref.world_size} shared CPU cores (oversubscribed): its "
            "compute and all-reduce include that"
        )
    if ref.world_size > 1 and ref.transfer_ms:
        raw = ref.exposed_ms / ref.transfer_ms
        overlap = min(1.0, max(0.0, raw))
        if overlap != raw:
            notes.append(f"exposed fraction {raw:.3g} clipped to {overlap:g}")
    else:
        overlap = 1.0
        notes.append(
            f"overlap assumed none (f = 1): the reference world size {ref.world_size} has no "
            "all-reduce transfer to measure it on"
        )
    recorded = [(m.comm_bytes, m.buckets) for m in [ref, *reversed(pool)]]
    got = next(((b, k) for b, k in recorded if b and k), None)
    if got is None:
        return (
            "the runs did not record the gradient bytes and buckets per step (steps.series "
            "comm_bytes, buckets): re-build them with `minicluster aggregate DIR`"
        )
    n_bytes, buckets = float(got[0]), float(got[1])
    offset = 0.0
    if not model.measured:
        notes.append("d = 0: the link was given, so DDP's all-reduce on it was not measured")
    elif ref.world_size > 1 and ref.transfer_ms and model.fits(ref.world_size) is None:
        modelled = model.allreduce_us(ref.world_size, n_bytes, buckets) / 1000.0
        offset = ref.transfer_ms - modelled
        notes.append(
            f"d = {offset:.3g} ms: DDP's all-reduce at {ref.world_size} ranks took "
            f"{ref.transfer_ms:.3g} ms, the fitted model {modelled:.3g} ms"
        )
    else:
        notes.append(f"d = 0: world size {ref.world_size} measured no DDP all-reduce")
    return Fit(ref, sorted(sizes), overlap, n_bytes, buckets, offset, notes)


def predict(f: Fit, n: int, model: LinkModel, mode: Mode) -> dict[str, float]:
    """The model's step at world size `n` (ms): compute, wait, exposed, all-reduce, other, step."""
    ref = f.reference
    compute = ref.compute_ms if mode == "weak" else ref.compute_ms * ref.world_size / n
    allreduce = model.allreduce_us(n, f.comm_bytes, f.buckets) / 1000.0
    if n > 1:
        allreduce += f.offset_ms
    wait = ref.wait_ms if n > 1 else 0.0
    exposed = f.overlap * allreduce
    return {
        "compute_ms": compute,
        "straggler_wait_ms": wait,
        "allreduce_ms": allreduce,
        "exposed_comm_ms": exposed,
        "other_ms": ref.other_ms,
        "step_time_ms": compute + wait + exposed + ref.other_ms,
    }


def project(
    scaling: dict[str, Any],
    sizes: list[int],
    model: LinkModel | None,
    link_reason: str | None = None,
) -> dict[str, Any]:
    """The `projection` block of a sweep: `sizes` projected with `model` from the measured points.

    `model` None: the block is unavailable with `link_reason` (no link parameters were had).
    """
    mode: Mode = scaling["mode"]
    points = measured_points(scaling)
    block: dict[str, Any] = {
        "status": "estimated",
        "reason": None,
        "world_sizes": sorted(sizes),
        "formula": f"{FORMULA}; A(N) per bucket: {model.formula if model else 'n/a'}",
        "method": _method(mode),
        "link": model.to_dict() if model else None,
        "inputs": None,
        "points": [],
        "check": None,
    }
    if model is None:
        return {**block, "status": "unavailable", "reason": link_reason or "no link parameters"}
    got = fit(points, list(points), model)
    if isinstance(got, str):
        return {**block, "status": "unavailable", "reason": got}
    n0 = scaling["baseline"]["world_size"]
    base = points.get(n0)
    block["inputs"] = {
        "reference_world_size": got.reference.world_size,
        "per_rank_compute_ms": got.reference.compute_ms,
        "straggler_wait_ms": got.reference.wait_ms,
        "other_ms": got.reference.other_ms,
        "exposed_fraction": got.overlap,
        "allreduce_offset_ms": got.offset_ms,
        "comm_bytes": got.comm_bytes,
        "buckets": got.buckets,
        "baseline_world_size": n0,
        "baseline_step_time_ms": base.step_time_ms if base else None,
        "notes": got.notes,
    }
    block["check"] = check(points, model, mode)
    error, checked_at = fit_error(block["check"])
    fit_on = _fit_on(model, got, sorted(points), checked_at)
    block["fit_error_pct"], block["fit_on"] = error, fit_on
    refused = refusal(error, checked_at)
    largest = max(points)
    projected = []
    for n in sorted(sizes):
        point = _point(scaling, got, n, model, mode, base)
        why = refused or _too_far(n, largest, error)
        if why and point["status"] == "estimated":
            point = _refused(point, why)
        projected.append({**point, "fit_error_pct": error, "fit_on": fit_on})
    block["points"] = projected
    if refused:
        return {**block, "status": "unavailable", "reason": refused}
    return block


# A projection whose model misses a measured step time by more than this is refused: past it
# the figures say less than the error (a step time off by half its value), whatever the sizes.
MAX_FIT_ERROR_PCT = 50.0
# The check measures the error at the measured sizes only; a size this many times the largest
# measured one (five doublings) is too far from them for that error to stand for its own.
MAX_EXTRAPOLATION = 32


def fit_error(chk: dict[str, Any]) -> tuple[float | None, list[int]]:
    """The projection's fit error (the largest |error_pct| of the check, over the sizes whose
    ranks had their own cores when there are such) and the sizes it was measured at."""
    estimated = [e for e in chk["entries"] if e["status"] == "estimated"]
    own = [e for e in estimated if not e["oversubscribed"]]
    used = own or estimated
    if not used:
        return None, []
    return max(abs(e["error_pct"]) for e in used), sorted(e["world_size"] for e in used)


def refusal(error: float | None, checked_at: list[int]) -> str | None:
    """Why no size can be projected: the model could not be checked, or missed by too much."""
    if error is None:
        return (
            "the model could not be checked against any measured world size (a check needs two "
            "measured sizes with step parts), so its error is unknown: measure more world sizes"
        )
    if error > MAX_FIT_ERROR_PCT:
        at = ", ".join(map(str, checked_at))
        return (
            f"the model misses the measured step time by up to {error:.0f}% (at world size {at}), "
            f"more than {MAX_FIT_ERROR_PCT:.0f}%: projected figures would say less than their "
            "error; measure on the target network, with more world sizes"
        )
    return None


def _too_far(n: int, largest: int, error: float | None) -> str | None:
    if n <= MAX_EXTRAPOLATION * largest:
        return None
    return (
        f"{n} ranks is {n / largest:.0f}x the largest measured world size ({largest}); the fit "
        f"error ({error:.0f}%) was measured at the measured sizes only, and past "
        f"{MAX_EXTRAPOLATION}x them it does not bound the error here: measure up to "
        f"{-(-n // MAX_EXTRAPOLATION)} ranks or more"
    )


def _refused(point: dict[str, Any], why: str) -> dict[str, Any]:
    kept = ("world_size", "per_rank_batch", "global_batch")
    return {
        **{k: point.get(k) for k in kept},
        "status": "unavailable",
        "reason": why,
        "efficiency_pct": None,
    }


def _fit_on(model: LinkModel, got: Fit, measured: list[int], checked_at: list[int]) -> str:
    """What the projection was made on, in one line."""
    links = [model.link] + ([model.intra] if model.intra is not None else [])
    link_text = "; ".join(
        f"alpha {x.alpha_us:.3g} us, beta {x.beta_gbps:.3g} GB/s {x.source}" for x in links
    )
    checked = ", ".join(map(str, checked_at)) or "none"
    return (
        f"link: {link_text}; compute, overlap and the rest of the step from world size "
        f"{got.reference.world_size} of the measured sizes {', '.join(map(str, measured))}; "
        f"error checked at world size {checked}"
    )


def check(points: dict[int, Measured], model: LinkModel, mode: Mode) -> dict[str, Any]:
    """The projection against the measured step times: the largest size predicted from the smaller
    ones, and with three or more sizes every size predicted from all the others (leave-one-out).

    error_pct = 100 * (predicted - measured) / measured. Entries at a size whose ranks shared CPU
    cores are flagged: the model assumes every rank has its own cores, as on a cluster.
    """
    sizes = sorted(points)
    held_out = sizes if len(sizes) >= 3 else sizes[-1:]
    entries = []
    for h in held_out:
        others = [n for n in sizes if n != h]
        entry: dict[str, Any] = {
            "world_size": h,
            "fit_sizes": others,
            "measured_step_time_ms": points[h].step_time_ms,
            "oversubscribed": points[h].oversubscribed,
        }
        got = fit(points, others, model) if others else "no other measured size"
        why = got if isinstance(got, str) else model.fits(h)
        if why is not None or isinstance(got, str):
            entries.append({**entry, "status": "unavailable", "reason": why, "notes": []})
            continue
        pred = predict(got, h, model, mode)["step_time_ms"]
        measured = points[h].step_time_ms
        notes = list(got.notes)
        if points[h].oversubscribed:
            notes.append(
                f"world size {h} shared CPU cores: its compute and all-reduce slowed by that, "
                "which the model (every rank on its own cores) does not include"
            )
        entries.append(
            {
                **entry,
                "status": "estimated",
                "reason": None,
                "reference_world_size": got.reference.world_size,
                "predicted_step_time_ms": pred,
                "error_pct": 100.0 * (pred - measured) / measured,
                "notes": notes,
            }
        )
    errors = [e for e in entries if e["status"] == "estimated"]
    own = [e for e in errors if not e["oversubscribed"]]
    largest = next((e for e in entries if e["world_size"] == sizes[-1]), None) if sizes else None
    return {
        "kind": "leave-one-out" if len(sizes) >= 3 else "largest from the smaller sizes",
        "method": "fit the model on the other measured sizes (the link parameters stay as "
        "given or fitted: they come from a separate all_reduce measurement), predict the "
        "left-out size's mean step time; error_pct = 100 * (predicted - measured) / measured",
        "entries": entries,
        "largest_error_pct": largest.get("error_pct") if largest else None,
        "max_abs_error_pct": max((abs(e["error_pct"]) for e in errors), default=None),
        "max_abs_error_pct_own_cores": max((abs(e["error_pct"]) for e in own), default=None),
    }


def _point(
    scaling: dict[str, Any],
    got: Fit,
    n: int,
    model: LinkModel,
    mode: Mode,
    base: Measured | None,
) -> dict[str, Any]:
    if mode == "weak":
        per_rank = scaling.get("per_rank_batch")
        global_batch = per_rank * n if isinstance(per_rank, int) else None
    else:
        global_batch = scaling.get("global_batch")
        per_rank = global_batch // n if isinstance(global_batch, int) else None
    point: dict[str, Any] = {
        "world_size": n,
        "status": "estimated",
        "reason": None,
        "per_rank_batch": per_rank,
        "global_batch": global_batch,
    }
    why = model.fits(n)
    if mode == "strong" and isinstance(global_batch, int) and global_batch % n:
        why = f"the global batch {global_batch} does not split evenly over {n} ranks"
    if why:
        return {**point, "status": "unavailable", "reason": why, "efficiency_pct": None}
    pred = predict(got, n, model, mode)
    step = pred["step_time_ms"]
    n0 = scaling["baseline"]["world_size"]
    eff = None
    if base is not None and step > 0:
        eff = 100.0 * base.step_time_ms / step * (1.0 if mode == "weak" else n0 / n)
    return {
        **point,
        **pred,
        "throughput_samples_per_sec": 1000.0 * global_batch / step
        if global_batch and step > 0
        else None,
        "efficiency_pct": eff,
    }


def _method(mode: Mode) -> str:
    compute = (
        "per-rank compute of R (weak scaling: the per-rank batch stays)"
        if mode == "weak"
        else "per-rank compute of R x R / N (strong scaling: the per-rank batch is 1/N of the "
        "global batch; compute taken as proportional to it)"
    )
    return (
        f"{FORMULA}: C(N) = {compute}; W(N) = R's straggler wait (0 at N = 1), kept as measured; "
        "f = R's exposed all-reduce / its all-reduce transfer, clipped to [0, 1] (the measured "
        "overlap); A(N) = the alpha-beta all-reduce of R's gradient bytes in its DDP buckets; "
        "d = R's all-reduce transfer - A(R) when alpha and beta were fitted to an all_reduce "
        "measurement on the same link (DDP's all-reduce beyond the micro-benchmark's), kept "
        "for every N > 1, 0 when they were given or R = 1; "
        "O = the rest of R's step (data, optimizer, framework). R is the largest measured world "
        "size whose ranks did not share CPU cores. Step parts are means over the median round's "
        "measured steps (see breakdown_method). Throughput = global batch / t(N); efficiency = "
        "100 x t_N0 / t(N) (weak) or 100 x N0 t_N0 / (N t(N)) (strong), t_N0 the baseline's "
        "measured mean step time. Assumes every rank has its own cores or device (a cluster) "
        "and that compute, straggler wait and the rest do not grow past R."
    )
