"""Decide which format a file is in, from its content, and hand it to that format's importer."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from minicluster.core import rundir
from minicluster.core.errors import InputError
from minicluster.interop.record import FORMATS, BenchmarkRecord, check_physical
from minicluster.result.node_check import is_node_check

MAX_INPUT_BYTES = 512 * 1024**2  # a result larger than this is not something we were written for
# A GitHub table's delimiter row, outer pipes optional: `|---|:--:|` or `--- | ---`.
_TABLE_DELIMITER = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)+\|?\s*$", re.M)


def read_text(path: Path) -> str:
    """The file's text; InputError for a missing, unreadable, binary or oversized file."""
    try:
        size = path.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise InputError(
                f"{path}: {size / 1024**2:.0f} MiB is larger than the "
                f"{MAX_INPUT_BYTES // 1024**2} MiB limit"
            )
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory without result.json") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text (binary file?)") from None
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None


def parse_json(text: str, path: Path) -> Any:
    def _no_constants(name: str) -> None:
        raise InputError(f"{path}: {name} is not a number JSON allows")

    try:
        return json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: invalid JSON (truncated?): {e.msg} at line {e.lineno}") from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply") from None


def sniff(text: str, path: Path) -> tuple[str, Any]:
    """(format name, parsed content) for `text`; SGLang's content is its list of runs."""
    from minicluster.interop import nccl_tests, sglang

    stripped = text.lstrip()
    if nccl_tests.looks_like(text):
        return "nccl-tests", text
    if stripped.startswith("{"):
        first = stripped.split("\n", 1)[0]
        try:
            head = json.loads(first, parse_constant=lambda name: float("inf"))
        except json.JSONDecodeError:
            head = None
        if isinstance(head, dict) and sglang.looks_like(head):
            return "sglang", sglang.parse_lines(text, str(path))
    if stripped.startswith(("{", "[")):
        data = parse_json(text, path)
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a JSON object at the top level")
        if str(data.get("schema_version", "")).startswith("minicluster/"):
            return "minicluster", data
        if "tool_name" in data and "metrics" in data and "workload" in data:
            return "trackiq", data
        if "completed" in data and any(k in data for k in ("request_throughput", "mean_ttft_ms")):
            return "vllm", data
        refuse_node_check(data, path)
        raise InputError(
            f"{path}: JSON of an unknown format (not a minicluster result, TrackIQ result, "
            "vLLM benchmark_serving or SGLang bench_serving output); use --format to force one"
        )
    if stripped.startswith("#") or "\n|" in text or _TABLE_DELIMITER.search(text):
        return "markdown", text
    raise InputError(f"{path}: unknown format; use --format {'|'.join(FORMATS)}")


def refuse_node_check(data: Any, path: Path) -> None:
    """InputError saying what a node-check result is and where it is read (`fleet`, `report`),
    for a command that reads run results."""
    if is_node_check(data):
        raise InputError(
            f"{path}: a minicluster node-check result (`minicluster node-check`), not a run: "
            "node checks are compared with `minicluster fleet RESULT...` (one per node), one is "
            "shown with `minicluster report`"
        )


def split_selector(path: Path) -> tuple[Path, int | None]:
    """`FILE#N` (the N-th run of a file holding several, 1-based) -> (FILE, N); else (path, None)."""
    text = str(path)
    head, sep, tail = text.rpartition("#")
    if sep and tail.isdigit() and not path.exists() and Path(head).exists():
        return Path(head), int(tail)
    return path, None


def load(path: Path, fmt: str | None = None) -> BenchmarkRecord:
    """`path` (a file, or a run or sweep directory holding result.json) as `fmt` or as detected,
    every value checked (`record.check_physical`). InputError when it is not that format, or
    when it holds several runs (SGLang JSONL) and `FILE#N` does not pick one."""
    runs = load_runs(path, fmt)
    if len(runs) > 1:
        raise InputError(
            f"{path} holds {len(runs)} runs ({', '.join(r.label for r in runs)}): pick one "
            f"with {path}#N (1..{len(runs)})"
        )
    return runs[0]


def load_runs(path: Path, fmt: str | None = None) -> list[BenchmarkRecord]:
    """Every run in `path` (one, except an SGLang JSONL file of appended runs: one record per
    line, labelled FILE#N); `FILE#N` picks the N-th."""
    path, pick = split_selector(path)
    if path.is_dir():
        path = rundir.result_path(path)
    text = read_text(path)
    if fmt is None:
        fmt, content = sniff(text, path)
    elif fmt in ("markdown", "nccl-tests"):
        content = text
    elif fmt == "sglang":
        from minicluster.interop import sglang

        content = sglang.parse_lines(text, str(path))
    elif fmt in FORMATS:
        content = parse_json(text, path)
        if not isinstance(content, dict):
            raise InputError(f"{path}: expected a JSON object at the top level")
        refuse_node_check(content, path)
    else:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    # a run is named by its directory; through a link (`runs/latest`), by the run it points at
    label = path.name
    if path.name == rundir.RESULT_FILE:
        folder = path.parent
        label = folder.resolve().name if folder.is_symlink() else folder.name
    items = content if isinstance(content, list) else [content]
    labels = [label] if len(items) == 1 else [f"{label}#{i}" for i in range(1, len(items) + 1)]
    if pick is not None:
        if not 1 <= pick <= len(items):
            raise InputError(f"{path} holds {len(items)} run(s): #{pick} is not one of them")
        items, labels = [items[pick - 1]], [f"{label}#{pick}"]
    records = []
    for item, name in zip(items, labels, strict=True):
        try:
            record = _import(fmt, item, name)
        except InputError as e:
            raise InputError(f"{path}: {e}") from None
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            # A field of the wrong shape deep inside an otherwise recognised file.
            raise InputError(f"{path}: malformed {fmt} input ({type(e).__name__}: {e})") from None
        check_physical(record)
        records.append(record)
    return records


def _import(fmt: str, content: Any, label: str) -> BenchmarkRecord:
    if fmt == "minicluster":
        from minicluster.interop import minicluster as minicluster_result
        from minicluster.result import parse

        return minicluster_result.to_record(parse(content), label)
    if fmt == "trackiq":
        from minicluster.interop import trackiq

        return trackiq.to_record(content, label)
    if fmt == "vllm":
        from minicluster.interop import vllm

        return vllm.to_record(content, label)
    if fmt == "sglang":
        from minicluster.interop import sglang

        return sglang.to_record(content, label)
    if fmt == "nccl-tests":
        from minicluster.interop import nccl_tests

        return nccl_tests.to_record(content, label)
    from minicluster.interop import markdown as markdown_report

    return markdown_report.to_record(content, label)
