"""The baseline: how the system behaved under load before any fault, and whether it was healthy.

The steady baseline is [load start + warm-up, first injection) (the whole of it from the load
start when the first fault comes before the warm-up ends). Requests and probes are counted
apart. A baseline is broken (no request, or more than `analysis.baseline_max_error_rate` of its
requests or probes failed): the run is then not an experiment. The rate a fault's windows are
judged against is trimmed (1 s windows less the fifth with the most failures) so that a short
blip does not let a still-failing replica pass as recovered.

Why each rule, with the cases that shaped it: docs/METRICS.md, "The steady baseline".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analysis.observations import Stream
from harness.analysis.timebase import LoadWindow
from harness.results.summary import BaselineCounts, SummaryBaseline


@dataclass(frozen=True)
class BaselineWindow:
    """The interval the baseline rates are taken over."""

    start_ns: int
    end_ns: int
    warmup_s: float
    includes_ramp_up: bool  # the first fault came before the warm-up ended

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9


@dataclass(frozen=True)
class Rates:
    """Requests and probes completed in a window, and how many failed."""

    requests: int
    failed_requests: int
    probes: int
    failed_probes: int
    # the blip-robust rates windows are judged against (module docstring); None: pooled
    robust_request_rate: float | None = None
    robust_probe_rate: float | None = None

    @property
    def request_rate(self) -> float | None:
        return self.failed_requests / self.requests if self.requests else None

    @property
    def probe_rate(self) -> float | None:
        return self.failed_probes / self.probes if self.probes else None

    @property
    def tolerance_request_rate(self) -> float:
        robust = self.robust_request_rate
        return (self.request_rate or 0.0) if robust is None else robust

    @property
    def tolerance_probe_rate(self) -> float:
        robust = self.robust_probe_rate
        return (self.probe_rate or 0.0) if robust is None else robust

    def record(self) -> BaselineCounts:
        """As summary.json writes it (a fault's view's baseline)."""
        return BaselineCounts(
            requests=self.requests,
            failed_requests=self.failed_requests,
            error_rate=_round(self.request_rate),
            tolerance_error_rate=_round(self.tolerance_request_rate),
            probes=self.probes,
            failed_probes=self.failed_probes,
            probe_error_rate=_round(self.probe_rate),
            tolerance_probe_error_rate=_round(self.tolerance_probe_rate),
        )


@dataclass(frozen=True)
class Baseline:
    """The run's baseline and the verdict on it."""

    window: BaselineWindow
    rates: Rates
    max_error_rate: float
    broken: bool
    reason: str | None

    def record(self) -> SummaryBaseline:
        """As summary.json writes it: the window, its counts (`Rates.record`), the verdict."""
        return SummaryBaseline(
            start_ns=self.window.start_ns,
            end_ns=self.window.end_ns,
            duration_s=round(self.window.duration_s, 3),
            warmup_s=self.window.warmup_s,
            includes_ramp_up=self.window.includes_ramp_up,
            **self.rates.record().model_dump(),
            max_error_rate=self.max_error_rate,
            broken=self.broken,
            reason=self.reason,
        )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def baseline_window(
    load: LoadWindow, first_injection_ns: int | None, warmup_s: float
) -> BaselineWindow:
    """[load start + warm-up, first injection), or from the load start when that is empty."""
    end = load.end_ns if first_injection_ns is None else load.clip(first_injection_ns)
    steady_start = load.start_ns + round(warmup_s * 1e9)
    if steady_start < end:
        return BaselineWindow(steady_start, end, warmup_s, includes_ramp_up=False)
    return BaselineWindow(load.start_ns, end, warmup_s, includes_ramp_up=True)


TRIMMED_WINDOW_NS = 1_000_000_000
TRIMMED_SHARE = 0.2


def rates_in(requests: Stream, probes: Stream, window: BaselineWindow) -> Rates:
    """Requests and probes completed in the window, their failures and robust rates."""
    n_requests, f_requests = requests.half_open(window.start_ns, window.end_ns)
    n_probes, f_probes = probes.half_open(window.start_ns, window.end_ns)
    return Rates(
        n_requests,
        f_requests,
        n_probes,
        f_probes,
        trimmed_rate(requests, window),
        trimmed_rate(probes, window),
    )


def trimmed_rate(stream: Stream, window: BaselineWindow) -> float | None:
    """The failure rate over the window's 1 s windows less the fifth with the most failures."""
    edges = np.arange(window.start_ns, window.end_ns, TRIMMED_WINDOW_NS, dtype=np.int64)
    if edges.size == 0:
        return None
    bounds = np.append(edges, window.end_ns)
    positions = np.searchsorted(stream.end_ns, bounds, side="left")
    counts = np.diff(positions)
    failures = np.diff(stream.cum_failed[positions])
    held = counts > 0
    counts, failures = counts[held], failures[held]
    if counts.sum() == 0:
        return None
    dropped = int(TRIMMED_SHARE * counts.size)
    kept = np.argsort(-failures, kind="stable")[dropped:]
    return float(failures[kept].sum() / counts[kept].sum())


def judge(
    window: BaselineWindow, rates: Rates, max_error_rate: float, requests: pd.DataFrame
) -> Baseline:
    """The run's baseline; broken (with the reason) as the module docstring says."""
    span = f"the steady baseline (+{window.warmup_s:g} s to the first fault)"
    if window.includes_ramp_up:
        span = "the baseline (the first fault came before the warm-up ended)"
    problems = []
    if rates.requests == 0:
        problems.append(f"no request completed in {span}")
    elif (rates.request_rate or 0.0) > max_error_rate:
        problems.append(
            f"{rates.request_rate:.1%} of requests failed in {span}"
            f"{_main_failure(requests, window)}"
        )
    if rates.probes and (rates.probe_rate or 0.0) > max_error_rate:
        problems.append(f"{rates.probe_rate:.1%} of probes failed in {span}")
    if not problems:
        return Baseline(window, rates, max_error_rate, False, None)
    reason = (
        "; ".join(problems)
        + f" (limit {max_error_rate:.1%}, analysis.baseline_max_error_rate): the system was "
        "not healthy before any fault, so no recovery can be measured; check the load's host "
        "and paths, and the probes' path"
    )
    return Baseline(window, rates, max_error_rate, True, reason)


def _main_failure(requests: pd.DataFrame, window: BaselineWindow) -> str:
    """', mostly ConnectionRefusedError on 127.0.0.1:8089': what failed, where (if known)."""
    ends = requests["end_ns"]
    failed = requests[(ends >= window.start_ns) & (ends < window.end_ns) & ~requests["ok"]]
    if failed.empty:
        return ""
    keys = (
        failed["error"].astype(object).fillna("unknown error").astype(str)
        + " on "
        + failed["endpoint"].astype(object).fillna("?").astype(str)
    )
    top = keys.value_counts()
    return f", mostly {top.index[0]} ({int(top.iloc[0])} of {len(failed)})"
