"""What a scenario asks of its target that the target cannot do, refused before anything runs.

One check for every target and fault: a fault's needs (Fault.needs) against the capabilities
the target's settings provide (TargetKind.capabilities), with the target's reason, else the
kinds that do provide it; then the target's own checks and the engine's storage margin.
"""

from __future__ import annotations

from pathlib import Path

from harness.scenario import ScenarioBase, build_fault
from harness.targets import target_kind, target_kinds


def target_problems(scenario: ScenarioBase) -> list[str]:
    """Everything in `scenario` its target refuses, each with the reason ([] when none)."""
    kind = target_kind(scenario.target.kind)
    cls = kind.target_class()
    problems = capability_problems(scenario)
    problems += cls.scenario_problems(scenario)
    return problems + storage_problems(scenario, cls.data_root_of(scenario.target))


def capability_problems(scenario: ScenarioBase) -> list[str]:
    """The faults whose needs the scenario's target does not provide."""
    spec = scenario.target
    capabilities = target_kind(spec.kind).capabilities(spec)
    problems = []
    for index, entry in enumerate(scenario.faults):
        missing = capabilities.missing(build_fault(entry).needs())
        if missing is not None:
            reason = capabilities.reasons.get(missing) or _works_only_on(missing, spec.kind)
            problems.append(f"faults.{index} ({entry.kind}): {reason}")
    return problems


def _works_only_on(capability: str, kind: str) -> str:
    providers = sorted(k for k, t in target_kinds().items() if capability in t.may_provide)
    if not providers:
        return f"needs {capability}, which no installed target provides"
    return f"works only on target {' or '.join(providers)}, not {kind}"


def storage_problems(scenario: ScenarioBase, data_root: Path | None) -> list[str]:
    """What the scenario's faults refuse given the engine's storage root on this host (a
    disk fill that would leave its filesystem under the safety margin); [] when unknown."""
    if data_root is None:
        return []
    return [
        f"faults.{index} ({entry.kind}): {problem}"
        for index, entry in enumerate(scenario.faults)
        for problem in build_fault(entry).check_storage(data_root)
    ]
