"""node_drain: a lab node's Swarm availability set to `drain`, as an operator does before
maintenance; Swarm moves its tasks to the other nodes. Revert: availability `active` (Swarm does
not move tasks back by itself). The nodes are those of the selected instances, never the
manager the harness talks to.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from faults.base import Fault, FaultContext, FaultParams, Mechanism, RevertRecord
from harness import lab
from harness.errors import FaultError
from harness.targets.base import Instance


class NodeDrainParams(FaultParams):
    node: str | None = Field(
        default=None, description="a lab node by name or ID (default: the selected instances')"
    )


class NodeDrain(Fault):
    kind = "node_drain"
    summary = "drain a lab node (Swarm moves its tasks away); active again at the end"
    params_model = NodeDrainParams

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        return [Mechanism("Swarm node update (availability)", True)]

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        assert isinstance(self.params, NodeDrainParams)
        state = lab.lab_for_fault()
        everyone = ctx.target.instances()
        nodes, how = lab.choose_nodes(state, instances, everyone, ctx.rng, self.params.node)
        return RevertRecord(
            fault_id=fault_id,
            kind=self.kind,
            targets=lab.on_nodes(nodes, everyone) or tuple(n.name for n in nodes),
            mechanism="node availability drain",
            data=lab.node_record_data(state, nodes, chosen_by=how),
        )

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        found = lab.recorded_nodes(dict(record.data))
        if found is None:
            raise FaultError("the lab of this fault is gone")
        state, nodes = found
        for node in nodes:
            lab.set_availability(state, node, "drain")

    @classmethod
    def revert(cls, ctx: FaultContext, record: RevertRecord) -> None:
        found = lab.recorded_nodes(dict(record.data))
        if found is None:
            return
        state, nodes = found
        for node in nodes:
            lab.set_availability(state, node, "active")
