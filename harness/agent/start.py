"""Whether a run needs fault agents, and starting them through its target kind's opener."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence, Set

from faults.base import AnyFault
from harness.agent.fleet import AgentFleet, AgentSupport
from harness.agent.relay import relays
from harness.specs import TargetSpec
from harness.targets import target_kind
from harness.targets.base import Target

AGENT_READY_TIMEOUT_S = 120.0


def support_of(spec: TargetSpec) -> AgentSupport | None:
    """The kind's agent support ("module:object" in its TargetKind), if it has one."""
    path = target_kind(spec.kind).agents
    if path is None:
        return None
    module_name, _, attr = path.partition(":")
    found: AgentSupport = getattr(importlib.import_module(module_name), attr)
    return found


def open_fleet(
    target: Target, spec: TargetSpec, run_id: str, faults: Sequence[AnyFault]
) -> AgentFleet | None:
    """The run's agents, deployed (not yet ready), when a fault needs them and the kind's
    opener says the host cannot do it itself (or `target.agent.use: always`); else None."""
    if not any(relays(fault) for fault in faults):
        return None
    support = support_of(spec)
    return None if support is None else support.open(target, spec, run_id)


def remove_orphan_agents(spec: TargetSpec, keep: Set[str]) -> Iterator[str]:
    """The agents of dead runs on the engine of `spec`, removed (harness cleanup)."""
    support = support_of(spec)
    if support is not None:
        yield from support.remove_orphans(spec, keep)
