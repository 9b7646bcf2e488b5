"""manager_quorum_loss: in a 3-manager lab, a majority of the managers (2 of 3) goes away, so
the Raft store has no quorum: the manager the harness talks to stays up but cannot elect a
leader, so Swarm accepts no change and reschedules nothing. Running tasks keep running.

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
from harness import lab
from harness.errors import FaultError
from harness.targets.base import Instance


class ManagerQuorumLossParams(NodeParams):
    mode: Literal["daemon", "power"] = Field(
        default="daemon",
        description="daemon: the managers' dockerd SIGKILLed; power: their link down and every"
        " process of theirs killed",
    )


class ManagerQuorumLoss(NodeFault):
    kind = "manager_quorum_loss"
    summary = "a majority of a 3-manager lab's managers killed; started again at the end"
    params_model = ManagerQuorumLossParams

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        problem = lab.host_problem(*NODE_KILLER_TOOLS)
        return [Mechanism("SIGKILL of the managers' daemons", not problem, problem)]

    def mechanism_name(self) -> str:
        return "dockerd SIGKILL" if self.mode == "daemon" else "veth down + SIGKILL"

    def choose(
        self, ctx: FaultContext, state: lab.LabState, instances: Sequence[Instance]
    ) -> tuple[list[lab.NodeState], str | None]:
        """The managers other than the one the harness talks to (selection is not used)."""
        if state.managers < 3:
            raise FaultError(
                f"manager_quorum_loss needs a lab with 3 managers; this one has {state.managers}"
                " (lab: {managers: 3})"
            )
        others = [n for n in state.nodes if n.role == "manager" and n != state.manager]
        return others[: state.managers // 2 + 1], None

    def act(
        self, state: lab.LabState, nodes: Sequence[lab.NodeState], data: Mapping[str, Any]
    ) -> None:
        take_nodes_down(nodes, power=data["mode"] == "power")

    @classmethod
    def undo(
        cls, state: lab.LabState, nodes: Sequence[lab.NodeState], data: Mapping[str, Any]
    ) -> None:
        bring_nodes_back(state, nodes)
