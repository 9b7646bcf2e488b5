"""Kubernetes' own view of a run, as engine events: trackers that compare successive views of
pods, EndpointSlices, nodes and Deployments and say what changed (pure logic; the watches that
feed them are in harness.targets.kubernetes.watch).

Instances are slots: a pod deleted or evicted is replaced by a NEW pod with a random name, so
each live pod is named after a slot ("web-2"): a new pod takes the lowest slot no live pod
holds (a pod gives its slot up when its deletion is asked for or it has finished). Every event
also names the pod itself (`pod`, `pod_uid`).

Actions that mean what Docker's do keep Docker's names (create, start, die, oom, health_status,
destroy), so kill -> die -> start -> healthy reads Kubernetes runs unchanged; Kubernetes adds
pod_scheduled, pod_phase, pod_terminating, endpoint_added / endpoint_removed, and per service
or node service_converged / service_degraded, node_state, node_availability, node_taint.

Time: the API stamps most changes to the whole second, so each event carries `received_ns` and
`api_time_ns`, and `time_ns` is the LATEST instant both allow (never before the change, late
by up to the resolution). A container's start seen on this host uses its process's start time
(`time_source` "host"; `host_via` "agent" when the fault agent on its node read it). Two
events of one container in one second are ordered 1 ns apart (`ordered_after`). The event
table and the timing evidence: docs/TARGETS.md, Kubernetes events.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from harness.targets.base import SERVICE_LABEL, EngineEvent
from harness.targets.kubernetes.views import (
    NS_PER_S,
    ContainerView,
    DeploymentView,
    EndpointView,
    NodeView,
    PodView,
    SliceView,
    Termination,
)

FINE_RESOLUTION_NS = 1_000  # a timestamp with a fraction of a second: microseconds at best
HOST_RESOLUTION_NS = 10_000_000  # a process's start time: clock ticks of 10 ms
StartedAt = Callable[[str], "int | None"]  # container id -> its process's start, if seen here
ExitedAt = Callable[[str], "int | None"]  # container id -> its exit, as its node's runtime saw it
EXIT_RESOLUTION_NS = 1  # containerd's /tasks/exit carries the exit instant in nanoseconds


# --- time --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stamp:
    time_ns: int
    attributes: Mapping[str, str]


def stamp(
    received_ns: int,
    api_ns: int | None,
    not_before: int | None = None,
    host_ns: int | None = None,
    host_resolution_ns: int = HOST_RESOLUTION_NS,
) -> Stamp:
    """When a change happened, at the latest, from its receipt, the API's own timestamp and
    what the host saw (a container's start: its process's start time; its exit: the node's
    runtime's exit event)."""
    attributes = {"received_ns": str(received_ns), "time_source": "received"}
    at = received_ns
    if api_ns is not None:
        resolution = NS_PER_S if api_ns % NS_PER_S == 0 else FINE_RESOLUTION_NS
        attributes["api_time_ns"] = str(api_ns)
        attributes["api_resolution_ns"] = str(resolution)
        if api_ns + resolution - 1 < at:
            at = api_ns + resolution - 1
            attributes["time_source"] = "api"
    if host_ns is not None:
        attributes["host_time_ns"] = str(host_ns)
        attributes["host_resolution_ns"] = str(host_resolution_ns)
        if host_ns + host_resolution_ns - 1 < at:
            at = host_ns + host_resolution_ns - 1
            attributes["time_source"] = "host"
    if not_before is not None and at <= not_before:
        at = not_before + 1
    return Stamp(at, attributes)


# --- slots -------------------------------------------------------------------------------------


class SlotBook:
    """Stable instance names for the pods of each service: '<service>-<slot>' (thread-safe).

    Shared by the event trackers and the target's instances(), so both name a pod the same.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}  # pod uid -> instance name
        self._holders: dict[tuple[str, int], str] = {}  # (service, slot) -> pod uid

    def observe(self, pods: Iterable[PodView]) -> None:
        """Release the slots of pods that stopped being live, then give new live pods one."""
        pods = list(pods)
        with self._lock:
            for pod in pods:
                if not pod.live:
                    self._release(pod.uid)
            fresh = [p for p in pods if p.live and p.uid not in self._names]
            for pod in sorted(fresh, key=lambda p: (p.created_ns or 0, p.name)):
                self._assign(pod)

    def name_of(self, pod: PodView) -> str:
        """The pod's instance name (its slot; its own name if it never held one)."""
        self.observe([pod])
        with self._lock:
            return self._names.get(pod.uid) or pod.name

    def name_by_uid(self, uid: str, fallback: str) -> str:
        with self._lock:
            return self._names.get(uid) or fallback

    def forget(self, uid: str) -> None:
        """The pod is gone: release its slot (its name is kept for late events)."""
        with self._lock:
            self._release(uid)

    def _release(self, uid: str) -> None:
        for key, holder in list(self._holders.items()):
            if holder == uid:
                del self._holders[key]

    def _assign(self, pod: PodView) -> None:
        service = pod.labels.get(SERVICE_LABEL) or "pod"
        slot = 1
        while (service, slot) in self._holders:
            slot += 1
        self._holders[(service, slot)] = pod.uid
        self._names[pod.uid] = f"{service}-{slot}"


# --- pods --------------------------------------------------------------------------------------


@dataclass
class _PodMemory:
    view: PodView
    started: set[str] = field(default_factory=set)
    died: set[str] = field(default_factory=set)
    last_die_ns: int | None = None
    last_start_ns: int | None = None


class PodTracker:
    """Pod and container events from successive views of the run's pods."""

    def __init__(
        self,
        slots: SlotBook,
        started_at: StartedAt | None = None,
        exited_at: ExitedAt | None = None,
        host_via: Callable[[], str | None] | None = None,
    ) -> None:
        self.slots = slots
        self.started_at = started_at
        self.exited_at = exited_at
        # who read the host instants, when not this host (the events' `host_via`: "agent")
        self.host_via = host_via
        self._pods: dict[str, _PodMemory] = {}

    def live_pods(self) -> list[tuple[str, PodView]]:
        """The live pods as last seen, with their instance names."""
        return [
            (self.slots.name_by_uid(uid, memory.view.name), memory.view)
            for uid, memory in self._pods.items()
            if memory.view.live
        ]

    def resync(self, pods: Sequence[PodView], received_ns: int) -> list[EngineEvent]:
        """A full list (after a watch could not resume): changes, and pods that are gone."""
        events = [e for pod in pods for e in self.update(pod, received_ns)]
        present = {p.uid for p in pods}
        for uid in [u for u in self._pods if u not in present]:
            events += self.deleted(self._pods[uid].view, received_ns)
        return events

    def update(self, pod: PodView, received_ns: int) -> list[EngineEvent]:
        memory = self._pods.get(pod.uid)
        before = memory.view if memory is not None else None
        if memory is None:
            memory = self._pods[pod.uid] = _PodMemory(view=pod)
        memory.view = pod
        name = self.slots.name_of(pod)
        emit = _PodEmitter(name, pod, received_ns)
        if before is None:
            emit.pod("create", pod.created_ns)
        if pod.node and (before is None or not before.node):
            emit.pod("pod_scheduled", pod.scheduled_ns)
        if pod.deleting and (before is None or not before.deleting):
            reason = pod.disruption or pod.reason
            emit.pod(
                "pod_terminating",
                pod.deletion_requested_ns,
                grace_period_s=str(pod.grace_s if pod.grace_s is not None else ""),
                reason=reason,
            )
        if pod.container is not None:
            self._container_events(emit, memory, pod.container)
        self._health_events(emit, memory, before, pod)
        if before is not None and before.phase != pod.phase and pod.phase:
            emit.pod("pod_phase", None, phase=pod.phase, old_phase=before.phase, reason=pod.reason)
        return emit.events

    def deleted(self, pod: PodView, received_ns: int) -> list[EngineEvent]:
        memory = self._pods.pop(pod.uid, None)
        name = self.slots.name_by_uid(pod.uid, pod.name)
        self.slots.forget(pod.uid)
        emit = _PodEmitter(name, pod, received_ns)
        running = pod.container
        if (
            memory is not None
            and running is not None
            and running.container_id
            and running.container_id in memory.started
            and running.container_id not in memory.died
        ):
            # the last update did not show its end: the pod went with its container
            exited = self._exit_seen(running.container_id)
            emit.container(
                "die",
                running,
                None,
                extra={"reason": "pod deleted", **self._via(exited)},
                host_ns=exited,
                host_resolution_ns=EXIT_RESOLUTION_NS,
            )
        emit.pod("destroy", None)
        return emit.events

    def _container_events(
        self, emit: _PodEmitter, memory: _PodMemory, container: ContainerView
    ) -> None:
        for ended in (container.last_terminated, container.terminated):
            if ended is not None:
                self._ended(emit, memory, container, ended)
        current = container.container_id
        if container.running_since_ns is not None and current and current not in memory.started:
            memory.started.add(current)
            started = self.started_at(current) if self.started_at is not None else None
            memory.last_start_ns = emit.container(
                "start",
                container,
                container.running_since_ns,
                not_before=memory.last_die_ns,
                extra={"restart_count": str(container.restart_count), **self._via(started)},
                host_ns=started,
            )

    def _ended(
        self, emit: _PodEmitter, memory: _PodMemory, container: ContainerView, ended: Termination
    ) -> None:
        key = ended.container_id or f"restart-{container.restart_count}"
        if key in memory.died:
            return
        if ended.container_id and ended.container_id not in memory.started:
            # a container that lived and ended between two updates: its start first
            memory.started.add(ended.container_id)
            memory.last_start_ns = emit.container(
                "start", container, ended.started_ns, container_id=ended.container_id
            )
        memory.died.add(key)
        exited = self._exit_seen(ended.container_id)
        details = {"exitCode": str(ended.exit_code), "reason": ended.reason, **self._via(exited)}
        if ended.signal is not None:
            details["signal"] = str(ended.signal)
        memory.last_die_ns = emit.container(
            "die",
            container,
            ended.finished_ns,
            not_before=memory.last_start_ns,
            container_id=ended.container_id,
            extra=details,
            host_ns=exited,
            host_resolution_ns=EXIT_RESOLUTION_NS,
        )
        if ended.reason == "OOMKilled":
            emit.container(
                "oom", container, ended.finished_ns, container_id=ended.container_id, extra=details
            )

    def _via(self, host_ns: int | None) -> dict[str, str]:
        """Who read a host instant, when it was not this host."""
        via = self.host_via() if self.host_via is not None and host_ns is not None else None
        return {"host_via": via} if via else {}

    def _exit_seen(self, container_id: str | None) -> int | None:
        """The exit as the node's runtime stamped it, when this host follows that runtime."""
        return self.exited_at(container_id) if self.exited_at and container_id else None

    def _health_events(
        self, emit: _PodEmitter, memory: _PodMemory, before: PodView | None, pod: PodView
    ) -> None:
        was = before.ready if before is not None else None
        if pod.ready is True and was is not True:
            emit.pod(
                "health_status",
                pod.ready_changed_ns,
                not_before=memory.last_start_ns,
                health="healthy",
            )
        elif pod.ready is False and was is True:
            emit.pod("health_status", pod.ready_changed_ns, health="unhealthy")


class _PodEmitter:
    """Builds the events of one pod update, with the pod's own attributes."""

    def __init__(self, instance: str, pod: PodView, received_ns: int) -> None:
        self.instance = instance
        self.pod_view = pod
        self.received_ns = received_ns
        self.events: list[EngineEvent] = []

    def _attributes(self) -> dict[str, str]:
        attributes = {"pod": self.pod_view.name, "pod_uid": self.pod_view.uid}
        if self.pod_view.node:
            attributes["node"] = self.pod_view.node
        return attributes

    def pod(
        self, action: str, api_ns: int | None, not_before: int | None = None, **extra: str
    ) -> int:
        at = stamp(self.received_ns, api_ns, not_before)
        attributes = {**self._attributes(), **at.attributes, **extra}
        if not_before is not None and at.time_ns == not_before + 1:
            attributes["ordered_after"] = str(not_before)
        self.events.append(EngineEvent(at.time_ns, action, self.instance, None, attributes))
        return at.time_ns

    def container(
        self,
        action: str,
        container: ContainerView,
        api_ns: int | None,
        not_before: int | None = None,
        container_id: str | None = None,
        extra: Mapping[str, str] | None = None,
        host_ns: int | None = None,
        host_resolution_ns: int = HOST_RESOLUTION_NS,
    ) -> int:
        at = stamp(self.received_ns, api_ns, not_before, host_ns, host_resolution_ns)
        attributes = {**self._attributes(), **at.attributes, **(extra or {})}
        if container.runtime:
            attributes["runtime"] = container.runtime
        if not_before is not None and at.time_ns == not_before + 1:
            attributes["ordered_after"] = str(not_before)
        cid = container_id if container_id is not None else container.container_id
        self.events.append(EngineEvent(at.time_ns, action, self.instance, cid or None, attributes))
        return at.time_ns


# --- endpoints ---------------------------------------------------------------------------------


class EndpointTracker:
    """endpoint_added / endpoint_removed from successive views of the Service's slices."""

    def __init__(self, slots: SlotBook) -> None:
        self.slots = slots
        self._slices: dict[str, SliceView] = {}

    def update(self, view: SliceView, received_ns: int) -> list[EngineEvent]:
        before = self._slices.get(view.name)
        self._slices[view.name] = view
        return self._diff(before, view, received_ns)

    def deleted(self, view: SliceView, received_ns: int) -> list[EngineEvent]:
        before = self._slices.pop(view.name, None)
        return self._diff(before, None, received_ns)

    def resync(self, views: Sequence[SliceView], received_ns: int) -> list[EngineEvent]:
        events = [e for view in views for e in self.update(view, received_ns)]
        present = {v.name for v in views}
        for name in [n for n in self._slices if n not in present]:
            events += self.deleted(self._slices[name], received_ns)
        return events

    def _diff(
        self, before: SliceView | None, after: SliceView | None, received_ns: int
    ) -> list[EngineEvent]:
        old = _ready_endpoints(before)
        new = _ready_endpoints(after)
        every = {**_all_endpoints(before), **_all_endpoints(after)}
        changed = [(a, "endpoint_added") for a in sorted(new.keys() - old.keys())]
        changed += [(a, "endpoint_removed") for a in sorted(old.keys() - new.keys())]
        latest = after or before
        trigger = latest.trigger_ns if latest is not None else None
        service = latest.service if latest is not None else ""
        events = []
        for address, action in changed:
            endpoint = every[address]
            at = stamp(received_ns, None)
            attributes = {
                **at.attributes,
                "address": address,
                "service": service,
                "pod": endpoint.pod,
                "pod_uid": endpoint.pod_uid,
                "node": endpoint.node,
                "serving": str(endpoint.serving).lower(),
                "terminating": str(endpoint.terminating).lower(),
            }
            if trigger is not None:
                attributes["api_time_ns"] = str(trigger)
            instance = self.slots.name_by_uid(endpoint.pod_uid, endpoint.pod or address)
            events.append(EngineEvent(at.time_ns, action, instance, None, attributes))
        return events


def _all_endpoints(view: SliceView | None) -> dict[str, EndpointView]:
    return {e.address: e for e in view.endpoints} if view is not None else {}


def _ready_endpoints(view: SliceView | None) -> dict[str, EndpointView]:
    return {a: e for a, e in _all_endpoints(view).items() if e.ready}


# --- Deployments -------------------------------------------------------------------------------


class DeploymentTracker:
    """service_degraded / service_converged as the Deployment's ready count moves."""

    def __init__(self) -> None:
        self._full: dict[str, bool] = {}

    def update(self, view: DeploymentView, received_ns: int) -> list[EngineEvent]:
        full = view.desired > 0 and view.ready >= view.desired
        before = self._full.get(view.name)
        self._full[view.name] = full
        if full == before or (before is None and not full):
            return []
        at = stamp(received_ns, None)
        attributes = {
            **at.attributes,
            "service": view.name,
            "ready": str(view.ready),
            "available": str(view.available),
            "desired": str(view.desired),
        }
        action = "service_converged" if full else "service_degraded"
        return [EngineEvent(at.time_ns, action, None, None, attributes)]

    def deleted(self, view: DeploymentView, received_ns: int) -> list[EngineEvent]:
        del received_ns
        self._full.pop(view.name, None)
        return []

    def resync(self, views: Sequence[DeploymentView], received_ns: int) -> list[EngineEvent]:
        return [e for view in views for e in self.update(view, received_ns)]


# --- nodes -------------------------------------------------------------------------------------


class NodeTracker:
    """node_state, node_availability and node_taint; the first view of a node is its baseline."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeView] = {}

    def update(self, view: NodeView, received_ns: int) -> list[EngineEvent]:
        before = self._nodes.get(view.name)
        self._nodes[view.name] = view
        if before is None:
            return []
        events = []
        if before.ready != view.ready:
            at = stamp(received_ns, view.ready_changed_ns)
            events.append(
                _node_event(
                    at,
                    "node_state",
                    view.name,
                    old=_node_word(before.ready),
                    new=_node_word(view.ready),
                    condition=view.ready or "unknown",
                    reason=view.ready_reason,
                )
            )
        if before.unschedulable != view.unschedulable:
            words = {True: "cordoned", False: "active"}
            events.append(
                _node_event(
                    stamp(received_ns, None),
                    "node_availability",
                    view.name,
                    old=words[before.unschedulable],
                    new=words[view.unschedulable],
                )
            )
        events += _taint_events(before, view, received_ns)
        return events

    def deleted(self, view: NodeView, received_ns: int) -> list[EngineEvent]:
        del received_ns
        self._nodes.pop(view.name, None)
        return []

    def resync(self, views: Sequence[NodeView], received_ns: int) -> list[EngineEvent]:
        return [e for view in views for e in self.update(view, received_ns)]


def _node_word(condition: str) -> str:
    return "ready" if condition == "True" else "down"


def _node_event(at: Stamp, action: str, node: str, **extra: str) -> EngineEvent:
    return EngineEvent(at.time_ns, action, None, None, {**at.attributes, "node": node, **extra})


def _taint_events(before: NodeView, after: NodeView, received_ns: int) -> list[EngineEvent]:
    old = {(t.key, t.effect): t for t in before.taints}
    new = {(t.key, t.effect): t for t in after.taints}
    events = []
    for key in sorted(new.keys() - old.keys()):
        at = stamp(received_ns, new[key].added_ns)
        events.append(
            _node_event(at, "node_taint", after.name, key=key[0], effect=key[1], change="added")
        )
    for key in sorted(old.keys() - new.keys()):
        at = stamp(received_ns, None)
        events.append(
            _node_event(at, "node_taint", after.name, key=key[0], effect=key[1], change="removed")
        )
    return events
