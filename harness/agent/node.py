"""The agent's view of the run: the harness's instances, with PIDs found on this node.

Faults act through `ctx.target.instances()` and the handles of an Instance (host PID, network
namespace, root filesystem); on the agent those come from the harness's list, each PID found
again here from its container id (the kernel's cgroup paths name it, whatever the runtime).
An instance on another node has PID 0 here: not running, as far as this node can act.
Everything a fault may ask of the orchestrator itself is refused: the agent acts on its node
only, and the harness does the API-level faults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from pathlib import Path

from harness.agent.protocol import AgentInstance
from harness.errors import AgentError
from harness.specs import ScenarioBase, TargetSpec, WorkloadSpec
from harness.targets.base import EventStream, Instance, Target
from harness.targets.kubernetes.host import ContainerPids


def to_instance(raw: AgentInstance, pid: int) -> Instance:
    return Instance(
        name=raw.name,
        service=raw.service,
        container_id=raw.container_id,
        container_name=raw.container_name,
        pid=pid,
        url=raw.url,
        labels=dict(raw.labels),
        node=raw.node,
        address=raw.address,
        port=raw.port,
    )


def from_instance(instance: Instance) -> AgentInstance:
    return AgentInstance(
        name=instance.name,
        service=instance.service,
        container_id=instance.container_id,
        container_name=instance.container_name,
        url=instance.url,
        address=instance.address,
        port=instance.port,
        node=instance.node,
        labels=dict(instance.labels),
    )


def _refused(what: str) -> AgentError:
    return AgentError(f"the fault agent acts on its node only: {what} is the harness's to do")


class NodeTarget:
    """What a fault sees of the target on the agent's node (the Target protocol)."""

    kind = "agent"
    api_stop_is_restarted = False

    def __init__(self, run_id: str, instances: Sequence[AgentInstance]) -> None:
        self.run_id = run_id
        self._listed = list(instances)
        self._pids = ContainerPids()

    def instances(self) -> list[Instance]:
        return [to_instance(raw, self._pids.pid_of(raw.container_id)) for raw in self._listed]

    # --- the rest of the protocol: not the agent's to do -------------------------------------

    @classmethod
    def scenario_problems(cls, scenario: ScenarioBase) -> list[str]:
        return []

    @classmethod
    def data_root_of(cls, spec: TargetSpec) -> Path | None:
        return None

    @classmethod
    def preflight(cls, scenario: ScenarioBase) -> None:
        return None

    @classmethod
    def attach(cls, run_id: str, spec: TargetSpec) -> Target:
        raise _refused("attaching to a run")

    @classmethod
    def remove_orphans(cls, spec: TargetSpec, keep: Set[str]) -> list[str]:
        return []

    def engine_answers(self) -> bool:
        return True

    def engine_identity(self) -> str | None:
        return None

    def engine_info(self) -> Mapping[str, str]:
        return {"engine": "agent"}

    def data_root(self) -> Path | None:
        return None

    def load_balancing(self) -> str:
        raise _refused("the load")

    def service_url(self) -> str:
        raise _refused("the load")

    def load_path(self, routing: str) -> str:
        raise _refused("the load")

    def deploy(self, workload: WorkloadSpec) -> None:
        raise _refused("deploying")

    def wait_healthy(self, timeout_s: float) -> list[Instance]:
        raise _refused("deploying")

    def events(self, since_ns: int) -> EventStream:
        raise _refused("watching the orchestrator")

    def kill_instance(self, instance: Instance, signal: str) -> None:
        raise _refused("a kill through the orchestrator's API")

    def stop_instance(self, instance: Instance, timeout_s: float) -> None:
        raise _refused("a stop through the orchestrator's API")

    def start_instance(self, instance: Instance) -> None:
        raise _refused("a start through the orchestrator's API")

    def restart_instance(self, instance: Instance, timeout_s: float) -> None:
        raise _refused("a restart through the orchestrator's API")

    def pause_instance(self, instance: Instance) -> None:
        raise _refused("a pause through the orchestrator's API")

    def unpause_instance(self, instance: Instance) -> None:
        raise _refused("a pause through the orchestrator's API")

    def teardown(self) -> None:
        return None

    def release(self) -> None:
        return None
