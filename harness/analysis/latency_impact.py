"""Latency impact: a fault that slows the view's successful answers beyond the baseline's own.

Each 1 s window's MEDIAN latency of the successful observations sent in it (requests and probes
of the view apart, judged from `MIN_WINDOW_SUCCESSES`) is held against a limit from the steady
baseline's windows: m + max(5 mad, m, 20 ms), with m the median of their medians and mad their
scaled median absolute deviation. A median, so one slow answer is no impact; floors, so a shared
machine's scheduling noise is none either. Detection is the first window over the limit in the
horizon; recovery, like the errors', the first run of windows within it for stable_for.

The statistic, the floors' reasons and the recovery rule: docs/METRICS.md, "Latency impact".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from harness.analysis.observations import BoolArray, FloatArray, IntArray, Stream, View
from harness.results.summary import LatencyLimit as LatencyLimitRecord

WINDOW_NS = 1_000_000_000
MIN_WINDOW_SUCCESSES = 5
MIN_BASELINE_WINDOWS = 3
SPREAD_FACTOR = 5.0
RELATIVE_MARGIN = 1.0
FLOOR_MS = 20.0
MAD_TO_SD = 1.4826
SOON_WINDOWS = 60  # windows examined for a recovery before the rest of the data
STATISTIC = (
    "median latency of the successful observations sent in each 1 s window "
    f"(judged with at least {MIN_WINDOW_SUCCESSES} of them)"
)


@dataclass(frozen=True)
class LatencyLimit:
    """One kind's tolerance: the baseline windows' median and the limit above it."""

    kind: str  # requests | probes
    baseline_ms: float
    limit_ms: float
    windows: int

    def record(self) -> LatencyLimitRecord:
        """As summary.json writes it (a fault's `latency_impact.limits`)."""
        return LatencyLimitRecord(
            baseline_median_ms=round(self.baseline_ms, 3),
            limit_ms=round(self.limit_ms, 3),
            baseline_windows=self.windows,
        )


@dataclass(frozen=True)
class Windows:
    """Per 1 s window from `origin_ns`: its median (NaN: not judged) and first success."""

    origin_ns: int
    medians: FloatArray
    first_done_ns: IntArray  # -1 without a success

    def start_ns(self, index: int) -> int:
        return self.origin_ns + index * WINDOW_NS


@dataclass(frozen=True)
class LatencyOutcome:
    """Latency detection and recovery of one fault on its view."""

    limits: tuple[LatencyLimit, ...]
    detected_at_ns: int | None = None
    recovered_at_ns: int | None = None
    censored_from_ns: int | None = None
    reason: str | None = None

    @property
    def visible(self) -> bool:
        return self.detected_at_ns is not None


def windows_of(stream: Stream, origin_ns: int, end_ns: int) -> Windows:
    """The medians of the successes sent in [origin + k W, origin + (k+1) W), up to end_ns."""
    count = max(0, math.ceil((end_ns - origin_ns) / WINDOW_NS))
    medians = np.full(count, np.nan, dtype=np.float64)
    first = np.full(count, -1, dtype=np.int64)
    keep = stream.ok & (stream.start_ns >= origin_ns) & (stream.start_ns < end_ns)
    keep &= ~np.isnan(stream.latency_ms)
    index = (stream.start_ns[keep] - origin_ns) // WINDOW_NS
    latency, done = stream.latency_ms[keep], stream.end_ns[keep]
    # one sort by (window, latency): each window's median is its middle element(s), so the
    # cost is n log n whatever the number of windows (a long run has thousands)
    order = np.lexsort((latency, index))
    index, latency = index[order], latency[order]
    windows, begin, sizes = np.unique(index, return_index=True, return_counts=True)
    judged = sizes >= MIN_WINDOW_SUCCESSES
    low = begin + (sizes - 1) // 2
    high = begin + sizes // 2
    middle = (latency[low] + latency[high]) / 2
    medians[windows[judged]] = middle[judged]
    firsts = np.full(count, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(firsts, index, done[order])
    first[windows] = firsts[windows]
    return Windows(origin_ns, medians, first)


def latency_limit(kind: str, stream: Stream, lo_ns: int, hi_ns: int) -> LatencyLimit | None:
    """The kind's tolerance from the complete baseline windows in [lo, hi) (module docstring)."""
    complete = (hi_ns - lo_ns) // WINDOW_NS
    if complete <= 0:
        return None
    medians = windows_of(stream, lo_ns, lo_ns + complete * WINDOW_NS).medians
    judged = medians[~np.isnan(medians)]
    if judged.size < MIN_BASELINE_WINDOWS:
        return None
    center = float(np.median(judged))
    spread = MAD_TO_SD * float(np.median(np.abs(judged - center)))
    margin = max(SPREAD_FACTOR * spread, RELATIVE_MARGIN * center, FLOOR_MS)
    return LatencyLimit(kind, center, center + margin, int(judged.size))


@dataclass(frozen=True)
class Span:
    """What a fault's latency is judged over: [t0, detect_end] for detection, the data's end
    and `stable_for` for recovery; `earliest_ns`: no recovery before it (the revert)."""

    t0_ns: int
    detect_end_ns: int
    data_end_ns: int
    stable_ns: int
    heals_during_fault: bool
    action_end_ns: int


def latency_outcome(
    view: View, baseline: tuple[int, int], span: Span, *, broken: bool
) -> LatencyOutcome:
    """Latency detection and recovery of one fault (module docstring)."""
    streams = {"requests": view.requests, "probes": view.probes}
    limits = [latency_limit(k, s, *baseline) for k, s in streams.items()]
    judged = tuple(x for x in limits if x is not None)
    if broken or not judged:
        return LatencyOutcome(judged, reason=_unjudged(broken))
    end = span.detect_end_ns + 1
    windows = {x.kind: windows_of(streams[x.kind], span.t0_ns, end) for x in judged}
    found = _detect(judged, windows, streams, span)
    if not found:
        return LatencyOutcome(judged)
    detected = min(found.values())
    slowed = tuple(x for x in judged if x.kind in found)
    earliest = detected if span.heals_during_fault else max(detected, span.action_end_ns)
    outcome = _recover_soon(slowed, streams, span, earliest)
    return LatencyOutcome(
        judged, detected, outcome[0], outcome[1], None if outcome[0] else outcome[2]
    )


def _unjudged(broken: bool) -> str:
    if broken:
        return "latency not judged: the baseline was broken"
    return (
        f"latency not judged: fewer than {MIN_BASELINE_WINDOWS} baseline windows with "
        f"{MIN_WINDOW_SUCCESSES} successes of a kind"
    )


def _detect(
    limits: tuple[LatencyLimit, ...],
    windows: dict[str, Windows],
    streams: dict[str, Stream],
    span: Span,
) -> dict[str, int]:
    """Per kind out of its limit: the first completion of a too-slow success in its first
    window out (starting within the horizon)."""
    last = (span.detect_end_ns - span.t0_ns) // WINDOW_NS
    found = {}
    for limit in limits:
        medians = windows[limit.kind].medians[: last + 1]
        out = np.flatnonzero(medians > limit.limit_ms)  # NaN compares False: unjudged
        if out.size:
            lo = span.t0_ns + int(out[0]) * WINDOW_NS
            found[limit.kind] = _first_slow(streams[limit.kind], lo, limit.limit_ms)
    return found


def _first_slow(stream: Stream, lo_ns: int, limit_ms: float) -> int:
    sent = (stream.start_ns >= lo_ns) & (stream.start_ns < lo_ns + WINDOW_NS)
    slow = sent & stream.ok & (stream.latency_ms > limit_ms)
    return int(stream.end_ns[slow].min())


def _recover_soon(
    limits: tuple[LatencyLimit, ...], streams: dict[str, Stream], span: Span, earliest_ns: int
) -> tuple[int | None, int | None, str]:
    """_recover over the first SOON_WINDOWS windows, then (no recovery there) over the rest
    of the data: a recovery usually comes soon, and a run can hold thousands of windows."""
    needed = max(1, math.ceil(span.stable_ns / WINDOW_NS))
    soon = earliest_ns + (needed + SOON_WINDOWS) * WINDOW_NS
    first_end = min(soon, span.data_end_ns)
    outcome = _recover_until(limits, streams, span, earliest_ns, first_end)
    if outcome[0] is not None or first_end >= span.data_end_ns:
        return outcome
    return _recover_until(limits, streams, span, earliest_ns, span.data_end_ns)


def _recover_until(
    limits: tuple[LatencyLimit, ...],
    streams: dict[str, Stream],
    span: Span,
    earliest_ns: int,
    end_ns: int,
) -> tuple[int | None, int | None, str]:
    windows = {x.kind: windows_of(streams[x.kind], earliest_ns, end_ns + 1) for x in limits}
    return _recover(limits, windows, replace(span, data_end_ns=end_ns), earliest_ns)


def _recover(
    limits: tuple[LatencyLimit, ...], windows: dict[str, Windows], span: Span, earliest_ns: int
) -> tuple[int | None, int | None, str]:
    """(recovered_at, censored_from, reason when neither), over windows from `earliest_ns`."""
    needed = max(1, math.ceil(span.stable_ns / WINDOW_NS))
    complete = (span.data_end_ns - earliest_ns) // WINDOW_NS  # windows ending by the data's end
    calm = _calm_windows(limits, windows)
    if complete <= 0:
        return None, None, "the data ended before latency after the fault could be judged"
    for k in range(int(complete)):
        stop = k + needed
        if stop <= complete and bool(calm[k:stop].all()):
            return _first_done(windows, k), None, ""
        if stop > complete and bool(calm[k:complete].all()):
            return None, _first_done(windows, k), _censored(span)
    return None, None, "latency stayed above its limit until the end of the data"


def _calm_windows(limits: tuple[LatencyLimit, ...], windows: dict[str, Windows]) -> BoolArray:
    """Per window: at least one kind judged, and every judged kind within its limit."""
    size = min(w.medians.size for w in windows.values())
    judged = np.zeros(size, dtype=np.bool_)
    within = np.ones(size, dtype=np.bool_)
    for limit in limits:
        medians = windows[limit.kind].medians[:size]
        seen = ~np.isnan(medians)
        judged |= seen
        within &= ~seen | (medians <= limit.limit_ms)
    return judged & within


def _first_done(windows: dict[str, Windows], index: int) -> int:
    firsts = [int(w.first_done_ns[index]) for w in windows.values() if w.first_done_ns[index] >= 0]
    return min(firsts)


def _censored(span: Span) -> str:
    return (
        f"censored: the data ended before {span.stable_ns / 1e9:g} s of latency within its "
        "limit could be shown"
    )
