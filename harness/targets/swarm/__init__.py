"""The Swarm target: the workload as a Swarm service, on the host's engine (a single-node
swarm) or on a multi-node lab (harness.labs.swarm)."""

from __future__ import annotations

from harness import capabilities as caps
from harness.specs import TargetSpec
from harness.targets.base import TargetKind
from harness.targets.swarm.spec import SwarmSpec, SwarmTargetSpec, SwarmUpdateSpec


def capabilities(spec: TargetSpec) -> caps.Capabilities:
    if getattr(spec, "lab", None) is None:
        return caps.one_engine("a single-node swarm")
    return caps.Capabilities(caps.ENGINE_ON_THIS_HOST | {caps.NODES, caps.SWARM_MANAGERS})


TARGET = TargetKind(
    name="swarm",
    spec=SwarmTargetSpec,
    target="harness.targets.swarm.target:SwarmTarget",
    capabilities=capabilities,
    may_provide=caps.ENGINE_ON_THIS_HOST | {caps.NODES, caps.SWARM_MANAGERS},
    unit="task",
    lab="swarm",
    timers="harness.analysis.timers.swarm:predict",
)

__all__ = ["TARGET", "SwarmSpec", "SwarmTargetSpec", "SwarmUpdateSpec"]
