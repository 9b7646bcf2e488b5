"""What the harness needs of Kubernetes objects, read from the client's models (pure).

Pods, nodes, EndpointSlices and Deployments become small frozen views: the trackers compare
successive views, and the target turns pod views into instances. Every timestamp is kept in
nanoseconds of the Unix epoch; Kubernetes stamps most of them at whole seconds (metav1.Time),
a few (EndpointSlices' trigger time) finer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernetes.client import (
    V1ContainerState,
    V1ContainerStatus,
    V1Deployment,
    V1EndpointSlice,
    V1Node,
    V1Pod,
    V1PodCondition,
)

NS_PER_S = 1_000_000_000
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


def time_ns(moment: datetime | None) -> int | None:
    """Nanoseconds since the epoch (a datetime holds microseconds at most)."""
    if moment is None:
        return None
    whole = int(moment.timestamp())
    return whole * NS_PER_S + moment.microsecond * 1000


def parse_time_ns(text: str | None) -> int | None:
    """An RFC 3339 time with up to nanoseconds ('...T12:00:00.123456789Z') in nanoseconds."""
    if not text:
        return None
    stamp, _, fraction = text.rstrip("Z").partition(".")
    try:
        whole = datetime.fromisoformat(stamp + "+00:00")
    except ValueError:
        return None
    digits = "".join(c for c in fraction if c.isdigit())[:9]
    return int(whole.timestamp()) * NS_PER_S + int(digits.ljust(9, "0") or 0)


def bare_container_id(runtime_id: str | None) -> tuple[str, str]:
    """('abc...', 'docker') from 'docker://abc...'; the runtime is '' when not given."""
    if not runtime_id:
        return "", ""
    runtime, sep, bare = runtime_id.partition("://")
    return (bare, runtime) if sep else (runtime_id, "")


# --- pods --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Termination:
    """One container that ended, as the kubelet reported it."""

    container_id: str
    exit_code: int
    reason: str
    started_ns: int | None
    finished_ns: int | None
    signal: int | None = None


@dataclass(frozen=True)
class ContainerView:
    name: str
    container_id: str  # the runtime's id without its scheme; "" before the first start
    runtime: str  # docker, containerd, cri-o...
    restart_count: int
    ready: bool
    running_since_ns: int | None  # the current container's start, when it runs
    waiting_reason: str
    terminated: Termination | None  # the current container, when it has ended
    last_terminated: Termination | None  # the one before it


@dataclass(frozen=True)
class PodView:
    uid: str
    name: str
    labels: Mapping[str, str]
    node: str
    ip: str
    phase: str
    created_ns: int | None
    scheduled_ns: int | None  # PodScheduled True: when it was bound to its node
    ready: bool | None  # the Ready condition; None before the kubelet reported it
    ready_changed_ns: int | None
    deletion_ns: int | None  # deletionTimestamp: the request plus the grace period
    grace_s: int | None
    disruption: str  # reason of the DisruptionTarget condition (eviction, taint manager...)
    reason: str  # status.reason: Evicted, NodeLost...
    container: ContainerView | None
    resource_version: str = ""

    @property
    def deleting(self) -> bool:
        return self.deletion_ns is not None

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @property
    def live(self) -> bool:
        """Counts as a replica: neither being deleted nor finished."""
        return not self.deleting and not self.terminal

    @property
    def deletion_requested_ns(self) -> int | None:
        """When the deletion was asked for (deletionTimestamp minus the grace period)."""
        if self.deletion_ns is None:
            return None
        return self.deletion_ns - (self.grace_s or 0) * NS_PER_S


def _condition(conditions: Sequence[V1PodCondition] | None, kind: str) -> V1PodCondition | None:
    return next((c for c in conditions or () if c.type == kind), None)


def _termination(state: V1ContainerState | None) -> Termination | None:
    ended = state.terminated if state is not None else None
    if ended is None:
        return None
    return Termination(
        container_id=bare_container_id(ended.container_id)[0],
        exit_code=ended.exit_code,
        reason=ended.reason or "",
        started_ns=time_ns(ended.started_at),
        finished_ns=time_ns(ended.finished_at),
        signal=ended.signal,
    )


def container_view(status: V1ContainerStatus) -> ContainerView:
    container_id, runtime = bare_container_id(status.container_id)
    state = status.state
    running = state.running if state is not None else None
    waiting = state.waiting if state is not None else None
    return ContainerView(
        name=status.name,
        container_id=container_id,
        runtime=runtime,
        restart_count=status.restart_count,
        ready=status.ready,
        running_since_ns=time_ns(running.started_at) if running is not None else None,
        waiting_reason=(waiting.reason or "") if waiting is not None else "",
        terminated=_termination(state),
        last_terminated=_termination(status.last_state),
    )


def pod_view(pod: V1Pod, container: str | None = None) -> PodView:
    """The pod, with the status of `container` (default: its first container)."""
    meta = pod.metadata
    spec = pod.spec
    status = pod.status
    conditions = status.conditions if status is not None else None
    scheduled = _condition(conditions, "PodScheduled")
    ready = _condition(conditions, "Ready")
    disruption = _condition(conditions, "DisruptionTarget")
    statuses = (status.container_statuses if status is not None else None) or []
    wanted = container or (spec.containers[0].name if spec is not None and spec.containers else "")
    chosen = next((s for s in statuses if s.name == wanted), None)
    return PodView(
        uid=(meta.uid if meta else None) or "",
        name=(meta.name if meta else None) or "",
        labels=dict((meta.labels if meta else None) or {}),
        node=(spec.node_name if spec else None) or "",
        ip=(status.pod_ip if status else None) or "",
        phase=(status.phase if status else None) or "",
        created_ns=time_ns(meta.creation_timestamp) if meta else None,
        scheduled_ns=time_ns(scheduled.last_transition_time)
        if scheduled is not None and scheduled.status == "True"
        else None,
        ready=None if ready is None else ready.status == "True",
        ready_changed_ns=time_ns(ready.last_transition_time) if ready is not None else None,
        deletion_ns=time_ns(meta.deletion_timestamp) if meta else None,
        grace_s=meta.deletion_grace_period_seconds if meta else None,
        disruption=(disruption.reason or "")
        if disruption is not None and disruption.status == "True"
        else "",
        reason=(status.reason if status else None) or "",
        container=container_view(chosen) if chosen is not None else None,
        resource_version=(meta.resource_version if meta else None) or "",
    )


# --- nodes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaintView:
    key: str
    effect: str
    added_ns: int | None


@dataclass(frozen=True)
class NodeView:
    name: str
    ready: str  # the Ready condition's status: True, False, Unknown ("" when not reported)
    ready_reason: str
    ready_changed_ns: int | None
    unschedulable: bool
    taints: tuple[TaintView, ...] = ()
    internal_ip: str = ""
    runtime_version: str = ""
    kubelet_version: str = ""


def node_view(node: V1Node) -> NodeView:
    status = node.status
    conditions = (status.conditions if status else None) or []
    ready = next((c for c in conditions if c.type == "Ready"), None)
    addresses = (status.addresses if status else None) or []
    info = status.node_info if status else None
    taints = (node.spec.taints if node.spec else None) or []
    return NodeView(
        name=(node.metadata.name if node.metadata else None) or "",
        ready=ready.status if ready is not None else "",
        ready_reason=(ready.reason or "") if ready is not None else "",
        ready_changed_ns=time_ns(ready.last_transition_time) if ready is not None else None,
        unschedulable=bool(node.spec.unschedulable) if node.spec else False,
        taints=tuple(TaintView(t.key, t.effect, time_ns(t.time_added)) for t in taints),
        internal_ip=next((a.address for a in addresses if a.type == "InternalIP"), ""),
        runtime_version=info.container_runtime_version if info else "",
        kubelet_version=info.kubelet_version if info else "",
    )


# --- EndpointSlices ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointView:
    """One endpoint of a Service: a pod's address and whether traffic is sent to it."""

    address: str
    pod: str
    pod_uid: str
    node: str
    ready: bool
    serving: bool
    terminating: bool


@dataclass(frozen=True)
class SliceView:
    name: str
    service: str
    trigger_ns: int | None  # the last change that triggered this slice's update
    endpoints: tuple[EndpointView, ...] = field(default_factory=tuple)


def slice_view(endpoint_slice: V1EndpointSlice) -> SliceView:
    meta = endpoint_slice.metadata
    annotations = (meta.annotations if meta else None) or {}
    labels = (meta.labels if meta else None) or {}
    endpoints = []
    for endpoint in endpoint_slice.endpoints or []:
        conditions = endpoint.conditions
        ref = endpoint.target_ref
        # the API: a nil ready or serving condition means true, a nil terminating false
        ready = conditions is None or conditions.ready is not False
        serving = conditions is None or conditions.serving is not False
        terminating = conditions is not None and conditions.terminating is True
        for address in endpoint.addresses:
            endpoints.append(
                EndpointView(
                    address=address,
                    pod=(ref.name if ref else None) or "",
                    pod_uid=(ref.uid if ref else None) or "",
                    node=endpoint.node_name or "",
                    ready=ready,
                    serving=serving,
                    terminating=terminating,
                )
            )
    return SliceView(
        name=(meta.name if meta else None) or "",
        service=labels.get("kubernetes.io/service-name", ""),
        trigger_ns=parse_time_ns(annotations.get(TRIGGER_TIME)),
        endpoints=tuple(endpoints),
    )


# --- Deployments -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentView:
    name: str
    desired: int
    ready: int
    available: int
    updated: int


def deployment_view(deployment: V1Deployment) -> DeploymentView:
    status = deployment.status
    return DeploymentView(
        name=(deployment.metadata.name if deployment.metadata else None) or "",
        desired=deployment.spec.replicas if deployment.spec.replicas is not None else 1,
        ready=(status.ready_replicas if status else None) or 0,
        available=(status.available_replicas if status else None) or 0,
        updated=(status.updated_replicas if status else None) or 0,
    )


def raw_resource_version(raw: Mapping[str, Any]) -> str:
    """metadata.resourceVersion of an object as JSON (watch events, bookmarks)."""
    metadata = raw.get("metadata") or {}
    return str(metadata.get("resourceVersion") or "")
