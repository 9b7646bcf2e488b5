"""What every orchestrator target offers, and the handle of one running instance.

Faults use only this protocol and the instance's handles (host PID, network namespace,
container id), so N fault kinds and M targets make N + M modules, not N x M.
"""

from __future__ import annotations

import importlib
import queue
from collections.abc import Callable, Iterator, Mapping, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from harness.capabilities import Capabilities

# the run and owner labels live below the targets (harness.hostnet marks iptables jumps with
# them too); re-exported here, where the targets and their callers have always found them
from harness.owners import OWNER_LABEL as OWNER_LABEL
from harness.owners import RUN_LABEL as RUN_LABEL
from harness.owners import owner_alive as owner_alive
from harness.owners import owner_label_value as owner_label_value
from harness.specs import ScenarioBase, TargetSpec, WorkloadSpec

SERVICE_LABEL = "chaos-harness.service"
INSTANCE_LABEL = "chaos-harness.instance"


@dataclass(frozen=True)
class Instance:
    """One running replica as the harness sees it at one moment (PIDs change on restart).

    `url` is where the load and the probes reach the instance, which may be a route of the
    target's own (a Swarm slot's loopback address forwarded to a published port); `address`
    and `port` are the instance's own, inside its network namespace, on the run's network:
    where the other instances reach it, and what network faults act on.
    """

    name: str
    service: str
    container_id: str
    container_name: str
    pid: int
    url: str
    labels: Mapping[str, str] = field(default_factory=dict)
    node: str | None = None
    state: str = "running"  # the engine's word: running, paused, exited, restarting...
    address: str = ""  # empty: the url's host is the instance's own address
    port: int = 0  # 0: the url's port is the instance's own port

    @property
    def netns_address(self) -> str:
        """The instance's own address on the run's network, inside its namespace."""
        return self.address or (urlsplit(self.url).hostname or "")

    @property
    def netns_port(self) -> int:
        """The port the workload listens on inside the instance's namespace."""
        return self.port or urlsplit(self.url).port or 80

    @property
    def netns_path(self) -> str:
        """The instance's network namespace as seen from the host."""
        return f"/proc/{self.pid}/ns/net"

    @property
    def root_path(self) -> str:
        """The instance's root filesystem as seen from the host."""
        return f"/proc/{self.pid}/root"

    @property
    def running(self) -> bool:
        return self.pid > 0


@dataclass(frozen=True)
class EngineEvent:
    """One engine event about an instance, timestamped by the engine in nanoseconds."""

    time_ns: int
    action: str
    instance: str | None
    container_id: str | None
    attributes: Mapping[str, str]


STREAM_CLOSED = object()  # put on an event queue to end the stream that reads it


def queued_events(events: queue.Queue[object]) -> Iterator[EngineEvent]:
    """The events put on `events` by watcher threads, until STREAM_CLOSED."""
    while (item := events.get()) is not STREAM_CLOSED:
        if isinstance(item, EngineEvent):
            yield item


class EventStream(Protocol):
    """A blocking iterator of engine events that another thread can close."""

    def __iter__(self) -> Iterator[EngineEvent]: ...

    def close(self) -> None: ...


class Target(Protocol):
    """An orchestrator the harness deploys to and injects faults into."""

    kind: str
    run_id: str
    # Does the orchestrator bring back an instance stopped or killed through its API?
    # Docker: no (a manual stop); Swarm: yes (it schedules a new task).
    api_stop_is_restarted: bool

    @classmethod
    def scenario_problems(cls, scenario: ScenarioBase) -> list[str]:
        """What in `scenario` this target cannot do beyond its capabilities (a workload field
        with no meaning here), each with the reason; checked before anything runs."""
        ...

    @classmethod
    def data_root_of(cls, spec: TargetSpec) -> Path | None:
        """Where the engine of `spec` keeps container storage on this host; None when it is not
        here or not known (a disk fill's safety margin is then not checked up front)."""
        ...

    @classmethod
    def preflight(cls, scenario: ScenarioBase) -> None:
        """Ask the machine the run will use, before anything is deployed: the engine answers,
        the image is there, the ports it must bind are free; raise what is wrong."""
        ...

    @classmethod
    def attach(cls, run_id: str, spec: TargetSpec) -> Target:
        """The target of a run that already exists (its harness may be dead), to revert its
        faults and remove its objects: nothing is deployed, and an engine service of the run's
        is reused while it lives (else one is started until `release()`)."""
        ...

    @classmethod
    def remove_orphans(cls, spec: TargetSpec, keep: Set[str]) -> list[str]:
        """Remove what this kind of target made for runs whose harness is gone, on the engine
        of `spec`: every object labelled with a run id (RUN_LABEL) whose owner (OWNER_LABEL)
        is dead and whose run id is not in `keep`; what was removed, one line each.

        The per-target cleanup hook of `harness cleanup`: Docker removes containers, networks,
        volumes and the run's iptables chains; Podman also stops the dead runs' API services;
        Kubernetes deletes the dead runs' namespaces."""
        ...

    def engine_answers(self) -> bool:
        """Whether the engine (every node's, on a lab) answers now; the run's watch asks."""
        ...

    def engine_identity(self) -> str | None:
        """Which process the engine is (a restart changes it); None when it cannot be told."""
        ...

    def engine_info(self) -> Mapping[str, str]:
        """The engine's real name (`engine`: docker, podman, docker-swarm...) and version
        (`engine_version`), with its settings, for the manifest."""
        ...

    def data_root(self) -> Path | None:
        """Where the engine keeps container storage on this host (a writable layer's disk);
        None when it is not on this host or not known."""
        ...

    def load_balancing(self) -> str:
        """How the load reaches several replicas, in one sentence for the report."""
        ...

    def service_url(self) -> str:
        """One URL that reaches the workload as a whole, spread over its replicas (for a
        load generator's --host); valid from wait_healthy() until teardown()."""
        ...

    def load_path(self, routing: str) -> str:
        """The load's path with `routing` (service | per_instance) in one sentence for the
        manifest and the report: the address, how it spreads, whether it follows the
        replicas' failures, and what it adds; valid from wait_healthy() until teardown()."""
        ...

    def deploy(self, workload: WorkloadSpec) -> None:
        """Create the workload's network and replicas, every object labelled with the run."""
        ...

    def wait_healthy(self, timeout_s: float) -> list[Instance]:
        """Block until every replica is healthy; raise DeployTimeout otherwise."""
        ...

    def instances(self) -> list[Instance]:
        """The run's instances as they are now (fresh PIDs)."""
        ...

    def events(self, since_ns: int) -> EventStream:
        """The engine's events about this run's objects from `since_ns` on."""
        ...

    def kill_instance(self, instance: Instance, signal: str) -> None:
        """Kill through the engine's API (Docker treats this as a manual stop)."""
        ...

    def stop_instance(self, instance: Instance, timeout_s: float) -> None: ...

    def start_instance(self, instance: Instance) -> None: ...

    def restart_instance(self, instance: Instance, timeout_s: float) -> None: ...

    def pause_instance(self, instance: Instance) -> None: ...

    def unpause_instance(self, instance: Instance) -> None: ...

    def teardown(self) -> None:
        """Remove every object of this run, then release(); safe to call twice."""
        ...

    def release(self) -> None:
        """Let go of what this process holds for the target (an engine service started for
        it, watcher threads) without removing the run's objects; safe to call twice."""
        ...


@dataclass(frozen=True)
class TargetKind:
    """One kind of target as the registry knows it, without importing its engine's client."""

    name: str
    spec: type[TargetSpec]  # its `target:` settings; `kind` a Literal of `name`
    target: str  # "module:Class" of its Target, imported when a run needs one
    # What a target of these settings provides to faults (harness.capabilities)
    capabilities: Callable[[TargetSpec], Capabilities]
    # Every capability it may provide under some settings (for "works only on ..." messages)
    may_provide: frozenset[str]
    unit: str = "instance"  # what one replica is called in reports: container, task, pod
    lab: str | None = None  # the kind of lab (harness.labs) it runs on, when it has one
    # "module:function" that predicts each recovery interval from its timers
    # (harness.analysis.timers: TimerInputs -> list[Prediction]); None: no rules
    timers: str | None = None
    # "module:object" of its fault agents (harness.agent.fleet.AgentSupport: open a run's,
    # remove dead runs'); None: host-side faults act from this host only
    agents: str | None = None

    def target_class(self) -> type[Target]:
        module_name, _, attr = self.target.partition(":")
        cls: type[Target] = getattr(importlib.import_module(module_name), attr)
        return cls
