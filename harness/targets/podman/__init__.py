"""The Podman target: the workload as containers of Podman, through its Docker-compatible API."""

from __future__ import annotations

from harness.capabilities import ENGINE_ON_THIS_HOST, Capabilities, one_engine
from harness.specs import TargetSpec
from harness.targets.base import TargetKind
from harness.targets.podman.spec import PodmanSpec


def capabilities(spec: TargetSpec) -> Capabilities:
    del spec
    return one_engine("target podman")


TARGET = TargetKind(
    name="podman",
    spec=PodmanSpec,
    target="harness.targets.podman.target:PodmanTarget",
    capabilities=capabilities,
    may_provide=ENGINE_ON_THIS_HOST,
    unit="container",
    timers="harness.analysis.timers.podman:predict",
)

__all__ = ["TARGET", "PodmanSpec"]
