"""HTML reports in headless Chromium: they load without console errors and their plots render.

Chromium comes from Debian (`.ci/run` installs it); Playwright drives it (dev extra).
Screenshots land in each test's tmp_path.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from minicluster.report.html import render_html
from minicluster.result.model import RunResult

REPORTS = Path(__file__).resolve().parents[1] / "golden" / "reports"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright not installed (pip install -e '.[dev]')"
)
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install -y chromium)"
    ),
    pytest.mark.timeout(120),
]

# Each kind of HTML report there is today, and the plots it must show.
CASES = {
    "run_ok": ["step_time", "rank_breakdown"],
    "run_failed": ["step_time", "rank_breakdown"],
    "run_straggler": ["step_time", "rank_breakdown"],
    # A sweep leads with its efficiency and where it went (scaling, scaling_loss), then the rest.
    "run_all_plots": ["scaling", "step_time", "rank_breakdown", "busbw", "power", "temperature"],
    "sweep_ok": ["scaling", "step_time", "rank_breakdown"],
    "sweep_projected": ["scaling", "scaling_loss", "step_time", "rank_breakdown"],
    "collectives": ["busbw"],
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.mark.parametrize("name", sorted(CASES))
def test_report_loads_and_plots_render(browser: Any, name: str, tmp_path: Path) -> None:
    result = json.loads((REPORTS / f"{name}.result.json").read_text())
    page_file = tmp_path / f"{name}.html"
    page_file.write_text(render_html(RunResult.from_json(result)), encoding="utf-8")

    page = browser.new_page(viewport={"width": 1150, "height": 900})
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(str(e)))
    failed_requests: list[str] = []
    page.on("requestfailed", lambda r: failed_requests.append(r.url))
    page.goto(page_file.as_uri())
    page.wait_for_load_state("load")

    assert console_errors == []
    assert failed_requests == []
    kind = (
        "sweep" if result.get("scaling") else "collectives" if result.get("collectives") else "run"
    )
    assert page.title() == f"minicluster {kind} {result['run_id']}"
    labels = page.eval_on_selector_all("svg.plot", "els => els.map(e => e.dataset.plot)")
    assert labels == CASES[name]
    for label in labels:
        svg = page.locator(f'svg[data-plot="{label}"]')
        box = svg.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 80, label
        # Something was drawn inside the axes: lines or bars with a real size on screen.
        drawn = svg.locator("polyline.series, rect.bar")
        assert drawn.count() > 0, label
        sizes = drawn.evaluate_all(
            "els => els.map(e => { const b = e.getBBox(); return b.width + b.height; })"
        )
        assert max(sizes) > 10, label
    # The tables are plain HTML: readable with JavaScript off.
    assert page.locator("table").count() >= 4
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    page.close()


def test_sweep_page_shows_every_world_size(browser: Any, tmp_path: Path) -> None:
    result = json.loads((REPORTS / "sweep_ok.result.json").read_text())
    page_file = tmp_path / "sweep.html"
    page_file.write_text(render_html(RunResult.from_json(result)), encoding="utf-8")
    page = browser.new_page()
    page.goto(page_file.as_uri())
    rows = page.locator('table[data-table="Scaling"] tbody tr')
    assert rows.count() == len(result["scaling"]["points"]) == 3
    assert rows.nth(2).locator("td").first.inner_text() == "4"
    points = page.locator('svg[data-plot="scaling"] circle.point')
    assert points.count() == 3
    ys = points.evaluate_all("els => els.map(e => e.getBoundingClientRect().y)")
    assert ys == sorted(ys)  # falling efficiency: each point lower on screen than the last
    page.close()


def test_straggler_is_visible_at_a_glance(browser: Any, tmp_path: Path) -> None:
    result = json.loads((REPORTS / "run_straggler.result.json").read_text())
    page_file = tmp_path / "straggler.html"
    page_file.write_text(render_html(RunResult.from_json(result)), encoding="utf-8")
    page = browser.new_page()
    page.goto(page_file.as_uri())
    row = page.locator('table[data-table="Ranks"] tr.hl')
    assert row.count() == 1 and "straggler" in row.inner_text()
    bg = row.locator("td").first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert bg != "rgba(0, 0, 0, 0)"
    outline = page.locator('svg[data-plot="rank_breakdown"] rect[stroke="#C00"]')
    assert outline.count() == 1 and outline.bounding_box() is not None
    page.close()


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "compare"


@pytest.mark.parametrize(
    ("a", "b", "drawn"),
    [("mc11_clean_a.json", "mc11_straggler.json", True), ("mc_run.json", "md_004.md", False)],
    ids=["training-vs-training", "training-vs-inference"],
)
def test_comparison_page_loads_and_its_plot_renders(
    browser: Any, a: str, b: str, drawn: bool, tmp_path: Path
) -> None:
    from minicluster.compare import compare
    from minicluster.interop import load
    from minicluster.report.comparison import to_html

    comparison = compare([load(FIXTURES / a, None), load(FIXTURES / b, None)], 0, 5.0, 0.05)
    page_file = tmp_path / "comparison.html"
    page_file.write_text(to_html(comparison), encoding="utf-8")

    page = browser.new_page(viewport={"width": 1150, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_file.as_uri())
    page.wait_for_load_state("load")
    assert errors == []
    svg = page.locator('svg[data-plot="comparison"]')
    # across workload types no row gets a verdict, so there is nothing to draw
    assert svg.count() == (1 if drawn else 0)
    if drawn:
        box = svg.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 80
        title = svg.locator("text.ptitle").bounding_box()
        assert title is not None and title["x"] + title["width"] <= box["x"] + box["width"]
        bars = svg.locator("rect.bar")
        assert bars.count() > 5
        widths = [bars.nth(i).bounding_box()["width"] for i in range(bars.count())]
        assert sum(w > 3 for w in widths) >= 5  # one huge change does not flatten the others
    assert page.locator("table tr").count() > 10
    page.screenshot(path=str(tmp_path / "comparison.png"), full_page=True)
    page.close()


def _load_page(browser: Any, html: str, tmp_path: Path, name: str) -> Any:
    page_file = tmp_path / f"{name}.html"
    page_file.write_text(html, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1150, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_file.as_uri())
    page.wait_for_load_state("load")
    assert errors == []
    return page


def test_pairwise_heat_map_shows_the_slow_link_first(browser: Any, tmp_path: Path) -> None:
    path = Path(__file__).resolve().parents[1] / "fixtures" / "pairwise" / "slow_link.result.json"
    result = json.loads(path.read_text())
    page = _load_page(browser, render_html(RunResult.from_json(result)), tmp_path, "pairwise")
    assert page.title() == f"minicluster pairwise {result['run_id']}"
    labels = page.eval_on_selector_all("svg.plot", "els => els.map(e => e.dataset.plot)")
    assert labels[0] == "pairwise"
    heat = page.locator('svg[data-plot="pairwise"]')
    verdict = page.locator("p.verdict").bounding_box()
    summary = page.locator('table[data-table="Summary"]').bounding_box()
    box = heat.bounding_box()
    assert verdict["y"] < box["y"] < summary["y"]  # the verdict, the heat map, then the tables
    outlined = heat.locator('rect.bar[stroke="#000000"]')
    # both directions of the slow pair (the legend swatch is in the standard legend column now)
    assert outlined.count() == 2
    sizes = outlined.evaluate_all("els => els.map(e => e.getBBox().width)")
    assert min(sizes) > 10
    page.screenshot(path=str(tmp_path / "pairwise.png"), full_page=True)
    page.close()


def test_node_check_page_leads_with_the_verdict_and_the_burn_in(
    browser: Any, tmp_path: Path
) -> None:
    from minicluster.report.nodecheck import node_check_html

    path = Path(__file__).resolve().parents[2] / "reports" / "node_check.json"
    result = json.loads(path.read_text())
    page = _load_page(browser, node_check_html(result), tmp_path, "node_check")
    labels = page.eval_on_selector_all("svg.plot", "els => els.map(e => e.dataset.plot)")
    assert labels == ["node-check-burn-in"]
    plot = page.locator('svg[data-plot="node-check-burn-in"]')
    assert plot.locator("circle.point").count() == len(result["burn_in"]["intervals"])
    verdict = page.locator("p.verdict").bounding_box()
    checks = page.locator('table[data-table="Checks"]').bounding_box()
    assert verdict["y"] < plot.bounding_box()["y"] < checks["y"]
    page.screenshot(path=str(tmp_path / "node_check.png"), full_page=True)
    page.close()


def test_fleet_page_plots_every_metric_and_marks_the_outlier(browser: Any, tmp_path: Path) -> None:
    from minicluster.analysis.fleet import fleet
    from minicluster.report.fleet import fleet_html

    root = Path(__file__).resolve().parents[1] / "fixtures" / "fleet"
    paths = [root / f"node{i}" / "result.json" for i in range(1, 9)]
    report = fleet([(str(p), json.loads(p.read_text())) for p in paths])
    page = _load_page(browser, fleet_html(report), tmp_path, "fleet")
    labels = page.eval_on_selector_all("svg.plot", "els => els.map(e => e.dataset.plot)")
    assert labels == [f"fleet-{m['name']}" for m in report["metrics"]]
    strip = page.locator('svg[data-plot="fleet-compute_ms"]')
    assert strip.locator("circle.point").count() == 8
    # node6's own run named its straggler: drawn apart (orange), not as the fleet's outlier
    assert strip.locator('circle.point[fill="#C00"]').count() == 0
    own = strip.locator('circle.point[fill="#D97706"]')
    assert own.count() == 1 and "node6" in own.locator("title").text_content()
    xs = strip.locator("circle.point").evaluate_all(
        "els => els.map(e => e.getBoundingClientRect().x)"
    )
    assert len({round(x) for x in xs}) > 4  # the seven clean nodes are not squashed together
    page.screenshot(path=str(tmp_path / "fleet.png"), full_page=True)
    page.close()


def test_who_was_late_strip_has_a_cell_per_step_and_rank(browser: Any, tmp_path: Path) -> None:
    """A real run's records (rank 1 late in every other step): the strip renders one row per
    rank and one visible cell per step, the last arrivals coloured, most of them rank 1's."""
    from minicluster.analysis.aggregate import aggregate
    from minicluster.analysis.records import read_run_dir

    run = Path(__file__).resolve().parents[1] / "fixtures" / "recorded_runs"
    data = aggregate(read_run_dir(run / "intermittent_every2", workers=1))
    steps = len(data["accounting"]["last_arrival"]["step"])
    page = _load_page(browser, render_html(RunResult.from_json(data)), tmp_path, "late_strip")
    rows = page.locator('[data-strip="late"] tr')
    assert rows.count() == 2
    for r in range(2):
        cells = page.locator(f'[data-strip="late"] tr[data-rank="{r}"] td.c')
        assert cells.count() == steps == 50
        box = cells.first.bounding_box()
        assert box is not None and box["width"] >= 5 and box["height"] >= 10
    last = [page.locator(f'tr[data-rank="{r}"] td.c.last').count() for r in range(2)]
    assert sum(last) == steps and last[1] > last[0]
    grey = page.locator('tr[data-rank="0"] td.c:not(.last)').first
    red = page.locator('tr[data-rank="1"] td.c.last').first
    assert grey.evaluate("e => getComputedStyle(e).backgroundColor") != red.evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )
    page.locator('[data-strip="late"]').screenshot(path=str(tmp_path / "strip.png"))
    page.close()
