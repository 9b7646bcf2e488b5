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

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field

from faults.base import Mechanism
from faults.node_base import (
    NODE_KILLER_TOOLS,
    NodeFault,
    NodeParams,
    bring_nodes_back,
    take_nodes_down,
)
from harness import lab


class NodeDownParams(NodeParams):
    mode: Literal["power", "daemon"] = Field(
        default="power",
        description="power: link down and every process of the node killed (a lost machine);"
        " daemon: only dockerd SIGKILLed (its containers keep running)",
    )


class NodeDown(NodeFault):
    kind = "node_down"
    summary = "a lab node's daemon (or the whole node) is killed; started again at the end"
    params_model = NodeDownParams

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        problem = lab.host_problem(*NODE_KILLER_TOOLS)
        return [Mechanism("SIGKILL of the node's processes", not problem, problem)]

    def mechanism_name(self) -> str:
        if self.mode == "power":
            return "veth down + SIGKILL of every node process"
        return "dockerd SIGKILL"

    def act(
        self, state: lab.LabState, nodes: Sequence[lab.NodeState], data: Mapping[str, Any]
    ) -> None:
        take_nodes_down(nodes, power=data["mode"] == "power")

    @classmethod
    def undo(
        cls, state: lab.LabState, nodes: Sequence[lab.NodeState], data: Mapping[str, Any]
    ) -> None:
        bring_nodes_back(state, nodes)
