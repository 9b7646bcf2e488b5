"""The agents of one run, however a target kind deploys them (a DaemonSet, a container)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from harness.agent.channel import AgentChannel


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
