"""What the node faults need from a lab, whichever orchestrator it runs: one small protocol,
implemented by the Swarm lab (harness.labs.swarm.nodes.SwarmNodes) and the Kubernetes lab
(labs.kubernetes.nodeops.KubeNodes). Nodes are named by their lab names (chlab-n2, chk8s-n2).

A fault's revert works from its record alone: `record_data` names the lab (kind, directory,
creation time) and the nodes, and harness.labs.of_record finds that same lab again, or None
when it is gone or was replaced (then nothing of the fault is left to undo).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol

from harness.targets.base import Instance


class LabNodes(Protocol):
    """The nodes of one lab that is up, and what can be done to them."""

    kind: str
    agent: str  # the node agent a `daemon` node_down kills: dockerd or kubelet
    drain_mechanism: str  # how node_drain takes a node out of scheduling, for its record

    def choose(
        self,
        selected: Sequence[Instance],
        everyone: Sequence[Instance],
        rng: random.Random,
        explicit: str | None,
    ) -> tuple[list[str], str]:
        """The nodes a fault hits (those of the selected instances), and how they were chosen."""
        ...

    def record_data(self, nodes: Sequence[str]) -> dict[str, Any]:
        """What a revert needs to find this lab and these nodes again."""
        ...

    def instances_on(self, nodes: Sequence[str], instances: Sequence[Instance]) -> tuple[str, ...]:
        """The names of the instances that run on `nodes`."""
        ...

    def power_off(self, nodes: Sequence[str]) -> None:
        """A lost machine: the node's link down and every process of it SIGKILLed."""
        ...

    def power_on(self, nodes: Sequence[str]) -> None:
        """The machine back: link up, its daemons started again."""
        ...

    def stop_agent(self, nodes: Sequence[str]) -> None:
        """SIGKILL the node agent only (its containers keep running)."""
        ...

    def start_agent(self, nodes: Sequence[str]) -> None: ...

    def set_link(self, node: str, up: bool) -> bool:
        """The host side of the node's veth up or down; False if it is gone."""
        ...

    def partition_rules(self, node: str, tag: str) -> list[list[str]]:
        """iptables rules (for the node's own namespace) that cut it off from the cluster."""
        ...

    def node_iptables(self, node: str, action: str, rule: Sequence[str]) -> bool:
        """iptables in the node's namespace; False when the rule (or the node) is gone."""
        ...

    def drain(self, node: str) -> list[str]:
        """Take the node out of scheduling and move its workload away; what was moved."""
        ...

    def undrain(self, node: str) -> None:
        """Schedulable again (nothing moves back by itself)."""
        ...
