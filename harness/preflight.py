"""Everything checked before a run deploys anything: what the target cannot do, what this
machine cannot inject. Invalid input is a ScenarioError (exit 2); a missing capability of this
machine is a CapabilityError (exit 3).
"""

from __future__ import annotations

from faults.base import Fault
from harness.errors import CapabilityError, ScenarioError
from harness.scenario import ScenarioBase, build_fault
from harness.targets import target_class
from harness.timeline import Occurrence, expand


def preflight(scenario: ScenarioBase) -> list[tuple[Occurrence, Fault]]:
    """Build every fault and check this machine can inject it, before anything starts."""
    planned = [(o, build_fault(o.entry)) for o in expand(scenario.faults, scenario.load.duration)]
    unsupported = target_class(scenario.target.kind).scenario_problems(scenario)
    if unsupported:  # the scenario asks what this orchestrator does not have: invalid input
        raise ScenarioError([f"target {scenario.target.kind}: {p}" for p in unsupported])
    problems = [
        f"faults.{o.entry_index - 1} ({o.entry.kind}): {p}"
        for o, fault in planned
        for p in fault.check()
    ]
    if problems:
        raise CapabilityError("this machine cannot run the scenario:\n  " + "\n  ".join(problems))
    return planned
