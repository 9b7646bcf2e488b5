"""The table of orchestrator targets. A new target is one module plus one line here."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.scenario import TargetSpec
    from harness.targets.base import Target

TARGETS: dict[str, str] = {
    "docker": "harness.targets.docker:DockerTarget",
    "swarm": "harness.targets.swarm:SwarmTarget",
}


def make_target(run_id: str, spec: TargetSpec) -> Target:
    """The target for `spec.kind`, connected to its engine."""
    module_name, _, attr = TARGETS[spec.kind].partition(":")
    target: Target = getattr(importlib.import_module(module_name), attr)(run_id, spec)
    return target
