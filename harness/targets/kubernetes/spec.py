"""The Kubernetes target's scenario settings: the cluster, the namespace, the workload's
Kubernetes settings and the local lab's shape."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.errors import TargetError
from harness.specs import AgentSpec, LabSpec, StrictModel, TargetSpec, lab_problems


class KubernetesSpec(StrictModel):
    """Kubernetes workload settings; Kubernetes' own defaults when the scenario says nothing."""

    liveness: bool = Field(
        default=False,
        description="the workload's health check also as a liveness probe: the kubelet "
        "restarts a container that fails it (default: a readiness probe only)",
    )


class KubernetesTargetSpec(TargetSpec):
    kind: Literal["kubernetes"] = "kubernetes"
    kubernetes: KubernetesSpec = Field(default_factory=KubernetesSpec)
    lab: LabSpec | None = None
    agent: AgentSpec = Field(default_factory=AgentSpec)
    kubeconfig: str | None = Field(
        default=None, description="Kubernetes: kubeconfig file (default: the local lab's)"
    )
    context: str | None = Field(default=None, description="Kubernetes: kubeconfig context")
    namespace: str | None = Field(
        default=None, description="Kubernetes: namespace (default: one made for the run)"
    )

    lab_fields = frozenset({"nodes", "node_monitor_grace_period", "unreachable_toleration"})

    def where(self) -> str:
        if self.kubeconfig is not None:
            return self.kubeconfig + (f" ({self.context})" if self.context else "")
        return "the lab" if self.lab else "default engine"

    @model_validator(mode="after")
    def _lab_of_kubernetes(self) -> KubernetesTargetSpec:
        problems = lab_problems(self.kind, self.lab, self.lab_fields)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def kube_spec(spec: TargetSpec) -> KubernetesTargetSpec:
    """`spec` as the Kubernetes target's settings (another kind's is a caller's bug)."""
    if not isinstance(spec, KubernetesTargetSpec):
        raise TargetError(f"target {spec.kind} is not a Kubernetes target")
    return spec
