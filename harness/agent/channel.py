"""How the harness reaches one agent: run a command in its container, read what it printed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


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


@runtime_checkable
class TimedChannel(Protocol):
    """A channel that also tells when the command's first output arrived (an exec stream read
    as it comes), which puts an agent's clock reading much closer than the round trip's
    midpoint (harness.agent.relay.measure_offset)."""

    def run_timed(self, argv: Sequence[str], timeout_s: float) -> tuple[str, int | None]:
        """Like `run`; with the instant (ns, this clock) its stdout's first bytes arrived."""
        ...
