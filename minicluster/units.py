"""Unit conversions. GiB/MiB are binary (1024^n); GB/s is decimal (1e9), as nccl-tests reports it."""

from __future__ import annotations

NS_PER_MS = 1_000_000
BYTES_PER_MIB = 1024**2
BYTES_PER_GIB = 1024**3
BYTES_PER_GB = 1e9


def ns_to_ms(ns: float) -> float:
    return ns / NS_PER_MS


def bytes_to_mib(n_bytes: float) -> float:
    return n_bytes / BYTES_PER_MIB


def bytes_per_ms_to_gbps(n_bytes: float, ms: float) -> float:
    """Bytes moved in `ms` milliseconds as decimal GB/s (1 GB = 1e9 bytes)."""
    return n_bytes / (ms / 1000.0) / BYTES_PER_GB
