"""Host-side commands that act inside an instance's namespaces and cgroups.

Faults inject from the host (as Litmus and Chaos Mesh do), so they work with any image:
`nsenter -t PID -n iptables ...` acts in the container's network namespace without any tool
in the image. Commands run through harness.commands; here, at the faults' edge, its
CommandError becomes a FaultError that quotes the command and its stderr.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from harness import cgroups, commands
from harness.errors import CapabilityError, CommandError, FaultError

HOST_ACCESS_ENV = "CHAOS_HARNESS_HOST_ACCESS"
HOST_ACCESS_VALUES = ("full", "none")


def host_access_allowed() -> bool:
    """Whether the harness may act on this host's processes, namespaces, cgroups and routes.

    `CHAOS_HARNESS_HOST_ACCESS=none` forbids it, so a lab on this machine stands in for a
    cluster the harness does not run (host-side faults then go through the fault agent)."""
    value = os.environ.get(HOST_ACCESS_ENV, "full").strip().lower() or "full"
    if value not in HOST_ACCESS_VALUES:
        raise CapabilityError(
            f"{HOST_ACCESS_ENV}={value!r} is not one of {', '.join(HOST_ACCESS_VALUES)}: "
            "unset it (the default, full) or set it to none"
        )
    return value == "full"


def require_tool(name: str, package: str) -> str:
    """The tool's path, or a CapabilityError that says which Debian package brings it."""
    path = shutil.which(name)
    if path is None:
        raise CapabilityError(f"'{name}' is not installed: apt-get install -y {package}")
    return path


def run(args: Sequence[str], timeout_s: float = 15.0, check: bool = True) -> str:
    """Run a host command for a fault; its stdout, or FaultError quoting the command and
    stderr (harness.commands' CommandError, translated)."""
    try:
        return commands.run(args, timeout_s=timeout_s, check=check).stdout
    except CommandError as exc:
        raise FaultError(str(exc)) from exc


def with_parent_death_signal(argv: Sequence[str]) -> list[str]:
    """`argv` run so that the kernel sends it SIGTERM when its parent dies (prctl's
    PR_SET_PDEATHSIG, kept across exec), through util-linux's setpriv; `argv` unchanged
    where setpriv is missing (then `harness cleanup` stops it by its recorded PID)."""
    setpriv = shutil.which("setpriv")
    return list(argv) if setpriv is None else [setpriv, "--pdeathsig", "TERM", "--", *argv]


def in_netns(pid: int, args: Sequence[str], timeout_s: float = 15.0, check: bool = True) -> str:
    """Run a host tool inside the network namespace of process `pid`."""
    return run(["nsenter", "-t", str(pid), "-n", *args], timeout_s=timeout_s, check=check)


def cgroup_version() -> int:
    """2 when the machine has only the cgroup2 hierarchy, else 1 (v1 or hybrid: see
    harness.cgroups for which hierarchy holds which controller)."""
    return 2 if cgroups.layout().mode == "v2" else 1


def cgroup_dir(pid: int, controller: str) -> Path:
    """The host directory of `pid`'s cgroup in the hierarchy holding `controller` (v1 or
    cgroup2, wherever it is mounted; "" names the cgroup2 hierarchy)."""
    found = cgroups.memberships(pid)
    try:
        return cgroups.directory_for(cgroups.layout(), found, controller)
    except FaultError as exc:
        raise FaultError(f"PID {pid}: {exc}") from exc


@dataclass(frozen=True)
class UsageFiles:
    """The kernel's accounting files of one process's cgroups: what cAdvisor and `docker stats`
    read. v1: cpuacct.usage (ns) and memory.usage_in_bytes; cgroup2: cpu.stat's usage_usec and
    memory.current. Memory counts the page cache, as the kernel charges it."""

    cpu: Path
    memory: Path

    def cpu_seconds(self) -> float:
        """The CPU time the cgroup used since it was made (OSError when it is gone)."""
        text = self.cpu.read_text()
        if self.cpu.name == "cpu.stat":
            fields = dict(line.split(maxsplit=1) for line in text.splitlines() if " " in line)
            return int(fields["usage_usec"]) / 1e6
        return int(text.strip()) / 1e9

    def memory_bytes(self) -> int:
        """The bytes charged to the cgroup now (OSError when it is gone)."""
        return int(self.memory.read_text().strip())


def usage_files(pid: int) -> UsageFiles:
    """Where `pid`'s CPU and memory use are accounted (v1, hybrid or cgroup2); FaultError
    when the process is gone or no mounted hierarchy holds the controller."""
    layout = cgroups.layout()
    cpu_v1 = layout.holding("cpuacct")
    memory_v1 = layout.holding("memory")
    cpu = (
        cgroup_dir(pid, "cpuacct") / "cpuacct.usage"
        if cpu_v1 is not None and cpu_v1.version == 1
        else cgroup_dir(pid, "") / "cpu.stat"
    )
    memory = (
        cgroup_dir(pid, "memory") / "memory.usage_in_bytes"
        if memory_v1 is not None and memory_v1.version == 1
        else cgroup_dir(pid, "") / "memory.current"
    )
    return UsageFiles(cpu, memory)


def memory_usage(pid: int) -> int:
    """The bytes charged to `pid`'s memory cgroup now (page cache included)."""
    try:
        return usage_files(pid).memory_bytes()
    except OSError as exc:
        raise FaultError(f"cannot read the memory use of PID {pid}: {exc.strerror}") from exc


def process_start_ticks(pid: int) -> int | None:
    """The start time of `pid` (clock ticks since boot), or None if there is no such process.

    Recorded with a PID so that a later kill never hits a recycled PID.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    return int(stat.rsplit(")", 1)[1].split()[19])


def kill_recorded(pid: int, start_ticks: int | None, sig: int) -> bool:
    """Signal `pid` only if it is still the process that was recorded; True if signalled."""
    import os

    if start_ticks is None or process_start_ticks(pid) != start_ticks:
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def unix_socket_server(url: str, timeout_s: float = 5.0) -> str | None:
    """The process that listens on a unix:// socket, as "<pid>:<start ticks>" (the kernel's
    SO_PEERCRED of a fresh connection: the listener's creator); None for other addresses or
    when nothing listens. A daemon that restarted is another process."""
    import socket
    import struct

    if not url.startswith("unix://"):
        return None
    path = url[len("unix://") :]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout_s)
            conn.connect(path)
            raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid, _uid, _gid = struct.unpack("3i", raw)
    return f"{pid}:{process_start_ticks(pid)}"


SignalHandler = Callable[[int, FrameType | None], None]


@contextlib.contextmanager
def on_stop_signals(handler: SignalHandler) -> Iterator[None]:
    """`handler` for SIGINT and SIGTERM inside the block, the previous handlers after it."""
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
