"""Before / after verdicts per metric with thresholds: better, worse, or no detectable difference.

    parse_thresholds(["ttr_s=10%", "p95_ms[after]=5%"]) -> [Threshold]   (ScenarioError, 2)
    regression_checks(comparison, thresholds, reference) -> [Check]

A threshold names a metric, optionally one subject, and the smallest change that matters:
- fault metrics, per fault (`ttr_s[f1]`; without a subject, every fault both groups hold):
  ttr_s, ttd_s, failed_requests, availability, lost_requests, kill_to_die_s, die_to_start_s,
  start_to_healthy_s, response_s;
- phase metrics, per phase (`p95_ms[after]`; without a subject, every phase both groups
  have): p50_ms, p95_ms, p99_ms, error_rate, throughput_rps;
- the change: `10%` of the reference's median, or an absolute amount in the metric's unit
  (`ttr_s=0.5` is half a second, `error_rate=0.01` one point of error rate).

Each check compares the candidate group's runs with the reference's (the `before` runs): the
difference of the medians, its bootstrap interval and a permutation test (harness.analysis.stats).
`worse` or `better` only when the change exceeds the threshold and is significant, else `no
detectable difference` with the condition that failed; for ttr_s an unrecovered fault decides
first. The decisions in full: docs/METRICS.md, "Comparing runs".
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from harness.analysis.compare import (
    CLUSTER_METRICS,
    FAULT_METRICS,
    MIN_RUNS_FOR_TEST,
    ORCHESTRATOR_METRICS,
    PHASE_METRICS,
    RESPONSE_METRIC,
    Comparison,
    GroupFault,
    Stat,
)
from harness.analysis.phases import PHASE_NAMES
from harness.analysis.stats import (
    ALPHA,
    DifferenceInterval,
    difference_interval,
    permutation_p_value,
)
from harness.errors import ScenarioError

Verdict = Literal["better", "worse", "no detectable difference"]
FAULT_LEVEL = (*FAULT_METRICS, *ORCHESTRATOR_METRICS, *CLUSTER_METRICS, RESPONSE_METRIC)
PHASE_LEVEL = PHASE_METRICS
HIGHER_IS_BETTER = frozenset({"availability", "throughput_rps"})
UNITS = {"_s": " s", "_ms": " ms"}
_SPEC = re.compile(r"^(?P<metric>[a-z0-9_]+)(\[(?P<subject>[^\]]+)\])?=(?P<amount>[^=]+)$")


@dataclass(frozen=True)
class Threshold:
    metric: str
    subject: str | None  # a fault id or a phase; None: every one
    amount: float
    relative: bool  # amount is a fraction of the reference's median

    @property
    def text(self) -> str:
        amount = f"{self.amount * 100:g}%" if self.relative else f"{self.amount:g}"
        subject = f"[{self.subject}]" if self.subject else ""
        return f"{self.metric}{subject}={amount}"

    def allowance(self, reference: float) -> float:
        return self.amount * abs(reference) if self.relative else self.amount


def parse_thresholds(specs: Sequence[str]) -> list[Threshold]:
    """Every --threshold; every malformed one reported at once (ScenarioError, exit 2)."""
    problems, parsed = [], []
    for spec in specs:
        try:
            parsed.append(parse_threshold(spec))
        except ValueError as exc:
            problems.append(f"--threshold {spec!r}: {exc}")
    if problems:
        raise ScenarioError(problems)
    return parsed


def parse_threshold(spec: str) -> Threshold:
    match = _SPEC.match(spec.replace(" ", ""))
    if match is None:
        raise ValueError("expected METRIC=AMOUNT or METRIC[SUBJECT]=AMOUNT, e.g. ttr_s=10%")
    metric, subject, amount = match["metric"], match["subject"], match["amount"]
    if metric not in (*FAULT_LEVEL, *PHASE_LEVEL):
        known = ", ".join((*FAULT_LEVEL, *PHASE_LEVEL))
        raise ValueError(f"unknown metric {metric!r}; known: {known}")
    if metric in PHASE_LEVEL and subject is not None and subject not in PHASE_NAMES:
        raise ValueError(f"{metric} is per phase: the subject is one of {', '.join(PHASE_NAMES)}")
    relative = amount.endswith("%")
    try:
        value = float(amount[:-1]) / 100 if relative else float(amount)
    except ValueError:
        raise ValueError(f"amount {amount!r} is not a number nor a percentage") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"amount {amount!r} must be zero or more")
    return Threshold(metric, subject, value, relative)


@dataclass(frozen=True)
class Check:
    """One metric of one subject, candidate against reference."""

    name: str  # ttr_s[f1], p95_ms[after]
    threshold: Threshold
    reference: str
    candidate: str
    verdict: Verdict
    reason: str
    reference_median: float | None = None
    candidate_median: float | None = None
    n: tuple[int, int] = (0, 0)
    difference: float | None = None
    interval: DifferenceInterval | None = None
    p_value: float | None = None

    @property
    def ci95(self) -> tuple[float, float] | None:
        """The 95 % interval of the difference (a bootstrap, from 5 values per group)."""
        if self.interval is None or self.interval.method != "bootstrap":
            return None
        return self.interval.low, self.interval.high

    @property
    def regression(self) -> bool:
        return self.verdict == "worse"

    @property
    def relative(self) -> float | None:
        if self.difference is None or not self.reference_median:
            return None
        return self.difference / abs(self.reference_median)

    @property
    def sentence(self) -> str:
        return f"{self.name} ({self.candidate} vs {self.reference}): {self.verdict}: {self.reason}"

    @property
    def value_text(self) -> str:
        """The candidate's value and the change, for JUnit messages and tables."""
        unit = _unit(self.threshold.metric)
        if self.candidate_median is None or self.reference_median is None:
            return "no value to compare"
        text = f"{_num(self.reference_median)}{unit} -> {_num(self.candidate_median)}{unit}"
        if self.difference is not None:
            text += f" ({_signed(self.difference)}{unit}"
            rel = self.relative
            text += f", {rel * 100:+.1f} %)" if rel is not None else ")"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "threshold": self.threshold.text,
            "reference": self.reference,
            "candidate": self.candidate,
            "verdict": self.verdict,
            "regression": self.regression,
            "reason": self.reason,
            "reference_median": _r(self.reference_median),
            "candidate_median": _r(self.candidate_median),
            "n": list(self.n),
            "difference": _r(self.difference),
            "relative": _r(self.relative, 4),
            "ci95": None if self.ci95 is None else [_r(x) for x in self.ci95],
            "difference_interval": None if self.interval is None else self.interval.to_dict(),
            "p_value": _r(self.p_value, 4),
        }


def _r(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def _unit(metric: str) -> str:
    return next((u for suffix, u in UNITS.items() if metric.endswith(suffix)), "")


def _num(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"


def _signed(value: float) -> str:
    return f"{value:+.4g}"


def regression_checks(
    comparison: Comparison, thresholds: Sequence[Threshold], reference: str
) -> list[Check]:
    """Every threshold, for every other group against `reference`, on every subject."""
    others = [g.name for g in comparison.groups if g.name != reference]
    checks = []
    for candidate in others:
        for threshold in thresholds:
            if threshold.metric in PHASE_LEVEL:
                checks += _phase_checks(comparison, threshold, reference, candidate)
            else:
                checks += _fault_checks(comparison, threshold, reference, candidate)
    return checks


def _fault_checks(
    comparison: Comparison, threshold: Threshold, reference: str, candidate: str
) -> list[Check]:
    checks = []
    for fault in comparison.faults:
        if threshold.subject not in (None, fault.fault_id):
            continue
        ref, cand = fault.group(reference), fault.group(candidate)
        name = f"{threshold.metric}[{fault.fault_id}]"
        if not ref.runs or not cand.runs:
            if threshold.subject is not None:
                checks.append(_missing(name, threshold, reference, candidate, "fault"))
            continue
        if threshold.metric == "ttr_s" and (ref.unrecovered or cand.unrecovered):
            checks.append(_unrecovered(name, threshold, ref, cand))
            continue
        checks.append(
            judge_metric(
                name,
                threshold,
                reference,
                candidate,
                ref.stat(threshold.metric),
                cand.stat(threshold.metric),
                _why_missing(threshold.metric, ref, cand),
            )
        )
    if not checks and threshold.subject is not None:
        checks.append(
            _missing(
                f"{threshold.metric}[{threshold.subject}]", threshold, reference, candidate, "fault"
            )
        )
    return checks


def _phase_checks(
    comparison: Comparison, threshold: Threshold, reference: str, candidate: str
) -> list[Check]:
    phases = [threshold.subject] if threshold.subject else list(PHASE_NAMES)
    checks = []
    for phase in phases:
        ref = comparison.phases[reference][phase][threshold.metric]
        cand = comparison.phases[candidate][phase][threshold.metric]
        if threshold.subject is None and (ref.n == 0 or cand.n == 0):
            continue  # an empty phase (no recovery phase, say) is not a check
        name = f"{threshold.metric}[{phase}]"
        why = f"phase {phase} has no value in some run of each group"
        checks.append(judge_metric(name, threshold, reference, candidate, ref, cand, why))
    return checks


def _why_missing(metric: str, ref: GroupFault, cand: GroupFault) -> str:
    impact = "; ".join(f"{g.group}: {g.describe_impact()}" for g in (ref, cand) if g.no_impact)
    if metric in ("ttr_s", "ttd_s") and impact:
        return f"no time to compare ({impact}): a fault without visible impact is not 0 s"
    return f"{metric} was not measured in the runs of both groups"


def _missing(name: str, t: Threshold, reference: str, candidate: str, what: str) -> Check:
    why = f"no {what} {t.subject} in the runs of both {reference} and {candidate}"
    return Check(name, t, reference, candidate, "no detectable difference", why)


def _unrecovered(name: str, t: Threshold, ref: GroupFault, cand: GroupFault) -> Check:
    shares = f"{ref.group}: {len(ref.unrecovered)} of {ref.runs} unrecovered, "
    shares += f"{cand.group}: {len(cand.unrecovered)} of {cand.runs}"
    n = (ref.runs, cand.runs)
    if cand.unrecovered_share > ref.unrecovered_share:
        return Check(
            name, t, ref.group, cand.group, "worse", f"more runs never recovered ({shares})", n=n
        )
    if cand.unrecovered_share < ref.unrecovered_share:
        return Check(
            name, t, ref.group, cand.group, "better", f"fewer runs never recovered ({shares})", n=n
        )
    why = f"as many runs never recovered in both ({shares})"
    return Check(name, t, ref.group, cand.group, "no detectable difference", why, n=n)


def judge_metric(
    name: str,
    threshold: Threshold,
    reference: str,
    candidate: str,
    ref: Stat,
    cand: Stat,
    why_missing: str,
) -> Check:
    """The verdict of one metric (module docstring)."""
    base = Check(name, threshold, reference, candidate, "no detectable difference", why_missing)
    if ref.median is None or cand.median is None:
        return base
    difference = cand.median - ref.median
    check = Check(
        name,
        threshold,
        reference,
        candidate,
        "no detectable difference",
        "",
        ref.median,
        cand.median,
        (ref.n, cand.n),
        difference,
    )
    censored = ref.censored_count or cand.censored_count
    interval = None if censored else difference_interval(ref.values, cand.values)
    check = replace(check, interval=interval)
    if ref.n >= MIN_RUNS_FOR_TEST and cand.n >= MIN_RUNS_FOR_TEST:
        p_value = permutation_p_value(ref.values, cand.values, ref.flags, cand.flags)
        check = replace(check, p_value=p_value)
    return _decide(check, threshold)


def _decide(check: Check, threshold: Threshold) -> Check:
    assert check.reference_median is not None and check.difference is not None
    allowance = threshold.allowance(check.reference_median)
    bad = check.difference < 0 if threshold.metric in HIGHER_IS_BETTER else check.difference > 0
    beyond = abs(check.difference) > allowance
    where = f"{check.value_text}, threshold {_allowance_text(threshold, allowance)}"
    if check.p_value is None:
        reason = f"{where}; too few values to test (n={check.n[0]} vs {check.n[1]}, "
        reason += f"{MIN_RUNS_FOR_TEST} per group are the fewest that can reach p < {ALPHA:g})"
        if check.interval is not None:
            reason += f"; {check.interval.describe(_unit(threshold.metric), 4)}"
        return _with(check, "no detectable difference", reason)
    significant = check.p_value < ALPHA
    stats = _stats_text(check)
    if significant and beyond:
        return _with(check, "worse" if bad else "better", f"{where}; {stats}")
    if not significant:
        return _with(check, "no detectable difference", f"{where}; not significant: {stats}")
    way = "worse" if bad else "better"
    reason = f"{where}; significant ({stats}) but within the threshold (a {way} change that "
    reason += "does not matter by the threshold)"
    return _with(check, "no detectable difference", reason)


def _allowance_text(threshold: Threshold, allowance: float) -> str:
    unit = _unit(threshold.metric)
    if threshold.relative:
        return f"{threshold.amount * 100:g} % ({_num(allowance)}{unit})"
    return f"{_num(allowance)}{unit}"


def _stats_text(check: Check) -> str:
    assert check.p_value is not None
    text = f"p={check.p_value:.3g}, n={check.n[0]} vs {check.n[1]}"
    unit = _unit(check.threshold.metric)
    if check.ci95 is not None:
        text += f", 95 % CI of the difference {_signed(check.ci95[0])} to "
        text += f"{_signed(check.ci95[1])}{unit}"
    elif check.interval is not None:
        text += f"; {check.interval.describe(unit, 4)}"
    return text


def _with(check: Check, verdict: Verdict, reason: str) -> Check:
    return replace(check, verdict=verdict, reason=reason)
