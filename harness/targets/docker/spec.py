"""The Docker target's scenario settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.errors import TargetError
from harness.specs import AgentSpec, TargetSpec

ENGINE_DESCRIPTION = (
    "engine address like DOCKER_HOST (docker: default the environment's; podman: default a "
    "Podman API service started for the run)"
)


class EngineSpec(TargetSpec):
    """The settings of a target on a Docker-API engine (Docker, Podman, Swarm)."""

    engine: str | None = Field(default=None, description=ENGINE_DESCRIPTION)

    def where(self) -> str:
        return self.engine or "default engine"


class AgentEngineSpec(EngineSpec):
    """One engine that may be elsewhere (harness.targets.docker.remote): host-side faults then
    go through a fault agent container on that engine (harness.agent.docker)."""

    agent: AgentSpec = Field(default_factory=AgentSpec)


class DockerSpec(AgentEngineSpec):
    kind: Literal["docker"] = "docker"


def engine_spec(spec: TargetSpec) -> EngineSpec:
    """`spec` as an engine target's settings (a target of another kind's is a caller's bug)."""
    if not isinstance(spec, EngineSpec):
        raise TargetError(f"target {spec.kind} does not run on a Docker-API engine")
    return spec
