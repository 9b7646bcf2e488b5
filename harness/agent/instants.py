"""Container start and exit instants from the fault agents, on the harness's clock.

`AgentInstants` gives the pod tracker what this host gives it when it can see the pods'
processes (`started_at(cid)`, `exited_at(cid)`), read by the agents on the nodes instead
(harness.agent.watching) and put on the harness's clock with each node's offset as the relay
measured it. Asking a container's start also asks its node's agent to watch it for its exit:
the tracker asks as soon as it sees the container run, which is before any fault of the run
can kill it (the runner sets this up before the deploy). A container's node is not known to
the tracker: the first ask goes to every agent at once, and the node that has it is kept.
An agent that cannot be asked leaves the API's stamps (None), never an error in the watch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, runtime_checkable

from pydantic import ValidationError

from harness.agent.protocol import ContainerInstants, InstantsRequest
from harness.agent.relay import AgentRelay, call
from harness.errors import AgentError

VIA = "agent"  # the events' host_via: the host instant came from the agent on the node

Instant = Callable[[str], "int | None"]


@runtime_checkable
class TakesInstants(Protocol):
    """A target whose event tracker can take its container instants from elsewhere."""

    def take_instants(self, started_at: Instant, exited_at: Instant, via: str) -> None: ...


class AgentInstants:
    """container id -> its start and exit as its node's agent saw them (harness clock)."""

    def __init__(self, relay: AgentRelay) -> None:
        self._relay = relay
        self._lock = threading.Lock()
        self._node_of: dict[str, str] = {}

    def started_at(self, container_id: str) -> int | None:
        """Its init process's start (10 ms ticks); its node's agent watches it from now on."""
        found = self._ask(container_id, watch=True)
        return self._ours(found, found[1].started_ns if found else None)

    def exited_at(self, container_id: str) -> int | None:
        """The instant its init process exited, if its node's agent watched it."""
        found = self._ask(container_id, watch=False)
        return self._ours(found, found[1].exited_ns if found else None)

    def _ours(self, found: tuple[str, ContainerInstants] | None, theirs: int | None) -> int | None:
        """An agent's instant on the harness's clock."""
        if found is None or theirs is None:
            return None
        return theirs - self._relay.offsets[found[0]].offset_ns

    def _ask(self, container_id: str, watch: bool) -> tuple[str, ContainerInstants] | None:
        with self._lock:
            known = self._node_of.get(container_id)
        nodes = [known] if known is not None else sorted(self._relay.offsets)
        try:
            request = InstantsRequest(
                run_id=self._relay.run_id, container_ids=[container_id], watch=watch
            )
        except ValidationError:  # not an id a runtime gives: the API's stamps stand
            return None
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            answers = list(pool.map(lambda node: self._one(node, request), nodes))
        for node, answer in zip(nodes, answers, strict=True):
            if answer is not None and (answer.started_ns is not None or answer.watching):
                with self._lock:
                    self._node_of[container_id] = node
                return node, answer
        if known is not None and answers[0] is not None:
            return known, answers[0]  # it has ended: what its node saw of it
        return None

    def _one(self, node: str, request: InstantsRequest) -> ContainerInstants | None:
        try:
            reply = call(self._relay.channel(node), request)
        except AgentError:  # the API's stamps stand
            return None
        if not reply.ok:
            return None
        return next(iter(reply.instants), None)
