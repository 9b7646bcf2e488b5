"""Swarm's slot routes: a stable loopback address per slot, DNAT-ed to the published port of
the slot's current task, and once asked for, one service address spread over the slots.

A slot's address is 127.X.Y.<slot> (X and Y from the run id's hash) and the service's
127.X.Y.254. The chain and its jump are harness.hostnet's: every sync replaces the slot rules
in one transaction, and the moved slots' conntrack entries are dropped, since they keep the
old task's port.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Sequence

from harness import hostnet
from harness.errors import CommandError, TargetError
from harness.owners import owner_label_value
from harness.targets.service_vip import VirtualService
from harness.targets.swarm.events import TaskView

PURPOSE = "SLOTS"


class SlotRouter:
    """A stable loopback address per slot, DNAT-ed to the slot's current task's host port;
    and, once asked for, one service address spread over every slot's current task."""

    SERVICE_HOST = 254  # the service address: prefix.254 (slots are 1..50)

    def __init__(
        self,
        run_id: str,
        port: int,
        node_address: Callable[[str], str] | None = None,
        *,
        owner: str | None = None,
    ) -> None:
        digest = hashlib.sha256(run_id.encode()).digest()
        self.run_id = run_id
        self.port = port
        self.prefix = f"127.{64 + digest[0] % 64}.{digest[1]}"
        self.enabled = False
        self.reason = ""
        self.owner = owner or owner_label_value()
        self._chain = hostnet.RunChain(run_id, self.owner, PURPOSE, ["-d", "127.0.0.0/8"])
        self.chain = self._chain.chain
        # where a node's published ports answer: 127.0.0.1 on a single-node swarm, the node's
        # own address on the lab (the lab sets route_localnet and MASQUERADE for this)
        self._node_address = node_address or (lambda _node_id: "127.0.0.1")
        self._routes: dict[int, tuple[str, int]] = {}
        self._running: set[int] = set()  # slots whose task runs now: the service's spread
        self._lock = threading.Lock()
        self.service: VirtualService | None = None

    def address(self, slot: int) -> str:
        return f"{self.prefix}.{slot}"

    def setup(self) -> bool:
        """Create the run's chain; False (with `reason`) where iptables cannot be used."""
        self.reason = hostnet.problem()
        if self.reason:
            return False
        try:
            self._chain.replace([])
        except CommandError as exc:
            self.reason = str(exc)
            self.remove()
            return False
        self.enabled = True
        return True

    def _rules(self, routes: dict[int, tuple[str, int]]) -> list[list[str]]:
        port = ["--dport", str(self.port)]
        return [
            hostnet.dnat(to, ["-d", self.address(s), *port]) for s, to in sorted(routes.items())
        ]

    def sync(self, tasks: Sequence[TaskView]) -> None:
        """Point every slot with a running task at its node's address and published port."""
        if not self.enabled:
            return
        with self._lock:
            self._running = {t.slot for t in tasks if t.running and t.published_port}
            routes = dict(self._routes)
            for task in tasks:
                if task.running and task.published_port is not None:
                    routes[task.slot] = (self._node_address(task.node_id), task.published_port)
            moved = [s for s, to in routes.items() if s in self._routes and self._routes[s] != to]
            if routes != self._routes:
                try:
                    self._chain.replace(self._rules(routes))
                except CommandError as exc:
                    raise TargetError(
                        f"cannot route the slots of run {self.run_id}: {exc}"
                    ) from exc
                for slot in moved:
                    self._forget_connections(slot)
                self._routes = routes
            if self.service is not None:
                self.service.set_backends(self._backends())

    def _backends(self) -> list[tuple[str, int]]:
        """The service's spread: the routes of the slots whose task runs."""
        return [self._routes[slot] for slot in sorted(self._routes) if slot in self._running]

    def service_url(self) -> str:
        """The service address, spread over every routed slot (made on first call)."""
        with self._lock:
            if self.service is None:
                if not self.enabled:
                    raise TargetError(f"no service address without slot routing: {self.reason}")
                address = f"{self.prefix}.{self.SERVICE_HOST}"
                service = VirtualService(self.run_id, self.owner, address, self.port)
                service.setup(self._backends())
                self.service = service
            return self.service.url

    def _forget_connections(self, slot: int) -> None:
        """Drop the slot's conntrack entries, which keep the OLD task's port: a new connection
        that reused the source port of a refused one would still be sent there."""
        hostnet.forget_connections(self.address(slot), self.port)

    def remove(self) -> None:
        """Remove the service address, the jump and the chain; idempotent."""
        with self._lock:
            if self.service is not None:
                self.service.remove()
                self.service = None
            with contextlib.suppress(CommandError):
                self._chain.remove()
            self._routes.clear()
            self.enabled = False
