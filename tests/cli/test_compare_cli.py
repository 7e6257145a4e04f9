"""`minicluster compare` / `convert` on the command line: exit codes, bad input, startup."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minicluster.cli import main

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "compare"
ROOT = Path(__file__).resolve().parents[2]


def test_exit_1_on_gated_regression(tmp_path: Path) -> None:
    data = json.loads((FIX / "seed001_autoperfpy.json").read_text())
    data["metrics"]["latency_p50_ms"] *= 2
    worse = tmp_path / "worse.json"
    worse.write_text(json.dumps(data))
    base = FIX / "seed001_autoperfpy.json"
    assert main(["compare", str(worse), str(base), "--baseline", str(base)]) == 1
    assert main(["compare", str(base), str(base)]) == 0


def test_baseline_must_be_one_of_the_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, other = FIX / "seed001_autoperfpy.json", FIX / "vllm_ok.json"
    assert main(["compare", str(other), str(other), "--baseline", str(base)]) == 2
    err = capsys.readouterr().err
    assert "--baseline" in err and "not one of the inputs" in err and "Traceback" not in err


def test_dash_writes_to_standard_output(capsys: pytest.CaptureFixture[str]) -> None:
    run = FIX / "mc11_clean_a.json"
    assert main(["compare", str(run), str(run), "--json", "-"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["schema"] == "minicluster-compare/1"  # stdout is only the JSON
    assert "latency_p50_ms" in err  # the table went to stderr
    assert main(["compare", str(run), str(run), "--md", "-", "--json", "-"]) == 2
    assert main(["convert", str(FIX / "vllm_ok.json"), "--to", "trackiq", "-o", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["tool_name"].startswith("vllm")


def test_markdown_escapes_html_in_user_text(tmp_path: Path) -> None:
    data = json.loads((FIX / "seed001_autoperfpy.json").read_text())
    data["workload"]["name"] = "<b>x</b>"
    evil = tmp_path / "evil.json"
    evil.write_text(json.dumps(data))
    md = tmp_path / "c.md"
    main(["compare", str(evil), str(evil), "--md", str(md)])
    text = md.read_text()
    assert "<b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text


def test_numbers_show_enough_digits_to_check_the_delta(tmp_path: Path) -> None:
    data = json.loads((FIX / "seed001_autoperfpy.json").read_text())
    data["metrics"]["latency_p50_ms"] = 0.0116
    a = tmp_path / "a.json"
    a.write_text(json.dumps(data))
    data["metrics"]["latency_p50_ms"] = 0.0169
    b = tmp_path / "b.json"
    b.write_text(json.dumps(data))
    md = tmp_path / "c.md"
    main(["compare", str(a), str(b), "--md", str(md)])
    row = next(line for line in md.read_text().splitlines() if "latency_p50_ms" in line)
    assert "| 0.0116 | 0.0169 |" in row and "+45.69%" in row


def test_exit_0_against_itself_with_samples(tmp_path: Path) -> None:
    run = FIX / "mc11_clean_a.json"
    assert main(["compare", str(run), str(run), "--json", str(tmp_path / "c.json")]) == 0
    rows = json.loads((tmp_path / "c.json").read_text())["comparisons"][0]["rows"]
    p50 = next(r for r in rows if r["metric"] == "latency_p50_ms")
    assert (p50["n_a"], p50["n_b"], p50["verdict"]) == (50, 50, "no_change")
    assert p50["reason"] == "equal values" and not p50["regression"]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"schema_version": "minicluster/1", "run_id": ', "invalid JSON"),
        ('{"tool_name": 3, "metrics": {}, "workload": {}}', "tool_name"),
        ("[1, 2, 3]", "JSON object"),
        ('{"completed": -4, "request_throughput": 1}', "non-negative"),
        ('{"completed": 2, "request_throughput": NaN}', "NaN"),
        ('{"completed": 2, "request_throughput": "fast"}', "expected a number"),
        ('{"hello": 1}', "unknown format"),
        ("plain text, no tables", "unknown format"),
        ('{"schema_version": "minicluster/1"}', "does not match"),
    ],
)
def test_malformed_input_exit_2_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["compare", str(FIX / "vllm_ok.json"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minicluster: error: ") and message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_binary_missing_and_huge_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 100)
    huge = tmp_path / "huge.json"
    with huge.open("wb") as f:
        f.truncate(600 * 1024**2)  # sparse: costs no disk
    for path in (binary, tmp_path / "missing.json", huge):
        assert main(["compare", str(FIX / "vllm_ok.json"), str(path)]) == 2
    err = capsys.readouterr().err
    assert "not UTF-8" in err and "no such file" in err and "limit" in err


def test_fuzzed_truncations_never_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (FIX / "seed001_autoperfpy.json").read_text()
    for cut in range(1, len(text), max(1, len(text) // 40)):
        p = tmp_path / "t.json"
        p.write_text(text[:cut])
        assert main(["compare", str(FIX / "seed001_autoperfpy.json"), str(p)]) == 2
    assert "internal error" not in capsys.readouterr().err


def test_single_input_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(FIX / "vllm_ok.json")]) == 2


def test_outputs_written_and_html_escaped(tmp_path: Path) -> None:
    data = json.loads((FIX / "seed001_autoperfpy.json").read_text())
    data["workload"]["name"] = "<script>alert(1)</script>"
    evil = tmp_path / "evil.json"
    evil.write_text(json.dumps(data))
    html = tmp_path / "c.html"
    assert (
        main(["compare", str(FIX / "seed001_autoperfpy.json"), str(evil), "--html", str(html)]) == 0
    )
    text = html.read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text


def test_help_is_fast_and_imports_no_torch() -> None:
    code = (
        "import sys, time; t=time.perf_counter(); from minicluster import cli;"
        "import minicluster.compare, minicluster.interop.detect, minicluster.interop;"
        "import minicluster.report.comparison;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "False"
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "minicluster", "compare", "--help"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    assert time.perf_counter() - t0 < 5  # generous on a shared 2-core box; bench measures 0.5 s


@pytest.mark.parametrize("width", [80, 100, 200])
def test_terminal_table_never_cuts_a_number(width: int) -> None:
    import io

    from rich.console import Console

    from minicluster.compare import compare
    from minicluster.interop import load
    from minicluster.report.comparison import print_comparison

    c = compare([load(FIX / "mc13_quiet_clean_1.json"), load(FIX / "mc13_quiet_straggler.json")])
    out = io.StringIO()
    print_comparison(c, Console(file=out, width=width, color_system=None))
    text = out.getvalue()
    assert "…" not in text
    for shown in ("5,070.4", "2,997.5", "-40.88%", "worse (REGRESSION)", "allreduce_wait_ms"):
        assert shown in text, (width, shown)
    assert ("left out for the terminal width" in text) == (width < 150)


@pytest.mark.parametrize("status", ["failed", "incomplete"])
def test_a_run_that_did_not_finish_ok_fails_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], status: str
) -> None:
    """A crashed or interrupted run's few steps can look faster (a better throughput, a smaller
    memory peak): none of them is compared, and the gate fails (exit 1), whichever side it is."""
    data = json.loads((FIX / "mc11_clean_a.json").read_text())
    data["status"] = status
    data["metrics"]["throughput_samples_per_sec"]["value"] *= 1.4
    broken = tmp_path / f"{status}.json"
    broken.write_text(json.dumps(data))
    clean = FIX / "mc11_clean_a.json"
    out = tmp_path / "c.json"
    assert main(["compare", str(clean), str(broken), "--json", str(out)]) == 1
    err = capsys.readouterr().out
    assert f"gate failed: {status}.json: run status is '{status}'" in err
    c = json.loads(out.read_text())
    assert c["gate_failed"] and not c["regression_found"]
    rows = c["comparisons"][0]["rows"]
    measured = [r for r in rows if r["a"] is not None and r["b"] is not None]
    assert measured and all(r["verdict"] == "not_comparable" for r in measured)
    assert all("did not finish ok" in r["reason"] for r in measured)
    # as the baseline too
    assert main(["compare", str(broken), str(clean)]) == 1
    assert main(["compare", str(clean), str(clean)]) == 0


def test_a_node_check_is_named_and_sent_to_fleet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two real node-check results (a new-user trial's), directly, through a run directory's
    `latest` link, and with --format minicluster: one line saying it is a node check and to use
    `fleet`, exit 2 (was "JSON of an unknown format (not a minicluster result, ...)")."""
    nodecheck = FIX.parent / "nodecheck"
    runs = tmp_path / "runs"
    for i in (1, 2):
        (runs / f"nc{i}").mkdir(parents=True)
        (runs / f"nc{i}" / "result.json").write_bytes(
            (nodecheck / f"seq_nc{i}.result.json").read_bytes()
        )
    (runs / "latest").symlink_to("nc2")
    for argv in (
        [str(runs / "nc1"), str(runs / "nc2")],
        [str(runs / "nc1"), str(runs / "latest")],
        [str(runs / "nc1"), str(runs / "nc2"), "--format", "minicluster"],
    ):
        capsys.readouterr()
        assert main(["compare", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert "a minicluster node-check result" in err[0] and "minicluster fleet" in err[0]
        assert "unknown format" not in err[0]


def test_an_input_whose_own_checks_failed_fails_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real run with a straggler its own result names (rank 1 +30 ms a step) against a clean
    run: the gate fails on its own finding, said under the table, in --json and --junit, as a run
    that did not finish ok fails it; the same numbers without the finding are judged on them."""
    cases = FIX.parent / "cases" / "30-history-noisy-baselines"
    clean, strag = cases / "h1.result.json", cases / "strag.result.json"
    out, xml = tmp_path / "c.json", tmp_path / "c.xml"
    assert main(["compare", str(clean), str(strag), "--json", str(out), "--junit", str(xml)]) == 1
    said = capsys.readouterr().out
    assert "gate failed: strag.result.json: its own checks failed (straggler, culprit)" in said
    (pair,) = json.loads(out.read_text())["comparisons"]
    assert pair["own_checks_failed"] and "straggler rank 1" in pair["own_checks_failed"][0]
    assert "own checks" in xml.read_text()
    d = json.loads(strag.read_text())
    d["faults"]["detected"], d["culprits"], d["stragglers"], d["incident"] = [], [], [], None
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(d))
    assert main(["compare", str(clean), str(plain), "--json", str(out)]) in (0, 1)
    (pair,) = json.loads(out.read_text())["comparisons"]
    assert pair["own_checks_failed"] == []


def test_an_input_whose_own_run_was_not_judged_is_not_judged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The recorded 2-rank `collectives --pattern pairwise` run (its own verdict NOT JUDGED: one
    pair, no --min-busbw) against itself judged: `compare` passed it (exit 0, nothing said).
    Now NOT JUDGED (exit 2) with its reason, never "its own checks failed" (rule 13); in a
    side of several runs too, where only the first run's own verdicts used to count."""
    src = FIX.parent / "pairwise" / "two_ranks_not_judged.result.json"
    d = json.loads(src.read_text())
    d["run_id"], d["pairwise"]["not_judged"], d["pairwise"]["min_busbw_gbps"] = "j", None, 0.1
    judged = tmp_path / "judged.json"
    judged.write_text(json.dumps(d))
    out, xml = tmp_path / "c.json", tmp_path / "c.xml"
    assert main(["compare", str(judged), str(src), "--json", str(out), "--junit", str(xml)]) == 2
    said = capsys.readouterr().out
    assert "NOT JUDGED: two_ranks_not_judged.result.json: its own run was NOT JUDGED: pairwise" in (
        " ".join(said.split())
    )
    assert "gate failed" not in said and "own checks failed" not in said
    data = json.loads(out.read_text())
    (pair,) = data["comparisons"]
    assert data["verdict"] == "not_judged" and not data["gate_failed"]
    assert pair["own_checks_failed"] == [] and "1 of 1 pairs" in pair["own_not_judged"][0]
    assert "<failure" not in xml.read_text() and "own checks" in xml.read_text()
    assert main(["compare", str(judged), str(judged)]) == 0
    # a side of several runs: the second run's own verdict counts as the first's does
    assert main(["compare", str(judged), f"{judged},{src}"]) == 2
    cases = FIX.parent / "cases" / "30-history-noisy-baselines"
    h1, h2, strag = (cases / f"{n}.result.json" for n in ("h1", "h2", "strag"))
    capsys.readouterr()
    assert main(["compare", str(h2), f"{h1},{strag}"]) == 1
    assert "its own checks failed (straggler" in capsys.readouterr().out
