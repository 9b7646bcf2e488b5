"""report.html of a matrix: which orchestrator recovers faster from each fault, and by how much.

Written for someone who has never seen the harness: what was run and how, then per scenario
and fault the answer in one sentence, the ranking with how sure it is, what each orchestrator
did next to what its users saw, every run's time to recover side by side, and the timeline of
each target's median run. Runs that failed are listed, never compared.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from harness.analysis.compare import Comparison, Group, GroupFault
from harness.analysis.compare_report import timelines_figure, ttr_distribution_figure
from harness.analysis.formats import NONE
from harness.analysis.matrix import Matrix, Ranking, ScenarioMatrix, write_matrix_json
from harness.analysis.matrix_words import headline, step_sentence, what_users_saw
from harness.analysis.pooled import QUANTILES
from harness.analysis.report import CSS, badge, esc, figures_section, run_cells, table
from harness.analysis.wording import interval_text, metric_format, pooled_text, spread_text
from harness.errors import AnalysisError
from harness.results.manifest import load_manifest

REPORT_FILE = "report.html"
MATRIX_CSS = """
.answer { font-size: 16px; background: #eef5fb; border-left: 4px solid #1b6ca8;
  padding: 10px 14px; margin: 10px 0; }
.how li { margin: 4px 0; }
"""


def write_matrix_report(matrix: Matrix) -> Path:
    """comparison.json, figures/ and report.html in the matrix directory."""
    write_matrix_json(matrix)
    directory = matrix.root / "figures"
    directory.mkdir(exist_ok=True)
    figures = {s.scenario: _figures(s, directory) for s in matrix.scenarios}
    path = matrix.root / REPORT_FILE
    path.write_text(render_matrix_html(matrix, figures), encoding="utf-8")
    return path


def _figures(scenario: ScenarioMatrix, directory: Path) -> list[Path]:
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in scenario.scenario)
    ttr = ttr_distribution_figure(scenario.comparison, directory / f"{name}-ttr.png")
    median_runs = median_run_comparison(scenario.comparison)
    timelines = timelines_figure(median_runs, directory / f"{name}-median-runs.png")
    return [ttr, timelines]


def median_run_comparison(comparison: Comparison) -> Comparison:
    """The same comparison with, per target, only its median run by the first fault's ttr."""
    groups = []
    first = comparison.faults[0] if comparison.faults else None
    for group in comparison.groups:
        chosen = group.runs[0]
        if first is not None:
            samples = first.group(group.name).samples
            timed = sorted(
                (s.values["ttr_s"], s.run_id)
                for s in samples
                if s.recovered and s.values["ttr_s"] is not None
            )
            if timed:
                median_id = timed[(len(timed) - 1) // 2][1]
                chosen = next((r for r in group.runs if r.run_id == median_id), chosen)
        groups.append(Group(group.name, (chosen,)))
    return replace(comparison, groups=tuple(groups))


def render_matrix_html(matrix: Matrix, figures: dict[str, list[Path]]) -> str:
    targets = ", ".join(matrix.targets)
    names = ", ".join(s.scenario for s in matrix.scenarios) or "no scenario with results"
    parts = [
        f"<h1>Which orchestrator recovers faster? {esc(targets)}</h1>",
        _intro(matrix),
    ]
    for scenario in matrix.scenarios:
        parts.append(f"<h2>Scenario {esc(scenario.scenario)}</h2>")
        parts.append(_measured_section(scenario))
        parts += [_ranking_section(r) for r in scenario.rankings]
        if not scenario.rankings:
            parts.append("<p>No fault in this scenario: nothing to rank.</p>")
        parts.append(_phases_section(scenario))
        section = figures_section(figures.get(scenario.scenario, []))
        parts.append(section.replace("<h2>Figures</h2>", "<h3>Figures</h3>"))
    parts += [_runs_section(matrix), _method()]
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>chaos-harness matrix: {esc(names)} on {esc(targets)}</title>\n"
        f"<style>{CSS}{MATRIX_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def load_path(run_dir: Path) -> str | None:
    """The manifest's `load.path`: the way the load reached the workload (None: not recorded)."""
    try:
        return load_manifest(run_dir).load.path
    except AnalysisError:
        return None


def _measured_section(scenario: ScenarioMatrix) -> str:
    """How every target's runs were measured (the same: else nothing is ranked), and the path
    the load took on each."""
    comparison = scenario.comparison
    measured = comparison.measurement
    same = f"Every run measured the same way: {measured.describe()}." if measured else ""
    paths = []
    for group in comparison.groups:
        path = next((p for p in map(load_path, (r.run_dir for r in group.runs)) if p), None)
        paths.append(f"<li><b>{esc(group.name)}</b>: {esc(path or 'not recorded')}</li>")
    return (
        f"<p class='meta'>{esc(same)}</p><p class='meta'>The path the load took:</p>"
        f"<ul class='meta'>{''.join(paths)}</ul>"
    )


def _intro(matrix: Matrix) -> str:
    excluded = matrix.excluded
    status = f"{matrix.done} of {len(matrix.runs)} runs done"
    if matrix.interrupted:
        status += " (interrupted: the results below hold only the runs done)"
    if excluded:
        status += f"; {len(excluded)} left out of the comparison (failed, not run or unhealthy)"
    return (
        f'<p class="meta">{esc(status)}</p><ul class="how">'
        f"<li>Every scenario ran <b>{matrix.repeat}</b> time(s) on each of "
        f"<b>{esc(', '.join(matrix.targets))}</b>, interleaved: each repetition runs every "
        "target once, in a rotated order, so the drift of a shared machine does not favour "
        "one target.</li>"
        "<li>Each run deploys the workload afresh, drives load with Locust, injects the "
        "scenario's faults and measures what users saw.</li>"
        "<li><b>Time to recover</b>: from the fault's injection to the first successful "
        "request after which failures stay at the pre-fault rate (for the scenario's "
        "<i>stable_for</i>, 2 s by default). A run where the fault had no visible impact has "
        "no time to recover and is counted apart, never as 0 s.</li>"
        "<li><b>What the orchestrator did</b> comes from its own events: restarted the same "
        "container in place, replaced a task or a pod with a new one, or nothing.</li></ul>"
    )


def _ranking_section(ranking: Ranking) -> str:
    rows = []
    for position, target in enumerate(ranking.order, start=1):
        group = ranking.group(target)
        rows.append(_ranking_row(ranking, position, group))
    headers = [
        "rank",
        "target",
        "time to recover (median)",
        "spread over runs",
        "recovered",
        "ranked 1st in",
        "what the orchestrator did",
        "what users saw",
    ]
    steps = "".join(f"<li>{esc(step_sentence(s))}</li>" for s in ranking.steps)
    missing = [g for g in ranking.fault.groups if not g.runs]
    absent = ""
    if missing:
        names = ", ".join(g.group for g in missing)
        absent = f"<p class='meta'>not in any completed run of: {esc(names)}</p>"
    return (
        f"<h3>{esc(ranking.fault.key)}</h3>"
        f'<p class="answer">{esc(headline(ranking))}</p>'
        + table(headers, rows)
        + f"<p><b>How sure is that order?</b></p><ul>{steps or '<li>one target only</li>'}</ul>"
        + absent
    )


def _ranking_row(ranking: Ranking, position: int, group: GroupFault) -> list[str]:
    ttr = group.stat("ttr_s")
    shares = ranking.shares.get(group.group)
    first = f"{shares[0]:.0%} of resamples" if shares else NONE
    spread = " · ".join(x for x in (spread_text(ttr, "ttr_s"), interval_text(ttr, "ttr_s")) if x)
    recovered = f"{group.recovered_runs} of {group.runs}"
    if group.censored:
        recovered += f"<br><span class='meta'>{esc(group.describe_censored())}</span>"
    if group.unrecovered:
        recovered += " " + badge(f"{len(group.unrecovered)} never recovered", "fail")
    if group.describe_impact():
        recovered += f"<br><span class='meta'>{esc(group.describe_impact())}</span>"
    return [
        esc(position),
        f"<b>{esc(group.group)}</b>",
        esc(metric_format("ttr_s").number(ttr.median)),
        esc(spread or NONE),
        recovered,
        esc(first),
        esc(group.describe_responses() or NONE) + _orchestrator_times(group),
        esc(what_users_saw(group)),
    ]


def _orchestrator_times(group: GroupFault) -> str:
    """'die → start 0.66 s, start → healthy 1.26 s' (medians), when the engine said so."""
    parts = []
    for metric in ("die_to_start_s", "start_to_healthy_s", "to_replacement_running_s"):
        median = group.stat(metric).median
        if median is not None:
            parts.append(f"{metric_format(metric).label} {median:.2f} s")
    return f"<br><span class='meta'>{esc(', '.join(parts))} (medians)</span>" if parts else ""


def _phases_section(scenario: ScenarioMatrix) -> str:
    comparison = scenario.comparison
    names = [g.name for g in comparison.groups]
    rows = []
    for phase in ("baseline", "fault", "recovery", "after"):
        for metric in ("throughput_rps", "error_rate", "p50_ms", "p95_ms", "p99_ms"):
            stats = [comparison.phases[n][phase][metric] for n in names]
            pooled_n = [
                p.percentiles[metric].n
                for p in (comparison.pooled.get(n, {}).get(phase) for n in names)
                if p is not None and metric in p.percentiles
            ]
            if not any(s.n for s in stats) and not any(pooled_n):
                continue
            fmt = metric_format(metric)
            cells = [esc(fmt.number(s.median)) for s in stats]
            if metric in QUANTILES:
                pooled = [comparison.pooled.get(n, {}).get(phase) for n in names]
                cells = [
                    f"{esc(pooled_text(p, metric))}<br><span class='meta'>median per run "
                    f"{cell}</span>"
                    for p, cell in zip(pooled, cells, strict=True)
                ]
            rows.append(
                [
                    f"<b>{esc(phase)}</b>" if metric == "throughput_rps" else "",
                    esc(fmt.label),
                    *cells,
                ]
            )
    return (
        "<h3>Load and latency per phase (latency pooled over every run's requests; the rest "
        "medians over runs)</h3>"
        + table(["phase", "", *names], rows)
        + "<p class='meta'>baseline: before the first fault; fault: while faults were active; "
        "recovery: from there until users recovered; after: the rest.</p>"
    )


def _runs_section(matrix: Matrix) -> str:
    rows = []
    for run in matrix.runs:
        label = "" if run.run_dir is None else run.run_dir.name
        link, status = run_cells(run.run_dir, label, run.status, run.included)
        rows.append(
            [
                esc(run.index),
                esc(run.scenario),
                esc(run.target),
                esc(run.repetition),
                status,
                "yes" if run.included else "<b>no</b>",
                link,
                esc(run.reason or ""),
            ]
        )
    headers = ["#", "scenario", "target", "repetition", "status", "compared", "run", "why"]
    return "<h2>Runs, in the order they ran</h2>" + table(headers, rows)


def _method() -> str:
    return (
        "<h2>Method</h2><p class='meta'>Targets are ranked by the share of runs that never "
        "recovered (fewer first), then by the median time to recover. <i>ranked 1st in</i>: "
        "how often a target's median comes first when every target's runs are resampled "
        "with replacement (2,000 resamples); with few runs it understates the uncertainty. "
        "<i>pairings of runs</i>: every run of one target against every run of the other; "
        "the faster won a pairing when its run recovered sooner. The difference's interval is "
        "a percentile bootstrap 95 % interval (10,000 resamples) from 5 recovery times per "
        "target; with fewer, the difference of the ranges with the confidence it really has "
        "(3 against 3: at least 56 %). A run whose data ended before its recovery was "
        "confirmed counts as recovered in <i>at least</i> x s, never as unrecovered. With 4 "
        "recovery times or more per target, a "
        "two-sided permutation test of the ranks (Mann–Whitney U) says whether the order is "
        "significant (p < 0.05); with 3 each no order can reach it (the smallest p is "
        "0.10): 4 repetitions are the least that can (0.029), and ties among the values raise "
        "the smallest p, which is then stated. No correction is made for several "
        "faults or targets compared at once. <i>spread</i>: the middle half of the runs and "
        "their range; the interval of the median is from order statistics.</p>"
    )
