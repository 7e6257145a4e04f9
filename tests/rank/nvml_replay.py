"""Replay a recorded NVML trace (scripts/record_nvml_trace.py) as an autospec'd pynvml.

Every function of the real pynvml module is autospec'd (a call with the wrong arguments fails as it
would against the real binding); a function the trace recorded answers what the driver answered
for those arguments (the value, or the NVMLError with the driver's code), and one it did not
record raises `NotRecorded`, an NVMLError saying so, so that no test runs on an answer nobody
recorded. Constants and the NVMLError classes are the real module's.

Faulty GPUs are derived from a real trace (`with_value`, `with_error`): the healthy H200's answers
with one query changed, so everything else stays what a driver said.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pynvml

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpu"
H200 = FIXTURES / "nvml_trace_h200.json"


class NotRecorded(pynvml.NVMLError):
    """A query the trace holds no answer for (never invented)."""

    def __new__(cls, what: str) -> NotRecorded:
        obj = Exception.__new__(cls)
        obj.value = -1
        obj.what = what
        return obj

    def __init__(self, what: str) -> None:
        Exception.__init__(self, what)

    def __str__(self) -> str:
        return f"{self.what}: not in the recorded trace"


class Handle:
    """What nvmlDeviceGetHandleByIndex returns in the replay: the device's index."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"Handle({self.index})"


def load(path: Path = H200) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _value(v: Any) -> Any:
    """A recorded struct (a dict) as an object with those attributes, as pynvml returns it."""
    if isinstance(v, dict):
        return SimpleNamespace(**v)
    return v


def _matches(recorded: list[Any], args: tuple[Any, ...]) -> bool:
    if len(recorded) != len(args):
        return False
    for want, got in zip(recorded, args, strict=True):
        if isinstance(got, Handle):
            got = got.index
        if isinstance(want, str):
            want = getattr(pynvml, want)
        if want != got:
            return False
    return True


def replay(trace: dict[str, Any]) -> Any:
    """An autospec'd pynvml answering from `trace` (see the module docstring)."""
    nv = mock.create_autospec(pynvml)
    for name in dir(pynvml):
        value = getattr(pynvml, name)
        if name.startswith(("NVML_", "nvmlClocks", "nvmlEventType")) and isinstance(value, int):
            setattr(nv, name, value)
        elif isinstance(value, type) and issubclass(value, Exception):
            setattr(nv, name, value)
    by_fn: dict[str, list[dict[str, Any]]] = {}
    for call in trace["calls"]:
        by_fn.setdefault(call["fn"], []).append(call)
    nv.nvmlInit.side_effect = None
    nv.nvmlInit.return_value = None
    nv.nvmlShutdown.return_value = None
    count = next((c["value"] for c in by_fn.get("nvmlDeviceGetCount", []) if "value" in c), 0)

    def handle(index: int) -> Handle:
        if not 0 <= index < count:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return Handle(index)

    nv.nvmlDeviceGetHandleByIndex.side_effect = handle

    def answer(fn: str) -> Any:
        def side_effect(*args: Any) -> Any:
            for call in by_fn.get(fn, []):
                if _matches(call["args"], args):
                    if "error" in call:
                        raise pynvml.NVMLError(call["error"]["code"])
                    return _value(call["value"])
            raise NotRecorded(f"{fn}{args}")

        return side_effect

    for name in dir(pynvml):
        if (
            name.startswith("nvml")
            and callable(getattr(pynvml, name))
            and name
            not in (
                "nvmlInit",
                "nvmlShutdown",
                "nvmlDeviceGetHandleByIndex",
            )
        ):
            attr = getattr(nv, name, None)
            if isinstance(attr, mock.Mock):
                attr.side_effect = answer(name)
    return nv


def _find(trace: dict[str, Any], fn: str, args: list[Any]) -> dict[str, Any]:
    for call in trace["calls"]:
        if call["fn"] == fn and call["args"] == args:
            return call
    raise KeyError(f"{fn}{args} is not in the trace")


def with_value(trace: dict[str, Any], fn: str, args: list[Any], value: Any) -> dict[str, Any]:
    """A copy of `trace` where `fn(args)` answers `value` (the rest as recorded)."""
    out = copy.deepcopy(trace)
    call = _find(out, fn, args)
    call.pop("error", None)
    call["value"] = value
    return out


def with_error(trace: dict[str, Any], fn: str, args: list[Any], code: int) -> dict[str, Any]:
    """A copy of `trace` where `fn(args)` fails with NVML error `code`."""
    out = copy.deepcopy(trace)
    call = _find(out, fn, args)
    call.pop("value", None)
    call["error"] = {"code": code, "text": str(pynvml.NVMLError(code))}
    return out
