"""Check the scenario's SLOs against the measured run.

One check per limit and subject: `ttr_s[f1]`, `ttd_s[f1]`, `availability[f1]` per fault,
`error_rate[fault]`, `p95_ms[baseline]`, `p99_ms[after]` per phase (`total` is also accepted
for error_rate). Verdicts: `pass`, `fail`, `no_data`. A fault that never recovered fails its
ttr check (value null); a phase without requests, a fault without failures (ttd) or without
requests in its window (availability) gives `no_data`, which does not fail the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from harness.analysis.data import SloSpec
from harness.analysis.metrics import FaultMetrics
from harness.analysis.phases import PhaseStats, RequestStats

Verdict = Literal["pass", "fail", "no_data"]


@dataclass(frozen=True)
class SloCheck:
    """One limit checked against one measured value."""

    name: str
    limit: float
    value: float | None
    verdict: Verdict

    def to_dict(self) -> dict[str, object]:
        value = None if self.value is None else round(self.value, 6)
        return {"name": self.name, "limit": self.limit, "value": value, "verdict": self.verdict}


@dataclass(frozen=True)
class SloResult:
    """All checks; passed when none failed."""

    checks: tuple[SloCheck, ...]

    @property
    def passed(self) -> bool:
        return all(check.verdict != "fail" for check in self.checks)

    def to_dict(self) -> dict[str, object]:
        return {"passed": self.passed, "checks": [c.to_dict() for c in self.checks]}


def evaluate_slo(
    spec: SloSpec,
    faults: tuple[FaultMetrics, ...],
    phases: Mapping[str, PhaseStats],
    total: RequestStats,
) -> SloResult:
    """Every check the spec asks for, faults first, then phases."""
    checks = [*_fault_checks(spec, faults), *_phase_checks(spec, phases, total)]
    return SloResult(tuple(checks))


def _fault_checks(spec: SloSpec, faults: tuple[FaultMetrics, ...]) -> list[SloCheck]:
    checks: list[SloCheck] = []
    for fault in faults:
        fid = fault.fault.fault_id
        if spec.ttr_s is not None:
            verdict: Verdict | None = "fail" if fault.ttr_s is None else None
            checks.append(_at_most(f"ttr_s[{fid}]", spec.ttr_s, fault.ttr_s, verdict))
        if spec.ttd_s is not None:
            checks.append(_at_most(f"ttd_s[{fid}]", spec.ttd_s, fault.ttd_s))
        if spec.availability is not None:
            checks.append(_at_least(f"availability[{fid}]", spec.availability, fault.availability))
    return checks


def _phase_checks(
    spec: SloSpec, phases: Mapping[str, PhaseStats], total: RequestStats
) -> list[SloCheck]:
    checks: list[SloCheck] = []
    for phase, limit in (spec.error_rate or {}).items():
        stats = total if phase == "total" else _stats(phases, phase)
        value = None if stats is None else stats.error_rate
        checks.append(_at_most(f"error_rate[{phase}]", limit, value))
    for key, limits in (("p95_ms", spec.p95_ms), ("p99_ms", spec.p99_ms)):
        for phase, limit in (limits or {}).items():
            checks.append(_at_most(f"{key}[{phase}]", limit, _percentile(phases, phase, key)))
    return checks


def _stats(phases: Mapping[str, PhaseStats], phase: str) -> RequestStats | None:
    found = phases.get(phase)
    return None if found is None else found.stats


def _percentile(phases: Mapping[str, PhaseStats], phase: str, key: str) -> float | None:
    found = phases.get(phase)
    if found is None or found.latency is None:
        return None
    return found.latency.p95 if key == "p95_ms" else found.latency.p99


def _at_most(
    name: str, limit: float, value: float | None, verdict: Verdict | None = None
) -> SloCheck:
    if verdict is None:
        verdict = "no_data" if value is None else ("pass" if value <= limit else "fail")
    return SloCheck(name, limit, value, verdict)


def _at_least(name: str, limit: float, value: float | None) -> SloCheck:
    verdict: Verdict = "no_data" if value is None else ("pass" if value >= limit else "fail")
    return SloCheck(name, limit, value, verdict)
