"""How the harness reaches one agent: run a command in its container, read what it printed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class AgentChannel(Protocol):
    """One agent, reached through the orchestrator (an exec through the API server)."""

    @property
    def node(self) -> str:
        """The node the agent runs on (an Instance's `node`)."""
        ...

    def run(self, argv: Sequence[str], timeout_s: float) -> str:
        """Run `argv` in the agent's container; its standard output. Raises AgentError when
        the command cannot be run or exits non-zero (with its stderr)."""
        ...
