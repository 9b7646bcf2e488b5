"""Host plumbing the labs share: network namespaces, veths and a bridge, host iptables rules,
processes found by namespace and cgroup, mounts, cgroups and directories, state files.

Every function is idempotent where it makes or removes something, so a lab's `down()` can work
from its state file alone after a crash. Measured here: processes that must see a node's
network are started with `nsenter --net=/var/run/netns/NAME`, never `ip netns exec`, which
remounts /sys in a mount namespace of its own and so loses the cgroup mounts under it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from harness import cgroups, commands, hostnet
from harness.errors import CommandError, FaultError, TargetError

NETNS_DIR = Path("/var/run/netns")


# --- commands ---------------------------------------------------------------------------------


def sh(args: Sequence[str], check: bool = True, timeout_s: float = 30.0) -> str:
    """Run a host command for a lab; TargetError quoting the command and stderr on failure
    (harness.commands' CommandError, translated at the labs' edge)."""
    try:
        return commands.run(args, timeout_s=timeout_s, check=check).stdout
    except CommandError as exc:
        raise TargetError(str(exc)) from exc


def exists_link(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def iptables(action: str, rule: Sequence[str]) -> bool:
    """Host iptables: `rule` is (table, chain, *spec); False when the command fails."""
    table, *chain_spec = rule
    try:
        return hostnet.iptables_rule(action, chain_spec, table=table).ok
    except CommandError:
        return False


def netns_iptables(netns: str, action: str, rule: Sequence[str]) -> bool:
    """iptables inside a lab namespace; False if the rule (or the namespace) is gone.

    An insertion that fails raises FaultError (a fault must not believe it acted).
    """
    if not netns_path(netns).exists():
        return False
    try:
        done = hostnet.iptables_rule(action, rule, netns=netns_path(netns))
    except CommandError as exc:
        raise FaultError(str(exc)) from exc
    if action != "-D" and not done.ok:
        raise FaultError(str(commands.failed(done)))
    return done.ok


def in_netns(netns: str, args: Sequence[str], check: bool = True) -> str:
    """Run a host tool inside a lab namespace (`nsenter --net`)."""
    return sh(["nsenter", f"--net={netns_path(netns)}", *args], check=check)


def write_netns_sysctl(netns: str, name: str, value: str) -> None:
    """Set a per-namespace sysctl (net.*) inside a lab namespace, never the host's."""
    if not name.startswith("net."):
        raise TargetError(f"{name} is not a per-network-namespace sysctl; refusing to set it")
    path = "/proc/sys/" + name.replace(".", "/")
    in_netns(netns, ["sh", "-c", f"test ! -e {path} || echo {value} > {path}"])


# --- bridge, namespaces, veths ---------------------------------------------------------------


def make_bridge(bridge: str, address_cidr: str, rules: Sequence[Sequence[str]]) -> None:
    """The lab's bridge with the host's address on it, and the host rules the lab needs."""
    if not exists_link(bridge):
        sh(["ip", "link", "add", bridge, "type", "bridge"])
    sh(["ip", "addr", "replace", address_cidr, "dev", bridge])
    sh(["ip", "link", "set", bridge, "up"])
    for rule in rules:
        if not iptables("-C", rule) and not iptables("-I", rule):
            raise TargetError(f"cannot add the host rule 'iptables -t {' '.join(rule)}'")


def remove_bridge(bridge: str, rules: Sequence[Sequence[str]]) -> list[str]:
    removed = []
    if exists_link(bridge):
        sh(["ip", "link", "del", bridge])
        removed.append(f"bridge {bridge}")
    for rule in rules:
        while iptables("-D", rule):
            removed.append(f"iptables rule {' '.join(rule)}")
    return removed


def make_netns_on_bridge(
    bridge: str, netns: str, veth_host: str, veth_inside: str, address_cidr: str
) -> None:
    """A network namespace wired to the bridge by a veth pair, its address set, lo up."""
    if not netns_path(netns).exists():
        sh(["ip", "netns", "add", netns])
    if not exists_link(veth_host):
        sh(["ip", "link", "add", veth_host, "type", "veth", "peer", "name", veth_inside])
        sh(["ip", "link", "set", veth_inside, "netns", netns])
    sh(["ip", "link", "set", veth_host, "master", bridge, "up"])
    inside = ["ip", "-n", netns]
    sh([*inside, "addr", "replace", address_cidr, "dev", veth_inside])
    sh([*inside, "link", "set", veth_inside, "up"])
    sh([*inside, "link", "set", "lo", "up"])


def remove_netns(netns: str, veth_host: str) -> list[str]:
    removed = []
    if netns_path(netns).exists():
        sh(["ip", "netns", "del", netns])
        removed.append(f"netns {netns}")
    if exists_link(veth_host):
        sh(["ip", "link", "del", veth_host], check=False)
        removed.append(f"veth {veth_host}")
    return removed


def set_link(name: str, up: bool) -> bool:
    """Bring a host link up or down; False if it is gone."""
    if not exists_link(name):
        return False
    try:
        commands.run(["ip", "link", "set", name, "up" if up else "down"], timeout_s=30)
    except CommandError as exc:
        raise FaultError(str(exc)) from exc  # a node fault's act or undo
    return True


# --- processes --------------------------------------------------------------------------------


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def alive(pid: int) -> bool:
    """A live process (zombies waiting for their parent do not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def find_process(argv: Sequence[str]) -> int | None:
    """The live process whose command line is exactly `argv` (what nsenter exec'd)."""
    wanted = list(argv)
    for pid in pids():
        if cmdline(pid) == wanted and alive(pid):
            return pid
    return None


def _netns_key(netns: str) -> tuple[int, int] | None:
    try:
        found = os.stat(netns_path(netns))
    except OSError:
        return None
    return found.st_dev, found.st_ino


def processes_of(netns: str, cgroup_name: str) -> set[int]:
    """Every live process in the namespace `netns` or in a cgroup at or under /`cgroup_name`.

    The namespace catches the daemons; the cgroups catch what they started in namespaces of
    their own (containers, pods).
    """
    ns_key = _netns_key(netns)
    top = "/" + cgroup_name.strip("/")
    found = set()
    for pid in pids():
        if pid == os.getpid():
            continue
        with contextlib.suppress(OSError):
            ns = os.stat(f"/proc/{pid}/ns/net")
            if ns_key is not None and (ns.st_dev, ns.st_ino) == ns_key and alive(pid):
                found.add(pid)
                continue
            for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
                path = line.split(":", 2)[2]
                if (path == top or path.startswith(top + "/")) and alive(pid):
                    found.add(pid)
                    break
    return found


def kill_until_gone(finder: Callable[[], set[int]], what: str, timeout_s: float = 15.0) -> int:
    """SIGKILL whatever `finder` returns until it returns nothing; how many were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = finder()
        if not left:
            return len(killed)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed |= left
        time.sleep(0.1)
    raise TargetError(f"processes of {what} survive SIGKILL: {sorted(finder())}")


def spawn_detached(argv: Sequence[str], log_file: Path) -> None:
    """Start `argv` in a session of its own, reparented to init, output appended to a log
    (a daemon's start, not a one-shot command: its output goes to the log, not to us)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        subprocess.run(
            ["setsid", "--fork", *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            close_fds=True,
            check=True,
            timeout=15,
        )


def log_tail(path: Path, lines: int = 12) -> str:
    """The last lines of a log, indented, for an error message (the log may be gone after)."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n" + "\n".join(f"    {line[:300]}" for line in text)


# --- mounts, cgroups, directories ------------------------------------------------------------


def mounts_with_types() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount this process sees."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        found.append((_unescape(left.split()[4]), right.split()[0]))
    return found


def _unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040)."""
    return text.encode().decode("unicode_escape") if "\\" in text else text


def filesystem_of(path: Path) -> str:
    """The filesystem type of the mount that holds `path` (the longest mount prefix)."""
    target = str(path.resolve())
    best, fstype = "", ""
    for point, kind in mounts_with_types():
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, kind
    return fstype


def mounts_under(roots: Sequence[str]) -> list[str]:
    """Mount points at or under any of `roots`, deepest first."""
    prefixes = [r.rstrip("/") for r in roots if r]
    points = [
        point
        for point, _kind in mounts_with_types()
        if any(point == p or point.startswith(p + "/") for p in prefixes)
    ]
    return sorted(set(points), key=lambda p: (p.count("/"), p), reverse=True)


def unmount_under(roots: Sequence[str]) -> list[str]:
    """Lazily unmount everything mounted under `roots`; raise if a mount survives."""
    done: list[str] = []
    for _ in range(5):
        points = mounts_under(roots)
        if not points:
            return done
        for point in points:
            if commands.run(["umount", "-l", point], check=False).ok:
                done.append(point)
    left = mounts_under(roots)
    if left:
        raise TargetError(f"cannot unmount {', '.join(left)}")
    return done


def cgroup_dirs(cgroup_name: str) -> list[Path]:
    """The directories of a top-level cgroup in every hierarchy mounted here (v1 and v2)."""
    found = (h.directory(cgroup_name) for h in cgroups.layout().hierarchies)
    return [d for d in found if d is not None and d.is_dir()]


def cgroup_hierarchies() -> list[Path]:
    """The mount points of every cgroup hierarchy (v1 controllers, named, v2)."""
    return [h.mount_point for h in cgroups.layout().hierarchies]


def make_cgroups(cgroup_name: str) -> None:
    """A top-level cgroup in every hierarchy, usable as a kubelet's cgroupRoot or a dockerd's
    cgroup parent: a v1 cpuset gets its parent's cpus and mems (empty ones admit no task);
    on a v2-only machine its parent passes it every controller it has (the kubelet refuses a
    cgroupRoot that lacks cpu, cpuset, memory, hugetlb or pids)."""
    layout = cgroups.layout()
    for hierarchy in layout.hierarchies:
        path = hierarchy.directory(cgroup_name)
        if path is None:
            continue
        if hierarchy.version == 2 and layout.mode == "v2":
            _delegate_controllers(path.parent)
        path.mkdir(exist_ok=True)
        if hierarchy.version == 1:
            _copy_cpuset(path)


def _copy_cpuset(path: Path) -> None:
    for knob in ("cpuset.cpus", "cpuset.mems"):
        mine = path / knob
        if mine.exists() and not mine.read_text().strip():
            mine.write_text((path.parent / knob).read_text())


def _delegate_controllers(parent: Path) -> None:
    """Enable in `parent`'s subtree_control every controller it has (as runc does); hybrid
    layouts are left alone: their cgroup2 hierarchy is not the one the kubelet checks."""
    enabled = set((parent / "cgroup.subtree_control").read_text().split())
    for controller in (parent / "cgroup.controllers").read_text().split():
        if controller in enabled:
            continue
        try:
            (parent / "cgroup.subtree_control").write_text(f"+{controller}")
        except OSError as exc:
            raise TargetError(
                f"cannot enable the {controller} controller under {parent}: {exc.strerror}"
            ) from exc


def remove_cgroups(cgroup_name: str) -> int:
    """Remove a top-level cgroup and everything under it (empty ones only: rmdir)."""
    removed = 0
    for top in cgroup_dirs(cgroup_name):
        for path in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                with contextlib.suppress(OSError):
                    path.rmdir()
                    removed += 1
        with contextlib.suppress(OSError):
            top.rmdir()
            removed += 1
    return removed


def leftover_cgroups(prefix: str) -> list[Path]:
    """Top-level cgroups whose name starts with `prefix`, in every hierarchy mounted here."""
    found = []
    for hierarchy in cgroups.layout().hierarchies:
        top = hierarchy.directory("/")
        if top is not None:
            found += sorted(top.glob(f"{prefix}*"))
    return [p for p in found if p.is_dir()]


def remove_tree(path: Path) -> bool:
    """Remove a lab directory, never across a mount point."""
    if not path.exists():
        return False
    if mounts_under([str(path)]):
        raise TargetError(f"not removing {path}: something is still mounted under it")
    shutil.rmtree(path, ignore_errors=False)
    return True


# --- node names -------------------------------------------------------------------------------


class NamedNode:
    """What every lab derives from a node's index: its name (`<prefix>-n<index>`), which is
    also its network namespace, and its veth pair (`...h` on the bridge, `...c` inside)."""

    prefix: ClassVar[str]
    index: int

    @property
    def name(self) -> str:
        return f"{self.prefix}-n{self.index}"

    @property
    def netns(self) -> str:
        return self.name

    @property
    def veth_host(self) -> str:
        return f"{self.name}h"

    @property
    def veth_node(self) -> str:
        return f"{self.name}c"


# --- state files ------------------------------------------------------------------------------


StateT = TypeVar("StateT")


def load_json(path: Path, parse: Callable[[Any], StateT], what: str) -> StateT | None:
    """A lab's state from its file; None when there is none, a TargetError when unreadable."""
    try:
        return parse(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TargetError(f"unreadable {what} {path}: {exc}") from exc


def save_json(path: Path, raw: Any) -> None:
    """Write a state file atomically and durably (it is a lab's undo log)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as handle:
        json.dump(raw, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def remove_lab_dir(directory: Path) -> None:
    """A lab's directory after its `down`: its lock, then the directory and the default's
    parent (/var/lib/chaos-harness), each only if nothing else is left in it."""
    with contextlib.suppress(OSError):
        (directory / ".lock").unlink()
        directory.rmdir()
        if directory.parent.name == "chaos-harness":
            directory.parent.rmdir()


def take_down(
    directory: Path,
    read_state: Callable[[], StateT | None],
    teardown: Callable[[StateT], list[str]],
) -> list[str]:
    """A lab's `down()`: under its lock, `teardown` of its state if it has one, then its
    directory; what was removed, one line each (idempotent: nothing the second time)."""
    with locked(directory):
        state = read_state()
        removed = [] if state is None else teardown(state)
    remove_lab_dir(directory)
    return removed


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """One lab operation at a time (up, down, a node fault's state update)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def host_problem(*tools: str) -> str:
    """Why the lab's host tools cannot be used here ("" when they can)."""
    if os.geteuid() != 0:
        return "needs root"
    missing = [t for t in tools if shutil.which(t) is None]
    return f"missing {', '.join(missing)}" if missing else ""
