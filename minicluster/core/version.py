"""The version of minicluster: one place, below every layer, so the ranks, the aggregation and the
converters stamp results without importing the package face (which imports `interop` for `load`).
"""

from __future__ import annotations

__version__ = "0.1.0"
