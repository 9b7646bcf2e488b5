"""Markdown summaries fit for a pull-request comment or a CI job summary ($GITHUB_STEP_SUMMARY).

Short by design: the verdict first, then one table; the HTML report has the rest. Every
function returns the text; `write_markdown` writes it. Cell text is escaped (`|`, newlines),
so a reason quoting an error message cannot break a table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.analysis.formats import NONE
from harness.analysis.formats import percent as _percent
from harness.analysis.formats import seconds as _seconds
from harness.results.summary import FaultSummary, Summary, as_summary

if TYPE_CHECKING:
    from harness.analysis.aggregate import TrialsAggregate
    from harness.analysis.compare import Comparison, GroupFault
    from harness.analysis.matrix import Matrix
    from harness.analysis.thresholds import Check

MARKS = {"pass": "✅", "fail": "❌", "no_data": "⚠️", "better": "✅", "worse": "❌"}


def cell(value: object) -> str:
    text = NONE if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_markdown(text: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return path


# -- one run ---------------------------------------------------------------------------------


def run_markdown(given: Summary | Mapping[str, object]) -> str:
    """One run: the verdict, its faults, its SLO checks (the summary as the model or as
    decoded summary.json)."""
    summary = as_summary(given)
    status = summary.status
    mark = MARKS["pass"] if status == "passed" else MARKS["fail"]
    lines = [
        f"### {mark} chaos-harness: {summary.scenario} on {summary.target}: "
        f"{status.replace('_', ' ')}",
        "",
        f"Run `{summary.run_id}`" + (f": {summary.status_reason}" if summary.status_reason else ""),
        "",
    ]
    if summary.faults:
        lines += [_faults_table(summary.faults), ""]
    lines += [_slo_table(summary)]
    if summary.prometheus is not None:
        lines += ["", _prometheus_queries(summary)]
    return "\n".join(lines)


def _prometheus_queries(summary: Summary) -> str:
    """The queries the checks read from Prometheus sent, over which interval and step."""
    outcome = summary.prometheus
    assert outcome is not None
    rows = [
        [c.name, f"`{c.query}`", f"{c.bound} {c.limit:g}", f"{c.step_s:g} s", c.points, c.value]
        for c in outcome.checks
    ]
    head = f"Read from Prometheus at {outcome.url} (the worst point of the interval):"
    table = md_table(["check", "query", "limit", "step", "points", "value"], rows)
    return f"{head}\n\n{table}"


def _outcome(fault: FaultSummary) -> str:
    if fault.impact == "none":
        return "no visible impact"
    if fault.impact == "unmeasured":
        return "not measured"
    if fault.recovered:
        return f"recovered in {_seconds(fault.ttr_s)}"
    if fault.censored:
        return f"recovered in at least {_seconds(fault.ttr_at_least_s)} (data ended)"
    return "**never recovered**"


def _faults_table(faults: Sequence[FaultSummary]) -> str:
    rows = [
        [
            f"{f.id} {f.kind}",
            ", ".join(f.targets),
            _outcome(f),
            _seconds(f.ttd_s),
            f"{f.failed_requests} of {f.requests_in_window}",
            _percent(f.availability),
            None if f.response is None else f.response.description,
        ]
        for f in faults
    ]
    headers = ["fault", "targets", "users", "detected", "failed requests", "availability"]
    return md_table([*headers, "orchestrator"], rows)


def _slo_table(summary: Summary) -> str:
    checks = summary.slo.checks
    if not checks:
        return "No SLO in this scenario."
    rows = [
        [
            f"{MARKS.get(c.verdict, '')} {c.name}",
            c.value,
            c.limit,
            c.verdict,
            c.reason if c.verdict != "pass" else "",
        ]
        for c in checks
    ]
    return md_table(["SLO check", "value", "limit", "verdict", "why"], rows)


# -- trials ----------------------------------------------------------------------------------


def trials_markdown(aggregate: TrialsAggregate) -> str:
    from harness.analysis.trials_report import fault_sentences
    from harness.analysis.wording import interval_cell, metric_format, spread_text

    status = aggregate.status
    mark = MARKS["pass"] if status == "passed" else MARKS["fail"]
    lines = [
        f"### {mark} chaos-harness: {aggregate.scenario} on {aggregate.target}, "
        f"{aggregate.planned} trials: {status.replace('_', ' ')}",
        "",
        f"{len(aggregate.included)} of {aggregate.planned} trials summed up.",
        "",
        *(f"- {s}" for s in fault_sentences(aggregate)),
        "",
    ]
    comparison = aggregate.comparison
    if comparison is not None:
        group = comparison.groups[0].name
        rows = []
        for fault in comparison.faults:
            for metric in ("ttr_s", "ttd_s", "failed_requests", "availability"):
                stat = fault.group(group).stat(metric)
                if stat.n:
                    rows.append(
                        [
                            fault.key,
                            metric_format(metric).label,
                            metric_format(metric).number(stat.median),
                            spread_text(stat, metric),
                            interval_cell(stat, metric),
                            stat.n,
                        ]
                    )
        headers = ["fault", "metric", "median", "spread", "95 % interval of the median", "n"]
        lines += [md_table(headers, rows), ""]
    left_out = [t for t in aggregate.trials if not t.included]
    if left_out:
        lines.append("Left out (never averaged in):")
        lines += [f"- trial {t.index}: {t.status}: {t.reason or ''}" for t in left_out]
    return "\n".join(lines)


# -- comparisons and regression checks -------------------------------------------------------


def compare_markdown(comparison: Comparison, checks: Sequence[Check] = ()) -> str:
    names = " vs ".join(g.name for g in comparison.groups)
    regressions = [c for c in checks if c.regression]
    if checks:
        mark = MARKS["worse"] if regressions else MARKS["better"]
        verdict = f"{len(regressions)} regression(s)" if regressions else "no regression"
        title = f"### {mark} chaos-harness comparison: {names}: {verdict}"
    else:
        title = f"### chaos-harness comparison: {names}"
    lines = [title, "", *(f"- {s}" for s in comparison.sentences()), ""]
    if checks:
        rows = [
            [
                f"{MARKS.get(c.verdict, '➖')} {c.name}",
                f"{c.candidate} vs {c.reference}",
                c.value_text,
                c.threshold.text,
                "" if c.ci95 is None else f"{c.ci95[0]:+.4g} to {c.ci95[1]:+.4g}",
                "" if c.p_value is None else f"{c.p_value:.3g}",
                c.verdict,
            ]
            for c in checks
        ]
        headers = ["check", "groups", "change", "threshold", "95 % CI", "p", "verdict"]
        lines += [md_table(headers, rows), ""]
        lines += [f"- {c.sentence}" for c in checks if c.verdict != "no detectable difference"]
    return "\n".join(lines)


# -- the matrix ------------------------------------------------------------------------------


def matrix_markdown(matrix: Matrix) -> str:
    from harness.analysis.matrix_words import headline, what_users_saw

    lines = [
        f"### chaos-harness matrix: {', '.join(matrix.targets)} × {matrix.repeat} repetitions",
        "",
        f"{matrix.done} of {len(matrix.runs)} runs done"
        + (", interrupted" if matrix.interrupted else "")
        + (f"; {len(matrix.excluded)} left out" if matrix.excluded else "")
        + ".",
        "",
    ]
    for scenario in matrix.scenarios:
        measured = scenario.comparison.measurement
        if measured is not None:
            lines += [
                f"{scenario.scenario}: every run measured the same way: {measured.describe()}.",
                "",
            ]
        for ranking in scenario.rankings:
            lines += [f"**{scenario.scenario}**: {headline(ranking)}", ""]
            rows = []
            for position, target in enumerate(ranking.order, start=1):
                group = ranking.group(target)
                ttr = group.stat("ttr_s")
                rows.append(
                    [
                        position,
                        target,
                        NONE if ttr.median is None else f"{ttr.median:.2f} s",
                        _recovered_cell(group),
                        group.describe_responses(),
                        what_users_saw(group),
                    ]
                )
            headers = ["rank", "target", "median ttr", "recovered", "orchestrator", "users"]
            lines += [md_table(headers, rows), ""]
    return "\n".join(lines)


def _recovered_cell(group: GroupFault) -> str:
    """'3 of 4' (recovered of runs), with the censored runs' lower bounds."""
    text = f"{group.recovered_runs} of {group.runs}"
    return f"{text} ({group.describe_censored()})" if group.censored else text
