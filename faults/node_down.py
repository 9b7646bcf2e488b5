"""node_down: a lab node goes away, and comes back at the end of the fault.

Two modes, on the Swarm lab and on the Kubernetes lab alike:
- `power` (default): as a machine losing power. The node's link goes down (its address stops
  answering: connections hang, as with a dead host) and every process of the node is SIGKILLed
  (Swarm: dockerd, its containerd, the shims and the containers; Kubernetes: containerd,
  kubelet, kube-proxy, the shims and every pod). Swarm's managers lose its heartbeat and mark
  it down, then reschedule its tasks; Kubernetes marks it NotReady/Unknown after
  node-monitor-grace-period, takes its pods out of the Services' endpoints, and evicts them
  after their not-ready/unreachable toleration (300 s unless the lab was told otherwise).
  Revert: a reboot (Kubernetes: the node's memory state, mounts and pod namespaces, is gone;
  its disk is kept), link up, the daemons started again with the same command lines.
- `daemon`: only the node agent is SIGKILLed (Swarm: dockerd, its managed containerd follows
  it; Kubernetes: the kubelet). Containers keep running and keep serving on their addresses,
  but the orchestrator loses the node all the same. Revert: the agent started again (a Swarm
  dockerd then kills the orphaned containers; a kubelet adopts its running pods).

The nodes are those of the selected instances (on Swarm never the manager the harness talks
to); `node` names one explicitly.
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
from harness.labs.host import host_problem
from harness.labs.nodes import LabNodes


class NodeDownParams(NodeParams):
    mode: Literal["power", "daemon"] = Field(
        default="power",
        description="power: link down and every process of the node killed (a lost machine);"
        " daemon: only the node agent (dockerd, kubelet) SIGKILLed (containers keep running)",
    )


class NodeDown(NodeFault[NodeDownParams]):
    kind = "node_down"
    summary = "a lab node's agent (or the whole node) is killed; started again at the end"
    params_model = NodeDownParams

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        problem = host_problem(*NODE_KILLER_TOOLS)
        return [Mechanism("SIGKILL of the node's processes", not problem, problem)]

    def mechanism_name(self, lab: LabNodes) -> str:
        if self.mode == "power":
            return "veth down + SIGKILL of every node process"
        return f"{lab.agent} SIGKILL"

    def act(self, lab: LabNodes, nodes: Sequence[str], data: Mapping[str, Any]) -> None:
        take_nodes_down(lab, nodes, power=data["mode"] == "power")

    @classmethod
    def undo(cls, lab: LabNodes, nodes: Sequence[str], data: Mapping[str, Any]) -> None:
        bring_nodes_back(lab, nodes, power=data["mode"] == "power")
