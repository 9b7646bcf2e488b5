"""Swarm's own view of a run: task state changes and the service's strength, as events.

Swarm does not restart a failed task: it marks it failed (or shutdown, complete, rejected) and
schedules a NEW task, with a new container, in the same slot, after the restart delay. The
engine's container events show the containers; this module adds what Swarm itself says:

    task_state          one task reached a state (new, pending, assigned, accepted, preparing,
                        ready, starting, running, complete, shutdown, failed, rejected, orphaned,
                        remove); attributes: task_id, slot, state, desired_state, message,
                        error, exit_code, observed_ns. time_ns is the task's own
                        Status.Timestamp, i.e. when Swarm says it entered that state.
    service_degraded    running tasks fell below the desired replicas; time_ns is the instant
                        of the state change that made it so.
    service_converged   running tasks are back at the desired replicas (also recorded the
                        first time the service reaches full strength); time_ns is when the last
                        missing task became running.

Tasks are polled (the Engine API has no watch for tasks); a state that a task passes through
between two polls is not seen, but every state that is seen carries Swarm's timestamp, not the
poll's (`observed_ns` says when the poll saw it, so the poll lag is measurable).

The instance of a task is "<workload>-<slot>" (e.g. web-2), stable across replacements, so the
analysis can follow one slot through die -> replacement task -> running.
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

from harness.targets.base import RUN_LABEL, EngineEvent
from harness.targets.docker import DockerEventStream

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
    )


class TaskTracker:
    """Turns successive task lists into task_state and service strength events (pure logic)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._seen: dict[str, tuple[str, str]] = {}
        self._full: bool | None = None

    def update(
        self, tasks: Sequence[TaskView], desired: int, observed_ns: int
    ) -> list[EngineEvent]:
        events = [self._task_event(t, observed_ns) for t in tasks if self._changed(t)]
        events.sort(key=lambda e: e.time_ns)
        strength = self._strength_event(tasks, desired, events)
        return events + ([strength] if strength is not None else [])

    def _changed(self, task: TaskView) -> bool:
        key = (task.state, task.desired_state)
        if self._seen.get(task.task_id) == key:
            return False
        self._seen[task.task_id] = key
        return True

    def _task_event(self, task: TaskView, observed_ns: int) -> EngineEvent:
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
        return EngineEvent(
            time_ns=task.timestamp_ns,
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
    nothing and tells nobody.
    """

    def __init__(self, client: docker.DockerClient, run_id: str, interval_s: float = 0.1):
        self.client = client
        self.run_id = run_id
        self.interval_s = interval_s
        self._tracker = TaskTracker(run_id)
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
        events = self._tracker.update(tasks, desired, observed_ns)
        self.latest = tasks
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(tasks, events)
        return tasks


_CLOSED = object()


class SwarmEventStream:
    """The engine's container events for the run merged with Swarm's task events.

    Two producers feed one queue: a thread reading the engine's event stream (instances renamed
    to their slot), and the task watcher. Events arrive roughly, not strictly, in time order;
    the analysis sorts by time_ns. close() stops both and ends the iteration.
    """

    def __init__(
        self, client: docker.DockerClient, run_id: str, since_ns: int, watcher: TaskWatcher
    ) -> None:
        self.run_id = run_id
        self._since_ns = since_ns
        self._queue: queue.Queue[object] = queue.Queue()
        self._engine = DockerEventStream(client, run_id, since_ns)
        self._watcher = watcher
        self._closed = threading.Event()
        watcher.subscribe(self._on_tasks)
        self._thread = threading.Thread(target=self._pump, name="swarm-engine-events", daemon=True)
        self._thread.start()

    def _on_tasks(self, _tasks: Sequence[TaskView], events: Sequence[EngineEvent]) -> None:
        for event in events:
            if event.time_ns >= self._since_ns:
                self._queue.put(event)

    def _pump(self) -> None:
        for event in self._engine:
            self._queue.put(self._renamed(event))

    def _renamed(self, event: EngineEvent) -> EngineEvent:
        """The engine names a task's container <service>.<slot>.<task id>: use the slot name."""
        task_name = event.attributes.get(TASK_NAME_LABEL, "")
        parts = task_name.rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return event
        instance = slot_instance(self.run_id, parts[0], int(parts[1]))
        return dataclasses.replace(event, instance=instance)

    def __iter__(self) -> Iterator[EngineEvent]:
        while True:
            item = self._queue.get()
            if item is _CLOSED:
                return
            assert isinstance(item, EngineEvent)
            yield item

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._watcher.unsubscribe(self._on_tasks)
        with contextlib.suppress(docker.errors.DockerException, OSError, AttributeError):
            self._engine.close()
        self._thread.join(timeout=5)
        self._queue.put(_CLOSED)
