"""The agents of one run, however a target kind deploys them (a DaemonSet, a container)."""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Protocol

from harness.agent.channel import AgentChannel
from harness.specs import TargetSpec
from harness.targets.base import Target


class AgentFleet(Protocol):
    """One agent per node of the run's target, deployed for the run."""

    def wait_ready(self, timeout_s: float) -> None:
        """Block until an agent answers on every node the run may use (AgentError if not)."""
        ...

    def channels(self) -> Mapping[str, AgentChannel]:
        """node name -> the agent on it."""
        ...

    def describe(self) -> str:
        """Where the agents run and how they are reached, in one sentence for the manifest."""
        ...

    def remove(self) -> None:
        """Take the agents away (each reverts what it still holds); safe twice."""
        ...


class AgentSupport(Protocol):
    """What a target kind does about agents (its TargetKind's `agents`, "module:object")."""

    def open(self, target: Target, spec: TargetSpec, run_id: str) -> AgentFleet | None:
        """The run's agents, deployed (not yet ready), when the host cannot act on the
        target's processes itself (or `target.agent.use: always`); None when not needed."""
        ...

    def remove_orphans(self, spec: TargetSpec, keep: Set[str]) -> list[str]:
        """Remove the agents of dead runs (not in `keep`) on the engine of `spec`, letting
        each revert what it holds; one line per removal (for `harness cleanup`)."""
        ...
