"""The Kubernetes target: the workload as a Deployment and a Service, on the local lab
(harness.labs.kubernetes) or a cluster named by a kubeconfig."""

from __future__ import annotations

from harness import capabilities as caps
from harness.hostsys import HOST_ACCESS_ENV, host_access_allowed
from harness.specs import TargetSpec
from harness.targets.base import TargetKind
from harness.targets.kubernetes.spec import KubernetesSpec, KubernetesTargetSpec, kube_spec

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
THROUGH_THE_AGENT = frozenset({caps.HOST_PROCESS, caps.NETNS})  # harness.agent, a DaemonSet


def capabilities(spec: TargetSpec) -> caps.Capabilities:
    """The lab (or a cluster on this machine) offers its pods' processes, namespaces and
    nodes; a cluster elsewhere what its API does, and through the fault agent (unless
    `target.agent.use: never`) the pods' processes and namespaces."""
    remote = remote_cluster(spec)
    if remote is None and host_access_allowed():
        return caps.Capabilities(ON_THIS_HOST | THROUGH_THE_API, NOT_OFFERED)
    remote = remote or "the local lab's"
    nodes = (
        "acts on the nodes of the local lab, and the scenario names another cluster "
        f"({remote}); run it on the lab (target.lab)"
    )
    if host_access_allowed() is False:
        nodes = f"acts on the lab's nodes from this machine, and {HOST_ACCESS_ENV}=none"
    if kube_spec(spec).agent.use != "never":
        reasons = {**NOT_OFFERED, caps.NODES: nodes}
        return caps.Capabilities(
            THROUGH_THE_AGENT | THROUGH_THE_API, reasons, through_agent=THROUGH_THE_AGENT
        )
    local = (
        "acts from this machine's side (a process, its network namespace or cgroups), and "
        f"the cluster's API server {remote} is not on this machine, or {HOST_ACCESS_ENV}=none "
        "forbids it, and target.agent.use is never; with the fault agent (use: auto) it works"
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
    agents="harness.agent.on_kubernetes:AGENTS",
)

__all__ = ["TARGET", "KubernetesSpec", "KubernetesTargetSpec"]
