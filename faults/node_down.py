"""node_down: a Swarm node of the lab goes away, and comes back at the end of the fault.

Two modes:
- `power` (default): as a machine losing power. The node's link goes down (its address stops
  answering: connections hang, as with a dead host) and every process of the node is SIGKILLed:
  dockerd, its containerd, the shims and the containers. The managers lose its heartbeat and
  mark it down; its tasks are rescheduled on the other nodes.
- `daemon`: only the node's dockerd is SIGKILLed (its managed containerd follows it). Its
  containers keep running and keep serving on the node's address, but the managers lose the
  node and reschedule its tasks elsewhere. When the daemon comes back it kills those orphans.

Revert: the node's link up, and its dockerd started again with the same command line.
The nodes are those of the selected instances, never the manager the harness talks to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from faults.base import Fault, FaultContext, FaultParams, Mechanism, RevertRecord
from harness import lab
from harness.errors import FaultError
from harness.targets.base import Instance


class NodeDownParams(FaultParams):
    mode: Literal["power", "daemon"] = Field(
        default="power",
        description="power: link down and every process of the node killed (a lost machine);"
        " daemon: only dockerd SIGKILLed (its containers keep running)",
    )
    node: str | None = Field(
        default=None, description="a lab node by name or ID (default: the selected instances')"
    )


class NodeDown(Fault):
    kind = "node_down"
    summary = "a lab node's daemon (or the whole node) is killed; started again at the end"
    params_model = NodeDownParams

    @property
    def params_(self) -> NodeDownParams:
        assert isinstance(self.params, NodeDownParams)
        return self.params

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        problem = lab.host_problem("ip", "nsenter", "dockerd", "setsid")
        return [Mechanism("SIGKILL of the node's processes", not problem, problem)]

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        state = lab.lab_for_fault()
        everyone = ctx.target.instances()
        nodes, how = lab.choose_nodes(state, instances, everyone, ctx.rng, self.params_.node)
        power = self.params_.mode == "power"
        return RevertRecord(
            fault_id=fault_id,
            kind=self.kind,
            targets=lab.on_nodes(nodes, everyone) or tuple(n.name for n in nodes),
            mechanism="veth down + SIGKILL of every node process" if power else "dockerd SIGKILL",
            data=lab.node_record_data(state, nodes, mode=self.params_.mode, chosen_by=how),
        )

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        found = lab.recorded_nodes(dict(record.data))
        if found is None:
            raise FaultError("the lab of this fault is gone")
        _state, nodes = found
        for node in nodes:
            if record.data["mode"] == "power":
                lab.set_link(node, up=False)
                lab.kill_node_processes(node)
            else:
                lab.kill_daemon(node)

    @classmethod
    def revert(cls, ctx: FaultContext, record: RevertRecord) -> None:
        found = lab.recorded_nodes(dict(record.data))
        if found is None:
            return
        state, nodes = found
        for node in nodes:
            lab.set_link(node, up=True)
        lab.restart_daemons(state, nodes)
