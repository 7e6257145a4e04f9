"""`core.io.dumps_indented`: json.dumps(indent=2, allow_nan=False) byte for byte, faster."""

from __future__ import annotations

import json
import math
import random

import pytest

from minicluster.core import io
from minicluster.core.io import atomic_write_json, dumps_indented

CHARS = [chr(c) for c in range(0, 0x80)] + ["é", "°", "€", "\u2028", "\ud7ff", "😀", "\U0010ffff"]


def reference(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=False, allow_nan=False)


def random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, -1, 7, 2**53, 2**63 - 1, -(2**63), rng.randrange(-(10**9), 10**9)])
    if kind == 3:  # floats of every magnitude: orjson writes some of them otherwise
        return rng.choice([0.0, -0.0, 1e-05, 1e16, 1.5e300, 5e-324, 0.1, 123456789.0]) or (
            rng.uniform(-1, 1) * 10 ** rng.randrange(-12, 20)
        )
    if kind in (4, 5):
        return "".join(rng.choice(CHARS) for _ in range(rng.randrange(6)))
    if kind in (6, 7):
        return {
            "".join(rng.choice(CHARS) for _ in range(rng.randrange(4))): random_value(
                rng, depth + 1
            )
            for _ in range(rng.randrange(4))
        }
    return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_same_text_as_json_dumps_on_random_values() -> None:
    rng = random.Random(28)
    for _ in range(3000):
        data = random_value(rng)
        assert dumps_indented(data) == reference(data)


@pytest.mark.parametrize(
    "data",
    [
        {},
        [],
        {"a": [], "b": {}, "c": [[], [{}]], "d": {"e": {}}},
        {"unit": "°C", "x": "\x7f", "y": "😀", "z": '\n\t"\\'},
        {"p": 3.2e-05, "q": 1e16, "r": [1e-07, 2.5e-310]},  # orjson writes these otherwise
        {1: "int key", "2": None},  # json makes the key a string; orjson refuses it
        {"big": 2**70},  # beyond 64 bits: orjson refuses it
        [True, False, None, -0.0, 0],
    ],
)
def test_same_text_as_json_dumps_on_edge_cases(data: object) -> None:
    assert dumps_indented(data) == reference(data)


def test_the_fast_path_is_taken_and_the_slow_one_when_orjson_writes_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[object] = []
    real = json.dumps

    def spy(obj: object, **kw: object) -> str:
        calls.append(kw.get("indent"))
        return real(obj, **kw)  # type: ignore[arg-type]

    want = reference({"a": [1.5, "°"]})
    monkeypatch.setattr(io.json, "dumps", spy)
    assert dumps_indented({"a": [1.5, "°"]}) == want
    assert calls == [None]  # the compact check only: orjson wrote the indented text
    calls.clear()
    dumps_indented({"a": 1e-05})
    assert calls == [None, 2]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_raise_as_json_dumps_does(bad: float) -> None:
    with pytest.raises(ValueError):
        dumps_indented({"x": [bad]})


def test_values_json_cannot_encode_raise_as_json_dumps_does(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(TypeError):
        dumps_indented({"x": {1, 2}})  # orjson would not encode it either
    import datetime

    with pytest.raises(TypeError):
        dumps_indented({"x": datetime.date(2026, 12, 7)})  # orjson would have written it
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises(ValueError):
        dumps_indented(circular)
    path = tmp_path / "r.json"
    atomic_write_json(path, {"a": "°", "b": [1e-05]})
    assert path.read_text() == reference({"a": "°", "b": [1e-05]}) + "\n"
