"""JUnit XML for CI (`--junit F`): one test case per verdict, a finding as a failure, what could not
be judged as skipped with its reason. Written with the stdlib's ElementTree (escaping included);
the tests read it back with junitparser."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from minicluster.report.content import fault_link, straggler_sentence
from minicluster.report.text import job_links
from minicluster.result.model import FaultKind, RunResult

if TYPE_CHECKING:
    from minicluster.compare.engine import Comparison
    from minicluster.compare.history_check import CheckResult

Outcome = Literal["passed", "failure", "skipped", "error"]


@dataclass(frozen=True)
class Case:
    classname: str
    name: str
    outcome: Outcome
    message: str = ""


def to_xml(suite: str, cases: list[Case]) -> str:
    """One <testsuites> holding one <testsuite> of `cases`."""
    root = ET.Element("testsuites")
    counts = {o: sum(c.outcome == o for c in cases) for o in ("failure", "skipped", "error")}
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(cases)),
        failures=str(counts["failure"]),
        errors=str(counts["error"]),
        skipped=str(counts["skipped"]),
    )
    for c in cases:
        tc = ET.SubElement(ts, "testcase", classname=c.classname, name=c.name)
        if c.outcome == "passed":
            if c.message:
                ET.SubElement(tc, "system-out").text = c.message
            continue
        tag = {"failure": "failure", "skipped": "skipped", "error": "error"}[c.outcome]
        el = ET.SubElement(tc, tag, message=c.message[:500])
        el.text = c.message
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def compare_cases(c: Comparison) -> list[Case]:
    """Per candidate, one case per metric row (a regression fails; not comparable, not measured
    and not tested are skipped with the reason), and one per input run that did not finish."""
    out = []
    for p in c.pairs:
        cls = f"compare.{p.b.label}"
        for r in p.rows:
            if r.regression:
                outcome: Outcome = "failure"
            elif r.verdict in ("not_comparable", "missing", "not_tested", "inconclusive"):
                outcome = "skipped"
            else:
                outcome = "passed"
            # a reason that opens with its verdict ("inconclusive, not judged: ...") says it once
            said = r.reason.startswith(r.verdict.replace("_", " "))
            out.append(
                Case(cls, r.metric, outcome, r.reason if said else f"{r.verdict}: {r.reason}")
            )
        # one case per input and kind, named by the input (its line starts `LABEL: `): two
        # inputs' own checks under one name merge in CI dashboards
        out += [Case(cls, f"run status: {_who(u)}", "failure", u) for u in p.unfinished]
        out += [Case(cls, f"own checks: {_who(u)}", "failure", u) for u in p.own_failed]
        out += [Case(cls, f"own checks: {_who(u)}", "skipped", u) for u in p.own_not_judged]
        if p.host_load:
            out.append(Case(cls, "host load", "skipped", f"NOT JUDGED: {p.host_load}"))
        if p.nothing_judged:
            out.append(Case(cls, "comparison", "skipped", f"NOT JUDGED: {p.nothing_judged}"))
    return out


def run_cases(result: RunResult, exit_code: int) -> list[Case]:
    """A run's verdicts: its status, each detected fault or finding, each validation check."""
    cls = f"run.{result.run_id}"
    status = str(result.status)
    out = [
        Case(
            cls,
            "status",
            "passed" if status == "ok" else ("error" if status == "failed" else "failure"),
            f"status {status}; " + "; ".join(str(e) for e in result.errors)[:2000],
        )
    ]
    for rank in result.failed_ranks:
        out.append(Case(cls, f"rank {rank}", "failure", f"rank {rank} failed (see status)"))
    detected = result.faults.detected
    for d in detected:
        if fault_link(d) is not None:  # a pairwise slow pair: the link, not its lower rank
            name = f"{d.kind} on {fault_link(d)}"
        elif d.rank is not None:
            name = f"{d.kind} rank {d.rank}"
        elif d.ranks:
            name = f"{d.kind} ranks {', '.join(map(str, d.ranks))}"
        else:  # a slow link the all-reduce's busbw found (was "slow_link rank None")
            name = f"{d.kind} {job_links(result.world_size)}"
        out.append(Case(cls, name, "failure", str(d.evidence or d.to_json())))
    named = {d.rank for d in detected if d.fault_kind is FaultKind.STRAGGLER}
    for s in result.stragglers:
        if s.rank not in named:
            out.append(Case(cls, f"straggler rank {s.rank}", "failure", straggler_sentence(s)))
    checks = result.validation.checks if result.validation is not None else []
    for chk in checks:
        ok = chk.passed
        out.append(
            Case(
                cls,
                f"validation {chk.name}",
                "passed" if ok else ("skipped" if ok is None else "failure"),
                str(chk.reason or ""),
            )
        )
    out.append(
        Case(
            cls,
            "exit code",
            "passed" if exit_code == 0 else "failure",
            f"minicluster's exit code {exit_code}",
        )
    )
    return out


def fleet_cases(report: dict[str, Any]) -> list[Case]:
    """One case per node, from its verdict: a failed node check, a node whose own check found a
    problem, an outlier metric or figures below `--reference`'s floor fail; a node that could not
    be judged (too few nodes for the robust z, its metrics not measured) is skipped with the
    reason, never passed (the command exits 2 for it)."""
    out = []
    headline = str(report.get("verdict") or "")
    for node in report.get("nodes") or []:
        label = str(node.get("label"))
        verdict = node.get("verdict")
        if node.get("status") not in (None, "ok"):
            out.append(Case("fleet", label, "failure", f"node check status {node.get('status')}"))
        elif verdict == "finding" or node.get("finding"):
            out.append(Case("fleet", label, "failure", f"its own check: {node.get('finding')}"))
        elif node.get("outlier_on"):
            out.append(
                Case("fleet", label, "failure", "outlier on " + ", ".join(node["outlier_on"]))
            )
        elif (node.get("against_reference") or {}).get("verdict") == "below_floor":
            why = node["against_reference"]["reason"]
            out.append(Case("fleet", label, "failure", f"below the reference: {why}"))
        elif verdict == "ok":
            out.append(Case("fleet", label, "passed", "ok"))
        else:  # not_judged (or a verdict this mapping does not know: never a pass)
            why = _fleet_node_why(report, node) or headline
            out.append(Case("fleet", label, "skipped", f"{verdict}: {why}"))
    return out


def _fleet_node_why(report: dict[str, Any], node: dict[str, Any]) -> str:
    """Why a node was not judged, per metric: its own cell's reason (not measured on it), else
    the metric's (too few nodes for the robust z); "" when neither says."""
    values = node.get("values") or {}
    by_reason: dict[str, list[str]] = {}
    for m in report.get("metrics") or []:
        cell = values.get(m.get("name")) or {}
        reason = cell.get("reason") or (None if m.get("gated") else m.get("reason"))
        if reason:
            by_reason.setdefault(str(reason), []).append(str(m.get("name")))
    return "; ".join(f"{why} ({', '.join(names)})" for why, names in by_reason.items())


def isolate_cases(block: dict[str, Any]) -> list[Case]:
    """One case per unit (rank or node): named bad fails, with its evidence; left unresolved is
    an error (not judged, not healthy); cleared passes. More bad units than --k: one failed case
    of its own."""
    out = []
    for unit in block.get("units") or []:
        name, status = str(unit.get("name")), unit.get("status")
        why = str(unit.get("why") or status)
        if status == "bad":
            out.append(Case("isolate", name, "failure", f"bad: {why}"))
        elif status == "cleared":
            out.append(Case("isolate", name, "passed", why))
        else:
            out.append(Case("isolate", name, "error", f"{status}: {why}"))
    if block.get("more_than_max_bad"):
        out.append(Case("isolate", "more than k bad", "failure", str(block.get("verdict"))))
    return out


def history_cases(r: CheckResult) -> list[Case]:
    """One case per gated metric: a regression fails, not judged is skipped; a candidate whose
    run did not finish ok is one failed case of its own."""
    out = []
    if r.unfinished is not None:
        out.append(Case(f"history.{r.candidate}", "run status", "failure", r.unfinished))
    if r.own_checks_failed:
        why = "; ".join(r.own_findings) or ", ".join(r.own_checks_failed)
        out.append(Case(f"history.{r.candidate}", "own checks", "failure", why))
    elif r.own_unjudged:
        why = "; ".join(r.own_not_judged) or "its own verdict was NOT JUDGED"
        out.append(Case(f"history.{r.candidate}", "own checks", "skipped", why))
    for m in r.metrics:
        outcome: Outcome = (
            "failure"
            if m.verdict == "regression"
            else ("skipped" if m.verdict == "not_judged" else "passed")
        )
        out.append(Case(f"history.{r.candidate}", m.metric, outcome, m.reason))
    if r.verdict == "not_judged" and not any(c.outcome == "skipped" for c in out):
        # nothing to judge (no gated metric in the candidate): one skipped case, never green
        why = "; ".join(r.notes) or "no gated metric measured in the candidate"
        out.append(Case(f"history.{r.candidate}", "history check", "skipped", why))
    return out


def _who(line: str) -> str:
    """The input a `LABEL: ...` line is about."""
    return line.split(": ", 1)[0]
