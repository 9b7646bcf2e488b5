"""Latency percentiles pooled over every run's requests, per group and phase.

The median of per-run percentiles hides a run that was slow throughout: per-run p99s of 5, 5
and 2000 ms have a median of 5 ms. Pooling every run's successful requests that started in the
phase (the phase's intervals from each run's summary.json, as the run's own analysis selects
them) gives one distribution whose p99 is 2000 ms there; reports show it beside the spread of
the per-run values. A percentile needs enough requests (stats.percentile: one beyond it, p99
100, the rule of a run's own phases), else it is None with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from harness.analysis.phases import PHASE_NAMES
from harness.analysis.stats import Percentile, percentile
from harness.results.summary import PhaseSummary, Summary

QUANTILES = {"p50_ms": 50.0, "p95_ms": 95.0, "p99_ms": 99.0}
REQUESTS_FILE = "requests.parquet"

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PooledPhase:
    """One group's phase: its percentiles over the pooled requests of `runs` runs."""

    percentiles: Mapping[str, Percentile]
    runs: int
    unread: tuple[str, ...]  # runs whose requests could not be read

    def to_dict(self) -> dict[str, object]:
        return {
            "runs": self.runs,
            "unread_runs": list(self.unread),
            **{
                metric: {
                    "value": None if p.value is None else round(p.value, 3),
                    "n": p.n,
                    "reason": p.reason,
                }
                for metric, p in self.percentiles.items()
            },
        }


@dataclass(frozen=True)
class _Requests:
    """A run's successful requests: when each started and how long it took."""

    start_ns: npt.NDArray[np.int64]
    latency_ms: FloatArray


def _read_ok_requests(run_dir: Path) -> _Requests | None:
    try:
        frame = pd.read_parquet(run_dir / REQUESTS_FILE, columns=["start_ns", "latency_ms", "ok"])
    except (OSError, ValueError, KeyError):
        return None
    ok = frame["ok"].to_numpy(dtype=np.bool_)
    return _Requests(
        frame["start_ns"].to_numpy(dtype=np.int64)[ok],
        frame["latency_ms"].to_numpy(dtype=np.float64)[ok],
    )


def _in_phase(requests: _Requests, phase: PhaseSummary | None) -> FloatArray:
    """Latencies of the requests that started within the phase's [start, end) intervals."""
    keep = np.zeros(requests.start_ns.size, dtype=np.bool_)
    for edges in [] if phase is None else phase.intervals:
        if len(edges) == 2:
            low, high = edges
            keep |= (requests.start_ns >= low) & (requests.start_ns < high)
    selected: FloatArray = requests.latency_ms[keep]
    return selected


def pooled_latency(
    runs: Sequence[tuple[str, Path, Summary]],
) -> dict[str, PooledPhase]:
    """Per phase, the percentiles over the pooled successful requests of `runs` (run id, run
    directory, summary)."""
    read = [(run_id, _read_ok_requests(d), summary) for run_id, d, summary in runs]
    unread = tuple(run_id for run_id, requests, _ in read if requests is None)
    pooled: dict[str, PooledPhase] = {}
    for name in PHASE_NAMES:
        parts = [
            _in_phase(requests, summary.phases.get(name))
            for _, requests, summary in read
            if requests is not None
        ]
        latencies = np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)
        percentiles = {m: percentile(latencies, q) for m, q in QUANTILES.items()}
        pooled[name] = PooledPhase(percentiles, len(read) - len(unread), unread)
    return pooled
