"""Bad and awkward input found by the second new-user trial: one line on stderr and exit 2, never
an internal error; what is asked for by mistake is refused rather than quietly changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from minicluster.cli import main

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "compare"


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2, argv
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("minicluster: error:"), lines
    return lines[0]


def _edited(tmp_path: Path, **changes: object) -> Path:
    data = json.loads((FIX / "mc11_clean_a.json").read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize("value", [[], {}])
def test_reference_record_names_a_result_that_breaks_the_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: object
) -> None:
    # Was: internal error (exit 70), TypeError: unhashable type.
    path = _edited(tmp_path, world_size=value)
    line = _error(capsys, ["reference", "record", str(path), "--out", str(tmp_path / "r.yaml")])
    assert f"{path}: result does not match" in line and "world_size" in line
    assert not (tmp_path / "r.yaml").exists()


@pytest.mark.timeout(60)
def test_report_of_a_result_whose_config_steps_is_not_a_mapping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `config` is free-form in the schema; the report read config.steps as a mapping (exit 70).
    path = _edited(tmp_path, config__steps=5)
    assert main(["report", str(path)]) == 0
    assert "internal error" not in capsys.readouterr().err


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # Each of these ran something else before: a world-size sweep, a plain validate.
        (["sweep", "--layouts", "", "--dry-run"], "--layouts needs two layouts or more"),
        (["validate", "--layouts", "", "--dry-run"], "--layouts needs two layouts or more"),
        # tp=4 ran without a word.
        (["run", "--parallel", "tp=2,tp=4", "--dry-run"], "tp is given twice"),
        # A live isolate refuses these; --from took them (a negative z named every group slow).
        (["isolate", "--from", "{tmp}", "--z", "-3"], "--z must be in [0.5, 100], got -3"),
        (["isolate", "--from", "{tmp}", "--k", "0"], "--k must be in [1, 1024], got 0"),
        # run refuses a floor without a reference; isolate ignored it.
        (["isolate", "--nproc", "4", "--floor-pct", "150", "--dry-run"], "needs --reference"),
    ],
)
def test_what_would_be_quietly_changed_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    line = _error(capsys, [a.format(tmp=tmp_path) for a in argv])
    assert message in line


@pytest.mark.timeout(60)
def test_reading_a_history_that_does_not_exist_makes_no_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `history list --db typo/h.sqlite` made the folder and an empty database, and showed no runs.
    # A later trial: list then said "no runs" with exit 0 where show and check exit 2; all three
    # refuse a missing database alike now (one line, exit 2: a typo'd path is bad input).
    db = tmp_path / "typo" / "h.sqlite"
    for argv in (["list", "--json"], ["list"], ["show", "1"]):
        line = _error(capsys, ["history", *argv, "--db", str(db)])
        assert f"--db {db}: no history database there" in line
    assert not (tmp_path / "typo").exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("world_sizes", "message"),
    [
        ("3", "(run on a multiple of 2 ranks: --world-sizes 2)"),  # said --nproc 2
        ("0", "--world-sizes must be a whole number >= 1, got '0'"),  # said "takes one number"
    ],
)
def test_sweep_layouts_names_its_own_flag(
    capsys: pytest.CaptureFixture[str], world_sizes: str, message: str
) -> None:
    argv = ["sweep", "--layouts", "tp=2;dp_shard=2", "--world-sizes", world_sizes, "--dry-run"]
    argv += ["-c", str(Path(__file__).resolve().parents[2] / "configs" / "llama.yaml")]
    assert message in _error(capsys, argv)


@pytest.mark.timeout(60)
def test_history_check_refuses_a_metric_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--metric latency_p50` (a typo) gated nothing and exited 0: a CI gate that always passes.
    argv = ["history", "check", str(FIX / "mc11_clean_a.json"), "--db", str(tmp_path / "h.db")]
    line = _error(capsys, [*argv, "--metric", "latency_p50"])
    assert "--metric 'latency_p50' is not a metric" in line


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "changes",
    [
        {"accounting__last_arrival": "x"},
        {"accounting__last_arrival": {"step": [2, 3], "rank": [0], "lateness_ms": [1.0, 2.0]}},
        {"accounting__last_arrival": {"step": [2], "rank": [None], "lateness_ms": [1.0]}},
        {"steps__embedded": {"0": {}, "x": {"step": [1]}}},
    ],
)
def test_markdown_and_html_reports_of_an_edited_result_render(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, object]
) -> None:
    # The late strip and the step-time plot read these sections as their writer shapes them;
    # an edited result stopped the report with an internal error (exit 70).
    data = json.loads((FIX / "mc11_clean_a.json").read_text())
    data.setdefault("accounting", {})
    path = tmp_path / "edited.json"
    for key, value in changes.items():
        section, _, field = key.partition("__")
        (data[section] if isinstance(data.get(section), dict) else data.setdefault(section, {}))[
            field
        ] = value
    path.write_text(json.dumps(data))
    md, html = tmp_path / "r.md", tmp_path / "r.html"
    assert main(["report", str(path), "--md", str(md), "--html", str(html)]) == 0
    assert "internal error" not in capsys.readouterr().err
    assert md.stat().st_size > 0 and html.stat().st_size > 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("key", "value"), [("rank", "x"), ("world_size", None), ("type", [])])
def test_a_rank_header_of_the_wrong_types_is_skipped_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: object
) -> None:
    # `"rank": "x"` in a header stopped `aggregate` with an internal error (exit 70).
    from minicluster.core import rank_format

    header = {"type": "header", "format": rank_format.FORMAT_VERSION, "run_id": "r1"}
    header |= {"rank": 0, "world_size": 1, key: value}
    (tmp_path / "ranks").mkdir()
    (tmp_path / "ranks" / "rank_00000.jsonl").write_text(json.dumps(header) + "\n")
    code = main(["aggregate", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "internal error" not in err
    if key != "type":
        assert f"header record's {key} is" in err


HEALTHY_RUN = Path(__file__).resolve().parents[1] / "fixtures" / "recorded_runs" / "healthy"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("rank", "edit", "code", "message"),
    [
        (0, {"config": None}, 2, "header has no usable config"),
        (0, {"workload": None}, 2, "header has no usable workload"),
        (0, {"workload": {"name": "mlp"}}, 2, "no per_rank_batch in it"),
        (0, {"ray": {}}, 0, None),
        (1, {"config": None}, 0, None),
        (1, {"workload": None}, 0, None),
    ],
)
def test_a_rank_header_with_a_section_aggregation_cannot_read_is_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rank: int,
    edit: dict[str, object],
    code: int,
    message: str | None,
) -> None:
    """A header edited so that its config or workload is null, its workload lacks the batch or
    its ray section the version: aggregation says so in one line (rank 0's header, which the run
    is built from) or goes on (another rank's), never an internal error (exit 70 before)."""
    run = tmp_path / "run"
    shutil.copytree(HEALTHY_RUN, run)
    (run / "result.json").unlink(missing_ok=True)
    path = run / "ranks" / f"rank_{rank:05d}.jsonl"
    head, *rest = path.read_text().splitlines()
    path.write_text("\n".join([json.dumps(json.loads(head) | edit), *rest]) + "\n")
    assert main(["aggregate", str(run)]) == code
    err = capsys.readouterr().err
    assert "internal error" not in err
    if message:
        assert message in err and len(err.strip().splitlines()) == 1
