"""A virtual service address spread over a run's replicas with iptables, as kube-proxy does.

The Docker and Podman engines have no load balancer, and Swarm's routing mesh needs IPVS, which
these machines lack. A load generator that takes one `--host` (a user's own locustfile) still
needs one address for the whole workload: `VirtualService` gives it one. A jump in the nat
OUTPUT chain sends new TCP connections to the virtual address (the host's own traffic: the load
runs here) into a chain of the run, where one rule per replica DNATs the connection with the
`statistic` match in random mode, probability 1/n, 1/(n-1), ..., the last unconditional: each
replica gets an equal share, as kube-proxy's iptables mode spreads a Service. The kernel keeps
each connection on the replica it was sent to (conntrack); a replica that is down gets its
share of new connections all the same, and they fail until it is back, as behind kube-proxy
without readiness.

The backends are replaced in one `iptables-restore --noflush` transaction (declaring the chain
flushes it inside the transaction), so a change never leaves a moment without rules. When a
backend moves (a Swarm slot's new task), the conntrack entries of connections sent to its old
destination are dropped, or a new connection reusing such a 5-tuple would follow the old one.

The chain, its jump (which carries the run and its owner, for `harness cleanup`), the
transactions, conntrack and finding and removing a run's chains are harness.hostnet's.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence

from harness import hostnet
from harness.errors import CommandError, TargetError

PURPOSE = "VIP"


def vip_chain(run_id: str) -> str:
    return hostnet.chain_name(run_id, PURPOSE)


# --- one run's virtual service ----------------------------------------------------------------


class VirtualService:
    """address:port spread over the run's replicas; set up once, backends replaced at will."""

    def __init__(self, run_id: str, owner: str, address: str, port: int) -> None:
        self.run_id = run_id
        self.address = address
        self.port = port
        match = ["-d", f"{address}/32", "-p", "tcp", "--dport", str(port)]
        self._chain = hostnet.RunChain(run_id, owner, PURPOSE, match)
        self.chain = self._chain.chain
        self._backends: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self.enabled = False

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def setup(self, backends: Sequence[tuple[str, int]]) -> None:
        """Create the chain with its backends and the jump that sends the address there."""
        problem = hostnet.problem()
        if problem:
            raise TargetError(f"a service address needs iptables: {problem}")
        with self._lock:
            try:
                self._chain.replace(hostnet.spread_rules(backends))
            except CommandError as exc:
                self._remove()
                raise TargetError(f"cannot set up the service address {self.url}: {exc}") from exc
            self._backends = list(backends)
            self.enabled = True

    def set_backends(self, backends: Sequence[tuple[str, int]]) -> None:
        """Spread new connections over `backends` from now on; forget the moved ones' flows."""
        with self._lock:
            if not self.enabled or list(backends) == self._backends:
                return
            try:
                self._chain.replace(hostnet.spread_rules(backends))
            except CommandError as exc:
                raise TargetError(f"cannot change the backends of {self.url}: {exc}") from exc
            for old in set(self._backends) - set(backends):
                hostnet.forget_connections(self.address, self.port, old)
            self._backends = list(backends)

    @property
    def backends(self) -> list[tuple[str, int]]:
        return list(self._backends)

    def remove(self) -> None:
        """Remove the jump and the chain; idempotent."""
        with self._lock:
            self._remove()

    def _remove(self) -> None:
        with contextlib.suppress(CommandError):
            self._chain.remove()
        self._backends = []
        self.enabled = False
