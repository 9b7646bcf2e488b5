"""What the host can see of a Kubernetes cluster's containers: their host PIDs, and whether the
cluster runs on this machine at all.

The existing host-side faults (a signal to the main PID, iptables and tc in its network
namespace, stress-ng in its cgroups, a file under /proc/PID/root) need each pod container's
PID as the host sees it. Asking the runtime would tie the target to one runtime (cri-dockerd's
Docker engine of the node, or containerd's CRI); the kernel knows for all of them: a
container's processes sit in cgroups whose path holds the container id (cgroupfs:
`/kubepods/<qos>/pod<uid>/<id>`; systemd: `.../cri-containerd-<id>.scope`, `docker-<id>.scope`),
so /proc/<pid>/cgroup is searched for the id. Among the container's processes the main one is
the init of its PID namespace (the last NSpid field is 1); a process the harness put there
later (stress-ng joins the cgroup) is not. A found PID is cached with its start time and
checked again before reuse, so a recycled PID is never returned.

The same process tells when the container started, to 10 ms (its start time in clock ticks),
where the API says it to the second: the event trackers use it when the host can see it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from harness.hostsys import process_start_ticks

PROC = Path("/proc")
NS_PER_S = 1_000_000_000
TICK_NS = NS_PER_S // os.sysconf("SC_CLK_TCK")  # /proc/<pid>/stat counts start times in ticks


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:  # the process ended while we looked
        return ""


def _pid_namespace_init(pid: int) -> bool:
    """Is `pid` PID 1 of its own PID namespace (a container's main process)?"""
    for line in _read(PROC / str(pid) / "status").splitlines():
        if line.startswith("NSpid:"):
            fields = line.split()[1:]
            return len(fields) > 1 and fields[-1] == "1"
    return False


def scan_container_pid(container_id: str) -> int:
    """The host PID of the container's main process; 0 when no process of it is on this host."""
    if len(container_id) < 12:
        return 0
    members = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and container_id in _read(entry / "cgroup"):
            members.append(int(entry.name))
    if not members:
        return 0
    inits = [pid for pid in members if _pid_namespace_init(pid)]
    if inits:
        return min(inits)
    started = {pid: process_start_ticks(pid) for pid in members}
    alive = [pid for pid, ticks in started.items() if ticks is not None]
    return min(alive, key=lambda pid: (started[pid] or 0, pid)) if alive else 0


def process_start_ns(pid: int) -> int | None:
    """When `pid` started, in wall-clock nanoseconds (rounded down to a clock tick, 10 ms).

    /proc/<pid>/stat counts the start in ticks of CLOCK_BOOTTIME (Linux 5.3 on); the offset to
    the wall clock is read now (how early that puts a spawn: docs/TARGETS.md, Kubernetes host)."""
    ticks = process_start_ticks(pid)
    if ticks is None:
        return None
    boot_to_wall = time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    return boot_to_wall + ticks * TICK_NS


class ContainerPids:
    """Container id -> host PID, cached with the process's start time (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, tuple[int, int]] = {}

    def pid_of(self, container_id: str) -> int:
        if not container_id:
            return 0
        with self._lock:
            cached = self._known.get(container_id)
        if cached is not None and process_start_ticks(cached[0]) == cached[1]:
            return cached[0]
        pid = scan_container_pid(container_id)
        ticks = process_start_ticks(pid) if pid else None
        with self._lock:
            if pid and ticks is not None:
                self._known[container_id] = (pid, ticks)
            else:
                self._known.pop(container_id, None)
        return pid if ticks is not None else 0

    def started_ns(self, container_id: str) -> int | None:
        """When the container's main process started (wall clock, 10 ms ticks), if it runs here."""
        pid = self.pid_of(container_id)
        return process_start_ns(pid) if pid else None


def is_local_address(host: str) -> bool:
    """Whether `host` (a name or an address) is an address of this machine."""
    if not host:
        return False
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    for family, _type, _proto, _name, address in infos:
        ip = ipaddress.ip_address(address[0])
        if ip.is_loopback:
            return True
        with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address[0], 0))  # only an address of one of our interfaces binds
            return True
    return False


def server_is_local(server_url: str) -> bool:
    """Whether an API server URL (a kubeconfig's cluster.server) is on this machine."""
    return is_local_address(urlsplit(server_url).hostname or "")


def on_this_host(pid: int) -> bool:
    return pid > 0 and os.path.exists(f"/proc/{pid}")
