"""Check the scenario's SLOs against the measured run.

One check per limit and subject: `ttr_s[f1]`, `ttd_s[f1]`, `availability[f1]` per fault
occurrence (`f2#1`, `f2#2` for a repeated one; availability is what every user saw in the
fault's window), `error_rate[fault]`, `p95_ms[baseline]`,
`p99_ms[after]` per phase (`total` is also accepted for error_rate). With
`slo.require_recovery` (the default), every fault with a visible impact also gets
`recovered[f1]`, which fails when it never recovered, whatever the other limits say.

A censored fault (the data ended before its recovery could be shown, `ttr_at_least_s`)
fails `recovered[f]` and `ttr_s[f]` when `ttr_at_least_s` already exceeds the ttr limit;
otherwise both are `no_data` with the reason: it is not known to have failed.

Verdicts: `pass`, `fail`, `no_data` (with the reason: an empty phase, a fault without visible
impact has no time to detect or recover, a window without requests). A check without data
fails the SLO gate unless the scenario sets `slo.allow_no_data: true`: a number that could not
be measured is not a pass. Checks read from Prometheus after the run (`slo.prometheus`,
prometheus.json) join them as `name[phase]` or `name[f1]` (harness.prometheus.evaluate).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from harness.analysis.metrics import FaultMetrics
from harness.analysis.phases import PhaseStats, RequestStats
from harness.results.manifest import SloBlock as SloSpec
from harness.results.summary import NoData, PrometheusOutcome, SloOutcome
from harness.results.summary import SloCheck as SloCheckRecord

Verdict = Literal["pass", "fail", "no_data"]


@dataclass(frozen=True)
class SloCheck:
    """One limit checked against one measured value."""

    name: str
    limit: float | None
    value: float | None
    verdict: Verdict
    reason: str | None = None
    bound: str | None = None  # max | min: a check read from Prometheus

    def record(self) -> SloCheckRecord:
        """As summary.json writes it (the value to 6 decimals)."""
        value = None if self.value is None else round(self.value, 6)
        return SloCheckRecord(
            name=self.name,
            limit=self.limit,
            value=value,
            verdict=self.verdict,
            reason=self.reason,
            bound=self.bound,
        )


@dataclass(frozen=True)
class SloResult:
    """All checks; passed when none failed and, unless allowed, none lacked data."""

    checks: tuple[SloCheck, ...]
    allow_no_data: bool = False

    @property
    def failed(self) -> tuple[SloCheck, ...]:
        return tuple(c for c in self.checks if c.verdict == "fail")

    @property
    def no_data(self) -> tuple[SloCheck, ...]:
        return tuple(c for c in self.checks if c.verdict == "no_data")

    @property
    def passed(self) -> bool:
        return not self.failed and (self.allow_no_data or not self.no_data)

    def record(self) -> SloOutcome:
        """As summary.json writes it."""
        return SloOutcome(
            passed=self.passed,
            allow_no_data=self.allow_no_data,
            failed=[c.name for c in self.failed],
            no_data=[NoData(name=c.name, reason=c.reason) for c in self.no_data],
            checks=[c.record() for c in self.checks],
        )


def evaluate_slo(
    spec: SloSpec,
    faults: Sequence[FaultMetrics],
    phases: Mapping[str, PhaseStats],
    total: RequestStats,
) -> SloResult:
    """Every check the spec asks for, faults first, then phases."""
    checks = [*_fault_checks(spec, faults), *_phase_checks(spec, phases, total, faults)]
    return SloResult(tuple(checks), spec.allow_no_data)


def with_prometheus(result: SloResult, outcome: PrometheusOutcome | None) -> SloResult:
    """The checks plus those read from Prometheus after the run (harness.prometheus)."""
    if outcome is None:
        return result
    read = [
        SloCheck(c.name, c.limit, c.value, _verdict(c.verdict), c.reason, c.bound)
        for c in outcome.checks
    ]
    return SloResult((*result.checks, *read), result.allow_no_data)


def _verdict(text: str) -> Verdict:
    return "pass" if text == "pass" else "no_data" if text == "no_data" else "fail"


def _fault_checks(spec: SloSpec, faults: Sequence[FaultMetrics]) -> list[SloCheck]:
    checks: list[SloCheck] = []
    for fault in faults:
        fid = fault.fault.fault_id
        missing = _why_no_time(fault)
        if spec.require_recovery and fault.impact == "visible":
            checks.append(_recovered(fault, spec.ttr_s))
        if spec.ttr_s is not None:
            if fault.censored:
                checks.append(_censored(f"ttr_s[{fid}]", spec.ttr_s, fault))
            elif fault.impact == "visible" and fault.ttr_s is None:
                checks.append(
                    SloCheck(f"ttr_s[{fid}]", spec.ttr_s, None, "fail", fault.outcome.reason)
                )
            else:
                checks.append(_at_most(f"ttr_s[{fid}]", spec.ttr_s, fault.ttr_s, missing))
        if spec.ttd_s is not None:
            checks.append(_at_most(f"ttd_s[{fid}]", spec.ttd_s, fault.ttd_s, missing))
        if spec.availability is not None:
            why = _why_no_availability(fault)
            checks.append(
                _at_least(f"availability[{fid}]", spec.availability, fault.availability, why)
            )
    return checks


def _recovered(fault: FaultMetrics, ttr_limit: float | None) -> SloCheck:
    name = f"recovered[{fault.fault.fault_id}]"
    if fault.censored:
        return _censored(name, ttr_limit, fault)
    if fault.recovered:
        return SloCheck(name, None, fault.ttr_s, "pass")
    return SloCheck(name, None, None, "fail", f"never recovered: {fault.outcome.reason}")


def _censored(name: str, ttr_limit: float | None, fault: FaultMetrics) -> SloCheck:
    """A censored fault: failed when it already took longer than the limit, else unknown."""
    at_least = fault.ttr_at_least_s
    limit = None if name.startswith("recovered[") else ttr_limit
    if ttr_limit is not None and at_least is not None and at_least > ttr_limit:
        why = f"censored: recovered in at least {at_least:.3f} s, over the {ttr_limit:g} s limit"
        return SloCheck(name, limit, at_least, "fail", why)
    return SloCheck(name, limit, None, "no_data", fault.outcome.reason)


def _why_no_time(fault: FaultMetrics) -> str:
    fid = fault.fault.fault_id
    if fault.impact == "visible":
        return f"{fid}: {fault.outcome.reason}"
    return f"{fid} had no time to detect or recover: {fault.outcome.reason}"


def _why_no_availability(fault: FaultMetrics) -> str:
    if fault.impact == "unmeasured":
        return f"{fault.fault.fault_id}: {fault.outcome.reason}"
    return f"no request completed in {fault.fault.fault_id}'s comparison window"


def _phase_checks(
    spec: SloSpec,
    phases: Mapping[str, PhaseStats],
    total: RequestStats,
    faults: Sequence[FaultMetrics],
) -> list[SloCheck]:
    checks: list[SloCheck] = []
    for phase, limit in (spec.error_rate or {}).items():
        stats = total if phase == "total" else _stats(phases, phase)
        value = None if stats is None else stats.error_rate
        why = _why_empty(phases, phase, faults, "completed")
        checks.append(_at_most(f"error_rate[{phase}]", limit, value, why))
    for key, limits in (("p95_ms", spec.p95_ms), ("p99_ms", spec.p99_ms)):
        for phase, limit in (limits or {}).items():
            why = _why_no_percentile(phases, phase, key) or _why_empty(
                phases, phase, faults, "started"
            )
            checks.append(_at_most(f"{key}[{phase}]", limit, _percentile(phases, phase, key), why))
    return checks


def _why_no_percentile(phases: Mapping[str, PhaseStats], phase: str, key: str) -> str | None:
    """Why a phase with requests has no such percentile (too few successful requests)."""
    found = phases.get(phase)
    if found is None or found.latency is None:
        return None
    reason = found.latency.null_reasons().get(key.removesuffix("_ms"))
    return None if reason is None else f"phase {phase}: {reason}"


def _why_empty(
    phases: Mapping[str, PhaseStats], phase: str, faults: Sequence[FaultMetrics], verb: str
) -> str:
    found = phases.get(phase)
    if phase == "total" or (found is not None and not found.phase.empty):
        return f"no request {verb} in phase {phase}"
    unrecovered = [f.fault.fault_id for f in faults if f.recovered is False]
    if phase == "after" and unrecovered:
        return f"phase after is empty: {', '.join(unrecovered)} never recovered"
    if phase in ("fault", "recovery") and not faults:
        return f"phase {phase} is empty: the run had no fault"
    if phase == "recovery":
        return "phase recovery is empty: users recovered as soon as each fault's active part ended"
    return f"phase {phase} is empty"


def _stats(phases: Mapping[str, PhaseStats], phase: str) -> RequestStats | None:
    found = phases.get(phase)
    return None if found is None else found.stats


def _percentile(phases: Mapping[str, PhaseStats], phase: str, key: str) -> float | None:
    found = phases.get(phase)
    if found is None or found.latency is None:
        return None
    return found.latency.p95 if key == "p95_ms" else found.latency.p99


def _at_most(name: str, limit: float, value: float | None, why: str) -> SloCheck:
    if value is None:
        return SloCheck(name, limit, None, "no_data", why)
    return SloCheck(name, limit, value, "pass" if value <= limit else "fail")


def _at_least(name: str, limit: float, value: float | None, why: str) -> SloCheck:
    if value is None:
        return SloCheck(name, limit, None, "no_data", why)
    return SloCheck(name, limit, value, "pass" if value >= limit else "fail")
