"""report.html of a trials directory: what N trials of one scenario on one target measured.

Sections: the verdict in words per fault, the trials (each linked to its own report), per
fault the distribution of every metric (median, middle half, range, the 95 % interval of the
median with the coverage it really has), per phase the same, the SLO checks over the trials,
and the figures (every trial's time to recover; the trials' timelines stacked).
"""

from __future__ import annotations

from pathlib import Path

from harness.analysis.aggregate import TrialsAggregate
from harness.analysis.compare import (
    CLUSTER_METRICS,
    FAULT_METRICS,
    ORCHESTRATOR_METRICS,
    PHASE_METRICS,
    RESPONSE_METRIC,
    GroupFault,
    Stat,
)
from harness.analysis.compare_report import timelines_figure, ttr_distribution_figure
from harness.analysis.formats import NONE
from harness.analysis.phases import PHASE_NAMES
from harness.analysis.pooled import QUANTILES
from harness.analysis.report import CSS, badge, esc, figures_section, run_cells, table
from harness.analysis.wording import interval_cell, metric_format, pooled_text, spread_text

REPORT_FILE = "report.html"
METRIC_ROWS = (*FAULT_METRICS, RESPONSE_METRIC, *ORCHESTRATOR_METRICS, *CLUSTER_METRICS)


def write_trials_report(aggregate: TrialsAggregate) -> Path:
    """report.html (and its figures) in the trials directory; returns its path."""
    figures: list[Path] = []
    if aggregate.comparison is not None:
        directory = aggregate.root / "figures"
        directory.mkdir(exist_ok=True)
        figures = [
            ttr_distribution_figure(aggregate.comparison, directory / "ttr_distribution.png"),
            timelines_figure(aggregate.comparison, directory / "timelines.png"),
        ]
    path = aggregate.root / REPORT_FILE
    path.write_text(render_trials_html(aggregate, figures), encoding="utf-8")
    return path


def fault_sentences(aggregate: TrialsAggregate) -> list[str]:
    """One sentence per fault: how users recovered over the trials, and what the
    orchestrator did."""
    comparison = aggregate.comparison
    if comparison is None:
        return ["no trial completed with a healthy baseline: nothing to sum up"]
    group = comparison.groups[0].name
    return [fault_sentence(f"{f.fault_id} {f.kind}", f.group(group)) for f in comparison.faults]


def fault_sentence(name: str, group: GroupFault) -> str:
    ttr = group.stat("ttr_s")
    parts = []
    if ttr.median is not None:
        text = f"users recovered in a median of {ttr.median:.3f} s"
        if ttr.n > 1 and ttr.min is not None and ttr.max is not None:
            text += f" (range {ttr.min:.3f}–{ttr.max:.3f} s"
            interval = ttr.interval
            if interval is not None and interval.reaches:
                text += f"; 95 % interval of the median {interval.low:.3f}–{interval.high:.3f} s"
            text += ")"
        parts.append(text)
    parts.append(f"{group.recovered_runs} of {group.runs} trials recovered")
    if group.censored:
        parts.append(group.describe_censored())
    if group.unrecovered:
        parts.append(f"{len(group.unrecovered)} of {group.runs} never recovered")
    if group.describe_impact():
        parts.append(f"{group.describe_impact()} (counted apart, not as 0 s)")
    responses = group.describe_responses()
    if responses:
        parts.append(f"the orchestrator {responses}")
    return f"{name}: " + "; ".join(parts) + "."


def render_trials_html(aggregate: TrialsAggregate, figures: list[Path]) -> str:
    title = f"{aggregate.scenario} on {aggregate.target}: {aggregate.planned} trials"
    body = "\n".join(
        [
            f"<h1>Trials: {esc(aggregate.scenario)} on {esc(aggregate.target)} "
            f"{badge(aggregate.status.replace('_', ' '), aggregate.status)}</h1>",
            _meta(aggregate),
            "<h2>In words</h2><ul>"
            + "".join(f"<li>{esc(s)}</li>" for s in fault_sentences(aggregate))
            + "</ul>",
            _trials_section(aggregate),
            *_fault_sections(aggregate),
            _phases_section(aggregate),
            _slo_section(aggregate),
            figures_section(figures) if figures else "",
            _method(),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n"
        "</body>\n</html>\n"
    )


def _meta(aggregate: TrialsAggregate) -> str:
    failed = [t for t in aggregate.trials if not t.included]
    text = f"{aggregate.planned} trials planned, {len(aggregate.included)} measured and summed up"
    if failed:
        text += f", {len(failed)} left out (listed below, never averaged in)"
    if aggregate.interrupted:
        text += "; interrupted before the end"
    return f'<p class="meta">{esc(text)}</p>'


def _trials_section(aggregate: TrialsAggregate) -> str:
    rows = []
    for trial in aggregate.trials:
        link, status = run_cells(trial.run_dir, trial.run_id or "", trial.status, trial.included)
        rows.append(
            [
                esc(trial.index),
                link,
                status,
                "yes" if trial.included else "<b>no</b>",
                esc(trial.reason or ""),
            ]
        )
    return "<h2>Trials</h2>" + table(["#", "run", "status", "summed up", "why"], rows)


def _cells(stat: Stat, metric: str) -> list[str]:
    fmt = metric_format(metric)
    return [
        esc(stat.n),
        esc(fmt.number(stat.median)),
        esc(spread_text(stat, metric) or NONE),
        esc(interval_cell(stat, metric)),
    ]


def _fault_sections(aggregate: TrialsAggregate) -> list[str]:
    comparison = aggregate.comparison
    if comparison is None:
        return []
    group_name = comparison.groups[0].name
    sections = []
    for fault in comparison.faults:
        group = fault.group(group_name)
        rows = [
            [esc(metric_format(m).label), *_cells(group.stat(m), m)]
            for m in METRIC_ROWS
            if group.stat(m).n
        ]
        counts = (
            f"{group.runs} trials: {group.recovered_runs} recovered, "
            f"{len(group.censored)} censored (recovered in at least x s: the data ended first), "
            f"{len(group.unrecovered)} never recovered, {len(group.no_impact)} without visible "
            f"impact, {len(group.unmeasured)} not measured"
        )
        responses = group.describe_responses() or NONE
        sections.append(
            f"<h2>{esc(fault.key)}</h2><p>{esc(counts)}. What the orchestrator did: "
            f"{esc(responses)}.</p>"
            + table(["metric", "n", "median", "spread", "95 % interval of the median"], rows)
        )
    return sections


def _phases_section(aggregate: TrialsAggregate) -> str:
    comparison = aggregate.comparison
    if comparison is None:
        return ""
    group = comparison.groups[0].name
    phases, pooled = comparison.phases[group], comparison.pooled.get(group, {})
    rows = []
    for phase in PHASE_NAMES:
        for metric in PHASE_METRICS:
            stat = phases[phase][metric]
            together = pooled_text(pooled.get(phase), metric) if metric in QUANTILES else NONE
            if not stat.n and together == NONE:
                continue
            label = esc(metric_format(metric).label)
            rows.append([f"<b>{esc(phase)}</b>", label, *_cells(stat, metric), esc(together)])
    headers = ["phase", "metric", "n", "median", "spread", "95 % interval of the median"]
    return (
        "<h2>Phases</h2>"
        + table([*headers, "pooled over every trial's requests"], _phase_names_once(rows))
        + "<p class='meta'>Per trial values (n trials), then latency percentiles over every "
        "trial's successful requests that started in the phase, pooled: one slow trial shows "
        "there, not in a median of per-trial percentiles. A percentile needs 5 requests "
        "beyond it (p50: 2, p95: 20, p99: 100), else none, with the reason.</p>"
    )


def _phase_names_once(rows: list[list[str]]) -> list[list[str]]:
    """The phase's name on its first row only."""
    seen: set[str] = set()
    result = []
    for row in rows:
        first = row[0]
        if first in seen:
            row = ["", *row[1:]]
        seen.add(first)
        result.append(row)
    return result


def _slo_section(aggregate: TrialsAggregate) -> str:
    tally = aggregate.to_dict()["slo"]
    if not isinstance(tally, dict) or not tally:
        return "<h2>SLOs</h2><p>No SLO in this scenario.</p>"
    rows = [
        [esc(name), esc(c.get("pass")), esc(c.get("fail")), esc(c.get("no_data"))]
        for name, c in tally.items()
        if isinstance(c, dict)
    ]
    return "<h2>SLOs over the trials</h2>" + table(["check", "pass", "fail", "no data"], rows)


def _method() -> str:
    return (
        "<h2>Method</h2><p class='meta'>Each trial is a fresh deployment. Only trials that "
        "completed with a healthy baseline are summed up; a trial without visible impact has "
        "no time to detect or recover and is counted apart. <i>spread</i>: the middle half of "
        "the trials (quartiles) and their range. <i>95 % interval of the median</i>: from "
        "order statistics, exact whatever the distribution's shape; with 5 trials or fewer no "
        "such interval reaches 95 %, and the confidence [min, max] really has is given "
        "instead (5 trials: 94 %, 3 trials: 75 %).</p>"
    )
