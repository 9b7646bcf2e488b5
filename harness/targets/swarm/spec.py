"""The Swarm target's scenario settings: the engine, the service's settings, the lab."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.errors import TargetError
from harness.specs import LabSpec, StrictModel, TargetSpec, lab_problems
from harness.targets.docker.spec import EngineSpec
from harness.units import Seconds


class SwarmUpdateSpec(StrictModel):
    parallelism: int = Field(default=1, ge=0)
    delay: Seconds = 0.0
    monitor: Seconds = 5.0
    failure_action: Literal["pause", "continue", "rollback"] = "pause"
    order: Literal["stop-first", "start-first"] = "stop-first"


class SwarmSpec(StrictModel):
    """Swarm service settings; Swarm's own defaults when the scenario says nothing."""

    restart_condition: Literal["any", "on-failure", "none"] | None = Field(
        default=None, description="default: from workload.restart (always -> any)"
    )
    restart_delay: Seconds = Field(default=5.0, description="Swarm's default is 5 s")
    restart_max_attempts: int | None = Field(default=None, ge=0)
    restart_window: Seconds | None = None
    update: SwarmUpdateSpec | None = None
    task_poll: Seconds = Field(default=0.1, gt=0, description="how often task states are read")
    advertise_addr: str = "127.0.0.1"


class SwarmTargetSpec(EngineSpec):
    kind: Literal["swarm"] = "swarm"
    swarm: SwarmSpec = Field(default_factory=SwarmSpec)
    lab: LabSpec | None = None

    lab_fields = frozenset({"nodes", "managers", "heartbeat"})

    def where(self) -> str:
        return self.engine or ("the lab" if self.lab else "default engine")

    @model_validator(mode="after")
    def _lab_of_swarm(self) -> SwarmTargetSpec:
        problems = lab_problems(self.kind, self.lab, self.lab_fields)
        if self.lab is not None and self.lab.nodes < 2:
            problems.append("target.lab.nodes: a Swarm lab has 2 nodes or more")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def swarm_spec(spec: TargetSpec) -> SwarmTargetSpec:
    """`spec` as Swarm's settings (another kind's is a caller's bug)."""
    if not isinstance(spec, SwarmTargetSpec):
        raise TargetError(f"target {spec.kind} is not a Swarm target")
    return spec
