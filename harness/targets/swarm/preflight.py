"""Swarm's check before a run on one engine: the address `swarm init` will listen on is free."""

from __future__ import annotations

import errno
import socket

import docker
import docker.errors

from harness.errors import TargetError
from harness.targets.swarm.spec import SwarmTargetSpec

SWARM_PORT = 2377


def swarm_port_check(spec: SwarmTargetSpec, client: docker.DockerClient) -> None:
    """The address `swarm init` will listen on must be free when the run initialises one."""
    try:
        state = (client.info().get("Swarm") or {}).get("LocalNodeState")
    except docker.errors.APIError as exc:
        raise TargetError(f"cannot read the engine's swarm state: {exc}") from exc
    if state != "inactive":
        return  # already in a swarm: no port is bound for this run
    address = spec.swarm.advertise_addr
    if port_in_use(address, SWARM_PORT):
        raise TargetError(
            f"port {SWARM_PORT} on {address} is in use by another process, and the run must "
            f"initialise a swarm listening there: stop that process (ss -ltnp 'sport = "
            f":{SWARM_PORT}' names it) or set target.swarm.advertise_addr to another local "
            "address; nothing was deployed"
        )


def port_in_use(address: str, port: int) -> bool:
    """Whether binding `address:port` over TCP fails because something holds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as every server sets it: a port held only by closed connections is free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False
