"""manager_quorum_loss: in a 3-manager Swarm lab, a majority of the managers (2 of 3) goes
away, so the Raft store has no quorum: the manager the harness talks to stays up but cannot
elect a leader, so Swarm accepts no change and reschedules nothing. Running tasks keep running.
A Swarm fault only (a Kubernetes lab has one control plane, apart from its nodes).

The two managers other than the one the harness talks to are taken (selection is not used):
- `daemon` (default): their dockerd SIGKILLed (their containers keep running);
- `power`: their link down and every process of theirs killed (two machines lost).
Revert: links up, daemons started again with the same command lines; the managers regain
quorum and elect a leader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field

from faults.base import FaultContext, Mechanism
from faults.node_base import (
    NODE_KILLER_TOOLS,
    NodeFault,
    NodeParams,
    bring_nodes_back,
    take_nodes_down,
)
from harness import capabilities
from harness.errors import FaultError
from harness.labs.host import host_problem
from harness.labs.nodes import LabNodes
from harness.targets.base import Instance


class ManagerQuorumLossParams(NodeParams):
    mode: Literal["daemon", "power"] = Field(
        default="daemon",
        description="daemon: the managers' dockerd SIGKILLed; power: their link down and every"
        " process of theirs killed",
    )


class ManagerQuorumLoss(NodeFault[ManagerQuorumLossParams]):
    kind = "manager_quorum_loss"
    summary = "a majority of a 3-manager Swarm lab's managers killed; started again at the end"
    params_model = ManagerQuorumLossParams
    requires = (capabilities.NODES, capabilities.SWARM_MANAGERS)

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        problem = host_problem(*NODE_KILLER_TOOLS)
        return [Mechanism("SIGKILL of the managers' daemons", not problem, problem)]

    def mechanism_name(self, lab: LabNodes) -> str:
        return "dockerd SIGKILL" if self.mode == "daemon" else "veth down + SIGKILL"

    def choose(
        self, ctx: FaultContext, lab: LabNodes, instances: Sequence[Instance]
    ) -> tuple[list[str], str | None]:
        """The managers other than the one the harness talks to (selection is not used)."""
        from harness.labs.swarm.nodes import SwarmNodes

        if not isinstance(lab, SwarmNodes):
            raise FaultError(f"manager_quorum_loss is a Swarm fault; this is a {lab.kind} lab")
        state = lab.state
        if state.managers < 3:
            raise FaultError(
                f"manager_quorum_loss needs a lab with 3 managers; this one has {state.managers}"
                " (lab: {managers: 3})"
            )
        others = [n.name for n in state.nodes if n.role == "manager" and n != state.manager]
        return others[: state.managers // 2 + 1], None

    def act(self, lab: LabNodes, nodes: Sequence[str], data: Mapping[str, Any]) -> None:
        take_nodes_down(lab, nodes, power=data["mode"] == "power")

    @classmethod
    def undo(cls, lab: LabNodes, nodes: Sequence[str], data: Mapping[str, Any]) -> None:
        bring_nodes_back(lab, nodes, power=data["mode"] == "power")
