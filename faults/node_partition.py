"""node_partition: a lab node is cut off from the others; the managers lose it while its
containers keep running.

Two modes:
- `link` (default): the host side of the node's veth goes down. Nothing reaches the node, the
  load generator included, as when a machine's cable is pulled.
- `cluster`: iptables DROP rules in the node's own network namespace, for traffic to and from
  the other nodes only. The managers lose the node (and reschedule its tasks) while the load
  generator, on the bridge's address, still reaches the containers left running on it.

A DROP is what a cut cable looks like: connections hang until they time out. Revert: the link
up, or the rules (tagged with the fault's id) removed. The nodes are those of the selected
instances, never the manager the harness talks to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field

from faults.base import FaultContext, Mechanism
from faults.node_base import NodeFault, NodeParams
from harness import lab


class NodePartitionParams(NodeParams):
    mode: Literal["link", "cluster"] = Field(
        default="link",
        description="link: the node's veth down (cut off from everyone); cluster: DROP only"
        " between the node and the other nodes (clients still reach it)",
    )


class NodePartition(NodeFault):
    kind = "node_partition"
    summary = "cut a lab node off from the other nodes (veth down, or DROP rules)"
    params_model = NodePartitionParams

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        link = lab.host_problem("ip")
        rules = lab.host_problem("nsenter", "iptables")
        return [
            Mechanism("link: veth down", not link, link),
            Mechanism("cluster: iptables DROP in the node's namespace", not rules, rules),
        ]

    def mechanism_name(self) -> str:
        if self.mode == "link":
            return "veth down"
        return "iptables DROP between the node and the others"

    def record_data(
        self, ctx: FaultContext, fault_id: str, state: lab.LabState, nodes: Sequence[lab.NodeState]
    ) -> dict[str, Any]:
        if self.mode == "link":
            return {"rules": {}}
        tag = f"chaos-harness.fault={ctx.run_id}/{fault_id}"
        return {"rules": {n.name: lab.partition_rules(state, n, tag) for n in nodes}}

    def act(
        self, state: lab.LabState, nodes: Sequence[lab.NodeState], data: Mapping[str, Any]
    ) -> None:
        for node in nodes:
            if data["mode"] == "link":
                lab.set_link(node, up=False)
            for rule in data["rules"].get(node.name, []):
                lab.netns_iptables(node, "-I", rule)

    @classmethod
    def undo(
        cls, state: lab.LabState, nodes: Sequence[lab.NodeState], data: Mapping[str, Any]
    ) -> None:
        for node in nodes:
            if data["mode"] == "link":
                lab.set_link(node, up=True)
            for rule in data["rules"].get(node.name, []):
                while lab.netns_iptables(node, "-D", rule):
                    pass
