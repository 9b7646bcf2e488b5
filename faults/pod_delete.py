"""pod_delete: the selected instances' pods are deleted through the Kubernetes API.

The kubelet stops the pod's containers (the image's stop signal, then SIGKILL at the end of the
grace period) and its ReplicaSet creates a NEW pod (a new name, IP and node choice) at once:
Kubernetes' own answer to a lost pod, as Krkn's and Litmus' pod-delete experiments exercise it.
`grace_period` is the deletion's gracePeriodSeconds: unset, the pod's own
terminationGracePeriodSeconds (30 s by default); 0 deletes it at once (forced: the object goes,
the kubelet still stops the container with its minimum grace).

Kubernetes only: the fault needs a target that can delete pods (`delete_pod`), and works on any
cluster the API reaches (no host access needed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pydantic import Field, field_validator

from faults.base import Fault, FaultContext, FaultParams, Mechanism, RevertRecord
from harness import capabilities
from harness.errors import FaultError
from harness.targets.base import Instance, Target
from harness.units import Seconds


@runtime_checkable
class DeletesPods(Protocol):
    """A target whose instances are pods (the Kubernetes target)."""

    def delete_pod(self, instance: Instance, grace_period_s: int | None) -> None: ...


class PodDeleteParams(FaultParams):
    grace_period: Seconds | None = Field(
        default=None,
        description="the deletion's grace period in whole seconds (default: the pod's own, "
        "30 s unless its spec says otherwise; 0: at once)",
    )

    @field_validator("grace_period")
    @classmethod
    def _whole_seconds(cls, value: float | None) -> float | None:
        if value is not None and not math.isclose(value, round(value)):
            raise ValueError(f"Kubernetes counts a grace period in whole seconds; got {value:g} s")
        return value


class PodDelete(Fault[PodDeleteParams]):
    kind = "pod_delete"
    requires = (capabilities.API_DELETE,)
    summary = (
        "delete the selected instances' pods through the Kubernetes API "
        "(their ReplicaSet replaces them)"
    )
    params_model = PodDeleteParams
    has_duration = False
    restart_policy_applies = True  # the ReplicaSet replaces a deleted pod

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        return [Mechanism("Kubernetes API pod deletion", True, "target kubernetes only")]

    @property
    def mode(self) -> str:
        grace = self.params.grace_period
        return "pod's own grace period" if grace is None else f"grace {grace:g} s"

    @property
    def grace_period_s(self) -> int | None:
        grace = self.params.grace_period
        return None if grace is None else round(grace)

    def restart_policy(self, target: Target) -> bool | None:
        return target.api_stop_is_restarted

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        if not isinstance(ctx.target, DeletesPods):
            raise FaultError(f"pod_delete needs a Kubernetes target, not {ctx.target.kind}")
        return RevertRecord(
            fault_id=fault_id,
            kind=self.kind,
            targets=tuple(i.name for i in instances),
            mechanism="Kubernetes API pod deletion",
            data={
                "pods": {i.name: i.container_name for i in instances},
                "grace_period_s": self.grace_period_s,
            },
        )

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        target = ctx.target
        if not isinstance(target, DeletesPods):
            raise FaultError(f"pod_delete needs a Kubernetes target, not {ctx.target.kind}")
        pods = dict(record.data.get("pods", {}))
        current = {i.name: i for i in ctx.target.instances()}
        for name in record.targets:
            instance = current.get(name)
            if instance is None or instance.container_name != pods.get(name):
                raise FaultError(f"cannot delete the pod of {name}: {pods.get(name)} is gone")
            ctx.mark_action()
            target.delete_pod(instance, self.grace_period_s)
