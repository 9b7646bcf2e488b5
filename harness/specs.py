"""The scenario's building blocks that targets share: strict models, the workload, a lab's
shape and the base of every target's settings. Scenario files are read in harness.scenario;
each target package declares its own settings as a subclass of TargetSpec."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.units import Bytes, Seconds


class StrictModel(BaseModel):
    """Unknown keys are errors; values are immutable once loaded; inf and nan are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class HealthSpec(StrictModel):
    path: str = "/health"
    interval: Seconds = 1.0
    timeout: Seconds = 1.0
    retries: int = Field(default=3, ge=1)
    start_period: Seconds = 0.0


class ResourcesSpec(StrictModel):
    cpus: float | None = Field(default=None, gt=0)
    memory: Bytes | None = Field(default=None, ge=6 * 1024 * 1024)


class WorkloadSpec(StrictModel):
    name: str = Field(default="web", pattern=r"^[a-z][a-z0-9-]{0,30}$")
    image: str = Field(default="demo", description="'demo' (built locally) or a local image")
    replicas: int = Field(default=3, ge=1, le=50)
    port: int = Field(default=8080, ge=1, le=65535)
    env: dict[str, str] = Field(default_factory=dict)
    command: list[str] | None = None
    restart: Literal["no", "always", "on-failure", "unless-stopped"] = "always"
    health: HealthSpec | None = Field(default_factory=HealthSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)

    @field_validator("command", mode="before")
    @classmethod
    def _split_command(cls, value: object) -> object:
        return value.split() if isinstance(value, str) else value


class LabSpec(StrictModel):
    """A multi-node cluster built on this machine for the run (see `harness lab`)."""

    nodes: int = Field(default=3, ge=1, le=7, description="Swarm: 2 or more")
    managers: Literal[1, 3] = Field(default=1, description="Swarm only")
    heartbeat: Seconds = Field(default=5.0, gt=0, description="Swarm only: dispatcher heartbeat")
    node_monitor_grace_period: Seconds | None = Field(
        default=None,
        gt=0,
        description="Kubernetes only: the controller manager's --node-monitor-grace-period "
        "(default: Kubernetes' own)",
    )
    unreachable_toleration: int | None = Field(
        default=None,
        ge=0,
        le=86400,
        description="Kubernetes only: seconds a pod stays bound to a not-ready or unreachable "
        "node before it is evicted and replaced (kube-apiserver's "
        "--default-not-ready-toleration-seconds and --default-unreachable-toleration-seconds; "
        "default: Kubernetes' 300)",
    )


class TargetSpec(StrictModel):
    """The `target:` of a scenario: its kind, and the settings of that kind (a subclass per
    target package, registered in harness.targets)."""

    kind: str
    # The fields of LabSpec that mean something to this kind (none: it has no lab).
    lab_fields: ClassVar[frozenset[str]] = frozenset()

    def where(self) -> str:
        """The engine or cluster these settings reach, in a few words (for cleanup's report;
        two settings with the same kind and `where` reach the same objects)."""
        return "default engine"


def lab_problems(kind: str, lab: LabSpec | None, allowed: frozenset[str]) -> list[str]:
    """The lab fields set in `lab` that mean nothing to the target `kind`."""
    if lab is None:
        return []
    return [
        f"target.lab.{name} has no meaning for kind {kind}; remove it"
        for name in sorted(lab.model_fields_set - allowed)
    ]
