"""Stable addresses for slots whose pod is replaced: the host's connections to a slot's FIRST
pod address are DNAT-ed to the slot's current pod (iptables, nat OUTPUT, this host only).

The harness gives the load generator and the probes one URL per instance when the run starts.
A Kubernetes pod that is deleted, evicted or lost is replaced by a NEW pod with a new IP: its
slot's URL would point at an address nobody answers on for the rest of the run, and the run
would never be seen to recover. As the Swarm target does for its slots (the Swarm target's
SlotRouter), each slot keeps an address: here its first pod's IP, which the host reaches
already (the lab routes every node's pod range via the node). When a slot's pod changes, one
rule per moved slot in a chain of the run sends new connections to that address on to the
slot's current pod; the conntrack entries of connections sent to the previous pod are dropped,
so a reused source port does not follow the old path. A slot that never moved has no rule:
its first pod answers for itself, and nothing is added to the host until a pod is replaced.

The chain and its jump from nat OUTPUT are harness.hostnet's, as the Docker and Swarm
targets' are: the jump carries the run's id and owner in a comment, so `harness cleanup`
removes them for a dead run; teardown removes them.

The limit: host-local IPAM hands out each node's /24 in sequence and wraps around after ~250
pods, so a long-lived lab can give a first pod's address to a later pod. A connection of this
host to that later pod's address (not through its own slot URL) would then be sent to our slot's
pod, until the run ends.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping

from harness import hostnet
from harness.errors import CommandError, TargetError

PURPOSE = "PODS"


def routes_chain(run_id: str) -> str:
    return hostnet.chain_name(run_id, PURPOSE)


class SlotRoutes:
    """The first address of each slot, and where the host's connections to it go now."""

    def __init__(self, run_id: str, owner: str, port: int) -> None:
        self.run_id = run_id
        self.port = port
        self._chain = hostnet.RunChain(run_id, owner, PURPOSE, ["-p", "tcp", "--dport", str(port)])
        self.chain = self._chain.chain
        self._first: dict[str, str] = {}  # slot -> its first pod's address
        self._moved: dict[str, str] = {}  # slot -> the address it is sent to now
        self._lock = threading.Lock()
        self.problem = ""  # why slots cannot follow their pods here (no iptables, not root)

    def address(self, slot: str, pod_ip: str) -> str:
        """The slot's stable address (its first pod's), remembered at first sight."""
        with self._lock:
            if pod_ip and slot not in self._first:
                self._first[slot] = pod_ip
            return self._first.get(slot, pod_ip)

    def sync(self, current: Mapping[str, str]) -> None:
        """Send each slot's address to its current pod (slot -> pod address, running pods)."""
        with self._lock:
            moved = {
                slot: ip
                for slot, ip in current.items()
                if ip and slot in self._first and self._first[slot] != ip
            }
            kept = {s: ip for s, ip in self._moved.items() if s not in current}
            wanted = {**kept, **moved}
            if wanted == self._moved or self.problem:
                return
            try:
                self._apply(wanted)
            except TargetError as exc:
                self.problem = str(exc)
                return
            for slot, ip in self._moved.items():
                if wanted.get(slot) != ip:
                    hostnet.forget_connections(self._first[slot], self.port, (ip, self.port))
            for slot in wanted.keys() - self._moved.keys():
                hostnet.forget_connections(
                    self._first[slot], self.port, (self._first[slot], self.port)
                )
            self._moved = wanted

    def _apply(self, wanted: Mapping[str, str]) -> None:
        problem = hostnet.problem()
        if problem:
            raise TargetError(problem)
        port = ["--dport", str(self.port)]
        rules = [
            hostnet.dnat((ip, self.port), ["-d", f"{self._first[slot]}/32", *port])
            for slot, ip in sorted(wanted.items())
        ]
        try:
            self._chain.replace(rules)
        except CommandError as exc:
            raise TargetError(str(exc)) from exc

    @property
    def routes(self) -> dict[str, tuple[str, str]]:
        """slot -> (its address, the pod address it is sent to), for the slots that moved."""
        with self._lock:
            return {slot: (self._first[slot], ip) for slot, ip in self._moved.items()}

    def remove(self) -> None:
        """Remove the jump and the chain; idempotent."""
        with self._lock:
            with contextlib.suppress(CommandError):
                self._chain.remove()
            self._moved = {}


class RouteFollower:
    """Applies the latest slot -> pod mapping on a thread of its own, so the watch that reports
    pod changes never waits on iptables and conntrack (their receipt times stay honest)."""

    def __init__(self, routes: SlotRoutes) -> None:
        self.routes = routes
        self._latest: Mapping[str, str] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kube-slot-routes", daemon=True)
        self._thread.start()

    def submit(self, current: Mapping[str, str]) -> None:
        with self._lock:
            self._latest = dict(current)
        self._wake.set()

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                latest, self._latest = self._latest, None
            if latest is not None and not self._closed.is_set():
                self.routes.sync(latest)

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        self._thread.join(timeout=10)
