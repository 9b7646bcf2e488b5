"""Postmortem figures of one run (matplotlib's object API: no pyplot, no global state).

`timeline_figure` draws three stacked panels over seconds since the load started: latency
(every request a faint point, p50/p95/p99 per second), throughput (ok and failed requests per
second) and error rate; each fault's window is shaded in its own colour, with a dashed mark at
detection and a solid one at recovery; Kubernetes' own notable Events (Warnings, and the reasons
a recovery turns on: harness.analysis.kube_events) are dotted marks on the throughput panel,
labelled with their reason and pod. `latency_impact.png` (harness.analysis.latency_figure): each
fault's window medians against its latency tolerance band. `latency_by_phase_figure` draws
the latency CDF of each phase. Requests are placed by completion, like the metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from harness.analysis.data import RunData
from harness.analysis.kube_events import KubeEvent, kube_events
from harness.analysis.latency_figure import latency_impact_figure
from harness.analysis.phases import PHASE_NAMES, Phase, counting_intervals
from harness.analysis.timebase import Interval, LoadWindow, load_window
from harness.results.summary import PhaseSummary, Summary

DPI = 110
MAX_POINTS = 150_000
CDF_POINTS = 2_000  # quantiles drawn per phase in the latency CDF
MARGIN_S = 60.0
LABEL_CHAR_FRACTION = 0.0068  # width of one 7.5 pt character over the axes' width
FAULT_COLOURS = ("#e6a100", "#56b4e9", "#009e73", "#cc79a7", "#0072b2", "#b8860b", "#7f7f7f")
PHASE_COLOURS = {
    "baseline": "#4d4d4d",
    "fault": "#d62728",
    "recovery": "#ff7f0e",
    "after": "#2ca02c",
}
OK_COLOUR, FAIL_COLOUR = "#1f77b4", "#d62728"
K8S_WARNING, K8S_NORMAL = "#8a1414", "#555555"


@dataclass(frozen=True)
class FaultBand:
    """A fault as the figure draws it, in seconds since the load started."""

    fault_id: str
    label: str
    colour: str
    start_s: float
    end_s: float
    detected_s: float | None
    recovered_s: float | None
    impact: str = "visible"  # visible | none | unmeasured (see harness.analysis.metrics)


@dataclass(frozen=True, eq=False)
class Binned:
    """Per-second series of the requests (bins by completion)."""

    centres: np.ndarray
    ok: np.ndarray
    failed: np.ndarray
    percentiles: Mapping[str, np.ndarray]


def write_figures(run: RunData, summary: Summary, figures_dir: Path) -> list[Path]:
    """Write timeline.png, latency_by_phase.png and (when a fault's latency was judged)
    latency_impact.png into `figures_dir`; return their paths."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    timeline = figures_dir / "timeline.png"
    by_phase = figures_dir / "latency_by_phase.png"
    timeline_figure(run, summary, timeline)
    latency_by_phase_figure(run, summary, by_phase)
    latency = latency_impact_figure(run, summary, figures_dir / "latency_impact.png")
    return [timeline, by_phase, *([] if latency is None else [latency])]


@dataclass(frozen=True)
class TimeAxis:
    """The x axis: seconds since the load started, and where the load ended."""

    origin_ns: int
    end_s: float

    def seconds(self, time_ns: int) -> float:
        return (time_ns - self.origin_ns) / 1e9


def time_axis(run: RunData, summary: Summary) -> TimeAxis:
    """The summary's load window, else the one measured from the run's files."""
    start, end = summary.load.started_at_ns, summary.load.ended_at_ns
    if start is None or end is None:
        window = load_window(run)
        start, end = window.start_ns, window.end_ns
    return TimeAxis(start, (end - start) / 1e9)


def fault_bands(summary: Summary, axis: TimeAxis) -> list[FaultBand]:
    """Each fault's shaded window: injection to revert, else to recovery, else to the end."""
    bands = []
    for i, fault in enumerate(summary.faults):
        start = fault.injected_at_ns
        if start is None:
            continue
        detected, recovered = fault.detected_at_ns, fault.recovered_at_ns
        impact = fault.impact
        end = fault.reverted_at_ns or recovered
        if end is None and impact != "visible":
            end = start  # nothing happened that lasted: a thin band at the injection
        end_s = axis.end_s if end is None else axis.seconds(end)
        bands.append(
            FaultBand(
                fault_id=fault.id,
                label=f"{fault.id} {fault.kind}",
                colour=FAULT_COLOURS[i % len(FAULT_COLOURS)],
                start_s=axis.seconds(start),
                end_s=max(end_s, axis.seconds(start) + 0.05),
                detected_s=None if detected is None else axis.seconds(detected),
                recovered_s=None if recovered is None else axis.seconds(recovered),
                impact=impact,
            )
        )
    return bands


# -- data ------------------------------------------------------------------------------------


def _seconds(frame: pd.DataFrame, column: str, origin_ns: int) -> np.ndarray:
    return (frame[column].to_numpy(dtype=np.int64) - origin_ns) / 1e9


def bin_requests(requests: pd.DataFrame, axis: TimeAxis) -> Binned:
    """Counts and latency percentiles per 1-second bin of completion time.

    The bins cover the load window, stretched to stragglers up to MARGIN_S outside it."""
    t = _seconds(requests, "end_ns", axis.origin_ns)
    lower = max(min(0.0, float(t.min(initial=0.0))), -MARGIN_S)
    upper = min(max(axis.end_s, float(t.max(initial=0.0))), axis.end_s + MARGIN_S)
    edges = np.arange(np.floor(lower), max(upper, lower + 1.0) + 1.0, 1.0)
    inside = (t >= edges[0]) & (t < edges[-1])
    ok = requests["ok"].to_numpy(dtype=np.bool_)[inside]
    index = np.searchsorted(edges, t[inside], side="right") - 1
    n_bins = len(edges) - 1
    counts_ok = np.bincount(index[ok], minlength=n_bins)
    counts_failed = np.bincount(index[~ok], minlength=n_bins)
    latency = requests["latency_ms"].to_numpy(dtype=np.float64)[inside]
    return Binned(
        edges[:-1] + 0.5, counts_ok, counts_failed, _bin_percentiles(index, latency, n_bins)
    )


def _bin_percentiles(index: np.ndarray, latency: np.ndarray, n_bins: int) -> dict[str, np.ndarray]:
    """p50/p95/p99 of the latencies of each bin (NaN where a bin is empty: a gap in the line)."""
    percentiles = {q: np.full(n_bins, np.nan) for q in ("p50", "p95", "p99")}
    if index.size == 0:
        return percentiles
    order = np.argsort(index, kind="stable")
    bins, starts = np.unique(index[order], return_index=True)
    for b, chunk in zip(bins, np.split(latency[order], starts[1:]), strict=True):
        for q, value in zip(percentiles, np.percentile(chunk, [50, 95, 99]), strict=True):
            percentiles[q][b] = value
    return percentiles


# -- the timeline ----------------------------------------------------------------------------


def timeline_figure(run: RunData, summary: Summary, out: Path) -> Path:
    """The postmortem timeline: latency, throughput and error rate, fault windows shaded."""
    axis = time_axis(run, summary)
    origin = axis.origin_ns
    bands = fault_bands(summary, axis)
    binned = bin_requests(run.requests, axis)
    fig = Figure(figsize=(12, 8.5), layout="constrained")
    latency_ax, rate_ax, error_ax = fig.subplots(3, 1, sharex=True, height_ratios=(2.2, 1.2, 1.0))
    _latency_panel(latency_ax, run.requests, origin, binned)
    throughput_panel(rate_ax, binned)
    _error_panel(error_ax, binned, run.probes, origin)
    for ax in (latency_ax, rate_ax, error_ax):
        draw_faults(ax, bands)
        ax.grid(True, which="major", alpha=0.3, linewidth=0.6)
    low, high = binned.centres[0] - 0.5, binned.centres[-1] + 0.5
    error_ax.set_xlim(low, high)
    write_labels(latency_ax, _fault_labels(bands), high - low)
    write_labels(error_ax, recovery_labels(bands), high - low)
    draw_k8s_events(rate_ax, [e for e in kube_events(run.events) if e.notable], axis, high - low)
    error_ax.set_xlabel("seconds since load start (requests placed at completion)")
    _legends(latency_ax, rate_ax, error_ax, bands)
    fig.suptitle(_title(summary), fontsize=11, x=0.01, ha="left")
    fig.savefig(out, dpi=DPI)
    return out


def _title(summary: Summary) -> str:
    totals = summary.totals
    return (
        f"run {summary.run_id} — scenario {summary.scenario} on "
        f"{summary.target} — {summary.status} — "
        f"{totals.requests} requests, {totals.failures} failed"
    )


def _latency_panel(ax: Axes, requests: pd.DataFrame, origin: int, binned: Binned) -> None:
    t = _seconds(requests, "end_ns", origin)
    latency = np.maximum(requests["latency_ms"].to_numpy(dtype=np.float64), 0.01)
    ok = requests["ok"].to_numpy(dtype=np.bool_)
    keep = _thin(ok)
    ax.scatter(
        t[keep & ok],
        latency[keep & ok],
        s=2,
        c=OK_COLOUR,
        alpha=0.12,
        linewidths=0,
        rasterized=True,
        label="request (ok)",
    )
    ax.scatter(
        t[~ok],
        latency[~ok],
        s=5,
        c=FAIL_COLOUR,
        alpha=0.45,
        linewidths=0,
        rasterized=True,
        label="request (failed)",
    )
    styles = {"p50": ("#222222", 1.2), "p95": ("#8c564b", 1.2), "p99": ("#9467bd", 1.0)}
    for q, (colour, width) in styles.items():
        ax.plot(binned.centres, binned.percentiles[q], color=colour, linewidth=width, label=q)
    ax.set_yscale("log")
    if requests.empty:
        ax.set_ylim(0.1, 1000.0)
        ax.text(0.5, 0.5, "no requests", transform=ax.transAxes, ha="center", color="#777777")
    ax.set_ylabel("latency (ms, log)")
    ax.set_title("latency: every request, percentiles per 1 s", fontsize=9, loc="left")


def _thin(ok: np.ndarray) -> np.ndarray:
    """Keep every failed request and at most MAX_POINTS successful ones (evenly spaced)."""
    keep = np.ones(ok.size, dtype=np.bool_)
    count = int(ok.sum())
    if count > MAX_POINTS:
        positions = np.flatnonzero(ok)
        drop = np.ones(count, dtype=np.bool_)
        drop[:: int(np.ceil(count / MAX_POINTS))] = False
        keep[positions[drop]] = False
    return keep


def throughput_panel(ax: Axes, binned: Binned) -> None:
    edges = np.append(binned.centres - 0.5, binned.centres[-1] + 0.5)
    ax.stairs(binned.ok, edges, baseline=None, color=OK_COLOUR, linewidth=1.2, label="ok / s")
    ax.stairs(binned.failed, edges, color=FAIL_COLOUR, fill=True, alpha=0.6, label="failed / s")
    ax.set_ylabel("requests / s")
    ax.set_ylim(bottom=0)
    ax.set_title("throughput (by completion)", fontsize=9, loc="left")


def _error_panel(ax: Axes, binned: Binned, probes: pd.DataFrame, origin: int) -> None:
    edges = np.append(binned.centres - 0.5, binned.centres[-1] + 0.5)
    total = binned.ok + binned.failed
    rate = np.divide(100.0 * binned.failed, total, out=np.zeros(total.size), where=total > 0)
    ax.stairs(rate, edges, color=FAIL_COLOUR, fill=True, alpha=0.35, label="requests failed %")
    if not probes.empty:
        probe_rate = _probe_error_rate(probes, origin, edges)
        ax.stairs(
            probe_rate,
            edges,
            color="#444444",
            linewidth=1.0,
            linestyle=":",
            label="probes failed %",
        )
    ax.set_ylabel("error rate (%)")
    ax.set_ylim(0, max(5.0, float(rate.max(initial=0.0)) * 1.35))
    ax.set_title("error rate per 1 s", fontsize=9, loc="left")


def _probe_error_rate(probes: pd.DataFrame, origin: int, edges: np.ndarray) -> np.ndarray:
    t = _seconds(probes, "end_ns", origin)
    ok = probes["ok"].to_numpy(dtype=np.bool_)
    total, _ = np.histogram(t, bins=edges)
    failed, _ = np.histogram(t[~ok], bins=edges)
    rate: np.ndarray = np.divide(100.0 * failed, total, out=np.zeros(total.size), where=total > 0)
    return rate


def draw_faults(ax: Axes, bands: Sequence[FaultBand]) -> None:
    """Shade each fault's window; dashed at detection, solid at recovery."""
    for band in bands:
        ax.axvspan(band.start_s, band.end_s, color=band.colour, alpha=0.18, linewidth=0)
        if band.detected_s is not None:
            ax.axvline(band.detected_s, color=band.colour, linestyle="--", linewidth=1.3)
        if band.recovered_s is not None:
            ax.axvline(band.recovered_s, color=band.colour, linestyle="-", linewidth=1.3)


def draw_k8s_events(ax: Axes, events: Sequence[KubeEvent], axis: TimeAxis, span_s: float) -> None:
    """A dotted mark per notable Kubernetes Event, labelled 'BackOff web-1' (one label per
    reason and pod and second: a repeated Event is one mark)."""
    seen: set[tuple[str, str | None, int]] = set()
    labels = []
    for event in events:
        at = axis.seconds(event.time_ns)
        key = (event.reason, event.instance, int(at))
        if key in seen:
            continue
        seen.add(key)
        colour = K8S_WARNING if event.type == "Warning" else K8S_NORMAL
        ax.axvline(at, color=colour, linestyle=":", linewidth=1.0)
        labels.append((at, f"{event.reason} {event.instance or event.involved}", colour))
    write_labels(ax, labels, span_s)


def _stack_levels(spans: Sequence[tuple[float, float]]) -> list[int]:
    """Greedy rows for labels so that none overlaps another (spans in data units)."""
    ends: list[float] = []
    levels = []
    for start, end in spans:
        level = next((i for i, last in enumerate(ends) if start > last), len(ends))
        if level == len(ends):
            ends.append(end)
        ends[level] = end
        levels.append(level)
    return levels


def write_labels(ax: Axes, labels: Sequence[tuple[float, str, str]], span_s: float) -> None:
    """Labels (x, text, colour) along the top inside of `ax`, stacked where they would collide."""
    ordered = sorted(labels)
    width = LABEL_CHAR_FRACTION * max(span_s, 1e-9)
    spans = [(x, x + width * (len(text) + 2)) for x, text, _ in ordered]
    for (x, text, colour), level in zip(ordered, _stack_levels(spans), strict=True):
        ax.text(
            x,
            0.975 - 0.085 * level,
            f" {text}",
            transform=ax.get_xaxis_transform(),
            fontsize=7.5,
            va="top",
            ha="left",
            bbox={"facecolor": colour, "alpha": 0.35, "linewidth": 0, "pad": 1.2},
        )


def _fault_labels(bands: Sequence[FaultBand]) -> list[tuple[float, str, str]]:
    return [(b.start_s, b.label, b.colour) for b in bands]


def recovery_labels(bands: Sequence[FaultBand]) -> list[tuple[float, str, str]]:
    """'f1 ttr 0.80 s' at each recovery mark, 'f1 never recovered' at an unrecovered fault,
    'f1 no visible impact' / 'f1 not measured' at a fault without a recovery to show."""
    labels = []
    for band in bands:
        if band.impact == "none":
            labels.append((band.start_s, f"{band.fault_id} no visible impact", band.colour))
        elif band.impact == "unmeasured":
            labels.append((band.start_s, f"{band.fault_id} not measured", band.colour))
        elif band.recovered_s is None:
            labels.append((band.start_s, f"{band.fault_id} never recovered", band.colour))
        elif band.detected_s is not None:
            ttr = band.recovered_s - band.start_s
            labels.append((band.recovered_s, f"{band.fault_id} ttr {ttr:.2f} s", band.colour))
    return labels


def _dot(colour: str, label: str) -> Line2D:
    return Line2D([], [], color=colour, marker="o", markersize=4, linestyle="", label=label)


def _legends(latency_ax: Axes, rate_ax: Axes, error_ax: Axes, bands: Sequence[FaultBand]) -> None:
    marks: list[Line2D | Patch] = [
        _dot(OK_COLOUR, "request (ok)"),
        _dot(FAIL_COLOUR, "request (failed)"),
        Line2D([], [], color="#555555", linestyle="--", label="detected (first failure)"),
        Line2D([], [], color="#555555", linestyle="-", label="recovered"),
    ]
    marks += [Patch(color=b.colour, alpha=0.35, label=b.label) for b in bands]
    lines = [h for h in latency_ax.get_lines() if not str(h.get_label()).startswith("_")]
    latency_ax.legend(
        handles=[*marks[:2], *lines, *marks[2:]],
        loc="upper left",
        bbox_to_anchor=(1.005, 1.0),
        fontsize=8,
        frameon=False,
    )
    for ax in (rate_ax, error_ax):
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)


# -- latency per phase -----------------------------------------------------------------------


def _phase_intervals(phases: Mapping[str, PhaseSummary], axis: TimeAxis) -> list[list[Interval]]:
    """The intervals of each phase as the metrics count them (open at the load's edges)."""
    parsed = []
    for name in PHASE_NAMES:
        phase = phases.get(name)
        pairs = [] if phase is None else phase.intervals
        intervals = tuple((p[0], p[1]) for p in pairs if len(p) == 2)
        parsed.append(Phase(name, intervals))
    load = LoadWindow(axis.origin_ns, axis.origin_ns + round(axis.end_s * 1e9))
    return counting_intervals(parsed, load)


def latency_by_phase_figure(run: RunData, summary: Summary, out: Path) -> Path:
    """Empirical CDF of request latency per phase (requests that started in the phase), drawn
    through at most CDF_POINTS quantiles: a run of millions of requests draws as fast as a
    short one, and looks the same."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    phases = summary.phases
    start = run.requests["start_ns"].to_numpy(dtype=np.int64)
    latency = np.maximum(run.requests["latency_ms"].to_numpy(dtype=np.float64), 0.01)
    bounds = _phase_intervals(phases, time_axis(run, summary))
    phase_of = _phase_of(start, bounds)
    for index, (name, colour) in enumerate(PHASE_COLOURS.items()):
        values = latency[phase_of == index]
        if values.size:
            shares = np.linspace(0.0, 1.0, min(values.size, CDF_POINTS))
            ax.step(
                np.quantile(values, shares),
                shares,
                where="post",
                color=colour,
                label=f"{name} (n={values.size})",
            )
    ax.set_xscale("log")
    if not ax.get_legend_handles_labels()[0]:
        ax.set_xlim(0.1, 1000.0)
        ax.text(0.5, 0.5, "no requests", transform=ax.transAxes, ha="center", color="#777777")
    ax.set_xlabel("latency (ms, log)")
    ax.set_ylabel("share of requests")
    ax.set_ylim(0, 1.01)
    ax.grid(True, which="major", alpha=0.3, linewidth=0.6)
    ax.set_title(f"latency CDF per phase — run {summary.run_id}", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    fig.savefig(out, dpi=DPI)
    return out


def _phase_of(start: np.ndarray, bounds: Sequence[Sequence[Interval]]) -> np.ndarray:
    """Per request, the index of the phase whose intervals hold its start (-1: none); the
    phases' intervals do not overlap, so one binary search places every request."""
    rows = sorted((lo, hi, k) for k, intervals in enumerate(bounds) for lo, hi in intervals)
    if not rows:
        return np.full(start.size, -1, dtype=np.int64)
    los = np.array([r[0] for r in rows], dtype=np.int64)
    his = np.array([r[1] for r in rows], dtype=np.int64)
    owner = np.array([r[2] for r in rows], dtype=np.int64)
    slot = np.searchsorted(los, start, side="right") - 1
    valid = (slot >= 0) & (start < his[np.maximum(slot, 0)])
    return np.where(valid, owner[np.maximum(slot, 0)], -1)
