"""node_drain: a lab node taken out of scheduling and its workload moved away, as an operator
does before maintenance.

- Swarm: the node's availability set to `drain`; Swarm moves its tasks to the other nodes.
- Kubernetes: the node cordoned, then every pod on it but DaemonSet and mirror pods evicted
  through the Eviction API (as `kubectl drain` does: PodDisruptionBudgets are honoured, a
  refused eviction is retried for up to a minute); their ReplicaSets replace them elsewhere.

Revert: availability `active` / uncordon (neither moves anything back by itself). The nodes
are those of the selected instances (on Swarm never the manager the harness talks to).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from faults.base import Mechanism
from faults.node_base import NodeFault, NodeParams
from harness.labs.nodes import LabNodes


class NodeDrain(NodeFault[NodeParams]):
    kind = "node_drain"
    summary = "drain a lab node (its workload moves away); schedulable again at the end"
    params_model = NodeParams

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        return [
            Mechanism("Swarm node update (availability)", True),
            Mechanism("Kubernetes cordon + Eviction API", True),
        ]

    def mechanism_name(self, lab: LabNodes) -> str:
        return lab.drain_mechanism

    def act(self, lab: LabNodes, nodes: Sequence[str], data: Mapping[str, Any]) -> None:
        for node in nodes:
            lab.drain(node)

    @classmethod
    def undo(cls, lab: LabNodes, nodes: Sequence[str], data: Mapping[str, Any]) -> None:
        for node in nodes:
            lab.undrain(node)
