"""The bundled locustfile's source ports: every new connection takes the least recently used
port of this process's share of the kernel's ephemeral range, and a port whose connection got
no answer (a timeout, or an ICMP unreachable from a router on the way) is not used again in
the run.

Why: one load host stands for many users, and a real user never opens a connection from the
source port of one that just went unanswered. Left to the kernel, a busy host comes back to
the same source ports within seconds; on the path through a Kubernetes Service, node conntrack
keeps an unanswered connection's NAT decision (SYN_SENT [UNREPLIED], 120 s), so a new
connection from that port goes to the pod it went to before, even once that pod has left the
endpoints. Kubernetes relies on TCP clients retrying from new source ports
(kubernetes/kubernetes#101607); this module makes the load one of those clients. The evidence:
docs/LOAD.md, Source ports.

Connections opened with geventhttpclient (FastHttpUser, the bundled locustfile's client) go
through `install()`; a user's own locustfile keeps the kernel's choice.
CHAOS_HARNESS_SOURCE_PORTS=kernel turns it off. Ports: ip_local_port_range minus
ip_local_reserved_ports, split between the load's processes (each takes every n-th port from
its worker index); a port in use is skipped; at most a quarter of a share is set aside, beyond
that the oldest returns.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

PORT_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
RESERVED = "/proc/sys/net/ipv4/ip_local_reserved_ports"
ASIDE_MAX_SHARE = 0.25
BIND_TRIES = 64


class PortRing:
    """Ports handed out in turn, each the least recently used, minus those set aside."""

    def __init__(self, ports: Sequence[int]) -> None:
        if not ports:
            raise ValueError("no source ports to use")
        self.ports = list(ports)
        self.next = 0
        self.aside: dict[int, None] = {}  # insertion order: the oldest first
        self.aside_max = max(1, int(len(self.ports) * ASIDE_MAX_SHARE))

    def take(self) -> int:
        """The next port in turn that is not set aside."""
        while True:
            port = self.ports[self.next]
            self.next = (self.next + 1) % len(self.ports)
            if port not in self.aside:
                return port

    def set_aside(self, port: int) -> None:
        """Never hand out `port` again (until more than the allowed share is set aside)."""
        self.aside.pop(port, None)
        self.aside[port] = None
        while len(self.aside) > self.aside_max:
            del self.aside[next(iter(self.aside))]


def parse_ports(text: str) -> set[int]:
    """'8080,9000-9002' -> {8080, 9000, 9001, 9002} (the kernel's reserved-ports format)."""
    ports: set[int] = set()
    for item in text.replace("\n", ",").split(","):
        low, _, high = item.strip().partition("-")
        if low.isdigit():
            ports.update(range(int(low), int(high or low) + 1))
    return ports


def share(low: int, high: int, reserved: set[int], index: int, count: int) -> list[int]:
    """Process `index` of `count`: every count-th port of [low, high] from low + index."""
    return [p for p in range(low + index % count, high + 1, count) if p not in reserved]


def kernel_ports() -> tuple[int, int, set[int]]:
    """The ephemeral range and the reserved ports, as the kernel has them here."""
    with open(PORT_RANGE, encoding="ascii") as handle:
        low, high = (int(x) for x in handle.read().split())
    try:
        with open(RESERVED, encoding="ascii") as handle:
            reserved = parse_ports(handle.read())
    except OSError:
        reserved = set()
    return low, high, reserved


def _wildcard(family: int) -> str:
    return "::" if family == socket.AF_INET6 else "0.0.0.0"


# no answer from the far end: conntrack on the way may still hold the connection's NAT decision
UNANSWERED = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN})


def unanswered(exc: OSError) -> bool:
    """A timeout, or an ICMP unreachable from a router on the way (a refusal or a reset came
    from the far end, and conntrack saw it close the connection)."""
    return isinstance(exc, TimeoutError) or exc.errno in UNANSWERED


def _tracked_socket_class(base: type[Any], ring: PortRing) -> type[Any]:
    """`base` (gevent's socket) that sets its port aside when it closes after a connect, send
    or receive that got no answer."""

    class TrackedSocket(base):  # type: ignore[misc, valid-type]
        ring_port: int | None = None
        timed_out = False  # got no answer (see `unanswered`)

        def _watch(self, call: Callable[..., Any], *args: Any) -> Any:
            try:
                return call(*args)
            except OSError as exc:
                self.timed_out = self.timed_out or unanswered(exc)
                raise

        def recv(self, *args: Any) -> Any:
            return self._watch(super().recv, *args)

        def recv_into(self, *args: Any) -> Any:
            return self._watch(super().recv_into, *args)

        def sendall(self, *args: Any) -> Any:
            return self._watch(super().sendall, *args)

        def connect(self, *args: Any) -> Any:
            return self._watch(super().connect, *args)

        def close(self) -> None:
            if self.timed_out and self.ring_port is not None:
                ring.set_aside(self.ring_port)
                self.ring_port = None
            super().close()

    return TrackedSocket


def _bind_from_ring(sock: Any, ring: PortRing) -> None:
    """Bind `sock` to the next free port of the ring (the kernel's choice if none is free)."""
    for _ in range(BIND_TRIES):
        port = ring.take()
        try:
            sock.bind((_wildcard(sock.family), port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                continue
            raise
        sock.ring_port = port
        return


_installed: list[PortRing] = []


def install(index: int, count: int) -> PortRing | None:
    """Route geventhttpclient's new connections through a ring of this process's ports
    (once per process); None when CHAOS_HARNESS_SOURCE_PORTS=kernel."""
    if os.environ.get("CHAOS_HARNESS_SOURCE_PORTS", "rotate") == "kernel":
        return None
    if _installed:
        return _installed[0]
    import gevent.socket
    from geventhttpclient.connectionpool import ConnectionPool

    low, high, reserved = kernel_ports()
    ring = PortRing(share(low, high, reserved, index, max(1, count)))
    tracked = _tracked_socket_class(gevent.socket.socket, ring)

    def create(_pool: Any, family: int, socktype: int, protocol: int) -> Any:
        sock = tracked(family, socktype, protocol)
        if family in (socket.AF_INET, socket.AF_INET6):
            _bind_from_ring(sock, ring)
        return sock

    ConnectionPool._create_tcp_socket = create  # type: ignore[method-assign]
    _installed.append(ring)
    return ring
