"""Phases of a run (baseline, fault, recovery, after) and request statistics per phase.

Boundaries, with T1 the first injection, F the end of the last fault's active window (its
revert; for an instantaneous fault its recovery, or its injection when it had no impact; the
end of the load when it never recovered) and R the latest recovery (the end of the load when a
fault never recovered):

    baseline [load start, T1)   fault [T1, F)   recovery [F, R)   after [R, load end]

Requests are counted by completion, latency percentiles taken over requests that started in
the phase. Requests completing before the load start or after its end belong to the first and
last non-empty phases, so the phases' counts add up to the totals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analysis.metrics import FaultMetrics, LoadWindow

PHASE_NAMES = ("baseline", "fault", "recovery", "after")
_MIN_NS = int(np.iinfo(np.int64).min)
_MAX_NS = int(np.iinfo(np.int64).max)


@dataclass(frozen=True)
class Phase:
    """A named half-open interval of wall-clock time."""

    name: str
    start_ns: int
    end_ns: int

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def empty(self) -> bool:
        return self.end_ns <= self.start_ns


@dataclass(frozen=True)
class LatencyStats:
    """Latency percentiles in milliseconds."""

    p50: float
    p95: float
    p99: float
    max: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in vars(self).items()}


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

    def to_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "failures": self.failures,
            "error_rate": _round(self.error_rate, 6),
            "throughput_rps": _round(self.throughput_rps, 3),
        }


@dataclass(frozen=True)
class PhaseStats:
    """One phase and what its requests did."""

    phase: Phase
    stats: RequestStats
    latency: LatencyStats | None

    def to_dict(self) -> dict[str, object]:
        return {
            "start_ns": self.phase.start_ns,
            "end_ns": self.phase.end_ns,
            "duration_s": round(self.phase.duration_s, 3),
            **self.stats.to_dict(),
            "latency_ms": None if self.latency is None else self.latency.to_dict(),
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def phase_bounds(faults: tuple[FaultMetrics, ...], load: LoadWindow) -> tuple[Phase, ...]:
    """The four phases, clipped to the load window; all baseline when there is no fault."""
    if not faults:
        ends = [load.end_ns] * 3
    else:
        first = min(f.fault.injected_at_ns for f in faults)
        active = max(f.active_until_ns(load) for f in faults)
        unrecovered = any(not f.recovered for f in faults)
        latest = load.end_ns if unrecovered else max(f.recovered_at_ns or 0 for f in faults)
        ends = [first, active, max(active, latest)]
    cuts = [load.start_ns, *(min(max(t, load.start_ns), load.end_ns) for t in ends), load.end_ns]
    for i in range(1, len(cuts)):
        cuts[i] = max(cuts[i], cuts[i - 1])
    return tuple(Phase(name, cuts[i], cuts[i + 1]) for i, name in enumerate(PHASE_NAMES))


def counting_bounds(phases: tuple[Phase, ...]) -> list[tuple[int, int]]:
    """Per phase, the [lo, hi) used to assign requests: open-ended at both extremes."""
    bounds = [(p.start_ns, p.end_ns) if not p.empty else (0, 0) for p in phases]
    nonempty = [i for i, p in enumerate(phases) if not p.empty] or [0]
    first, last = nonempty[0], nonempty[-1]
    bounds[first] = (_MIN_NS, bounds[first][1] if first != last else _MAX_NS)
    bounds[last] = (bounds[last][0] if first != last else _MIN_NS, _MAX_NS)
    return bounds


def phase_stats(requests: pd.DataFrame, phases: tuple[Phase, ...]) -> tuple[PhaseStats, ...]:
    """Per-phase counts (by completion) and latency percentiles (by start)."""
    end = requests["end_ns"].to_numpy(dtype=np.int64)
    start = requests["start_ns"].to_numpy(dtype=np.int64)
    ok = requests["ok"].to_numpy(dtype=np.bool_)
    latency = requests["latency_ms"].to_numpy(dtype=np.float64)
    result = []
    for phase, (lo, hi) in zip(phases, counting_bounds(phases), strict=True):
        done = (end >= lo) & (end < hi)
        stats = RequestStats(int(done.sum()), int((done & ~ok).sum()), phase.duration_s)
        started = (start >= lo) & (start < hi)
        result.append(PhaseStats(phase, stats, latency_stats(latency[started])))
    return tuple(result)


def latency_stats(latency_ms: np.ndarray) -> LatencyStats | None:
    """p50/p95/p99/max (linear interpolation), None for no requests."""
    if latency_ms.size == 0:
        return None
    p50, p95, p99 = np.percentile(latency_ms, [50, 95, 99])
    return LatencyStats(float(p50), float(p95), float(p99), float(latency_ms.max()))


def totals(requests: pd.DataFrame, load: LoadWindow) -> RequestStats:
    """All requests of the run, throughput over the load's duration."""
    failures = int((~requests["ok"]).sum())
    return RequestStats(len(requests), failures, (load.end_ns - load.start_ns) / 1e9)


def endpoint_stats(requests: pd.DataFrame, load: LoadWindow) -> dict[str, RequestStats]:
    """Requests and failures per endpoint (instance the client sent them to)."""
    duration = (load.end_ns - load.start_ns) / 1e9
    result: dict[str, RequestStats] = {}
    for endpoint, group in requests.groupby("endpoint", sort=True, dropna=False):
        name = "unknown" if pd.isna(endpoint) else str(endpoint)
        result[name] = RequestStats(len(group), int((~group["ok"]).sum()), duration)
    return result
