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

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from faults.base import Fault, FaultContext, FaultParams, Mechanism, RevertRecord
from harness import lab
from harness.errors import FaultError
from harness.targets.base import Instance


class NodePartitionParams(FaultParams):
    mode: Literal["link", "cluster"] = Field(
        default="link",
        description="link: the node's veth down (cut off from everyone); cluster: DROP only"
        " between the node and the other nodes (clients still reach it)",
    )
    node: str | None = Field(
        default=None, description="a lab node by name or ID (default: the selected instances')"
    )


class NodePartition(Fault):
    kind = "node_partition"
    summary = "cut a lab node off from the other nodes (veth down, or DROP rules)"
    params_model = NodePartitionParams

    @property
    def params_(self) -> NodePartitionParams:
        assert isinstance(self.params, NodePartitionParams)
        return self.params

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        link = lab.host_problem("ip")
        rules = lab.host_problem("nsenter", "iptables")
        return [
            Mechanism("link: veth down", not link, link),
            Mechanism("cluster: iptables DROP in the node's namespace", not rules, rules),
        ]

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        state = lab.lab_for_fault()
        everyone = ctx.target.instances()
        nodes, how = lab.choose_nodes(state, instances, everyone, ctx.rng, self.params_.node)
        link = self.params_.mode == "link"
        tag = f"chaos-harness.fault={ctx.run_id}/{fault_id}"
        rules = {} if link else {n.name: lab.partition_rules(state, n, tag) for n in nodes}
        return RevertRecord(
            fault_id=fault_id,
            kind=self.kind,
            targets=lab.on_nodes(nodes, everyone) or tuple(n.name for n in nodes),
            mechanism="veth down" if link else "iptables DROP between the node and the others",
            data=lab.node_record_data(
                state, nodes, mode=self.params_.mode, chosen_by=how, rules=rules
            ),
        )

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        found = lab.recorded_nodes(dict(record.data))
        if found is None:
            raise FaultError("the lab of this fault is gone")
        _state, nodes = found
        for node in nodes:
            if record.data["mode"] == "link":
                lab.set_link(node, up=False)
            for rule in record.data["rules"].get(node.name, []):
                lab.netns_iptables(node, "-I", rule)

    @classmethod
    def revert(cls, ctx: FaultContext, record: RevertRecord) -> None:
        found = lab.recorded_nodes(dict(record.data))
        if found is None:
            return
        _state, nodes = found
        for node in nodes:
            if record.data["mode"] == "link":
                lab.set_link(node, up=True)
            for rule in record.data["rules"].get(node.name, []):
                while lab.netns_iptables(node, "-D", rule):
                    pass
