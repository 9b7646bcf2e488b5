"""node_drain: a lab node's Swarm availability set to `drain`, as an operator does before
maintenance; Swarm moves its tasks to the other nodes. Revert: availability `active` (Swarm does
not move tasks back by itself). The nodes are those of the selected instances, never the
manager the harness talks to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from faults.base import Mechanism
from faults.node_base import NodeFault, NodeParams
from harness import lab


class NodeDrain(NodeFault):
    kind = "node_drain"
    summary = "drain a lab node (Swarm moves its tasks away); active again at the end"
    params_model = NodeParams

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        return [Mechanism("Swarm node update (availability)", True)]

    def mechanism_name(self) -> str:
        return "node availability drain"

    def act(
        self, state: lab.LabState, nodes: Sequence[lab.NodeState], data: Mapping[str, Any]
    ) -> None:
        for node in nodes:
            lab.set_availability(state, node, "drain")

    @classmethod
    def undo(
        cls, state: lab.LabState, nodes: Sequence[lab.NodeState], data: Mapping[str, Any]
    ) -> None:
        for node in nodes:
            lab.set_availability(state, node, "active")
