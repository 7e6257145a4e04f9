"""Import the stdout of an NVIDIA nccl-tests binary (`all_reduce_perf -b 8 -e 8G -f 2 -g 1`): its
parameter line, its devices, and its table of size, count, type, time, algbw, busbw, #wrong.

The table's out-of-place columns are read (nccl-tests reports both; doc/PERFORMANCE.md). The log
does not name its collective: it is taken from `<op>_perf` in the text (a preamble holding the
command line) or the file name, else from the columns (redop, root, count x element size vs size).
Times are nccl-tests' own: averaged over the iterations (and over ranks, by default `-a 1`), not
minicluster's max across ranks: the timing method in the fingerprint says so.
"""

from __future__ import annotations

import re
from typing import Any

from minicluster.core.errors import InputError
from minicluster.core.metrics import MetricValue
from minicluster.core.units import format_size
from minicluster.interop.record import BenchmarkRecord, registry_metric
from minicluster.result import fingerprint

PARAMS = re.compile(r"^#\s*nThread\s+\d+\s+nGpus\s+\d+\s+minBytes", re.M)
_DEVICE = re.compile(
    r"^#\s*Rank\s+(?P<rank>\d+)\s+Group\s+\d+\s+Pid\s+\d+\s+on\s+(?P<host>\S+)\s+device\s+"
    r"(?P<dev>\d+)\s+\[[^\]]*\]\s+(?P<model>.+?)\s*$",
    re.M,
)
_OPS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce", "alltoall", "sendrecv")
# nccl-tests' op names -> minicluster's (core/collective_defs names all_to_all so)
_OP_NAME = {"alltoall": "all_to_all"}
_DTYPES = {
    "float": ("float32", 4),
    "half": ("float16", 2),
    "bfloat16": ("bfloat16", 2),
    "double": ("float64", 8),
    "int8": ("int8", 1),
    "uint8": ("uint8", 1),
    "int32": ("int32", 4),
    "uint32": ("uint32", 4),
    "int64": ("int64", 8),
    "uint64": ("uint64", 8),
}
TIME_RULE = (
    "nccl-tests: out-of-place time averaged over iters (and over ranks with -a 1, its default)"
)


def looks_like(text: str) -> bool:
    """Whether `text` holds nccl-tests output (its `# nThread .. nGpus .. minBytes` line)."""
    return PARAMS.search(text) is not None


def _params(text: str) -> dict[str, int]:
    line = PARAMS.search(text)
    assert line is not None
    end = text.find("\n", line.start())
    head = text[line.start() : end if end >= 0 else None]
    out: dict[str, int] = {}
    for m in re.finditer(r"(nThread|nGpus|minBytes|maxBytes)\s+(\d+)", head):
        out[m.group(1)] = int(m.group(2))
    for m in re.finditer(r"(warmup iters|agg iters|iters|validation|graph):\s*(\d+)", head):
        out[m.group(1)] = int(m.group(2))
    return out


def _op_from_text(text: str, label: str) -> str | None:
    for where in (text, label):
        m = re.search(r"\b(" + "|".join(_OPS) + r")_perf\b", where)
        if m:
            return m.group(1)
    return None


def _op_from_columns(redop: str, root: int, count: int, size: int, elem: int, n: int) -> str:
    if redop != "none":
        if root >= 0:
            return "reduce"
        return "all_reduce" if count * elem == size else "reduce_scatter"
    if root >= 0:
        return "broadcast"
    raise InputError(
        "the log does not say which collective ran (all_gather and alltoall print the same "
        "columns): name the file after its binary (all_gather_perf.log, alltoall_perf.log)"
    )


def _rows(text: str) -> tuple[list[str], list[list[str]]]:
    """(column names of the table, its data rows as tokens)."""
    header: list[str] = []
    rows: list[list[str]] = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#") and "size" in s and "busbw" in s:
            header = s.lstrip("#").split()
        elif header and s and not s.startswith("#") and re.match(r"^\d+\s", s):
            rows.append(s.split())
    if not header or not rows:
        raise InputError("nccl-tests output without a result table (size ... busbw)")
    return header, rows


def _number(tok: str, where: str) -> float | None:
    if tok in ("N/A", "-"):
        return None
    try:
        return float(tok)
    except ValueError:
        raise InputError(f"{where}: {tok!r} is not a number") from None


def to_record(text: str, label: str) -> BenchmarkRecord:
    if not looks_like(text):
        raise InputError("not nccl-tests output (no '# nThread ... nGpus ... minBytes' line)")
    params = _params(text)
    devices = [m.groupdict() for m in _DEVICE.finditer(text)]
    ranks = len({d["rank"] for d in devices}) or None
    hosts = sorted({d["host"] for d in devices})
    models = sorted({d["model"] for d in devices})
    header, raw = _rows(text)
    idx = {name: header.index(name) for name in ("time", "algbw", "busbw") if name in header}
    if len(idx) < 3 or "size" not in header:
        raise InputError(f"nccl-tests table header {' '.join(header)!r}: no size/time/algbw/busbw")
    wrong_i = header.index("#wrong") if "#wrong" in header else None
    type_i = header.index("type") if "type" in header else None
    redop_i = header.index("redop") if "redop" in header else None
    root_i = header.index("root") if "root" in header else None
    count_i = header.index("count") if "count" in header else None
    op = _op_from_text(text, label)
    dtype = None
    results: list[dict[str, Any]] = []
    for tok in raw:
        where = f"nccl-tests row {' '.join(tok[:2])}"
        if len(tok) < len(header) - (len(header) - max(idx.values()) - 1):
            raise InputError(f"{where}: {len(tok)} columns, the header has {len(header)}")
        size = int(tok[header.index("size")])
        nccl_type = tok[type_i] if type_i is not None else None
        if nccl_type is not None and nccl_type not in _DTYPES:
            raise InputError(f"{where}: unknown data type {nccl_type!r}")
        dtype, elem = _DTYPES[nccl_type] if nccl_type else (None, 0)
        count = int(tok[count_i]) if count_i is not None else None
        if op is None and redop_i is not None and count is not None and ranks:
            op = _op_from_columns(
                tok[redop_i],
                int(tok[root_i]) if root_i is not None else -1,
                count,
                size,
                elem,
                ranks,
            )
        time_us = _number(tok[idx["time"]], where)
        wrong = _number(tok[wrong_i], where) if wrong_i is not None else None
        results.append(
            {
                "op": _OP_NAME.get(op or "", op or "unknown"),
                "size_bytes": size,
                "nominal_bytes": size,
                **({"count": count} if count is not None else {}),
                "time_us": time_us if time_us else None,
                "algbw_gbps": _number(tok[idx["algbw"]], where),
                "busbw_gbps": _number(tok[idx["busbw"]], where),
                "wrong": None if wrong is None else int(wrong),
                "status": "measured" if time_us else "unavailable",
                "reason": None if time_us else "nccl-tests reported no time",
            }
        )
    for r in results:
        if r["status"] == "unavailable":
            r["busbw_gbps"] = r["time_us"] = None
    op_name = results[0]["op"]
    measured = [r for r in results if r["status"] == "measured" and r["busbw_gbps"] is not None]
    metrics: dict[str, MetricValue] = {}
    if op_name == "all_reduce" and measured:
        peak = max(measured, key=lambda r: r["busbw_gbps"])
        last = max(measured, key=lambda r: r["size_bytes"])
        metrics["busbw_gbps"] = registry_metric(
            "busbw_gbps",
            peak["busbw_gbps"],
            "measured",
            f"nccl-tests peak out-of-place busbw over sizes, at {format_size(peak['size_bytes'])}",
        )
        metrics["allreduce_ms"] = registry_metric(
            "allreduce_ms",
            last["time_us"] / 1000.0,
            "measured",
            f"nccl-tests out-of-place time of the largest size ({format_size(last['size_bytes'])})",
        )
    else:
        why = f"the log is of {op_name}, not all_reduce: its busbw is in the per-size table"
        metrics["busbw_gbps"] = registry_metric("busbw_gbps", None, "measured", "nccl-tests", why)
    sizes = [r["size_bytes"] for r in results]
    gpus = len(devices) or None
    fields = {
        "ops": op_name,
        "sizes": f"{min(sizes)}..{max(sizes)} B ({len(sizes)} sizes)",
        "dtype": dtype,
        "world_size": ranks,
        "nodes": len(hosts) or None,
        "timing_method": TIME_RULE,
        "comm_backend": "nccl",
        "device": "cuda",
        "gpu_model": " + ".join(models) if models else None,
        "gpu_count": gpus,
    }
    unknown = {
        "cpu_model": "nccl-tests does not print the CPU",
        "cpu_count": "nccl-tests does not print the CPU",
        "world_size": "the log lists no '# Rank' device lines",
        "nodes": "the log lists no '# Rank' device lines",
        "gpu_model": "the log lists no '# Rank' device lines",
        "gpu_count": "the log lists no '# Rank' device lines",
    }
    warnings = []
    if any(r["wrong"] for r in results):
        warnings.append(
            f"nccl-tests counted wrong elements at {sum(1 for r in results if r['wrong'])} sizes"
        )
    return BenchmarkRecord(
        label=label,
        source_format="nccl-tests",
        tool="nccl-tests",
        tool_version=None,
        workload_type="collectives",
        workload_name=f"collectives {format_size(min(sizes))}..{format_size(max(sizes))} {dtype}",
        hardware=models[0] if models else None,
        metrics=metrics,
        warnings=warnings,
        details={
            "world_size": ranks,
            "nodes": len(hosts) or None,
            "hostnames": hosts,
            "backend": "nccl",
            "dtype": dtype,
            "iters": params.get("iters"),
            "warmup_iters": params.get("warmup iters"),
            "collective_sizes": results,
            "collective_rule": TIME_RULE,
            "nccl_tests_params": params,
        },
        unknown={
            "per_rank_batch": "a collectives benchmark has no batch",
            "global_batch": "a collectives benchmark has no batch",
        },
        fingerprint=fingerprint.make("collectives", fields, unknown),
        unread_fields=_unread(text),
    )


def _unread(text: str) -> list[str]:
    """What of the log is not read: the in-place columns, the summary lines, and any
    comment line outside the parameters, devices and table header."""
    out = ["in-place time/algbw/busbw/#wrong (the out-of-place columns are read)"]
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("# Avg bus bandwidth") or s.startswith("# Out of bounds"):
            out.append(s.lstrip("# ").strip())
    return out
