"""The Podman target: the Docker target driven through Podman's Docker-compatible API.

`target: podman` starts a Podman API service for the run (`harness.engines.podman`) and stops
it at teardown; `target: {kind: podman, engine: unix:///PATH}` uses that service as it is. The
Docker SDK drives it unchanged (everything comes from DockerTarget); what differs on Podman
4.3 without systemd is here:

- Health checks: Podman runs them from systemd timers, so without systemd they never run. The
  target runs each replica's check through the engine (`GET /libpod/containers/{id}/healthcheck`)
  every `health.interval` from a thread per replica; status and failing streak are the engine's.
- Events: `containerExitCode` is renamed to Docker's exitCode; Podman's own `health_status`
  events are stale (podman issue 19237) and replaced by the status each check recorded,
  emitted on a change only (PodmanEventStream).
- Restart policy: a host SIGKILL is a crash, restarted in place; an API kill or stop is a manual
  stop the policy leaves down, as on Docker.
- RLIMITs: the run's service gets `default_ulimits = []` where the sandbox refuses Podman's
  raise (harness.engines.podman). Networks: a /24 of 198.19.0.0/16 (Docker's: 198.18.0.0/16).
- Elsewhere (a given engine on another host, or CHAOS_HARNESS_HOST_ACCESS=none): as Docker's
  remote engine, ports published and host-side faults through the agent container.

After the harness died: `attach()` reuses the run's service while it lives, else starts one;
`remove_orphans()` starts a short-lived service to remove dead runs' objects, then stops the
services they left, by their recorded PIDs. Details and measurements: docs/TARGETS.md, Podman.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import queue
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Set
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from harness.engines import podman
from harness.errors import FaultError, TargetError
from harness.hostsys import run
from harness.specs import ScenarioBase, TargetSpec, WorkloadSpec
from harness.targets.base import (
    INSTANCE_LABEL,
    EngineEvent,
    Instance,
    Target,
    owner_alive,
    owner_label_value,
)
from harness.targets.docker.engine import DockerEventStream, connect
from harness.targets.docker.spec import engine_spec
from harness.targets.docker.target import DockerTarget
from harness.targets.podman.preflight import podman_preflight
from harness.targets.swarm.events import parse_swarm_time

LIBPOD_API = "v4.0.0"
HEALTH_CALL_TIMEOUT_S = 30.0
RLIMIT_HINT = (
    "; this Podman service raises RLIMIT_NOFILE/NPROC, which this machine refuses: start it "
    "with CONTAINERS_CONF pointing at a containers.conf holding '[containers]' and "
    "'default_ulimits = []', or leave target.engine out to let the run start its own"
)


@dataclass(frozen=True)
class HealthResult:
    """One check the engine ran and recorded: the status after it, stamped by the engine."""

    container_id: str
    instance: str
    status: str
    time_ns: int


class HealthFeed:
    """Fans the timers' results out to every event stream that is open."""

    def __init__(self) -> None:
        self._queues: list[queue.SimpleQueue[HealthResult | EngineEvent | None]] = []
        self._lock = threading.Lock()

    def subscribe(self, into: queue.SimpleQueue[HealthResult | EngineEvent | None]) -> None:
        with self._lock:
            self._queues.append(into)

    def unsubscribe(self, into: queue.SimpleQueue[HealthResult | EngineEvent | None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._queues.remove(into)

    def publish(self, result: HealthResult) -> None:
        with self._lock:
            for into in self._queues:
                into.put(result)


class PodmanEventStream:
    """The engine's events in Docker's dialect, with health from the checks themselves.

    Podman 4.3's own `health_status` events are stale (podman issue 19237; see docs/TARGETS.md,
    Podman), so they are dropped, and the status the engine recorded after each check the target
    ran (its Health.Log end time) stands in, emitted only on a change, as Docker does; a start or
    a die starts the status over.
    """

    def __init__(
        self,
        inner: DockerEventStream,
        feed: HealthFeed,
        on_start: Callable[[str], None] = lambda instance: None,
    ) -> None:
        self._inner = inner
        self._feed = feed
        self._on_start = on_start
        self._queue: queue.SimpleQueue[HealthResult | EngineEvent | None] = queue.SimpleQueue()
        self._health: dict[str, str] = {}
        feed.subscribe(self._queue)
        self._reader = threading.Thread(target=self._read, name="podman-events", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for event in self._inner:
            self._queue.put(event)
        self._queue.put(None)

    def __iter__(self) -> Iterator[EngineEvent]:
        while (item := self._queue.get()) is not None:
            event = self._translate(item)
            if event is not None:
                yield event

    def _translate(self, item: HealthResult | EngineEvent) -> EngineEvent | None:
        if isinstance(item, EngineEvent):
            if item.action == "health_status":
                return None  # stale on Podman 4.3: the checks' own results stand in
            if item.action in ("start", "die") and item.container_id:
                self._health.pop(item.container_id, None)
            if item.action == "start" and item.instance:
                self._on_start(item.instance)
            return item
        if self._health.get(item.container_id) == item.status:
            return None
        self._health[item.container_id] = item.status
        return EngineEvent(
            time_ns=item.time_ns,
            action="health_status",
            instance=item.instance,
            container_id=item.container_id,
            attributes={"health": item.status, "source": "healthcheck run by the harness"},
        )

    def close(self) -> None:
        self._feed.unsubscribe(self._queue)
        self._inner.close()
        self._queue.put(None)


class HealthcheckTimer:
    """Runs one container's health check through the engine every interval (systemd's job)."""

    def __init__(
        self,
        client: docker.DockerClient,
        container_id: str,
        instance: str,
        interval_s: float,
        feed: HealthFeed,
    ) -> None:
        self._client = client
        self._container_id = container_id
        self._instance = instance
        self._url = f"{client.api.base_url}/{LIBPOD_API}/libpod/containers/{container_id}"
        self._interval_s = interval_s
        self._feed = feed
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"healthcheck-{instance}", daemon=True
        )

    def start(self) -> HealthcheckTimer:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.run_once()

    def run_once(self) -> str | None:
        """One check; the status the engine recorded, or None (not running, paused, gone)."""
        try:
            answer = self._client.api.get(f"{self._url}/healthcheck", timeout=HEALTH_CALL_TIMEOUT_S)
            if answer.status_code != 200:
                return None
            status = str(answer.json().get("Status", ""))
            ended_ns = self._last_check_end() or time.time_ns()
        except (docker.errors.DockerException, OSError, ValueError):
            return None  # the service is going away: teardown follows
        self._feed.publish(HealthResult(self._container_id, self._instance, status, ended_ns))
        return status

    def _last_check_end(self) -> int | None:
        """When the engine says the last check ended (its Health.Log), in Unix nanoseconds."""
        state = self._client.api.inspect_container(self._container_id).get("State") or {}
        log = (state.get("Health") or state.get("Healthcheck") or {}).get("Log") or []
        try:
            return parse_swarm_time(str(log[-1]["End"])) if log else None
        except (KeyError, ValueError):
            return None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=HEALTH_CALL_TIMEOUT_S)


class PodmanTarget(DockerTarget):
    """Replicas as containers on a Podman API service (the run's own, or the given one)."""

    kind = "podman"
    subnet_pool = ipaddress.IPv4Network("198.19.0.0/16")

    def __init__(
        self,
        run_id: str,
        spec: TargetSpec,
        client: docker.DockerClient | None = None,
        service: podman.PodmanService | None = None,
        owns_service: bool | None = None,
    ) -> None:
        if client is None and engine_spec(spec).engine is None and service is None:
            service = podman.start(run_id, owner_label_value())
            owns_service = True
        if client is None and service is not None:
            client = _connect_service(service)
        self.service = service
        self._owns_service = bool(owns_service)
        self._timers: list[HealthcheckTimer] = []
        self._health_feed = HealthFeed()
        self._service_stopped = False
        super().__init__(run_id, spec, client)

    def engine_address(self) -> str | None:
        """The run's own service's socket, else the engine given."""
        return self.service.socket if self.service is not None else self.spec.engine

    # --- after the run's harness died -------------------------------------------------------

    @classmethod
    def attach(cls, run_id: str, spec: TargetSpec) -> Target:
        """The run's own service while it lives (not stopped by release), else a new one."""
        if engine_spec(spec).engine is not None:
            return cls(run_id, spec)
        running = podman.recorded(run_id)
        if running is not None and running.alive and podman.answers(running.socket):
            return cls(run_id, spec, service=running, owns_service=False)
        service = podman.start(f"attach-{os.getpid()}-{secrets.token_hex(2)}", owner_label_value())
        return cls(run_id, spec, service=service, owns_service=True)

    @classmethod
    def remove_orphans(cls, spec: TargetSpec, keep: Set[str]) -> list[str]:
        """The services dead runs left running, stopped by their recorded PIDs (no API
        needed, so first: a sweeper that never answers must not keep them alive); then the
        dead runs' objects, removed through a short-lived service of cleanup's own."""
        if engine_spec(spec).engine is not None:
            return super().remove_orphans(spec, keep)
        if shutil.which("podman") is None:
            return []  # no Podman here: nothing of a Podman run can exist
        stopped = _stop_dead_services(keep)
        try:
            sweeper = podman.start(
                f"cleanup-{os.getpid()}-{secrets.token_hex(2)}", owner_label_value()
            )
        except TargetError as exc:
            done = "; ".join(stopped) or "no service of a dead run was running"
            raise TargetError(f"{exc} (before that: {done})") from exc
        try:
            through = spec.model_copy(update={"engine": sweeper.socket})
            return super().remove_orphans(through, keep) + stopped
        finally:
            podman.stop(sweeper)

    @classmethod
    def preflight(cls, scenario: ScenarioBase) -> None:
        """A service of the run's own needs Podman installed; a given engine is Docker's check."""
        if engine_spec(scenario.target).engine is not None:
            super().preflight(scenario)
        else:
            podman_preflight(scenario)

    @classmethod
    def data_root_of(cls, spec: TargetSpec) -> Path | None:
        if engine_spec(spec).engine is not None:
            return super().data_root_of(spec)
        return podman.graph_root()

    # --- description ------------------------------------------------------------------------

    def engine_info(self) -> Mapping[str, str]:
        info = dict(super().engine_info())
        if self.service is not None:
            conf = self.service.conf
            info["podman_service"] = (
                f"started for the run (pid {self.service.pid}, {self.service.socket})"
                if self._owns_service
                else f"the run's service (pid {self.service.pid}, {self.service.socket})"
            )
            info["podman_containers_conf"] = (
                f"{conf}: default_ulimits = [] (this machine refuses RLIMIT_NOFILE/NPROC raises)"
                if conf
                else "the host's own"
            )
            if self.service.runtime is not None:
                info["podman_runtime"] = f"{self.service.runtime}: {self.service.runtime_reason}"
        else:
            info["podman_service"] = f"given: {self.spec.engine}"
        info["healthchecks"] = (
            "run by the harness through the engine (libpod healthcheck endpoint) every "
            "interval: Podman's own timers need systemd"
        )
        return info

    # --- deploy and health ------------------------------------------------------------------

    def deploy(self, workload: WorkloadSpec) -> None:
        super().deploy(workload)
        if workload.health is not None:
            interval = max(0.1, float(workload.health.interval))
            self._timers = [
                HealthcheckTimer(
                    self.client,
                    c.id or "",
                    c.labels.get(INSTANCE_LABEL) or c.name or "",
                    interval,
                    self._health_feed,
                ).start()
                for c in self._containers()
            ]

    def _create_container(self, workload: WorkloadSpec, name: str, address: str) -> None:
        try:
            super()._create_container(workload, name, address)
        except TargetError as exc:
            if "setting rlimit" in str(exc):
                raise TargetError(f"{exc}{RLIMIT_HINT}") from exc
            raise

    def start_instance(self, instance: Instance) -> None:
        super().start_instance(instance)
        self._forget_old_mac_of(instance.name)

    def restart_instance(self, instance: Instance, timeout_s: float) -> None:
        super().restart_instance(instance, timeout_s)
        self._forget_old_mac_of(instance.name)

    def _forget_old_mac_of(self, instance: str) -> None:
        """Any start the engine reports, whoever asked for it (a start after a stop gets a new
        MAC; the restart policy's restart after a crash kept it here, but need not)."""
        address = self._addresses.get(instance)
        if address is not None and not self.remote:  # a remote engine's host has its own
            _forget_old_mac(address)

    def events(self, since_ns: int) -> PodmanEventStream:  # type: ignore[override]
        return PodmanEventStream(
            super().events(since_ns), self._health_feed, on_start=self._forget_old_mac_of
        )

    # --- the end ----------------------------------------------------------------------------

    def teardown(self) -> None:
        """Remove the run's objects, then stop the run's service; once stopped, a second
        teardown has nothing left to reach (everything went before the service)."""
        if self._service_stopped:
            return
        super().teardown()

    def release(self) -> None:
        """Stop the health timers, and the service if this target started it."""
        for timer in self._timers:
            timer.stop()
        self._timers = []
        service, self.service = self.service, None
        if service is not None and self._owns_service:
            with contextlib.suppress(docker.errors.DockerException, OSError):
                self.client.close()
            podman.stop(service)
            self._owns_service = False
            self._service_stopped = True


def _stop_dead_services(keep: Set[str]) -> list[str]:
    """Stop the recorded API services whose run is not kept and whose owner is dead."""
    stopped = []
    for service in podman.recorded_services():
        if service.run_id in keep or owner_alive(service.owner):
            continue
        podman.stop(service)
        stopped.append(f"{service.run_id}: stopped the Podman API service (pid {service.pid})")
    return stopped


def _forget_old_mac(address: str) -> None:
    """Podman gives a started container a new MAC at its old address. With other replicas on
    the bridge (so it stays up), the host's neighbour entry kept the old MAC while it was
    REACHABLE: the replica was silent to the host for up to 33 s, an outage of the host's, not
    Podman's (figures in the README). Forget the entry: the next packet asks again."""
    with contextlib.suppress(FaultError):
        run(["ip", "neigh", "flush", "to", address], timeout_s=5, check=False)


def _connect_service(service: podman.PodmanService) -> docker.DockerClient:
    try:
        return connect(service.socket)
    except TargetError:
        if service.alive:
            raise
        raise TargetError(
            f"the Podman API service of run {service.run_id} (pid {service.pid}) is gone"
        ) from None


# mypy checks the class against the protocol here (make_target only sees the protocol)
_IS_A_TARGET: type[Target] = PodmanTarget
