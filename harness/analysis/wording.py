"""Numbers over runs in words, shared by the HTML, Markdown and terminal outputs.

Every metric has a label, a unit and a scale (availability and error rate print as percent);
`stat_text` renders a Stat as "1.31 s (middle half 1.25–1.40, range 1.10–1.60, n=5)" and
`interval_text` the 95 % interval of its median with the coverage it really has.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.analysis.compare import Stat
from harness.analysis.formats import NONE
from harness.analysis.pooled import PooledPhase


@dataclass(frozen=True)
class MetricFormat:
    label: str
    unit: str
    scale: float = 1.0
    digits: int = 3

    def number(self, value: float | None) -> str:
        if value is None:
            return NONE
        return f"{value * self.scale:.{self.digits}f}{self.unit}"

    def bare(self, value: float) -> str:
        return f"{value * self.scale:.{self.digits}f}"


METRICS: dict[str, MetricFormat] = {
    "ttr_s": MetricFormat("time to recover", " s"),
    "ttd_s": MetricFormat("time to detect", " s"),
    "failed_requests": MetricFormat("failed requests", "", 1.0, 0),
    "availability": MetricFormat("availability", " %", 100.0, 2),
    "lost_requests": MetricFormat("lost requests", "", 1.0, 0),
    "kill_to_die_s": MetricFormat("fault → die", " s"),
    "die_to_start_s": MetricFormat("die → start", " s"),
    "start_to_healthy_s": MetricFormat("start → healthy", " s"),
    "to_degraded_s": MetricFormat("service degraded", " s"),
    "to_replacement_running_s": MetricFormat("replacement running", " s"),
    "to_full_strength_s": MetricFormat("back to full strength", " s"),
    "response_s": MetricFormat("orchestrator's restart / replacement", " s"),
    "p50_ms": MetricFormat("p50 latency", " ms", 1.0, 1),
    "p95_ms": MetricFormat("p95 latency", " ms", 1.0, 1),
    "p99_ms": MetricFormat("p99 latency", " ms", 1.0, 1),
    "error_rate": MetricFormat("error rate", " %", 100.0, 2),
    "throughput_rps": MetricFormat("throughput", " req/s", 1.0, 1),
}


def metric_format(metric: str) -> MetricFormat:
    return METRICS.get(metric, MetricFormat(metric, ""))


def spread_text(stat: Stat, metric: str) -> str:
    """'middle half 1.25–1.40, range 1.10–1.60' (the middle half from 4 values on; the range
    alone below; empty for fewer than 2 values)."""
    fmt = metric_format(metric)
    quartiles = stat.quartiles
    if stat.n < 2 or quartiles is None or stat.min is None or stat.max is None:
        return ""
    span = f"range {fmt.bare(stat.min)}–{fmt.bare(stat.max)}"
    if stat.n < 4:
        return span
    return f"middle half {fmt.bare(quartiles[0])}–{fmt.bare(quartiles[1])}, {span}"


def interval_cell(stat: Stat, metric: str) -> str:
    """For a table headed "95 % interval of the median": '1.10–1.60 s', or, with too few runs,
    'not reached: the range holds it with 50 %'."""
    fmt = metric_format(metric)
    interval = stat.interval
    if interval is None or stat.n < 2:
        return NONE
    if interval.reaches:
        return f"{fmt.bare(interval.low)}–{fmt.bare(interval.high)}{fmt.unit}"
    return f"not reached: the range holds it with {interval.coverage:.0%}"


def interval_text(stat: Stat, metric: str) -> str:
    """'95 % interval of the median 1.10–1.60 s' or, when the runs are too few to reach 95 %,
    'too few runs for a 95 % interval of the median (the range holds it with 94 %)'."""
    fmt = metric_format(metric)
    interval = stat.interval
    if interval is None or stat.n < 2:
        return "one run: no interval" if stat.n == 1 else ""
    if interval.reaches:
        span = f"{fmt.bare(interval.low)}–{fmt.bare(interval.high)}{fmt.unit}"
        return f"95 % interval of the median {span}"
    return (
        f"too few runs for a 95 % interval of the median (the range holds it with "
        f"{interval.coverage:.0%})"
    )


def stat_text(stat: Stat, metric: str) -> str:
    """'1.310 s (middle half 1.250–1.400, range 1.100–1.600, n=5)'."""
    fmt = metric_format(metric)
    if stat.median is None:
        return NONE
    spread = spread_text(stat, metric)
    inside = f"{spread}, n={stat.n}" if spread else f"n={stat.n}"
    return f"{fmt.number(stat.median)} ({inside})"


def pooled_text(pooled: PooledPhase | None, metric: str) -> str:
    """'2000.0 ms (1800 requests of 3 runs)', or why there is none: 'none: p99 needs at least
    100 successful requests, 12 here'."""
    percentile = None if pooled is None else pooled.percentiles.get(metric)
    if pooled is None or percentile is None:
        return NONE
    if percentile.value is None:
        return f"none: {percentile.reason}"
    runs = f"{pooled.runs} run{'s' * (pooled.runs != 1)}"
    return f"{metric_format(metric).number(percentile.value)} ({percentile.n} requests of {runs})"
