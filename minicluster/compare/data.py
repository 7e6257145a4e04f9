"""A comparison as plain data (the `--json` output): one row per metric, per candidate."""

from __future__ import annotations

from typing import Any

from minicluster.compare.engine import Comparison, PairComparison
from minicluster.interop.record import BenchmarkRecord

COMPARISON_SCHEMA = "minicluster-compare/1"


def _source(rec: BenchmarkRecord) -> dict[str, Any]:
    return {
        "label": rec.label,
        "format": rec.source_format,
        "tool": rec.tool,
        "tool_version": rec.tool_version,
        "workload_type": rec.workload_type,
        "workload": rec.workload_name,
        "hardware": rec.hardware,
        "fingerprint": rec.fingerprint,
    }


def _pair(p: PairComparison) -> dict[str, Any]:
    return {
        "a": _source(p.a),
        "b": _source(p.b),
        "warnings": p.warnings,
        "rows": [r.to_dict() for r in p.rows],
        "families": p.families,
        "geomean": {
            "ratio": p.geomean_ratio,
            "n": p.geomean_n,
            "rows": len(p.rows),
            "excluded": p.geomean_excluded,
            "meaning": "geometric mean of direction-normalized b/a ratios over the judged rows "
            "(measured, comparable, tested where needed, above the noise floor); > 1 favours b",
        },
        "regressions": [r.metric for r in p.regressions],
        "unfinished": p.unfinished,
        "own_checks_failed": p.own_failed,
        "own_not_judged": p.own_not_judged,
        "nothing_judged": p.nothing_judged,
        "host_load": p.host_load,
        "comparability": p.comparability.to_dict() if p.comparability else None,
        "sizes": p.sizes,
        "structure": p.structure,
        "runs": {"a": [r.label for r in p.a.runs], "b": [r.label for r in p.b.runs]},
    }


def to_dict(c: Comparison) -> dict[str, Any]:
    return {
        "schema": COMPARISON_SCHEMA,
        "baseline": c.baseline.label,
        "threshold_pct": c.threshold_pct,
        "alpha": c.alpha,
        "regression_found": c.has_regression,
        "gate_failed": c.gate_failed,
        "verdict": c.verdict,
        "comparisons": [_pair(p) for p in c.pairs],
    }
