"""The Podman target: the workload as containers of Podman, through its Docker-compatible API."""

from __future__ import annotations

from harness.capabilities import ENGINE_ON_THIS_HOST, Capabilities
from harness.specs import TargetSpec
from harness.targets.base import TargetKind
from harness.targets.docker import engine_capabilities
from harness.targets.podman.spec import PodmanSpec


def capabilities(spec: TargetSpec) -> Capabilities:
    return engine_capabilities(spec, "target podman")


TARGET = TargetKind(
    name="podman",
    spec=PodmanSpec,
    target="harness.targets.podman.target:PodmanTarget",
    capabilities=capabilities,
    may_provide=ENGINE_ON_THIS_HOST,
    unit="container",
    timers="harness.analysis.timers.podman:predict",
    agents="harness.agent.docker:AGENTS",
)

__all__ = ["TARGET", "PodmanSpec"]
