"""The latency-impact figure: per fault, its view's window medians against the tolerance band.

One panel per fault whose latency was judged (at most MAX_PANELS): the median latency of the
successes sent in each 1 s window, requests and probes apart (harness.analysis.latency_impact,
windows aligned on the fault's injection), the band from the baseline's window median to the
limit, the fault's window shaded, and dashed/solid marks at the latency's own detection and
recovery. The title says the fault's impact kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from harness.analysis.data import RunData
from harness.analysis.latency_impact import WINDOW_NS, windows_of
from harness.analysis.metrics import extract_faults, make_context
from harness.analysis.observations import Stream
from harness.results.summary import FaultSummary, LatencyLimit, Summary

DPI = 110
MAX_PANELS = 6
BEFORE_NS = 10 * WINDOW_NS  # baseline shown before the injection
AFTER_NS = 10 * WINDOW_NS  # shown after the fault's evidence
COLOURS = {"requests": "#1f77b4", "probes": "#2ca02c"}


def latency_impact_figure(run: RunData, summary: Summary, out: Path) -> Path | None:
    """Draw the figure into `out`; None (nothing written) when no fault's latency was judged."""
    judged = [f for f in summary.faults if _limits(f)][:MAX_PANELS]
    if not judged:
        return None
    context = make_context(run, extract_faults(run.events))
    origin = summary.load.started_at_ns or 0
    fig = Figure(figsize=(12, 2.6 * len(judged) + 0.6), layout="constrained")
    axes = fig.subplots(len(judged), 1, squeeze=False)[:, 0]
    for ax, fault in zip(axes, judged, strict=True):
        view = context.observations.view(tuple(fault.targets))
        streams = {"requests": view.requests, "probes": view.probes}
        _panel(ax, fault, streams, origin)
    axes[-1].set_xlabel("seconds since load start (each window's successes placed by sending)")
    fig.suptitle(
        "latency impact: window medians against the baseline's tolerance", x=0.01, ha="left"
    )
    fig.savefig(out, dpi=DPI)
    return out


def _limits(fault: FaultSummary) -> dict[str, LatencyLimit]:
    latency = fault.latency_impact
    limits = {} if latency is None else latency.limits
    return {kind: limit for kind, limit in limits.items() if limit is not None}


def _panel(ax: Axes, fault: FaultSummary, streams: Mapping[str, Stream], origin_ns: int) -> None:
    t0 = fault.injected_at_ns or 0
    end = fault.reverted_at_ns or t0
    latency = fault.latency_impact
    marks = {} if latency is None else {"--": latency.detected_at_ns, "-": latency.recovered_at_ns}
    last = max(end, marks.get("-") or end) + AFTER_NS
    for kind, limit in _limits(fault).items():
        windows = windows_of(streams[kind], t0 - BEFORE_NS, last)
        starts = (t0 - BEFORE_NS + np.arange(windows.medians.size) * WINDOW_NS - origin_ns) / 1e9
        colour = COLOURS.get(kind, "#555555")
        ax.step(starts, windows.medians, where="post", color=colour, label=f"{kind}: median")
        low, high = limit.baseline_median_ms, limit.limit_ms
        ax.axhspan(low, high, color=colour, alpha=0.12, label=f"{kind}: baseline to limit")
        ax.axhline(high, color=colour, linestyle=":", linewidth=1.0)
    ax.axvspan(
        (t0 - origin_ns) / 1e9,
        (max(end, t0 + 50_000_000) - origin_ns) / 1e9,
        color="#e6a100",
        alpha=0.15,
        linewidth=0,
    )
    for style, at in marks.items():
        if at is not None:
            ax.axvline((at - origin_ns) / 1e9, color="#8a1414", linestyle=style, linewidth=1.2)
    impact = fault.impact_kind or "no visible impact"
    targets = ", ".join(fault.targets)
    ax.set_title(
        f"{fault.id} {fault.kind} on {targets}: impact {impact}",
        fontsize=9,
        loc="left",
    )
    ax.set_ylabel("median latency (ms)")
    ax.grid(True, alpha=0.3, linewidth=0.6)
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
