"""Compare benchmark records metric by metric with the rules of DESIGN.md section 7."""

from __future__ import annotations

from minicluster.compare.engine import Comparison, PairComparison, Row, compare

__all__ = ["Comparison", "PairComparison", "Row", "compare"]
