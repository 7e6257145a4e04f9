"""`heap.keep_freed_memory`: glibc accepts the thresholds; without a C library's `mallopt`
nothing is set and it says so."""

from __future__ import annotations

import ctypes
import platform

import pytest

from minicluster.core import heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_glibc_keeps_freed_memory() -> None:
    assert heap.keep_freed_memory() is True
    assert heap.keep_freed_memory() is True  # again: the same values


def test_without_mallopt_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_libc(*args: object, **kwargs: object) -> None:
        raise OSError("no C library here")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert heap.keep_freed_memory() is False
