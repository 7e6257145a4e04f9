"""Whether N ranks fit on this host: a warning when they share cores, a refusal past its memory."""

from __future__ import annotations

import pytest

from minicluster.core import host_fit
from minicluster.core.errors import InputError

GIB = 1024**3


def test_ranks_within_the_cores_say_nothing() -> None:
    assert host_fit.check_local_ranks(2, False, cores=2, memory_bytes=24 * GIB) is None


def test_more_ranks_than_cores_warn_that_they_share_them() -> None:
    warning = host_fit.check_local_ranks(8, False, cores=2, memory_bytes=24 * GIB)
    assert warning is not None and "8 ranks on 2 CPU cores: ranks share cores" in warning


def test_more_ranks_than_memory_holds_are_refused_with_the_bound() -> None:
    with pytest.raises(InputError) as e:
        host_fit.check_local_ranks(1000, False, cores=2, memory_bytes=24 * GIB)
    text = str(e.value)
    assert text.startswith("--nproc 1000 would start 1000 torch processes")
    assert "24.0 GiB" in text and "at most 81 ranks fit here" in text


def test_gpu_ranks_are_not_judged_by_host_cores() -> None:
    assert host_fit.check_local_ranks(8, True, cores=2, memory_bytes=24 * GIB) is None


def test_the_floor_is_below_what_a_real_rank_used() -> None:
    import json
    from pathlib import Path

    golden = Path(__file__).resolve().parents[1] / "golden" / "run_2ranks.result.json"
    ranks = json.loads(golden.read_text())["ranks"]
    assert all(r["memory"]["rss_peak_bytes"] >= host_fit.RANK_RSS_FLOOR_BYTES for r in ranks)
