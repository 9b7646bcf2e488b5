"""What the node faults share: choosing lab nodes, recording them, and acting on them.

A node fault acts on the nodes of a lab, Swarm's or Kubernetes' (harness.labs.nodes.LabNodes,
picked by the target's kind): the nodes of the selected instances (on Swarm never the manager
the harness talks to; on Kubernetes any node, the control plane runs apart). The record names
the lab (kind, directory, creation time) and the nodes, so a revert after the lab was replaced
does nothing; subclasses say what to do and how to undo it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from pydantic import Field

from faults.base import Fault, FaultContext, FaultParams, RevertRecord
from harness import capabilities
from harness import labs as lab_nodes
from harness.errors import FaultError
from harness.labs.nodes import LabNodes
from harness.targets.base import Instance, Target

NODE_KILLER_TOOLS = ("ip", "nsenter", "setsid")


class NodeParams(FaultParams):
    node: str | None = Field(
        default=None,
        description="a lab node by name, address or Swarm ID; n<i> names the i-th node of either"
        " lab (n3: chlab-n3 or chk8s-n3), so a scenario runs on both (default: the selected"
        " instances' nodes)",
    )


NP = TypeVar("NP", bound=NodeParams)


class NodeFault(Fault[NP]):
    """A fault that acts on whole lab nodes."""

    requires: ClassVar[tuple[str, ...]] = (capabilities.NODES,)

    def choose(
        self, ctx: FaultContext, lab: LabNodes, instances: Sequence[Instance]
    ) -> tuple[list[str], str | None]:
        """The nodes to act on and how they were chosen (the selected instances' nodes)."""
        return lab.choose(instances, ctx.target.instances(), ctx.rng, self.params.node)

    def heals_during_fault(self, target: Target) -> bool:
        # Swarm reschedules a lost or drained node's tasks at once; Kubernetes evicts a drained
        # node's pods at once and a lost node's after its tolerations (300 s by default)
        return True

    @abstractmethod
    def mechanism_name(self, lab: LabNodes) -> str:
        """What is done on `lab`, in a few words, for the record and the report."""

    def record_data(
        self, ctx: FaultContext, fault_id: str, lab: LabNodes, nodes: Sequence[str]
    ) -> dict[str, Any]:
        """Extra data the revert needs (beyond the lab and the nodes)."""
        del ctx, fault_id, lab, nodes
        return {}

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        lab = lab_nodes.for_target(ctx.target.kind)
        nodes, how = self.choose(ctx, lab, instances)
        extra = self.record_data(ctx, fault_id, lab, nodes)
        mode = getattr(self.params, "mode", None)
        if mode is not None:
            extra["mode"] = mode
        return RevertRecord(
            fault_id=fault_id,
            kind=self.kind,
            targets=lab.instances_on(nodes, ctx.target.instances()) or tuple(nodes),
            mechanism=self.mechanism_name(lab),
            data={**lab.record_data(nodes), "chosen_by": how, "agent": lab.agent, **extra},
        )

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        lab = lab_nodes.of_record(record.data)
        if lab is None:
            raise FaultError("the lab of this fault is gone")
        ctx.mark_action()
        self.act(lab, list(record.data["nodes"]), record.data)

    @classmethod
    def revert(cls, ctx: FaultContext, record: RevertRecord) -> None:
        lab = lab_nodes.of_record(record.data)
        if lab is not None:  # a lab that is gone or was replaced holds nothing of ours
            ctx.mark_action()
            cls.undo(lab, list(record.data["nodes"]), record.data)

    @abstractmethod
    def act(self, lab: LabNodes, nodes: Sequence[str], data: Mapping[str, Any]) -> None:
        """Make the change on each node."""

    @classmethod
    @abstractmethod
    def undo(cls, lab: LabNodes, nodes: Sequence[str], data: Mapping[str, Any]) -> None:
        """Undo it; idempotent."""


def take_nodes_down(lab: LabNodes, nodes: Sequence[str], power: bool) -> None:
    """A lost machine (link down, every process killed) or just its node agent killed."""
    if power:
        lab.power_off(nodes)
    else:
        lab.stop_agent(nodes)


def bring_nodes_back(lab: LabNodes, nodes: Sequence[str], power: bool) -> None:
    """Links up and the nodes' daemons started again (a reboot), or the agent started again."""
    if power:
        lab.power_on(nodes)
    else:
        lab.start_agent(nodes)
