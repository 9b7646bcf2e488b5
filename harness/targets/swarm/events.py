"""Swarm's own view of a run: task state changes and the service's strength, as events.

Swarm does not restart a failed task: it schedules a NEW task, with a new container, in the
same slot. The engine's container events show the containers; this module adds what Swarm says:
task_state (task_id, slot, state, desired_state, message, error, exit_code, observed_ns and the
task's node; time_ns is Swarm's own Status.Timestamp), service_degraded / service_converged
(running tasks below / back at the desired replicas), and on a multi-node swarm node_state and
node_availability (node, node_id, old, new; the manager's event time).

Tasks are polled (the Engine API has no watch for tasks): a state passed through between two
polls is not seen, but every state seen carries Swarm's timestamp (`observed_ns`: when the poll
saw it). The instance of a task is "<workload>-<slot>", stable across replacements.

Container events come from every engine that runs the run's tasks (a manager does not relay
its workers'); a stream that ends (its daemon killed by a node fault) is subscribed to again
from the last event seen, every second until the daemon answers. The full event table: see
docs/TARGETS.md, Swarm events.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import docker
import docker.errors

from harness.targets.base import RUN_LABEL, STREAM_CLOSED, EngineEvent, queued_events
from harness.targets.docker.engine import engine_event

NS_PER_S = 1_000_000_000
TASK_NAME_LABEL = "com.docker.swarm.task.name"
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_swarm_time(text: str) -> int:
    """An RFC 3339 timestamp with up to nanosecond digits, as Unix nanoseconds."""
    match = _TIME.match(text.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    whole, fraction, zone = match.groups()
    zone = "+00:00" if zone == "Z" else zone
    seconds = int(datetime.fromisoformat(whole + zone).timestamp())
    return seconds * NS_PER_S + int((fraction or "0")[:9].ljust(9, "0"))


def service_name(run_id: str, workload: str) -> str:
    return f"chaos-{run_id}-{workload}"


def slot_instance(run_id: str, swarm_service: str, slot: int) -> str:
    """The harness's instance name for one slot of the run's service (e.g. web-2)."""
    return f"{swarm_service.removeprefix(f'chaos-{run_id}-')}-{slot}"


@dataclass(frozen=True)
class TaskView:
    """What the harness needs of one Swarm task at one poll."""

    task_id: str
    service: str
    slot: int
    state: str
    desired_state: str
    timestamp_ns: int
    container_id: str
    pid: int
    published_port: int | None
    message: str
    error: str
    exit_code: int | None
    node_id: str = ""
    updated_ns: int = 0  # the task object's last write (a desired-state change moves it)

    @property
    def running(self) -> bool:
        return self.state == "running" and self.desired_state == "running"


def task_view(raw: Mapping[str, Any], service: str) -> TaskView:
    status = raw.get("Status") or {}
    container = status.get("ContainerStatus") or {}
    ports = (status.get("PortStatus") or {}).get("Ports") or []
    published = next((int(p["PublishedPort"]) for p in ports if p.get("PublishedPort")), None)
    exit_code = container.get("ExitCode")
    return TaskView(
        task_id=str(raw.get("ID", "")),
        service=service,
        slot=int(raw.get("Slot") or 0),
        state=str(status.get("State", "")),
        desired_state=str(raw.get("DesiredState", "")),
        timestamp_ns=parse_swarm_time(str(status.get("Timestamp") or raw.get("UpdatedAt"))),
        container_id=str(container.get("ContainerID") or ""),
        pid=int(container.get("PID") or 0),
        published_port=published,
        message=str(status.get("Message", "")),
        error=str(status.get("Err", "")),
        exit_code=int(exit_code) if exit_code is not None else None,
        node_id=str(raw.get("NodeID") or ""),
        updated_ns=_time_or_zero(raw.get("UpdatedAt")),
    )


def _time_or_zero(text: object) -> int:
    try:
        return parse_swarm_time(str(text)) if text else 0
    except ValueError:
        return 0


class TaskTracker:
    """Turns successive task lists into task_state and service strength events (pure logic)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._seen: dict[str, tuple[str, str]] = {}
        self._full: bool | None = None
        # node ID -> hostname, filled in by a target that knows its nodes (the lab)
        self.node_names: dict[str, str] = {}

    def update(
        self, tasks: Sequence[TaskView], desired: int, observed_ns: int
    ) -> list[EngineEvent]:
        events = []
        for task in tasks:
            before = self._seen.get(task.task_id)
            if before == (task.state, task.desired_state):
                continue
            self._seen[task.task_id] = (task.state, task.desired_state)
            # only the desired state moved (e.g. Swarm gave up a task on a node it lost): the
            # status timestamp is the old state's, the task's last write is this change's
            only_desired = before is not None and before[0] == task.state
            at_ns = max(task.timestamp_ns, task.updated_ns) if only_desired else task.timestamp_ns
            events.append(self._task_event(task, observed_ns, at_ns))
        events.sort(key=lambda e: e.time_ns)
        strength = self._strength_event(tasks, desired, events)
        return events + ([strength] if strength is not None else [])

    def _task_event(self, task: TaskView, observed_ns: int, at_ns: int) -> EngineEvent:
        attributes = {
            "task_id": task.task_id,
            "slot": str(task.slot),
            "state": task.state,
            "desired_state": task.desired_state,
            "service": task.service,
            "observed_ns": str(observed_ns),
        }
        if task.message:
            attributes["message"] = task.message
        if task.error:
            attributes["error"] = task.error
        if task.exit_code is not None and task.state in ("failed", "complete", "shutdown"):
            attributes["exit_code"] = str(task.exit_code)
        if task.node_id:
            attributes["node_id"] = task.node_id
            attributes["node"] = self.node_names.get(task.node_id, task.node_id)
        return EngineEvent(
            time_ns=at_ns,
            action="task_state",
            instance=slot_instance(self.run_id, task.service, task.slot),
            container_id=task.container_id or None,
            attributes=attributes,
        )

    def _strength_event(
        self, tasks: Sequence[TaskView], desired: int, changes: Sequence[EngineEvent]
    ) -> EngineEvent | None:
        running = [t for t in tasks if t.running]
        full = desired > 0 and len(running) >= desired
        if full == self._full or (self._full is None and not full):
            return None
        self._full = full
        if full:
            at_ns = max(t.timestamp_ns for t in running)
            action = "service_converged"
        else:
            lost = [e.time_ns for e in changes if e.attributes.get("state") != "running"]
            at_ns = min(lost or [e.time_ns for e in changes] or [time.time_ns()])
            action = "service_degraded"
        service = tasks[0].service if tasks else ""
        return EngineEvent(
            time_ns=at_ns,
            action=action,
            instance=None,
            container_id=None,
            attributes={"service": service, "running": str(len(running)), "desired": str(desired)},
        )


Listener = Callable[[Sequence[TaskView], Sequence[EngineEvent]], None]


class TaskWatcher:
    """Polls the run's service and its tasks on a thread; tells listeners what changed.

    Listeners get every poll's task list (current tasks only: desired state running, or the
    latest task of a slot) and the events of that poll. Before the service exists a poll sees
    nothing and tells nobody. A poll the manager cannot answer (no quorum: even reads fail with
    DeadlineExceeded) tells nobody either; `latest` keeps the last view and the next poll tries
    again. `client` may be replaced (the lab's manager, once deploy() has it).
    """

    def __init__(self, client: docker.DockerClient, run_id: str, interval_s: float = 0.1):
        self.client = client
        self.run_id = run_id
        self.interval_s = interval_s
        self.tracker = TaskTracker(run_id)
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.latest: list[TaskView] = []

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def start(self) -> TaskWatcher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="swarm-tasks", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(docker.errors.DockerException, OSError, ValueError):
                self.poll()
            self._stop.wait(self.interval_s)

    def poll(self) -> list[TaskView]:
        """One poll: read the service and its tasks, tell the listeners; the task list."""
        observed_ns = time.time_ns()
        services = self.client.api.services(  # type: ignore[no-untyped-call]
            filters={"label": f"{RUN_LABEL}={self.run_id}"}
        )
        tasks: list[TaskView] = []
        desired = 0
        for service in services:
            name = str(service["Spec"]["Name"])
            replicated = service["Spec"].get("Mode", {}).get("Replicated") or {}
            desired += int(replicated.get("Replicas") or 0)
            raw = self.client.api.tasks(filters={"service": name})  # type: ignore[no-untyped-call]
            tasks.extend(task_view(t, name) for t in raw)
        if not services:
            return []
        events = self.tracker.update(tasks, desired, observed_ns)
        self.latest = tasks
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(tasks, events)
        return tasks


RESUBSCRIBE_S = 1.0
Convert = Callable[[Mapping[str, Any]], "EngineEvent | None"]


class EnginePump:
    """One engine's event stream read on a thread, subscribed again whenever it ends.

    A node fault may kill the engine's daemon: its stream ends, and is opened again (from the
    last event seen; events seen twice are dropped) once the daemon answers. close() ends it.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        filters: Mapping[str, Any],
        since_ns: int,
        convert: Convert,
        put: Callable[[EngineEvent], None],
        name: str,
    ) -> None:
        self._client = client
        self._filters = dict(filters)
        self._since_ns = since_ns
        self._convert = convert
        self._put = put
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._stream: Any = None
        self._seen: set[tuple[int, str, str]] = set()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed.is_set():
            with contextlib.suppress(docker.errors.DockerException, OSError, ValueError):
                stream = self._client.events(
                    since=self._since_ns // NS_PER_S, filters=self._filters, decode=True
                )
                with self._lock:
                    self._stream = stream
                if self._closed.is_set():  # closed while subscribing: close() missed it
                    stream.close()
                    break
                self._read(stream)
            self._closed.wait(RESUBSCRIBE_S)

    def _read(self, stream: Iterator[Mapping[str, Any]]) -> None:
        with contextlib.suppress(
            docker.errors.DockerException, OSError, ValueError, AttributeError
        ):
            for raw in stream:
                time_ns = int(raw.get("timeNano") or int(raw.get("time", 0)) * NS_PER_S)
                key = (time_ns, str(raw.get("Actor", {}).get("ID")), str(raw.get("Action")))
                if time_ns < self._since_ns or key in self._seen:
                    continue
                self._remember(key)
                event = self._convert(raw)
                if event is not None:
                    self._put(event)

    def _remember(self, key: tuple[int, str, str]) -> None:
        """Events at or after the newest one seen may come again after a resubscription."""
        if key[0] > self._since_ns:
            self._since_ns = key[0]
            if len(self._seen) > 1000:
                self._seen = {k for k in self._seen if k[0] >= self._since_ns - NS_PER_S}
        self._seen.add(key)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):  # closing under a reading thread: anything
                stream.close()
        self._thread.join(timeout=5)


def node_event(raw: Mapping[str, Any]) -> EngineEvent | None:
    """A manager's node event as node_state / node_availability (None for other changes)."""
    attributes = raw.get("Actor", {}).get("Attributes", {}) or {}
    for field, action in (("state", "node_state"), ("availability", "node_availability")):
        new = attributes.get(f"{field}.new")
        if new is None:
            continue
        return EngineEvent(
            time_ns=int(raw.get("timeNano") or int(raw.get("time", 0)) * NS_PER_S),
            action=action,
            instance=None,
            container_id=None,
            attributes={
                "node": str(attributes.get("name", "")),
                "node_id": str(raw.get("Actor", {}).get("ID", "")),
                "old": str(attributes.get(f"{field}.old", "")),
                "new": str(new),
            },
        )
    return None


class SwarmEventStream:
    """The engines' container events for the run merged with Swarm's task and node events.

    Producers feed one queue: one thread per engine reading its container events (instances
    renamed to their slot; with `node`, the event says which node's engine it came from), one
    reading the manager's node events (a multi-node swarm), and the task watcher. Engines can
    be added after the stream is made: a lab exists only once the target has deployed. Events
    arrive roughly, not strictly, in time order; the analysis sorts by time_ns. close() stops
    every producer and ends the iteration.
    """

    def __init__(self, run_id: str, since_ns: int, watcher: TaskWatcher) -> None:
        self.run_id = run_id
        self._since_ns = since_ns
        self._queue: queue.Queue[object] = queue.Queue()
        self._watcher = watcher
        self._pumps: list[EnginePump] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        watcher.subscribe(self._on_tasks)

    def add_engine(self, client: docker.DockerClient, node: str | None = None) -> None:
        """Also read the container events of the run on this engine (a node's, if named)."""

        def convert(raw: Mapping[str, Any]) -> EngineEvent | None:
            event = engine_event(raw)
            if event is None:
                return None
            event = self._renamed(event)
            if node is not None:
                event = dataclasses.replace(event, attributes={**event.attributes, "node": node})
            return event

        filters = {"label": f"{RUN_LABEL}={self.run_id}", "type": "container"}
        self._add(client, filters, convert, f"swarm-events-{node or 'engine'}")

    def add_node_events(self, manager: docker.DockerClient) -> None:
        """Also read the manager's node events (when it marks a node down, ready again...)."""
        self._add(manager, {"type": "node"}, node_event, "swarm-node-events")

    def _add(
        self, client: docker.DockerClient, filters: Mapping[str, Any], convert: Convert, name: str
    ) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self._pumps.append(
                EnginePump(client, filters, self._since_ns, convert, self._queue.put, name)
            )

    def _on_tasks(self, _tasks: Sequence[TaskView], events: Sequence[EngineEvent]) -> None:
        for event in events:
            if event.time_ns >= self._since_ns:
                self._queue.put(event)

    def _renamed(self, event: EngineEvent) -> EngineEvent:
        """The engine names a task's container <service>.<slot>.<task id>: use the slot name."""
        task_name = event.attributes.get(TASK_NAME_LABEL, "")
        parts = task_name.rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return event
        instance = slot_instance(self.run_id, parts[0], int(parts[1]))
        return dataclasses.replace(event, instance=instance)

    def __iter__(self) -> Iterator[EngineEvent]:
        return queued_events(self._queue)

    def close(self) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            pumps = list(self._pumps)
        self._watcher.unsubscribe(self._on_tasks)
        for pump in pumps:
            pump.close()
        self._queue.put(STREAM_CLOSED)
