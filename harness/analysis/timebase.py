"""Time windows of a run: the load's window, and sets of half-open intervals.

Intervals are (start_ns, end_ns) pairs, half-open [start, end); a set of them is kept sorted and
merged, so its measure is the sum of its lengths.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from harness.analysis.data import RunData

Interval = tuple[int, int]


@dataclass(frozen=True)
class LoadWindow:
    """When the load ran; every phase lies inside it."""

    start_ns: int
    end_ns: int

    def seconds(self, time_ns: int) -> float:
        """Seconds since load start."""
        return (time_ns - self.start_ns) / 1e9

    def clip(self, time_ns: int) -> int:
        return min(max(time_ns, self.start_ns), self.end_ns)


def load_window(run: RunData) -> LoadWindow:
    """The load's start and end: manifest, else harness events, else the data, else the run."""
    events = run.events[run.events["source"] == "harness"]
    start = _first_of(
        run.manifest.load.started_at_ns,
        _event_time(events, "load_start"),
        _extreme(run.requests, "start_ns", first=True),
        run.manifest.started_at_ns,
    )
    end = _first_of(
        run.manifest.load.ended_at_ns,
        _event_time(events, "load_stop"),
        _extreme(run.requests, "end_ns", first=False),
        run.manifest.ended_at_ns,
    )
    start = 0 if start is None else start
    return LoadWindow(start_ns=start, end_ns=start if end is None else max(start, end))


def _first_of(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def _event_time(events: pd.DataFrame, action: str) -> int | None:
    times = events.loc[events["action"] == action, "time_ns"]
    return None if times.empty else int(times.iloc[0])


def _extreme(frame: pd.DataFrame, column: str, *, first: bool) -> int | None:
    if frame.empty:
        return None
    return int(frame[column].min() if first else frame[column].max())


# -- interval sets ------------------------------------------------------------------------------


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, merged, non-empty intervals."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def subtract(intervals: Sequence[Interval], removed: Sequence[Interval]) -> list[Interval]:
    """`intervals` minus `removed` (both merged sets)."""
    result: list[Interval] = []
    for start, end in intervals:
        cursor = start
        for cut_start, cut_end in removed:
            if cut_end <= cursor or cut_start >= end:
                continue
            if cut_start > cursor:
                result.append((cursor, cut_start))
            cursor = max(cursor, cut_end)
        if cursor < end:
            result.append((cursor, end))
    return result


def measure_ns(intervals: Iterable[Interval]) -> int:
    return sum(end - start for start, end in intervals)


# -- a fault's comparison window ------------------------------------------------------------------


@dataclass(frozen=True)
class ComparisonWindow:
    """[t0, t0 + the fault's duration + analysis.window_s), the same length on every run,
    cut at the next fault sharing the observations and at the end of the data."""

    start_ns: int
    end_ns: int
    cut_by: str | None
    cut_by_data_end: bool

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9


def comparison_window(
    t0_ns: int,
    planned_s: float,
    window_s: float,
    cut: tuple[str, int] | None,
    data_end_ns: int,
) -> ComparisonWindow:
    """The window of a fault injected at t0 (`cut`: the next fault sharing its observations,
    with its injection; the data's last completion belongs to the window)."""
    end = t0_ns + round((planned_s + window_s) * 1e9)
    cut_by = None
    if cut is not None and cut[1] < end:
        cut_by, end = cut[0], cut[1]
    data_end = max(t0_ns, data_end_ns + 1)
    cut_by_data_end = data_end < end
    return ComparisonWindow(t0_ns, min(end, data_end), cut_by, cut_by_data_end)
