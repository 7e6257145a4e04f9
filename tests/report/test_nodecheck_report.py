"""The node-check report renders what the result holds: the verdict line first, failed and degraded
checks highlighted with their remediation, what could not be checked and why, the burn-in plot;
user text (a host name) escaped in Markdown and HTML."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from minicluster.analysis import nodecheck
from minicluster.core.nodecheck_plan import for_level
from minicluster.report.nodecheck import (
    burn_in_plot,
    node_check_html,
    node_check_markdown,
    print_node_check,
)

ROOT = Path(__file__).resolve().parents[2]

PLAN = for_level("quick", checks=("gemm", "burn_in", "infiniband"))


def result(host: str = "node-1") -> dict[str, Any]:
    obs = {
        "platform": {
            "hostname": host,
            "cpu_model": "AMD EPYC",
            "gpu_model": None,
            "gpus_per_node": 0,
            "device": "cpu",
            "cuda_reason": "CPU-only torch",
        },
        "gemm": [
            {
                "kind": "gemm",
                "device": "cpu",
                "dtype": "float32",
                "n": 1024,
                "tflops": 0.05,
                "call_s": [0.04] * 10,
                "checked": 65536,
                "wrong": 2,
                "max_norm_err": 0.3,
                "tolerance": 1e-4,
                "method": "m",
                "error": None,
            },
        ],
        "infiniband": {
            "present": False,
            "ports": [],
            "reason": "/sys/class/infiniband does not exist",
        },
        "burn_in": {
            "kind": "burn_in",
            "dtype": "float32",
            "n": 1024,
            "duration_s": 6.0,
            "interval_s": 1.0,
            "method": "m",
            "error": None,
            "check": {"cpu": {"wrong": 0, "checked": 65536}},
            "intervals": [
                {
                    "t_s": i + 1.0,
                    "devices": {
                        "cpu": {
                            "calls": 20,
                            "seconds": 1.0,
                            "tflops": 0.05 - 0.003 * i,
                            "state": {"cpu_mhz": 2600.0},
                        }
                    },
                }
                for i in range(6)
            ],
        },
    }
    return nodecheck.build(obs, PLAN, None, None, "nc-1", "2026-12-04T00:00:00+00:00", "0.1.0")


def test_markdown_leads_with_the_verdict_and_the_remediation() -> None:
    md = node_check_markdown(result())
    lines = md.splitlines()
    assert lines[0] == "# minicluster node check: node-1 (quick)"
    assert lines[2].startswith("**node check quick on node-1: FAILED (")
    assert "2 wrong element(s) of 65,536 checked" in lines[2]
    assert "| **gemm cpu float32 n=1024** | **failed** |" in md
    assert "silent data corruption: drain the node" in md
    assert (
        "| infiniband node | no InfiniBand to check: /sys/class/infiniband does not exist |" in md
    )
    assert "## Burn-in: float32 GEMM n = 1024, 6.00 s" in md


def test_html_escapes_the_host_name_and_plots_the_burn_in() -> None:
    page = node_check_html(result(host="<script>alert(1)</script>"))
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'data-plot="node-check-burn-in"' in page
    assert page.index('data-plot="node-check-burn-in"') < page.index("<table")
    assert '<span class="status status-failed">failed</span>' in page


def test_no_burn_in_no_plot() -> None:
    r = copy.deepcopy(result())
    r["burn_in"] = None
    assert burn_in_plot(r) is None
    assert "Burn-in" not in node_check_markdown(r)


@pytest.mark.parametrize("width", [80, 120])
def test_terminal_tables_never_cut_a_value(width: int) -> None:
    """Issue 26: at 80 columns the headline figures read "gemm_tfl…  …  …" (a real node check,
    reports/node_check.json): long conditions fold, columns that do not fit are left out whole."""
    recorded = json.loads((ROOT / "reports" / "node_check.json").read_text())
    out = io.StringIO()
    print_node_check(recorded, Console(file=out, width=width, highlight=False, color_system=None))
    text = out.getvalue()
    assert "…" not in text, [line for line in text.splitlines() if "…" in line][:3]
    assert "gemm_tflops" in text


def test_the_burn_in_legend_names_each_device() -> None:
    """With two devices the legend showed each line's colour code ("#0072B2") as its name."""
    r = result()
    for iv in r["burn_in"]["intervals"]:
        iv["devices"]["cuda:1"] = {**iv["devices"]["cpu"], "tflops": 0.04}
    plot = burn_in_plot(r)
    assert plot is not None
    legend = plot.svg[plot.svg.index('<g class="legend">') :]
    assert ">cpu<" in legend and ">cuda:1<" in legend
    assert ">#0072B2<" not in legend
