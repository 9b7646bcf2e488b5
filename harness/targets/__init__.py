"""The table of orchestrator targets. A new target is one module plus one line here."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.scenario import TargetSpec
    from harness.targets.base import Target

TARGETS: dict[str, str] = {
    "docker": "harness.targets.docker:DockerTarget",
    "podman": "harness.targets.podman:PodmanTarget",
    "swarm": "harness.targets.swarm:SwarmTarget",
    "kubernetes": "harness.targets.kubernetes:KubernetesTarget",
}


def target_class(kind: str) -> type[Target]:
    """The class of the target `kind` (not connected to anything)."""
    module_name, _, attr = TARGETS[kind].partition(":")
    cls: type[Target] = getattr(importlib.import_module(module_name), attr)
    return cls


def make_target(run_id: str, spec: TargetSpec) -> Target:
    """The target for `spec.kind`, connected to its engine."""
    return target_class(spec.kind)(run_id, spec)  # type: ignore[call-arg]
