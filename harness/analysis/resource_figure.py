"""The resource figure: the workload's CPU and memory over the run, beside the latency timeline.

Two stacked panels over seconds since the load started, as in the timeline: CPU in cores
(each instance's rate between two sampling rounds, and their sum) and memory in MiB (each
instance and the sum per round). Each fault's window is shaded in its timeline colour, and a
strip along the top of each panel says which phase the time is in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from harness.analysis.data import RunData
from harness.analysis.plots import (
    DPI,
    PHASE_COLOURS,
    TimeAxis,
    draw_faults,
    fault_bands,
    time_axis,
)
from harness.analysis.resources import load_samples
from harness.results.summary import Summary

MIB = 1024 * 1024
SUM_COLOUR = "#1d1d1f"


def resource_figure(run: RunData, summary: Summary, out: Path) -> Path | None:
    """Draw the figure into `out`; None (nothing written) without samples."""
    samples = load_samples(run.run_dir)
    if samples is None or samples.empty:
        return None
    axis = time_axis(run, summary)
    bands = fault_bands(summary, axis)
    fig = Figure(figsize=(12, 5.2), layout="constrained")
    cpu_ax, memory_ax = fig.subplots(2, 1, sharex=True)
    cpu, memory = _series(samples, axis)
    _panel(cpu_ax, cpu, "CPU (cores)", rate=True)
    _panel(memory_ax, memory / MIB, "memory (MiB)", rate=False)
    for ax in (cpu_ax, memory_ax):
        draw_faults(ax, bands)
        _phase_strip(ax, summary, axis)
    handles, _labels = cpu_ax.get_legend_handles_labels()
    handles += [Patch(color=band.colour, alpha=0.3, label=band.label) for band in bands]
    handles += [Patch(color=c, alpha=0.6, label=f"phase: {n}") for n, c in PHASE_COLOURS.items()]
    cpu_ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False
    )
    memory_ax.set_xlabel("seconds since load start")
    fig.suptitle(
        f"workload CPU and memory from its cgroups — run {summary.run_id}", x=0.01, ha="left"
    )
    fig.savefig(out, dpi=DPI)
    return out


def _series(samples: pd.DataFrame, axis: TimeAxis) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(CPU cores, memory bytes): one column per instance, one row per round (seconds)."""
    frame = samples.sort_values(["instance", "time_ns"], kind="stable").copy()
    grouped = frame.groupby("instance", observed=True)
    dt = grouped["time_ns"].diff() / 1e9
    used = grouped["cpu_seconds"].diff()
    used = used.mask(used < 0, frame["cpu_seconds"])  # a reset counter: the new count
    frame["cores"] = used / dt
    frame["t"] = (frame["time_ns"] - axis.origin_ns) / 1e9
    cpu = frame.pivot_table(index="t", columns="instance", values="cores", observed=True)
    memory = frame.pivot_table(index="t", columns="instance", values="memory_bytes", observed=True)
    return cpu, memory


def _panel(ax: Axes, series: pd.DataFrame, label: str, rate: bool) -> None:
    """One line per instance and their sum; a rate is drawn as steps over the second before
    its round, a reading as a line through the rounds."""
    times = series.index.to_numpy(np.float64)
    total = series.sum(axis=1, min_count=1).to_numpy(np.float64)
    lines = [*((str(n), series[n].to_numpy(np.float64), 0.9) for n in series.columns)]
    for name, values, width in [*lines, ("sum", total, 1.6)]:
        colour = SUM_COLOUR if name == "sum" else None
        if rate:
            ax.step(times, values, where="pre", linewidth=width, color=colour, label=name)
        else:
            ax.plot(times, values, linewidth=width, color=colour, label=name)
    top = np.nanmax(total) if np.isfinite(total).any() else 1.0
    ax.set_ylim(0, max(top, 1e-9) * 1.15)  # room for the phase strip above the data
    ax.set_ylabel(label)
    ax.grid(True, alpha=0.3, linewidth=0.6)


def _phase_strip(ax: Axes, summary: Summary, axis: TimeAxis) -> None:
    for name, colour in PHASE_COLOURS.items():
        phase = summary.phases.get(name)
        for pair in [] if phase is None else phase.intervals:
            if len(pair) == 2:
                start, end = axis.seconds(pair[0]), axis.seconds(pair[1])
                ax.axvspan(start, end, ymin=0.96, ymax=1.0, color=colour, alpha=0.6, linewidth=0)
