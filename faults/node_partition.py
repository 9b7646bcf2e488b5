"""node_partition: a lab node is cut off from the rest of its cluster; the orchestrator loses
it while its containers keep running.

Two modes:
- `link` (default): the host side of the node's veth goes down. Nothing reaches the node, the
  load generator included, as when a machine's cable is pulled.
- `cluster`: iptables DROP rules in the node's own network namespace, for traffic to and from
  the rest of the cluster only (Swarm: the other nodes; Kubernetes: the control plane, the other
  nodes and their pods). The orchestrator loses the node (Swarm reschedules its tasks;
  Kubernetes marks it NotReady and takes its pods out of the endpoints) while the load
  generator, on the bridge's address, still reaches the containers left running on it.

A DROP is what a cut cable looks like: connections hang until they time out. Revert: the link
up, or the rules (tagged with the fault's id) removed. The nodes are those of the selected
instances (on Swarm never the manager the harness talks to).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field

from faults.base import FaultContext, Mechanism
from faults.node_base import NodeFault, NodeParams
from harness.labs.host import host_problem
from harness.labs.nodes import LabNodes


class NodePartitionParams(NodeParams):
    mode: Literal["link", "cluster"] = Field(
        default="link",
        description="link: the node's veth down (cut off from everyone); cluster: DROP only"
        " between the node and the rest of the cluster (clients still reach it)",
    )


class NodePartition(NodeFault[NodePartitionParams]):
    kind = "node_partition"
    summary = "cut a lab node off from its cluster (veth down, or DROP rules)"
    params_model = NodePartitionParams

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        link = host_problem("ip")
        rules = host_problem("nsenter", "iptables")
        return [
            Mechanism("link: veth down", not link, link),
            Mechanism("cluster: iptables DROP in the node's namespace", not rules, rules),
        ]

    def mechanism_name(self, lab: LabNodes) -> str:
        if self.mode == "link":
            return "veth down"
        return "iptables DROP between the node and the rest of the cluster"

    def record_data(
        self, ctx: FaultContext, fault_id: str, lab: LabNodes, nodes: Sequence[str]
    ) -> dict[str, Any]:
        if self.mode == "link":
            return {"rules": {}}
        tag = f"chaos-harness.fault={ctx.run_id}/{fault_id}"
        return {"rules": {n: lab.partition_rules(n, tag) for n in nodes}}

    def act(self, lab: LabNodes, nodes: Sequence[str], data: Mapping[str, Any]) -> None:
        for node in nodes:
            if data["mode"] == "link":
                lab.set_link(node, up=False)
            for rule in data["rules"].get(node, []):
                lab.node_iptables(node, "-I", rule)

    @classmethod
    def undo(cls, lab: LabNodes, nodes: Sequence[str], data: Mapping[str, Any]) -> None:
        for node in nodes:
            if data["mode"] == "link":
                lab.set_link(node, up=True)
            for rule in data["rules"].get(node, []):
                while lab.node_iptables(node, "-D", rule):
                    pass
