"""What every orchestrator target offers, and the handle of one running instance.

Faults use only this protocol and the instance's handles (host PID, network namespace,
container id), so N fault kinds and M targets make N + M modules, not N x M.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from harness.scenario import ScenarioBase, WorkloadSpec

RUN_LABEL = "chaos-harness.run-id"
SERVICE_LABEL = "chaos-harness.service"
INSTANCE_LABEL = "chaos-harness.instance"
# "<pid>:<start ticks>" of the harness process that owns the object: cleanup leaves the
# objects of a live owner alone, so it never pulls the rug from under a run in progress.
OWNER_LABEL = "chaos-harness.owner"


def owner_label_value() -> str:
    """This process as an owner: its PID and start time (a recycled PID will not match)."""
    import os

    from harness.hostsys import process_start_ticks

    return f"{os.getpid()}:{process_start_ticks(os.getpid())}"


def owner_alive(value: str | None) -> bool:
    """Whether the owner named by an OWNER_LABEL value is still the same live process."""
    from harness.hostsys import process_start_ticks

    pid, _, ticks = (value or "").partition(":")
    if not pid.isdigit() or not ticks.isdigit():
        return False
    return process_start_ticks(int(pid)) == int(ticks)


@dataclass(frozen=True)
class Instance:
    """One running replica as the harness sees it at one moment (PIDs change on restart)."""

    name: str
    service: str
    container_id: str
    container_name: str
    pid: int
    url: str
    labels: Mapping[str, str] = field(default_factory=dict)
    node: str | None = None
    state: str = "running"  # the engine's word: running, paused, exited, restarting...

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
        """What in `scenario` this target cannot do (a workload field with no meaning here, a
        fault kind it cannot inject), each with the reason; checked before anything runs."""
        ...

    def engine_info(self) -> Mapping[str, str]:
        """Versions and settings of the engine, for the manifest."""
        ...

    def load_balancing(self) -> str:
        """How the load reaches several replicas, in one sentence for the report."""
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
        """Remove every object of this run; safe to call twice."""
        ...
