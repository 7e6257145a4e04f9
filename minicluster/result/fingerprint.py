"""The fingerprint of a result: the defining fields that decide whether two results measured the
same thing (workload and sizes, layout, world size, batch, precision, timing method; for serving
benchmarks model, backend, concurrency, request rate, lengths and dataset; the platform).

Every value is read from the result (or, for an import, from what the source file declares);
a field the result does not record is null, with the reason under `unknown`. Nothing is guessed:
`compare` and `history` treat a null as "not shown to be the same", never as equal.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

FINGERPRINT_VERSION = 1

# Defining fields per workload type, in display order. A difference in any of them makes two
# results not comparable (`compare.comparability`), unless the user allows it.
TRAINING_FIELDS = (
    "workload_type",
    "workload",
    "workload_sizes",
    "layout",
    "world_size",
    "nodes",
    "global_batch",
    "precision",
    "timing_method",
    "comm_backend",
    "device",
    "gpu_model",
    "gpu_count",
    "cpu_model",
    "cpu_count",
)
INFERENCE_FIELDS = (
    "workload_type",
    "model",
    "serving_backend",
    "max_concurrency",
    "request_rate",
    "input_len",
    "output_len",
    "dataset",
    "precision",
    "gpu_model",
    "gpu_count",
    "cpu_model",
)
COLLECTIVES_FIELDS = (
    "workload_type",
    "ops",
    "sizes",
    "dtype",
    "world_size",
    "nodes",
    "timing_method",
    "comm_backend",
    "device",
    "gpu_model",
    "gpu_count",
    "cpu_model",
    "cpu_count",
)
FIELDS_OF_KIND = {
    "training": TRAINING_FIELDS,
    "inference": INFERENCE_FIELDS,
    "collectives": COLLECTIVES_FIELDS,
}
# Fields that follow the world size: when only these differ, per-rank metrics stay comparable.
SCALE_FIELDS = frozenset(
    {"world_size", "nodes", "global_batch", "layout", "gpu_count", "cpu_count"}
)
# The layout degrees in the order of one DeviceMesh (DESIGN section 4).
_MESH_ORDER = ("dp_replicate", "dp_shard", "tp", "pp", "ep")


def make(
    kind: str, fields: dict[str, Any], unknown: dict[str, str] | None = None
) -> dict[str, Any]:
    """A fingerprint of workload type `kind`: every defining field of that kind, the given value
    or null; a null field's reason from `unknown` (else "not recorded by the source")."""
    names = FIELDS_OF_KIND.get(kind, TRAINING_FIELDS)
    out = {name: _plain(fields.get(name)) for name in names}
    out["workload_type"] = kind
    why = unknown or {}
    return {
        "version": FINGERPRINT_VERSION,
        "fields": out,
        "unknown": {
            name: why.get(name, "not recorded by the source") for name in names if out[name] is None
        },
    }


def _plain(value: Any) -> Any:
    """A JSON-safe value: infinity (a request rate of `inf`, 'as fast as possible') as 'inf'."""
    if isinstance(value, float) and value == float("inf"):
        return "inf"
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def key(fp: dict[str, Any], ignore: frozenset[str] | set[str] = frozenset()) -> str:
    """A stable hash of the defining fields (the history's index), leaving out `ignore`."""
    fields = {k: v for k, v in sorted((fp.get("fields") or {}).items()) if k not in ignore}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def attach(result: dict[str, Any]) -> dict[str, Any]:
    """`result` with its `fingerprint` (built from the result itself); returns `result`. Called
    once at the end of every path that writes a result (aggregate, collectives, sweep, import)."""
    result["fingerprint"] = of_result(result)
    return result


def of_result(data: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint of a `minicluster/1.x` result. A converted import keeps the one its
    importer made (what the source declared); a result made before 1.4 gets one built here."""
    given = data.get("fingerprint")
    if data.get("imported_from") and isinstance(given, dict) and given.get("fields"):
        return given
    wl = data.get("workload") or {}
    kind = str(wl.get("workload_type") or "training")
    cfg = _dict(data.get("config"))
    run_cfg = _dict(cfg.get("run"))
    unknown: dict[str, str] = {}
    imported = bool(data.get("imported_from"))
    fields: dict[str, Any] = {
        "world_size": data.get("world_size"),
        "nodes": _node_count(data.get("nodes")),
        "comm_backend": data.get("backend"),
        **_platform(data.get("platform") or {}, data.get("ranks") or [], unknown),
    }
    if kind == "collectives":
        coll = _dict(data.get("collectives"))
        pairwise = _dict(data.get("pairwise")) or None
        fields.update(_collectives(coll, pairwise, unknown))
        fields["timing_method"] = (pairwise or coll).get("rule")
        return make(kind, fields, unknown)
    fields["workload"] = wl.get("name")
    fields["global_batch"] = wl.get("global_batch")
    fields["timing_method"] = data.get("timing_method")
    sizes = {k: v for k, v in (cfg.get("workload") or {}).items() if k != "name"}
    if sizes:
        fields["workload_sizes"] = ", ".join(f"{k}={sizes[k]}" for k in sorted(sizes))
    else:
        unknown["workload_sizes"] = "the result holds no workload config (an import)"
    parallel = {k: v for k, v in _dict(cfg.get("parallel")).items() if v is not None}
    layout = _dict(data.get("layout"))
    if isinstance(layout.get("label"), str):
        fields["layout"] = layout["label"]  # the degrees above 1, resolved on the world size
    elif parallel:
        order = [k for k in _MESH_ORDER if k in parallel] + sorted(set(parallel) - set(_MESH_ORDER))
        fields["layout"] = ",".join(f"{k}={parallel[k]}" for k in order)
    elif not imported and isinstance(data.get("world_size"), int):
        # this version runs every training job as DDP: one replica per rank, nothing sharded
        fields["layout"] = f"dp_replicate={data['world_size']}"
    else:
        unknown["layout"] = "the result does not record its parallel layout"
    if run_cfg.get("precision"):
        fields["precision"] = run_cfg["precision"]
    elif not imported and cfg:
        fields["precision"] = "fp32"  # the worker of this version trains in fp32 only
    else:
        unknown["precision"] = "the result does not record its precision"
    if kind == "inference":
        fields["model"] = wl.get("name")
    return make(kind, fields, unknown)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _node_count(nodes: Any) -> int | None:
    if isinstance(nodes, list):
        return len(nodes)
    if isinstance(nodes, int) and not isinstance(nodes, bool):
        return nodes
    return None


def _platform(
    platform: dict[str, Any], ranks: list[Any], unknown: dict[str, str]
) -> dict[str, Any]:
    """Device, GPU model and count, CPU model and count from a result's `platform` block."""
    nodes = [n for n in platform.get("nodes") or [] if isinstance(n, dict)]
    if not nodes:
        why = "the result does not record its nodes' hardware"
        for name in ("device", "gpu_model", "gpu_count", "cpu_model", "cpu_count"):
            unknown[name] = why
        return {}
    gpus = [g for n in nodes for g in n.get("gpus") or []]
    names = sorted(
        {str(g.get("name") or g.get("model")) if isinstance(g, dict) else str(g) for g in gpus}
    )
    devices = {r.get("device") for r in ranks if isinstance(r, dict) and r.get("device")}
    cpus = sorted({str(n["cpu"]) for n in nodes if n.get("cpu")})
    counts = [n.get("cpu_count") for n in nodes]
    out: dict[str, Any] = {
        "device": "cuda" if gpus or any(str(d).startswith("cuda") for d in devices) else "cpu",
        "gpu_model": " + ".join(names) if names else "none",
        "gpu_count": len(gpus),
        "cpu_model": " + ".join(cpus) if cpus else None,
        "cpu_count": sum(counts) if all(isinstance(c, int) for c in counts) else None,
    }
    if out["cpu_model"] is None:
        unknown["cpu_model"] = "the nodes did not report a CPU model"
    if out["cpu_count"] is None:
        unknown["cpu_count"] = "a node did not report its CPU count"
    return out


def _collectives(
    coll: dict[str, Any], pairwise: dict[str, Any] | None, unknown: dict[str, str]
) -> dict[str, Any]:
    if pairwise is not None:
        size = pairwise.get("size_bytes")
        return {
            "ops": f"pairwise {pairwise.get('transport') or 'send_recv'}",
            "sizes": str(size) if size is not None else None,
            "dtype": pairwise.get("dtype"),
        }
    rows = [r for r in coll.get("results") or [] if isinstance(r, dict)]
    ops = coll.get("ops") or sorted({str(r.get("op")) for r in rows})
    sizes = sorted(
        {int(v) for r in rows if isinstance(v := r.get("nominal_bytes", r.get("size_bytes")), int)}
    )
    if not sizes:
        unknown["sizes"] = "no size was measured"
    return {
        "ops": ",".join(ops) if ops else None,
        "sizes": f"{sizes[0]}..{sizes[-1]} B ({len(sizes)} sizes)" if sizes else None,
        "dtype": coll.get("dtype"),
    }
