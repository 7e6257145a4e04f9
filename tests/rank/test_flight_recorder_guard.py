"""The Flight Recorder's private dump API behind its guard: anything odd is no dump and a reason,
never the rank's failure (the API is mocked: what it returns is the private part)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

pytest.importorskip("torch")

from torch._C import _distributed_c10d as c10d  # noqa: E402

from minicluster.rank import flight_recorder  # noqa: E402


@pytest.mark.parametrize(
    ("returned", "why"),
    [
        ("text", "returned str, not bytes"),
        (b"\x00garbage", "do not unpickle"),
        (pickle.dumps({"entries": []}), "no {version, entries} dict"),
    ],
)
def test_odd_returns_are_no_dump_with_a_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, returned: object, why: str
) -> None:
    monkeypatch.setattr(c10d, "_dump_fr_trace", lambda: returned)
    raw, reason = flight_recorder.snapshot()
    assert raw is None and reason is not None and why in reason
    assert flight_recorder.dump(tmp_path, 3) is None
    assert not (tmp_path / "flight_recorder").exists()


def test_a_raising_api_or_a_missing_one_is_no_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> bytes:
        raise RuntimeError("no process group")

    monkeypatch.setattr(c10d, "_dump_fr_trace", boom)
    assert flight_recorder.snapshot() == (
        None,
        "_dump_fr_trace failed: RuntimeError: no process group",
    )
    monkeypatch.delattr(c10d, "_dump_fr_trace")
    assert flight_recorder.snapshot() == (None, "this torch has no _dump_fr_trace")


def test_a_good_dump_is_written_as_torch_wrote_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    raw = pickle.dumps({"version": "2.10", "pg_config": {}, "entries": []})
    monkeypatch.setattr(c10d, "_dump_fr_trace", lambda: raw)
    path = flight_recorder.dump(tmp_path, 3)
    assert path == tmp_path / "flight_recorder" / "rank_00003"
    assert path.read_bytes() == raw
