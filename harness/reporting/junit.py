"""JUnit XML for CI: one test case per SLO check and per regression check.

The layout follows the JUnit schema CI servers read (Jenkins', as pytest and Maven Surefire
write it): `<testsuites>` holding one `<testsuite>` per run (name "<scenario> on <target>, run
<run-id>") or per group of regression checks, each with `tests`, `failures`, `errors`,
`skipped`, `time` (seconds, 3 decimals) and `timestamp`.

- an SLO check: `<testcase classname="chaos.<scenario>.<target>" name="ttr_s[f1]">`; a failed
  check holds `<failure type="slo" message="ttr_s[f1]: 12.3 s, limit at most 10 s">`; a check
  without data a `<failure type="no_data">`, or `<skipped>` when the scenario allows it
  (`slo.allow_no_data`); a passed check says its value and limit in `<system-out>`; a check
  read from Prometheus also says there the query as sent, its interval and step;
- a run that did not complete: a test case `run` with an `<error>`; a broken baseline: a test
  case `baseline` with a `<failure>`;
- a regression check (`harness compare --threshold`): `<testcase classname="chaos.regression"
  name="ttr_s[f1]">` with a `<failure type="regression">` when the candidate is worse beyond
  the threshold with significance; the verdict and its numbers in the message.
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from harness.results import ABORTED, FAILED
from harness.results.summary import SloCheck, Summary, as_summary

if TYPE_CHECKING:
    from harness.analysis.aggregate import TrialsAggregate
    from harness.analysis.matrix import Matrix
    from harness.analysis.thresholds import Check

UNITS = {"ttr_s": " s", "ttd_s": " s", "recovered": " s", "p95_ms": " ms", "p99_ms": " ms"}


@dataclass
class Case:
    """One test case: passed (no outcome), failure, error or skipped."""

    classname: str
    name: str
    time_s: float = 0.0
    outcome: str | None = None  # failure | error | skipped
    kind: str = ""
    message: str = ""
    detail: str = ""
    output: str = ""


@dataclass
class Suite:
    name: str
    time_s: float = 0.0
    timestamp: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    cases: list[Case] = field(default_factory=list)


def _time(seconds: float) -> str:
    return f"{max(0.0, seconds):.3f}"  # the schema allows 3 decimals at most


def to_xml(suites: Sequence[Suite], name: str = "chaos-harness") -> ET.Element:
    root = ET.Element("testsuites", name=name)
    totals = {"tests": 0, "failures": 0, "errors": 0}
    host = socket.gethostname()
    for suite in suites:
        element = _suite(suite, host)
        root.append(element)
        for key in totals:
            totals[key] += int(element.get(key) or 0)
    root.set("time", _time(sum(s.time_s for s in suites)))
    for key, value in totals.items():
        root.set(key, str(value))
    return root


def _suite(suite: Suite, host: str) -> ET.Element:
    def count(outcome: str) -> str:
        return str(sum(c.outcome == outcome for c in suite.cases))

    element = ET.Element(
        "testsuite",
        name=suite.name,
        tests=str(len(suite.cases)),
        failures=count("failure"),
        errors=count("error"),
        skipped=count("skipped"),
        time=_time(suite.time_s),
        timestamp=suite.timestamp or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        hostname=host,
    )
    if suite.properties:
        properties = ET.SubElement(element, "properties")
        for key, value in suite.properties.items():
            ET.SubElement(properties, "property", name=key, value=value)
    for case in suite.cases:
        element.append(_case(case))
    return element


def _case(case: Case) -> ET.Element:
    element = ET.Element(
        "testcase", classname=case.classname, name=case.name, time=_time(case.time_s)
    )
    if case.outcome is not None:
        child = ET.SubElement(element, case.outcome, message=case.message)
        if case.kind:
            child.set("type", case.kind)
        child.text = case.detail or case.message
    if case.output:
        ET.SubElement(element, "system-out").text = case.output
    return element


def write_junit(suites: Sequence[Suite], path: Path) -> Path:
    """Write the JUnit XML file (UTF-8, with its declaration); returns the path."""
    tree = ET.ElementTree(to_xml(suites))
    ET.indent(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path


# -- runs and their SLO checks ---------------------------------------------------------------


def _number(number: float | None, name: str) -> str:
    if number is None:
        return "no value"
    base = name.split("[", 1)[0]
    return f"{number:.6g}{UNITS.get(base, '')}"


def _relation(check: SloCheck) -> str:
    if check.bound is not None:  # read from Prometheus: its max or min
        return "at least" if check.bound == "min" else "at most"
    return "at least" if check.name.startswith("availability") else "at most"


def slo_case(check: SloCheck, classname: str, allow_no_data: bool) -> Case:
    """One SLO check of a summary as a test case (module docstring)."""
    name, verdict, reason = check.name, check.verdict, check.reason or ""
    value = _number(check.value, name)
    if check.limit is None:  # recovered[f1]: the fault must recover
        stated = f"{name}: recovered after {value}" if verdict == "pass" else f"{name}: {reason}"
    else:
        stated = f"{name}: {value}, limit {_relation(check)} {_number(check.limit, name)}"
    case = Case(classname, name)
    if verdict == "pass":
        case.output = f"{stated}: pass"
    elif verdict == "fail":
        case.outcome, case.kind = "failure", "slo"
        case.message = stated if check.limit is not None else f"{name} failed: {reason}"
        case.detail = f"{case.message}\n{reason}".strip()
    elif allow_no_data:
        case.outcome, case.kind = "skipped", "no_data"
        case.message = f"{name}: no data ({reason}); allowed by slo.allow_no_data"
    else:
        case.outcome, case.kind = "failure", "no_data"
        case.message = (
            f"{name}: no data ({reason}); a check without data fails unless the scenario "
            "sets slo.allow_no_data"
        )
    return case


def run_suite(given: Summary | Mapping[str, object], name: str | None = None) -> Suite:
    """One run's SLO checks (and its run error or broken baseline) as a test suite; the
    summary as the model or as decoded summary.json."""
    summary = as_summary(given)
    scenario, target, status = summary.scenario, summary.target, summary.status
    classname = f"chaos.{scenario}.{target}"
    suite = Suite(
        name or f"{scenario} on {target}, run {summary.run_id}",
        time_s=summary.duration_s or 0.0,
        timestamp=_timestamp(summary.started_at_ns),
        properties={"run_id": summary.run_id, "scenario": scenario, "target": target},
    )
    suite.properties["status"] = status  # after the three above: the order the file had
    if status in (ABORTED, FAILED):
        message = f"run {status}: {summary.error or 'no SLO verdict'}"
        suite.cases.append(Case(classname, "run", 0.0, "error", status, message))
    if status == "baseline_broken":
        reason = summary.status_reason or "the baseline was broken"
        suite.cases.append(Case(classname, "baseline", 0.0, "failure", "baseline", reason))
    allow = summary.slo.allow_no_data
    suite.cases += [slo_case(c, classname, allow) for c in summary.slo.checks]
    _with_queries(suite.cases, summary)
    return suite


def _with_queries(cases: Sequence[Case], summary: Summary) -> None:
    """A check read from Prometheus says the query as sent, its interval and step."""
    outcome = summary.prometheus
    if outcome is None:
        return
    checks = {c.name: c for c in outcome.checks}
    for case in cases:
        check = checks.get(case.name)
        if check is None:
            continue
        sent = (
            f"query {check.query!r} to {outcome.url}"
            f" over [{check.start_ns}, {check.end_ns}] ns, step {check.step_s:g} s: "
            f"{check.points} points in {check.series} series"
        )
        case.output = f"{case.output}\n{sent}".strip() if case.output else sent


def _timestamp(started_ns: int | None) -> str | None:
    if started_ns is None:
        return None
    return datetime.fromtimestamp(started_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def failed_run_suite(title: str, classname: str, status: str, reason: str | None) -> Suite:
    """A run that produced no summary: one test case `run` in error."""
    message = f"{status}: {reason or 'no result'}"
    return Suite(title, cases=[Case(classname, "run", 0.0, "error", status, message)])


def run_junit(summary: Summary | Mapping[str, object]) -> list[Suite]:
    return [run_suite(summary)]


def trials_junit(aggregate: TrialsAggregate) -> list[Suite]:
    """A suite per trial: its SLO checks, or its error when it did not complete."""
    suites = []
    classname = f"chaos.{aggregate.scenario}.{aggregate.target}"
    for trial in aggregate.trials:
        title = f"{aggregate.scenario} on {aggregate.target}, trial {trial.index}"
        if trial.summary is not None:
            suites.append(run_suite(trial.summary, f"{title} (run {trial.run_id})"))
        else:
            suites.append(failed_run_suite(title, classname, trial.status, trial.reason))
    return suites


def matrix_junit(matrix: Matrix) -> list[Suite]:
    suites = []
    for run in matrix.runs:
        title = f"{run.scenario} on {run.target}, repetition {run.repetition}"
        if run.summary is not None:
            suites.append(
                run_suite(run.summary, f"{title} (run {run.run_dir and run.run_dir.name})")
            )
        else:
            classname = f"chaos.{run.scenario}.{run.target}"
            suites.append(failed_run_suite(title, classname, run.status, run.reason))
    return suites


# -- regression checks -----------------------------------------------------------------------


def regression_suites(checks: Iterable[Check]) -> list[Suite]:
    """A suite per candidate group: one test case per regression check."""
    by_pair: dict[tuple[str, str], Suite] = {}
    for check in checks:
        key = (check.candidate, check.reference)
        suite = by_pair.setdefault(
            key, Suite(f"regression checks: {check.candidate} against {check.reference}")
        )
        case = Case("chaos.regression", check.name)
        text = f"{check.name}: {check.verdict}: {check.reason}"
        if check.regression:
            case.outcome, case.kind, case.message = "failure", "regression", text
        else:
            case.output = text
        suite.cases.append(case)
    return list(by_pair.values())
