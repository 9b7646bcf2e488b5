"""Phases of a run (baseline, fault, recovery, after) and request statistics per phase.

With T1 the first injection, the run's phases are sets of intervals within the load window:
baseline [load start, T1); fault, the union of every occurrence's fault intervals
(harness.analysis.metrics, `fault_phases`); recovery, the union of their recovery intervals
minus fault; after, the rest of [T1, load end). Requests are counted by completion; latency
percentiles are over the SUCCESSFUL requests that started in the phase, null below their
minimum count (harness.analysis.stats.min_count_for); the intended against the achieved load
shows the load that never happened (coordinated omission).

The definitions in full: docs/METRICS.md, "Phases".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from harness.analysis.metrics import FaultMetrics
from harness.analysis.stats import min_count_for
from harness.analysis.timebase import Interval, LoadWindow, measure_ns, subtract, union
from harness.results.summary import Latency, PhaseSummary, RequestCounts

PHASE_NAMES = ("baseline", "fault", "recovery", "after")
_MIN_NS = int(np.iinfo(np.int64).min)
_MAX_NS = int(np.iinfo(np.int64).max)
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Phase:
    """A named set of half-open intervals of wall-clock time."""

    name: str
    intervals: tuple[Interval, ...]

    @property
    def start_ns(self) -> int | None:
        return self.intervals[0][0] if self.intervals else None

    @property
    def end_ns(self) -> int | None:
        return self.intervals[-1][1] if self.intervals else None

    @property
    def duration_s(self) -> float:
        return measure_ns(self.intervals) / 1e9

    @property
    def empty(self) -> bool:
        return not self.intervals


PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}


@dataclass(frozen=True)
class LatencyStats:
    """Latency percentiles in milliseconds over successful requests (null below the minimum
    count), their count, and the failed requests counted apart."""

    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None
    successful: int
    failed: int

    def null_reasons(self) -> dict[str, str]:
        return {
            name: f"{name} needs at least {min_count_for(q)} successful requests, "
            f"{self.successful} here"
            for name, q in PERCENTILES.items()
            if getattr(self, name) is None
        }

    def record(self) -> Latency:
        """As summary.json writes it (milliseconds to 3 decimals)."""
        return Latency(
            p50=_round(self.p50, 3),
            p95=_round(self.p95, 3),
            p99=_round(self.p99, 3),
            max=_round(self.max, 3),
            successful=self.successful,
            failed=self.failed,
            null_reasons=self.null_reasons(),
        )


@dataclass(frozen=True)
class RequestStats:
    """Counts and rates of a set of requests over a duration."""

    requests: int
    failures: int
    duration_s: float

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.requests if self.requests else None

    @property
    def throughput_rps(self) -> float | None:
        return self.requests / self.duration_s if self.duration_s > 0 else None

    def record(self) -> RequestCounts:
        """As summary.json writes it (an endpoint's counts; a phase's and the totals' too)."""
        return RequestCounts(
            requests=self.requests,
            failures=self.failures,
            error_rate=_round(self.error_rate, 6),
            throughput_rps=_round(self.throughput_rps, 3),
        )


@dataclass(frozen=True)
class LoadRate:
    """Intended versus achieved sending rate over a phase's steady part."""

    intended_rps: float | None
    achieved_rps: float | None

    @property
    def shortfall(self) -> float | None:
        if not self.intended_rps or self.achieved_rps is None:
            return None
        return 1.0 - self.achieved_rps / self.intended_rps


@dataclass(frozen=True)
class PhaseStats:
    """One phase and what its requests did."""

    phase: Phase
    stats: RequestStats
    latency: LatencyStats | None
    load: LoadRate

    def record(self) -> PhaseSummary:
        """As summary.json writes it."""
        counts = self.stats.record()
        return PhaseSummary(
            start_ns=self.phase.start_ns,
            end_ns=self.phase.end_ns,
            intervals=[list(i) for i in self.phase.intervals],
            duration_s=round(self.phase.duration_s, 3),
            requests=counts.requests,
            failures=counts.failures,
            error_rate=counts.error_rate,
            throughput_rps=counts.throughput_rps,
            latency_ms=None if self.latency is None else self.latency.record(),
            intended_rps=_round(self.load.intended_rps, 3),
            achieved_rps=_round(self.load.achieved_rps, 3),
            shortfall=_round(self.load.shortfall, 4),
        )


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True, eq=False)
class RequestIndex:
    """The run's requests sorted by completion and by start, for interval queries."""

    end_ns: npt.NDArray[np.int64]
    cum_failed: npt.NDArray[np.int64]
    start_ns: npt.NDArray[np.int64]
    latency_by_start: FloatArray
    ok_by_start: npt.NDArray[np.bool_]

    @classmethod
    def of(cls, requests: pd.DataFrame) -> RequestIndex:
        end = requests["end_ns"].to_numpy(dtype=np.int64)
        ok = requests["ok"].to_numpy(dtype=np.bool_)
        start = requests["start_ns"].to_numpy(dtype=np.int64)
        latency = requests["latency_ms"].to_numpy(dtype=np.float64)
        ok_started = ok
        if not _is_sorted(end):  # load_run sorts by completion already
            by_end = np.argsort(end, kind="stable")
            end, ok = end[by_end], ok[by_end]
        if not _is_sorted(start):
            by_start = np.argsort(start, kind="stable")
            start, latency, ok_started = start[by_start], latency[by_start], ok_started[by_start]
        cum = np.concatenate(([0], np.cumsum(~ok, dtype=np.int64)))
        return cls(end, cum, start, latency, ok_started)

    def completed(self, intervals: Sequence[Interval]) -> tuple[int, int]:
        """(requests, failures) completed in the intervals."""
        lo, hi = self._bounds(self.end_ns, intervals)
        return int((hi - lo).sum()), int((self.cum_failed[hi] - self.cum_failed[lo]).sum())

    def started(self, intervals: Sequence[Interval]) -> int:
        lo, hi = self._bounds(self.start_ns, intervals)
        return int((hi - lo).sum())

    def latencies(self, intervals: Sequence[Interval]) -> tuple[FloatArray, int]:
        """Latencies of the successful requests started in the intervals, and how many of
        those started there failed."""
        lo, hi = self._bounds(self.start_ns, intervals)
        spans = list(zip(lo.tolist(), hi.tolist(), strict=True))
        if not spans:
            return np.empty(0, dtype=np.float64), 0
        ok = np.concatenate([self.ok_by_start[a:b] for a, b in spans])
        latency = np.concatenate([self.latency_by_start[a:b] for a, b in spans])
        return latency[ok], int((~ok).sum())

    @staticmethod
    def _bounds(
        sorted_ns: npt.NDArray[np.int64], intervals: Sequence[Interval]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        if not intervals:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        edges = np.asarray(intervals, dtype=np.int64)
        lo = np.searchsorted(sorted_ns, edges[:, 0], side="left").astype(np.int64)
        hi = np.searchsorted(sorted_ns, edges[:, 1], side="left").astype(np.int64)
        return lo, np.maximum(lo, hi)


def _is_sorted(values: npt.NDArray[np.int64]) -> bool:
    return values.size < 2 or not bool(np.any(values[1:] < values[:-1]))


def phase_bounds(faults: Sequence[FaultMetrics], load: LoadWindow) -> tuple[Phase, ...]:
    """The four phases within the load window (module docstring)."""
    whole = [(load.start_ns, load.end_ns)] if load.end_ns > load.start_ns else []
    if not faults:
        return (Phase("baseline", tuple(whole)), *(Phase(n, ()) for n in PHASE_NAMES[1:]))
    first = load.clip(min(f.fault.injected_at_ns for f in faults))
    fault = union(f.phase_bounds.get("fault", (0, 0)) for f in faults)
    recovery = subtract(union(f.phase_bounds.get("recovery", (0, 0)) for f in faults), fault)
    after = subtract(subtract(union([(first, load.end_ns)]), fault), recovery)
    baseline = union([(load.start_ns, first)])
    sets = (baseline, fault, recovery, after)
    return tuple(Phase(n, tuple(s)) for n, s in zip(PHASE_NAMES, sets, strict=True))


def counting_intervals(phases: Sequence[Phase], load: LoadWindow) -> list[list[Interval]]:
    """Per phase, the intervals used to assign requests: open at the load window's edges."""
    result = []
    for phase in phases:
        widened = []
        for start, end in phase.intervals:
            lo = _MIN_NS if start <= load.start_ns else start
            hi = _MAX_NS if end >= load.end_ns else end
            widened.append((lo, hi))
        result.append(widened)
    if not any(result):  # an empty load window: everything is baseline
        result[0] = [(_MIN_NS, _MAX_NS)]
    return result


def intended_rps(index: RequestIndex, steady: Interval, rate_per_s: float | None) -> float | None:
    """The open-loop rate, else the sending rate the users kept in the steady baseline."""
    if rate_per_s is not None:
        return rate_per_s
    seconds = (steady[1] - steady[0]) / 1e9
    return index.started([steady]) / seconds if seconds > 0 else None


def interval_stats(
    index: RequestIndex,
    phase: Phase,
    counting: Sequence[Interval],
    steady_from_ns: int,
    intended: float | None,
) -> PhaseStats:
    """Counts (by completion), latency (by start) and load rate of one phase."""
    count, failed = index.completed(counting)
    stats = RequestStats(count, failed, phase.duration_s)
    latency = latency_stats(*index.latencies(counting))
    steady = subtract(list(phase.intervals), [(_MIN_NS, steady_from_ns)])
    seconds = measure_ns(steady) / 1e9
    achieved = index.started(steady) / seconds if seconds > 0 else None
    return PhaseStats(phase, stats, latency, LoadRate(intended, achieved))


def phase_stats(
    index: RequestIndex,
    phases: Sequence[Phase],
    load: LoadWindow,
    steady_from_ns: int,
    intended: float | None,
) -> tuple[PhaseStats, ...]:
    """Per-phase statistics of the run's requests."""
    counting = counting_intervals(phases, load)
    return tuple(
        interval_stats(index, phase, bounds, steady_from_ns, intended)
        for phase, bounds in zip(phases, counting, strict=True)
    )


def latency_stats(latency_ms: FloatArray, failed: int = 0) -> LatencyStats | None:
    """p50/p95/p99 (linear interpolation; null below their minimum count) and max of the
    successful requests' latencies; None when no request started at all."""
    n = int(latency_ms.size)
    if n == 0 and failed == 0:
        return None
    values = {
        name: float(np.percentile(latency_ms, q)) if n >= min_count_for(q) else None
        for name, q in PERCENTILES.items()
    }
    top = float(latency_ms.max()) if n else None
    return LatencyStats(values["p50"], values["p95"], values["p99"], top, n, failed)


def totals(requests: pd.DataFrame, load: LoadWindow) -> RequestStats:
    """All requests of the run, throughput over the load's duration."""
    failures = int((~requests["ok"]).sum())
    return RequestStats(len(requests), failures, (load.end_ns - load.start_ns) / 1e9)


def endpoint_stats(requests: pd.DataFrame, load: LoadWindow) -> dict[str, RequestStats]:
    """Requests and failures per endpoint (instance the client sent them to)."""
    duration = (load.end_ns - load.start_ns) / 1e9
    codes, names = pd.factorize(requests["endpoint"], sort=True, use_na_sentinel=True)
    labels = ["unknown" if pd.isna(n) else str(n) for n in names]
    if (codes < 0).any():  # requests without an endpoint
        codes = np.where(codes < 0, len(labels), codes)
        labels.append("unknown")
    failed = ~requests["ok"].to_numpy(dtype=np.bool_)
    sizes = np.bincount(codes, minlength=len(labels))
    failures = np.bincount(codes, weights=failed, minlength=len(labels))
    totals: dict[str, tuple[int, int]] = {}
    for label, size, fails in zip(labels, sizes.tolist(), failures.tolist(), strict=True):
        before = totals.get(label, (0, 0))
        totals[label] = (before[0] + int(size), before[1] + int(fails))
    return {
        label: RequestStats(size, fails, duration)
        for label, (size, fails) in sorted(totals.items())
        if size
    }
