"""What faults need from a target and what targets provide: one vocabulary for both sides.

A fault declares the capabilities it needs (`Fault.needs`), a target kind those its settings
provide (`TargetKind.capabilities`); a fault whose need is not provided is refused before the
run, with the target's reason when it gives one. Third parties may add capabilities: any
string works, these are the built-ins'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

HOST_PROCESS = "host_process"  # the instance's process runs on this machine (signals, cgroups)
NETNS = "netns"  # its network namespace can be entered from here (tc, iptables)
NODES = "nodes"  # whole nodes of a multi-node lab to take down, partition or drain
API_KILL = "api_kill"  # kill an instance through the orchestrator's API
API_STOP = "api_stop"  # stop an instance and start it again through the API
API_RESTART = "api_restart"  # restart one instance through the API
API_PAUSE = "api_pause"  # freeze an instance and thaw it through the API
API_DELETE = "api_delete"  # delete an instance, which the orchestrator replaces
SWARM_MANAGERS = "swarm_managers"  # Swarm's Raft managers, whose quorum can be lost


@dataclass(frozen=True)
class Capabilities:
    """What one target (with its settings) provides, and why it lacks what it lacks."""

    provided: frozenset[str]
    # why a capability is missing, when the target can say better than "works only on ..."
    reasons: Mapping[str, str] = field(default_factory=dict)
    # those of `provided` that the fault agent provides on the target's nodes (its image has
    # the tools): a fault needing only these is not checked against this host's tools
    through_agent: frozenset[str] = frozenset()

    def relayed(self, needs: tuple[str, ...]) -> bool:
        """Whether every one of `needs` (at least one) is the fault agent's to provide."""
        return bool(needs) and all(need in self.through_agent for need in needs)

    def missing(self, needs: tuple[str, ...]) -> str | None:
        """The first of `needs` not provided (None: every need is met)."""
        return next((need for need in needs if need not in self.provided), None)


def single_engine_reason(target: str) -> str:
    """Why a target of one engine refuses node faults."""
    return (
        f"acts on whole nodes, and {target} is one engine on this machine with no nodes to "
        "take down; run it on a multi-node lab (target: {kind: swarm, lab: {nodes: 3}}, or "
        "kind: kubernetes)"
    )


# What a container engine on this machine offers (Docker, Podman, a Swarm node's engine)
ENGINE_ON_THIS_HOST = frozenset({HOST_PROCESS, NETNS, API_KILL, API_STOP, API_RESTART, API_PAUSE})


def one_engine(target: str) -> Capabilities:
    """A single engine on this machine: no nodes, no Swarm managers to lose."""
    reason = single_engine_reason(target)
    return Capabilities(ENGINE_ON_THIS_HOST, {NODES: reason, SWARM_MANAGERS: reason})
