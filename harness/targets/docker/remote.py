"""A Docker engine the harness does not run on: where it is, and how its replicas are reached.

An engine is remote when its address (`target.engine`, else DOCKER_HOST) names a host that is
not this machine, or when CHAOS_HARNESS_HOST_ACCESS=none forbids acting on this host at all
(a local engine then stands in for one elsewhere). On a remote engine the harness cannot see
the replicas' processes, namespaces or bridges: each replica's port is published on the
engine's host, at a port chosen here (an ephemeral one may change when the engine restarts
the container, and the probes keep the address they were given), and the load and the
probes go there.
"""

from __future__ import annotations

import ipaddress
import os
import random
from collections.abc import Iterator, Set
from urllib.parse import urlsplit

from harness.hostsys import host_access_allowed
from harness.targets.kubernetes.host import is_local_address

NETWORK_SCHEMES = ("tcp", "http", "https", "ssh")
LOCAL_HOST = "127.0.0.1"  # where a unix-socket engine publishes (the engine runs here)
# Published ports are drawn from here (below Linux's ephemeral range, 32768 on), seeded by the
# run id; a port the engine's host already uses is skipped at start (`port_taken`).
PUBLISHED_PORTS = range(20000, 30000)
PORT_ATTEMPTS = 20


def engine_address(engine: str | None) -> str:
    """The engine's address as given, else DOCKER_HOST's, else the default socket's."""
    return engine or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def engine_host(engine: str | None) -> str:
    """The host the engine runs on, as this machine reaches it (127.0.0.1 for a socket)."""
    parts = urlsplit(engine_address(engine))
    if parts.scheme in NETWORK_SCHEMES and parts.hostname:
        return parts.hostname
    return LOCAL_HOST


def publish_address(engine: str | None) -> str:
    """The address a replica's port is published on: the engine's, when it is an address
    (nothing else of the engine's host answers), else all of its host's."""
    host = engine_host(engine)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return "0.0.0.0"
    return host


def elsewhere(engine: str | None) -> bool:
    """Whether the engine's address names a host that is not this machine."""
    parts = urlsplit(engine_address(engine))
    return parts.scheme in NETWORK_SCHEMES and not is_local_address(parts.hostname or "")


def is_remote(engine: str | None) -> bool:
    """Whether the harness must treat the engine as one it does not run on."""
    return elsewhere(engine) or not host_access_allowed()


def port_candidates(run_id: str, taken: Set[int]) -> Iterator[int]:
    """Published ports to try for one replica, the same sequence for the same run."""
    rng = random.Random(run_id)
    tried = 0
    while tried < PORT_ATTEMPTS:
        port = rng.choice(PUBLISHED_PORTS)
        if port in taken:
            continue
        tried += 1
        yield port


def port_taken(message: str) -> bool:
    """Whether an engine's refusal to start a container means its host port is in use."""
    lowered = message.lower()
    return "port is already allocated" in lowered or "address already in use" in lowered
