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

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from faults.base import Fault, FaultContext, FaultParams, Mechanism, RevertRecord
from harness import lab
from harness.errors import FaultError
from harness.targets.base import Instance


class ManagerQuorumLossParams(FaultParams):
    mode: Literal["daemon", "power"] = Field(
        default="daemon",
        description="daemon: the managers' dockerd SIGKILLed; power: their link down and every"
        " process of theirs killed",
    )


class ManagerQuorumLoss(Fault):
    kind = "manager_quorum_loss"
    summary = "a majority of a 3-manager lab's managers killed; started again at the end"
    params_model = ManagerQuorumLossParams

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        problem = lab.host_problem("ip", "nsenter", "dockerd", "setsid")
        return [Mechanism("SIGKILL of the managers' daemons", not problem, problem)]

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        assert isinstance(self.params, ManagerQuorumLossParams)
        del instances
        state = lab.lab_for_fault()
        if state.managers < 3:
            raise FaultError(
                f"manager_quorum_loss needs a lab with 3 managers; this one has {state.managers}"
                " (lab: {managers: 3})"
            )
        others = [n for n in state.nodes if n.role == "manager" and n != state.manager]
        nodes = others[: state.managers // 2 + 1]
        mode = self.params.mode
        return RevertRecord(
            fault_id=fault_id,
            kind=self.kind,
            targets=lab.on_nodes(nodes, ctx.target.instances()) or tuple(n.name for n in nodes),
            mechanism="dockerd SIGKILL" if mode == "daemon" else "veth down + SIGKILL",
            data=lab.node_record_data(state, nodes, mode=mode),
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
