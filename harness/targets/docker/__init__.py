"""The Docker target: the workload as containers on one Docker engine.

`spec` holds its scenario settings, `engine` the engine helpers other targets compose
(Swarm, a plugin's), `target` the Target itself (imported when a run needs it).
"""

from __future__ import annotations

from harness.capabilities import ENGINE_ON_THIS_HOST, Capabilities, one_engine
from harness.specs import TargetSpec
from harness.targets.base import TargetKind
from harness.targets.docker.engine import connect
from harness.targets.docker.spec import DockerSpec


def capabilities(spec: TargetSpec) -> Capabilities:
    del spec
    return one_engine("target docker")


TARGET = TargetKind(
    name="docker",
    spec=DockerSpec,
    target="harness.targets.docker.target:DockerTarget",
    capabilities=capabilities,
    may_provide=ENGINE_ON_THIS_HOST,
    unit="container",
    timers="harness.analysis.timers.docker:predict",
)

__all__ = ["TARGET", "DockerSpec", "connect"]
