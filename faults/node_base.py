"""What the node faults share: choosing lab nodes, recording them, and acting on them.

A node fault picks the lab nodes of the selected instances (never the manager the harness
talks to), records them (with the lab's identity, so a revert after the lab was replaced does
nothing), and acts on each node; subclasses say what to do and how to undo it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from faults.base import Fault, FaultContext, FaultParams, RevertRecord
from harness import lab
from harness.errors import FaultError
from harness.targets.base import Instance, Target

NODE_KILLER_TOOLS = ("ip", "nsenter", "dockerd", "setsid")


class NodeParams(FaultParams):
    node: str | None = Field(
        default=None, description="a lab node by name or ID (default: the selected instances')"
    )


class NodeFault(Fault):
    """A fault that acts on whole lab nodes."""

    def choose(
        self, ctx: FaultContext, state: lab.LabState, instances: Sequence[Instance]
    ) -> tuple[list[lab.NodeState], str | None]:
        """The nodes to act on and how they were chosen (the selected instances' nodes)."""
        node = getattr(self.params, "node", None)
        return lab.choose_nodes(state, instances, ctx.target.instances(), ctx.rng, node)

    def heals_during_fault(self, target: Target) -> bool:
        return True  # Swarm reschedules a lost or drained node's tasks on the other nodes

    @abstractmethod
    def mechanism_name(self) -> str:
        """What is done, in a few words, for the record and the report."""

    def record_data(
        self, ctx: FaultContext, fault_id: str, state: lab.LabState, nodes: Sequence[lab.NodeState]
    ) -> dict[str, Any]:
        """Extra data the revert needs (beyond the nodes)."""
        del ctx, fault_id, state, nodes
        return {}

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        state = lab.lab_for_fault()
        nodes, how = self.choose(ctx, state, instances)
        extra = self.record_data(ctx, fault_id, state, nodes)
        mode = getattr(self.params, "mode", None)
        if mode is not None:
            extra["mode"] = mode
        return RevertRecord(
            fault_id=fault_id,
            kind=self.kind,
            targets=lab.on_nodes(nodes, ctx.target.instances()) or tuple(n.name for n in nodes),
            mechanism=self.mechanism_name(),
            data=lab.node_record_data(state, nodes, chosen_by=how, **extra),
        )

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        found = lab.recorded_nodes(dict(record.data))
        if found is None:
            raise FaultError("the lab of this fault is gone")
        state, nodes = found
        ctx.mark_action()
        self.act(state, nodes, record.data)

    @classmethod
    def revert(cls, ctx: FaultContext, record: RevertRecord) -> None:
        found = lab.recorded_nodes(dict(record.data))
        if found is not None:  # a lab that is gone or was replaced holds nothing of ours
            state, nodes = found
            cls.undo(state, nodes, record.data)

    @abstractmethod
    def act(
        self, state: lab.LabState, nodes: Sequence[lab.NodeState], data: Mapping[str, Any]
    ) -> None:
        """Make the change on each node."""

    @classmethod
    @abstractmethod
    def undo(
        cls, state: lab.LabState, nodes: Sequence[lab.NodeState], data: Mapping[str, Any]
    ) -> None:
        """Undo it; idempotent."""


def take_nodes_down(nodes: Sequence[lab.NodeState], power: bool) -> None:
    """A lost machine (link down, every process killed) or just its daemon killed."""
    for node in nodes:
        if power:
            lab.set_link(node, up=False)
            lab.kill_node_processes(node)
        else:
            lab.kill_daemon(node)


def bring_nodes_back(state: lab.LabState, nodes: Sequence[lab.NodeState]) -> None:
    """Links up and daemons started again with their own command lines."""
    for node in nodes:
        lab.set_link(node, up=True)
    lab.restart_daemons(state, nodes)
