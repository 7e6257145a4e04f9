"""Decide which format a file is in, from its content, and hand it to that format's importer."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from minicluster.core import rundir
from minicluster.core.errors import InputError
from minicluster.interop.record import FORMATS, BenchmarkRecord, check_physical

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
    """(format name, parsed content) for `text`."""
    stripped = text.lstrip()
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
        raise InputError(
            f"{path}: JSON of an unknown format (not a minicluster result, TrackIQ result or "
            "vLLM benchmark_serving output); use --format to force one"
        )
    if stripped.startswith("#") or "\n|" in text or _TABLE_DELIMITER.search(text):
        return "markdown", text
    raise InputError(f"{path}: unknown format; use --format {'|'.join(FORMATS)}")


def load(path: Path, fmt: str | None = None) -> BenchmarkRecord:
    """`path` (a file, or a run or sweep directory holding result.json) as `fmt` or as detected,
    every value checked (`record.check_physical`). InputError when it is not that format."""
    if path.is_dir():
        path = rundir.result_path(path)
    text = read_text(path)
    if fmt is None:
        fmt, content = sniff(text, path)
    elif fmt == "markdown":
        content = text
    elif fmt in FORMATS:
        content = parse_json(text, path)
        if not isinstance(content, dict):
            raise InputError(f"{path}: expected a JSON object at the top level")
    else:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    # a run is named by its directory; through a link (`runs/latest`), by the run it points at
    label = path.name
    if path.name == rundir.RESULT_FILE:
        folder = path.parent
        label = folder.resolve().name if folder.is_symlink() else folder.name
    try:
        record = _import(fmt, content, label)
    except InputError as e:
        raise InputError(f"{path}: {e}") from None
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        # A field of the wrong shape deep inside an otherwise recognised file.
        raise InputError(f"{path}: malformed {fmt} input ({type(e).__name__}: {e})") from None
    check_physical(record)
    return record


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
    from minicluster.interop import markdown as markdown_report

    return markdown_report.to_record(content, label)
