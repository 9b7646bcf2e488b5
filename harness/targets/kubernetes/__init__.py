"""The Kubernetes target: the workload as a Deployment and a Service, on the local lab
(harness.labs.kubernetes) or a cluster named by a kubeconfig."""

from __future__ import annotations

from harness import capabilities as caps
from harness.specs import TargetSpec
from harness.targets.base import TargetKind
from harness.targets.kubernetes.spec import KubernetesSpec, KubernetesTargetSpec

# What Kubernetes does not offer, and why (the fault kinds that need it are refused)
NOT_OFFERED = {
    caps.API_STOP: "Kubernetes cannot stop a pod and start it again (use pod_delete, whose "
    "pod the ReplicaSet replaces, or container_kill)",
    caps.API_RESTART: "Kubernetes has no restart of one pod (a rollout restarts them all; "
    "use container_kill for a crash the kubelet restarts, or pod_delete)",
    caps.API_PAUSE: "Kubernetes cannot pause a pod (a cgroup freeze behind the kubelet's "
    "back is not something Kubernetes offers)",
    caps.SWARM_MANAGERS: "a Swarm fault: Kubernetes has no Swarm managers",
}
ON_THIS_HOST = frozenset({caps.HOST_PROCESS, caps.NETNS, caps.NODES})
THROUGH_THE_API = frozenset({caps.API_KILL, caps.API_DELETE})


def capabilities(spec: TargetSpec) -> caps.Capabilities:
    """The lab (or a cluster on this machine) offers its pods' processes, namespaces and
    nodes; a cluster elsewhere only what its API does."""
    remote = remote_cluster(spec)
    if remote is None:
        return caps.Capabilities(ON_THIS_HOST | THROUGH_THE_API, NOT_OFFERED)
    local = (
        "acts from this machine's side (a process, its network namespace or cgroups), and "
        f"the cluster's API server {remote} is not on this machine; on a remote cluster only "
        "pod_delete and container_kill with mode: api work"
    )
    nodes = (
        "acts on the nodes of the local lab, and the scenario names another cluster "
        f"({remote}); run it on the lab (target.lab)"
    )
    reasons = {**NOT_OFFERED, caps.HOST_PROCESS: local, caps.NETNS: local, caps.NODES: nodes}
    return caps.Capabilities(THROUGH_THE_API, reasons)


def remote_cluster(spec: TargetSpec) -> str | None:
    """The API server of a cluster not on this machine; None for the lab or a local one."""
    if getattr(spec, "kubeconfig", None) is None:
        return None
    from harness.targets.kubernetes.cluster import remote_cluster_of

    return remote_cluster_of(spec)


TARGET = TargetKind(
    name="kubernetes",
    spec=KubernetesTargetSpec,
    target="harness.targets.kubernetes.target:KubernetesTarget",
    capabilities=capabilities,
    may_provide=ON_THIS_HOST | THROUGH_THE_API,
    unit="pod",
    lab="kubernetes",
    timers="harness.analysis.timers.kubernetes:predict",
)

__all__ = ["TARGET", "KubernetesSpec", "KubernetesTargetSpec"]
