"""The canonical result format (`minicluster/1`): metric values with provenance, atomic writes."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from minicluster.core import metrics as metrics_registry
from minicluster.core.errors import InputError

SCHEMA_VERSION = "minicluster/1"

Status = Literal["measured", "derived", "estimated", "unavailable"]


@dataclass(frozen=True)
class MetricValue:
    """One number with where it came from. Unavailable means `value is None` and a reason."""

    value: float | None
    unit: str
    status: Status
    method: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def metric(name: str, value: float | None, status: Status, method: str) -> MetricValue:
    """A registered metric's value; a None or non-finite value becomes unavailable."""
    unit = _unit(name)
    if value is None or not math.isfinite(value):
        return MetricValue(None, unit, "unavailable", method, "no finite value was recorded")
    return MetricValue(float(value), unit, status, method)


def unavailable(name: str, reason: str, method: str | None = None) -> MetricValue:
    return MetricValue(None, _unit(name), "unavailable", method, reason)


def _unit(name: str) -> str:
    m = metrics_registry.get(name)
    assert m is not None, f"metric {name!r} is not in the registry"
    return m.unit


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


@lru_cache(maxsize=1)
def result_json_schema() -> dict[str, Any]:
    """The JSON Schema of `result.json`, shipped in the package."""
    text = resources.files("minicluster.result").joinpath("schemas/result.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_result(data: Any) -> None:
    """Raise InputError naming the first place where `data` breaks the result schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(result_json_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise InputError(f"result does not match {SCHEMA_VERSION} at {where}: {err.message}")


def load_result(path: Path) -> dict[str, Any]:
    """Read and validate a `result.json`, or the one in run (or sweep) directory `path`."""
    if path.is_dir():
        if not (path / "result.json").is_file():
            raise InputError(
                f"{path} is a directory without result.json (an unfinished run? try "
                f"`minicluster aggregate {path}`)"
            )
        path = path / "result.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}") from None
    validate_result(data)
    return data
