"""The comparison's files: compare.json, figures/*.png and a self-contained compare.html.

`write_compare_report(comparison, out_dir)` writes them all and returns compare.html's path.
`timelines_figure` stacks one row per run on one axis of seconds since each run's load start
(throughput and error rate, fault windows shaded, as in the single-run timeline);
`ttr_distribution_figure` shows every run's time to recover per group and fault, with the
runs that never recovered drawn apart, above the axis, never as a time. Figures use
matplotlib's object API and the helpers of harness.analysis.plots; the HTML reuses the CSS and
escaping of harness.analysis.report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from harness.analysis.compare import (
    ALPHA,
    BOOTSTRAP,
    MIN_RUNS_FOR_TEST,
    MIN_VALUES_FOR_BOOTSTRAP,
    SEED,
    Comparison,
    FaultComparison,
    GroupFault,
    PairVerdict,
    RunInput,
    Stat,
    write_comparison_json,
)
from harness.analysis.data import load_run
from harness.analysis.formats import NONE
from harness.analysis.phases import PHASE_NAMES
from harness.analysis.plots import (
    DPI,
    FAIL_COLOUR,
    OK_COLOUR,
    Binned,
    FaultBand,
    bin_requests,
    draw_faults,
    fault_bands,
    recovery_labels,
    throughput_panel,
    time_axis,
    write_labels,
)
from harness.analysis.pooled import QUANTILES
from harness.analysis.report import CSS, badge, esc, figures_section, table
from harness.analysis.thresholds import Check
from harness.analysis.wording import pooled_text
from harness.errors import AnalysisError

COMPARE_JSON, COMPARE_HTML = "compare.json", "compare.html"
TIMELINES_PNG, TTR_PNG = "timelines.png", "ttr_distribution.png"
GROUP_COLOURS = ("#1b6ca8", "#c0392b", "#2e8b57", "#8e44ad", "#d35400", "#5d6d7e", "#b7950b")
ROW_HEIGHT_IN = 1.9
RATE_COLOUR = "#7f1d1d"
COMPARE_CSS = """
.verdicts { list-style: none; padding: 0; } .verdicts li { margin: 6px 0; }
.swatch { display: inline-block; width: 10px; height: 10px;
  border-radius: 2px; margin-right: 6px; }
"""


def write_compare_report(
    comparison: Comparison, out_dir: Path, checks: Sequence[Check] = ()
) -> Path:
    """Write compare.json, figures/timelines.png, figures/ttr_distribution.png, compare.html;
    with `checks` (--threshold), the before/after verdicts go in both."""
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    extra = {"regression_checks": [c.to_dict() for c in checks]} if checks else None
    write_comparison_json(comparison, out_dir / COMPARE_JSON, extra)
    figures = [
        ttr_distribution_figure(comparison, figures_dir / TTR_PNG),
        timelines_figure(comparison, figures_dir / TIMELINES_PNG),
    ]
    path = out_dir / COMPARE_HTML
    path.write_text(render_compare_html(comparison, figures, checks), encoding="utf-8")
    return path


def group_colour(comparison: Comparison, group: str) -> str:
    names = [g.name for g in comparison.groups]
    return GROUP_COLOURS[names.index(group) % len(GROUP_COLOURS)]


# -- timelines -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Row:
    """One run of the timelines, binned (or why it cannot be drawn)."""

    run: RunInput
    binned: Binned | None
    bands: tuple[FaultBand, ...]
    problem: str | None

    @property
    def span(self) -> tuple[float, float] | None:
        if self.binned is None:
            return None
        return float(self.binned.centres[0] - 0.5), float(self.binned.centres[-1] + 0.5)


def _row(run: RunInput) -> _Row:
    try:
        data = load_run(run.run_dir)
    except AnalysisError as exc:
        return _Row(run, None, (), str(exc))
    axis = time_axis(data, run.measured)
    bands = tuple(fault_bands(run.measured, axis))
    return _Row(run, bin_requests(data.requests, axis), bands, None)


def timelines_figure(comparison: Comparison, out: Path) -> Path:
    """One row per run (grouped), shared x axis: seconds since that run's load start."""
    rows = [_row(run) for group in comparison.groups for run in group.runs]
    spans = [r.span for r in rows if r.span is not None] or [(0.0, 1.0)]
    low, high = min(s[0] for s in spans), max(s[1] for s in spans)
    fig = Figure(figsize=(12, 1.2 + ROW_HEIGHT_IN * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), 1, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, row in zip(axes, rows, strict=True):
        _timeline_row(ax, row, group_colour(comparison, row.run.group), high - low)
    axes[-1].set_xlim(low, high)
    peaks = [
        max(r.binned.ok.max(initial=0), r.binned.failed.max(initial=0)) for r in rows if r.binned
    ]
    axes[-1].set_ylim(0, max([1.0, *map(float, peaks)]) * 1.15)  # rows share it
    axes[-1].set_xlabel("seconds since each run's load start (requests placed at completion)")
    bands = {b.label: b for row in rows for b in row.bands}
    _timeline_legend(fig, list(bands.values()))
    fig.suptitle(
        f"runs by {comparison.by}: throughput, error rate and fault windows",
        fontsize=11,
        x=0.01,
        ha="left",
    )
    fig.savefig(out, dpi=DPI)
    return out


def _timeline_row(ax: Axes, row: _Row, colour: str, span_s: float) -> None:
    """Throughput and error rate of one run, its faults shaded and their recoveries labelled."""
    if row.binned is None:
        ax.text(0.5, 0.5, f"no request data: {row.problem}", transform=ax.transAxes, ha="center")
        _row_titles(ax, row.run, colour)
        return
    binned = row.binned
    throughput_panel(ax, binned)
    _row_titles(ax, row.run, colour)
    ax.set_ylabel("req / s", fontsize=8)
    edges = np.append(binned.centres - 0.5, binned.centres[-1] + 0.5)
    total = binned.ok + binned.failed
    rate = np.divide(100.0 * binned.failed, total, out=np.zeros(total.size), where=total > 0)
    twin = ax.twinx()
    twin.stairs(rate, edges, color=RATE_COLOUR, linewidth=1.0, linestyle=":", label="error %")
    twin.set_ylim(0, 100)
    twin.set_ylabel("error %", fontsize=8)
    twin.tick_params(labelsize=7)
    ax.tick_params(labelsize=7)
    draw_faults(ax, row.bands)
    ax.grid(True, which="major", alpha=0.3, linewidth=0.6)
    write_labels(ax, recovery_labels(row.bands), span_s)


def _row_titles(ax: Axes, run: RunInput, colour: str) -> None:
    """The run's group and id on the left (in its group's colour), its status on the right."""
    summary = run.measured
    where = f"{summary.scenario} on {summary.target}"
    ax.set_title(
        f"{run.group} — run {run.run_id} ({where})",
        fontsize=9,
        loc="left",
        color=colour,
        fontweight="bold",
    )
    ax.set_title(summary.status, fontsize=8, loc="right", color="#555555")
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_color("#bbbbbb")
    ax.spines["left"].set_color(colour)
    ax.spines["left"].set_linewidth(3)


def _timeline_legend(fig: Figure, bands: Sequence[FaultBand]) -> None:
    handles: list[Line2D | Patch] = [
        Line2D([], [], color=OK_COLOUR, label="ok / s"),
        Patch(color=FAIL_COLOUR, alpha=0.6, label="failed / s"),
        Line2D([], [], color=RATE_COLOUR, linestyle=":", label="error % (right axis)"),
        Line2D([], [], color="#555555", linestyle="--", label="detected"),
        Line2D([], [], color="#555555", linestyle="-", label="recovered"),
    ]
    handles += [Patch(color=b.colour, alpha=0.35, label=b.label) for b in bands]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 8), fontsize=8)


# -- recovery-time distributions -------------------------------------------------------------


def ttr_distribution_figure(comparison: Comparison, out: Path) -> Path:
    """Per fault, every run's ttr per group (box when a group has 3+ runs); unrecovered on top."""
    faults = comparison.faults
    cols = max(1, min(len(faults), 3))
    rows = max(1, -(-len(faults) // cols))
    width = max(4.0, min(12.0, 1.5 + 1.6 * len(comparison.groups) * cols))
    fig = Figure(figsize=(width, 3.8 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, fault in zip(axes, faults, strict=False):
        _ttr_panel(ax, comparison, fault)
    for ax in axes[len(faults) :]:
        ax.set_axis_off()
    if not faults:
        axes[0].text(0.5, 0.5, "no fault in any run", ha="center", transform=axes[0].transAxes)
    fig.suptitle(
        "time to recover (ttr_s) per run (▲: censored, recovered in at least that)",
        fontsize=11,
        x=0.01,
        ha="left",
    )
    fig.savefig(out, dpi=DPI)
    return out


def _ttr_panel(ax: Axes, comparison: Comparison, fault: FaultComparison) -> None:
    rng = np.random.default_rng(SEED)
    top = max([1.0, *(v for g in fault.groups for v in g.ttr_values)]) * 1.12
    never_y = top * 1.1
    for x, group in enumerate(fault.groups):
        colour = group_colour(comparison, group.group)
        values = np.asarray(group.ttr_values, dtype=np.float64)
        if values.size >= MIN_RUNS_FOR_TEST:
            box = ax.boxplot(values, positions=[x], widths=0.5, showfliers=False)
            for line in (*box["boxes"], *box["whiskers"], *box["caps"]):
                line.set_color(colour)
            for line in box["medians"]:
                line.set_color("#222222")
        jitter = rng.uniform(-0.12, 0.12, values.size) if values.size > 1 else np.zeros(1)
        at_least = np.asarray(group.ttr_censored, dtype=np.bool_)
        xs = x + jitter[: values.size]
        ax.scatter(xs[~at_least], values[~at_least], s=28, color=colour, alpha=0.8, zorder=3)
        # a censored run: recovered in at least this (an upward triangle: ">=")
        ax.scatter(xs[at_least], values[at_least], s=40, marker="^", color=colour, zorder=3)
        median = group.stat("ttr_s").median
        if median is not None:
            ax.hlines(median, x - 0.3, x + 0.3, color="#222222", linewidth=1.5, zorder=4)
            ax.annotate(
                f"{median:.2f} s",
                (x + 0.32, median),
                fontsize=8,
                va="center",
                color="#222222",
            )
        if group.unrecovered:
            count = len(group.unrecovered)
            ax.scatter([x], [never_y], marker="x", s=60, color=FAIL_COLOUR, zorder=3)
            ax.annotate(f"{count}×", (x + 0.1, never_y), fontsize=8, va="center", color=FAIL_COLOUR)
    if any(g.unrecovered for g in fault.groups):
        ax.axhline(top * 1.03, color="#999999", linewidth=0.8, linestyle="--")
        ax.text(-0.45, never_y, "never\nrecovered", fontsize=7, va="center", color=FAIL_COLOUR)
    ax.set_ylim(0, top * 1.18)
    ax.set_xlim(-0.6, len(fault.groups) - 0.4)
    ax.set_xticks(
        range(len(fault.groups)), [f"{g.group}\n(n={g.runs})" for g in fault.groups], fontsize=8
    )
    ax.set_ylabel("ttr (s)")
    ax.set_title(fault.key, fontsize=10, loc="left")
    ax.grid(True, axis="y", alpha=0.3, linewidth=0.6)


# -- HTML ------------------------------------------------------------------------------------


def render_compare_html(
    comparison: Comparison, figures: Sequence[Path], checks: Sequence[Check] = ()
) -> str:
    """compare.html: verdicts first (the before/after checks, when any), then a table per
    fault, phases, figures, runs, method."""
    names = " vs ".join(g.name for g in comparison.groups)
    title = f"chaos-harness comparison: {names}"
    body = "\n".join(
        [
            f"<h1>Comparison: {esc(names)}</h1>",
            _meta(comparison),
            _checks_section(checks),
            _verdicts_section(comparison),
            *(_fault_section(comparison, f) for f in comparison.faults),
            _phases_section(comparison),
            figures_section(figures),
            _runs_section(comparison),
            _method_section(),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}{COMPARE_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def _checks_section(checks: Sequence[Check]) -> str:
    """The before/after verdicts, one row per metric and subject."""
    if not checks:
        return ""
    css = {"better": "pass", "worse": "fail", "no detectable difference": "na"}
    rows = [
        [
            f"<b>{esc(c.name)}</b>",
            esc(f"{c.candidate} vs {c.reference}"),
            esc(c.value_text),
            esc(c.threshold.text),
            badge(c.verdict, css[c.verdict]),
            esc(c.reason),
        ]
        for c in checks
    ]
    headers = ["metric", "groups", "change (medians)", "threshold", "verdict", "why"]
    regressions = sum(c.regression for c in checks)
    head = badge(f"{regressions} regression(s)", "fail") if regressions else badge("none", "pass")
    return (
        f"<h2>Before and after: regressions {head}</h2>"
        + table(headers, rows)
        + "<p class='meta'>worse / better: the change goes that way, is larger than the "
        "threshold and is significant (permutation test of the ranks, p &lt; 0.05, 3 runs or "
        "more per group); otherwise no detectable difference. The interval is a bootstrap 95 "
        "% interval of the difference of the medians.</p>"
    )


def _meta(comparison: Comparison) -> str:
    by = comparison.by if comparison.label is None else f"label {comparison.label}"
    runs = sum(len(g.runs) for g in comparison.groups)
    groups = ", ".join(
        f"{g.name} ({len(g.runs)} run{'s' * (len(g.runs) > 1)})" for g in comparison.groups
    )
    measured = ""
    if comparison.measurement is not None:
        measured = f"<br>every run measured the same way: {esc(comparison.measurement.describe())}"
    return (
        f'<p class="meta">grouped by <b>{esc(by)}</b> · {runs} runs · {esc(groups)}{measured}</p>'
    )


def _verdict_badge(pair: PairVerdict) -> str:
    if pair.basis == "unrecovered":
        return badge("unrecovered", "fail")
    if pair.basis == "permutation":
        return badge("significant", "pass") if pair.significant else badge("not significant", "na")
    if pair.basis == "missing":
        return badge("not in every group", "na")
    if pair.basis == "no_impact":
        return badge("no recovery to compare", "na")
    return badge("single runs" if pair.basis == "single_runs" else "too few runs", "na")


def _verdicts_section(comparison: Comparison) -> str:
    pairs = [p for f in comparison.faults for p in f.headline]
    if len(comparison.groups) < 2 or not pairs:
        items = [f"<li>{esc(s)}</li>" for s in comparison.sentences()]
    else:
        items = [f"<li>{_verdict_badge(p)} {esc(p.sentence)}</li>" for p in pairs]
    return f'<h2>Verdict</h2>\n<ul class="verdicts">{"".join(items)}</ul>'


def _stat_cell(value: Stat, unit: str = "", scale: float = 1.0, digits: int = 3) -> str:
    if value.median is None or value.min is None or value.max is None:
        return NONE
    text = f"{value.median * scale:.{digits}f}{unit}"
    if value.n > 1:
        text += f" <span class='meta'>({value.min * scale:.{digits}f}–"
        text += f"{value.max * scale:.{digits}f}, n={value.n})</span>"
    return text


def _ttr_cell(group: GroupFault) -> str:
    cell = _stat_cell(group.stat("ttr_s"), " s")
    if group.unrecovered:
        never = f"never recovered in {len(group.unrecovered)} of {group.runs}"
        cell = badge(never, "fail") if cell == NONE else f"{cell} {badge(never, 'fail')}"
    return cell


FAULT_ROWS = (
    ("ttd_s", "time to detect", " s", 1.0, 3),
    ("failed_requests", "failed requests", "", 1.0, 0),
    ("availability", "availability", " %", 100.0, 2),
    ("lost_requests", "lost requests (intended − successful)", "", 1.0, 0),
    ("kill_to_die_s", "fault → die", " s", 1.0, 3),
    ("die_to_start_s", "die → start", " s", 1.0, 3),
    ("start_to_healthy_s", "start → healthy", " s", 1.0, 3),
)


def _fault_section(comparison: Comparison, fault: FaultComparison) -> str:
    groups = list(fault.groups)
    headers = ["", *(g.group for g in groups)]
    rows = [
        ["runs (recovered)", *(f"{g.runs} ({g.recovered_runs})" for g in groups)],
        ["<b>time to recover</b>", *(_ttr_cell(g) for g in groups)],
        ["no visible impact", *(esc(g.describe_impact() or NONE) for g in groups)],
        ["censored (at least)", *(esc(g.describe_censored() or NONE) for g in groups)],
    ]
    for metric, name, unit, scale, digits in FAULT_ROWS:
        rows.append([esc(name), *(_stat_cell(g.stat(metric), unit, scale, digits) for g in groups)])
    sentences = "".join(f"<li>{_verdict_badge(p)} {esc(p.sentence)}</li>" for p in fault.pairs)
    return (
        f"<h2>{esc(fault.key)}</h2>\n{_group_header_table(comparison, headers, rows)}"
        "<p class='meta'>median over runs (min–max, n runs measured; a run without visible "
        "impact has no time to recover and is counted apart); orchestrator intervals: "
        "each run's median over its affected instances, each measured from its own start."
        f"</p>\n<ul class='verdicts'>{sentences}</ul>"
    )


def _group_header_table(comparison: Comparison, headers: list[str], rows: list[list[str]]) -> str:
    """A table whose headers that name a group get the group's colour swatch."""
    html = table(headers, rows)
    names = {g.name for g in comparison.groups}
    for name in (h for h in headers if h in names):
        swatch = f"<span class='swatch' style='background:{group_colour(comparison, name)}'></span>"
        html = html.replace(f"<th>{esc(name)}</th>", f"<th>{swatch}{esc(name)}</th>", 1)
    return html


PHASE_ROWS = (
    ("p50_ms", "p50 latency", " ms", 1.0, 1),
    ("p95_ms", "p95 latency", " ms", 1.0, 1),
    ("p99_ms", "p99 latency", " ms", 1.0, 1),
    ("error_rate", "error rate", " %", 100.0, 2),
    ("throughput_rps", "throughput", " req/s", 1.0, 1),
)


def _phases_section(comparison: Comparison) -> str:
    names = [g.name for g in comparison.groups]
    rows = []
    for phase in PHASE_NAMES:
        for metric, label, unit, scale, digits in PHASE_ROWS:
            cells = [
                _stat_cell(comparison.phases[n][phase][metric], unit, scale, digits) for n in names
            ]
            if metric in QUANTILES:
                cells = [
                    f"{esc(pooled_text(comparison.pooled.get(n, {}).get(phase), metric))}"
                    f"<br><span class='meta'>per run: </span>{cell}"
                    for n, cell in zip(names, cells, strict=True)
                ]
            rows.append([f"<b>{esc(phase)}</b>" if metric == "p50_ms" else "", esc(label), *cells])
    note = (
        "<p class='meta'>phases are per run, not per fault: <i>fault</i> is the union of every "
        "fault's active part, <i>recovery</i> the time from there to users' recovery, "
        "<i>after</i> the rest after the first injection (between occurrences too). Latency "
        "percentiles: first over every run's successful requests that started in the phase, "
        "pooled (a run slow throughout shows); below, the per-run values (median, range). A "
        "percentile needs one request beyond it (p50: 2, p95: 20, p99: 100), else none.</p>"
    )
    return "<h2>Phases</h2>" + _group_header_table(comparison, ["phase", "", *names], rows) + note


def _runs_section(comparison: Comparison) -> str:
    rows = []
    for group in comparison.groups:
        for run in group.runs:
            labels = ", ".join(f"{k}={v}" for k, v in run.labels.items()) or NONE
            rows.append(
                [
                    esc(group.name),
                    esc(run.run_id),
                    esc(run.measured.scenario),
                    esc(run.measured.target),
                    esc(labels),
                    esc(run.measured.status),
                    esc(run.run_dir),
                ]
            )
    headers = ["group", "run", "scenario", "target", "labels", "status", "directory"]
    return "<h2>Runs</h2>" + table(headers, rows)


def _method_section() -> str:
    return (
        "<h2>Method</h2><p class='meta'>The faster group has the lower median time to recover; "
        "a group whose fault went unrecovered in a larger share of its runs loses, and an "
        "unrecovered run is never given a time. A run whose data ended before its recovery "
        "was confirmed (censored) recovered in <i>at least</i> x s: it is compared as "
        "&ge; x, never as unrecovered. n counts the recovery times compared, not the runs. "
        f"With at least {MIN_RUNS_FOR_TEST} values per group (3 against 3 can never give "
        f"p &lt; {ALPHA:g}: the smallest p is 0.10; 4 against 4 is the least that can, 0.029): "
        "a two-sided exact permutation test of Gehan's scores (the rank sum, Mann–Whitney U, "
        "when nothing is censored), counted over every split, with the smallest p these very "
        f"values could give (ties raise it); significant when p &lt; {ALPHA:g}. The interval "
        f"of the difference of the medians: a percentile bootstrap 95 % interval "
        f"({BOOTSTRAP:,} resamples, seed {SEED}) from {MIN_VALUES_FOR_BOOTSTRAP} values per "
        "group; with fewer, the difference of the ranges with the confidence it really has "
        "(3 against 3: at least 56 %). No correction is made for testing several faults or "
        "pairs at once.</p>"
    )
