"""slo.prometheus checks, evaluated after the run from its measured phases and fault windows.

Each check is one range query (/api/v1/query_range, one point every `step`) over its subject's
interval: a phase's intervals (the analysis' own, from summary.json; a phase of several
intervals keeps the points inside them) or a fault's comparison window [its action, + its
duration + analysis.window] (a check naming a repeated entry, f2, is one check per occurrence).
The points of every series the query returns are reduced to the worst one: the highest against
`max`, the lowest against `min`. A point is Prometheus' value of the expression at that instant
(its lookback finds the last sample), so a `rate(...[5s])` at a point covers the 5 s before it.

Verdicts: `pass`, `fail`, `no_data` (no series, or no point inside the interval, or an empty
phase). A query Prometheus refuses, or a server that does not answer, is `fail` with its
error and what to do: an SLO that could not be read is not met.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from harness.errors import PrometheusError
from harness.prometheus.client import MAX_POINTS, PrometheusClient, Series
from harness.results.summary import PrometheusCheck, PrometheusOutcome, Summary
from harness.specs import PrometheusCheckSpec

Interval = tuple[int, int]


def evaluate_checks(
    url: str, checks: Sequence[PrometheusCheckSpec], summary: Summary
) -> PrometheusOutcome:
    """Every check of the scenario against the run `summary` describes."""
    client = PrometheusClient(url)
    results = [
        _evaluate(client, spec, subject, intervals)
        for spec in checks
        for subject, intervals in _subjects(spec, summary)
    ]
    return PrometheusOutcome(url=url, evaluated_at_ns=time.time_ns(), checks=results)


def _subjects(spec: PrometheusCheckSpec, summary: Summary) -> list[tuple[str, list[Interval]]]:
    """(subject, intervals) pairs: a phase's, or each matching fault occurrence's window."""
    if spec.phase is not None:
        return [(spec.phase, _phase_intervals(spec.phase, summary))]
    wanted = str(spec.fault)
    found = [f for f in summary.faults if f.id == wanted or f.id.startswith(wanted + "#")]
    if not found:  # the fault never ran (the run ended first): no data, said so
        return [(wanted, [])]
    pairs: list[tuple[str, list[Interval]]] = []
    for fault in found:
        start = fault.window.start_ns if fault.window else fault.injected_at_ns
        end = fault.window.end_ns if fault.window else fault.window_end_ns
        if start is None or end is None or end < start:
            pairs.append((fault.id, []))
        else:
            pairs.append((fault.id, [(start, end)]))
    return pairs


def _phase_intervals(phase: str, summary: Summary) -> list[Interval]:
    if phase == "total":
        start, end = summary.load.started_at_ns, summary.load.ended_at_ns
        return [(start, end)] if start is not None and end is not None and end > start else []
    found = summary.phases.get(phase)
    if found is None:
        return []
    return [(int(a), int(b)) for a, b in found.intervals if b > a]


def _evaluate(
    client: PrometheusClient, spec: PrometheusCheckSpec, subject: str, intervals: list[Interval]
) -> PrometheusCheck:
    bound = "max" if spec.max is not None else "min"
    limit = spec.max if spec.max is not None else spec.min
    assert limit is not None  # the spec requires one of them
    base = PrometheusCheck(
        name=f"{spec.name}[{subject}]",
        query=spec.query,
        subject=subject,
        bound=bound,
        limit=limit,
        step_s=spec.step,
        verdict="no_data",
    )
    if not intervals:
        return base.model_copy(update={"reason": f"{subject} has no interval in this run"})
    start_ns, end_ns = intervals[0][0], intervals[-1][1]
    step = _step(spec.step, start_ns, end_ns)
    checked = base.model_copy(update={"start_ns": start_ns, "end_ns": end_ns, "step_s": step})
    try:
        series = client.query_range(spec.query, start_ns / 1e9, end_ns / 1e9, step)
    except PrometheusError as exc:
        return checked.model_copy(update={"verdict": "fail", "reason": str(exc)})
    values = _values_inside(series, intervals)
    update: dict[str, object] = {"series": len(series), "points": len(values)}
    if not values:
        why = "the query returned no series" if not series else "no point inside the interval"
        return checked.model_copy(update={**update, "reason": f"{why} ({subject})"})
    worst = max(values) if bound == "max" else min(values)
    met = worst <= limit if bound == "max" else worst >= limit
    update.update(value=round(worst, 6), verdict="pass" if met else "fail")
    if not met:
        relation = "above" if bound == "max" else "below"
        update["reason"] = f"worst point {worst:.6g} is {relation} the {bound} {limit:g}"
    return checked.model_copy(update=update)


def _step(wanted_s: float, start_ns: int, end_ns: int) -> float:
    """The step asked for, or coarser when the interval would hold more points than
    Prometheus answers for one series."""
    span_s = (end_ns - start_ns) / 1e9
    return max(wanted_s, math.ceil(span_s / (MAX_POINTS - 1) * 1000) / 1000)


def _values_inside(series: Sequence[Series], intervals: Sequence[Interval]) -> list[float]:
    """The finite values at points inside any interval (NaN, a stale or 0/0 point, skipped)."""
    values = []
    for one in series:
        for at_s, value in one.points:
            at_ns = round(at_s * 1e9)
            inside = any(a - 1_000_000 <= at_ns <= b + 1_000_000 for a, b in intervals)
            if inside and math.isfinite(value):
                values.append(value)
    return values
