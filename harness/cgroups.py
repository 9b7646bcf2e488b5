"""Where this machine's cgroup hierarchies are mounted and what each holds: v1, v2 or hybrid.

Machines of one kind boot differently, so nothing here is assumed: the hierarchies are read
from /proc/self/mountinfo (type `cgroup` or `cgroup2`), a v1 hierarchy's controllers from its
mount options (`rw,cpu,cpuacct`, `rw,name=systemd`), the cgroup2 hierarchy's from its
`cgroup.controllers`. Three layouts are met:
- v1: one hierarchy per controller (or group of them), no cgroup2 mount;
- hybrid: v1 controllers plus a cgroup2 hierarchy (often /sys/fs/cgroup/unified), which may be
  empty or hold controllers that no v1 hierarchy has (this machine: `hugetlb`);
- v2: one cgroup2 hierarchy, at /sys/fs/cgroup, holding every controller.

A process's cgroups come from /proc/PID/cgroup, one line per hierarchy it is in:
`N:cpu,cpuacct:/path` for a v1 one, `0::/path` for cgroup2. A line becomes a directory by the
mount of the same hierarchy: its mount point plus the path below the mount's root. The pure
functions take texts, so every layout is testable from constructed input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harness.errors import FaultError

MOUNTINFO = Path("/proc/self/mountinfo")

# The kernel's v1 subsystem names (include/linux/cgroup_subsys.h): a v1 mount's options hold
# these among generic ones (rw, relatime, clone_children, xattr, release_agent=...).
V1_SUBSYSTEMS = frozenset(
    [
        "cpuset",
        "cpu",
        "cpuacct",
        "memory",
        "devices",
        "freezer",
        "net_cls",
        "perf_event",
        "net_prio",
        "hugetlb",
        "pids",
        "rdma",
        "misc",
        "debug",
        "blkio",
    ]
)


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy."""

    version: int  # 1 or 2
    mount_point: Path
    root: str  # the cgroup mounted there: "/" unless a bind mount or namespace narrows it
    controllers: frozenset[str]  # v1: subsystems and name=...; v2: its cgroup.controllers

    def directory(self, cgroup_path: str) -> Path | None:
        """The directory of `cgroup_path` (as /proc/PID/cgroup writes it); None when the
        cgroup is outside what this mount shows."""
        root = PurePosixPath(self.root)
        path = PurePosixPath("/" + cgroup_path.strip("/"))
        if path != root and root not in path.parents:
            return None
        return self.mount_point / path.relative_to(root)


@dataclass(frozen=True)
class Membership:
    """One line of /proc/PID/cgroup: the process's cgroup in one hierarchy."""

    hierarchy_id: int
    controllers: frozenset[str]  # empty on the cgroup2 line
    path: str

    @property
    def unified(self) -> bool:
        return self.hierarchy_id == 0 and not self.controllers


@dataclass(frozen=True)
class Layout:
    """Every cgroup hierarchy mounted on this machine."""

    hierarchies: tuple[Hierarchy, ...]

    @property
    def unified(self) -> Hierarchy | None:
        return next((h for h in self.hierarchies if h.version == 2), None)

    @property
    def v1(self) -> tuple[Hierarchy, ...]:
        return tuple(h for h in self.hierarchies if h.version == 1)

    @property
    def mode(self) -> str:
        """'v1', 'v2', 'hybrid' (v1 controllers and a cgroup2 mount), or 'none'. A named v1
        hierarchy alone (name=systemd, kept for old containers) holds no resource: v2."""
        v1_controllers = any(not c.startswith("name=") for h in self.v1 for c in h.controllers)
        if v1_controllers and self.unified:
            return "hybrid"
        if v1_controllers:
            return "v1"
        return "v2" if self.unified else "none"

    def holding(self, controller: str) -> Hierarchy | None:
        """The hierarchy that holds `controller`; "" names the cgroup2 one."""
        if controller == "":
            return self.unified
        return next((h for h in self.hierarchies if controller in h.controllers), None)

    def hierarchy_of(self, membership: Membership) -> Hierarchy | None:
        """The mounted hierarchy a /proc/PID/cgroup line is about; None when it is not mounted."""
        if membership.unified:
            return self.unified
        return next((h for h in self.v1 if h.controllers == membership.controllers), None)

    def describe(self) -> str:
        """One line for a manifest or an error: the mode and where each controller is."""
        unified = self.unified
        if unified is None:
            return self.mode
        held = ",".join(sorted(unified.controllers)) or "no controller"
        return f"{self.mode} (cgroup2 at {unified.mount_point} holds {held})"


# --- parsing (pure) ---------------------------------------------------------------------------


def parse_mountinfo(text: str, v2_controllers: Callable[[Path], str]) -> Layout:
    """The cgroup hierarchies of a mountinfo text; `v2_controllers(mount point)` returns the
    text of that mount's cgroup.controllers. A hierarchy mounted twice counts once (its first
    mount, or one showing its root)."""
    found: dict[tuple[int, frozenset[str]], Hierarchy] = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, after = left.split(), right.split()
        fstype = after[0]
        if fstype not in ("cgroup", "cgroup2") or len(fields) < 5 or len(after) < 3:
            continue
        mount_point = Path(_unescape(fields[4]))
        if fstype == "cgroup2":
            version, controllers = 2, frozenset(v2_controllers(mount_point).split())
            key: tuple[int, frozenset[str]] = (2, frozenset())
        else:
            options = after[2].split(",")
            controllers = frozenset(
                o for o in options if o in V1_SUBSYSTEMS or o.startswith("name=")
            )
            version, key = 1, (1, controllers)
        hierarchy = Hierarchy(version, mount_point, _unescape(fields[3]), controllers)
        if key not in found or (found[key].root != "/" and hierarchy.root == "/"):
            found[key] = hierarchy
    return Layout(tuple(found.values()))


def parse_proc_cgroup(text: str) -> list[Membership]:
    """The lines of a /proc/PID/cgroup text."""
    found = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        controllers = frozenset(c for c in parts[1].split(",") if c)
        found.append(Membership(int(parts[0]), controllers, parts[2]))
    return found


def directory_for(layout: Layout, memberships: Sequence[Membership], controller: str) -> Path:
    """The directory of the process's cgroup in the hierarchy holding `controller` ("" for the
    cgroup2 one); FaultError when no mounted hierarchy holds it or the process is not in it."""
    hierarchy = layout.holding(controller)
    what = f"the '{controller}' controller" if controller else "a cgroup2 hierarchy"
    if hierarchy is None:
        raise FaultError(f"no cgroup hierarchy mounted here holds {what} ({layout.describe()})")
    for membership in memberships:
        if layout.hierarchy_of(membership) == hierarchy:
            directory = hierarchy.directory(membership.path)
            if directory is not None:
                return directory
    raise FaultError(f"the process is in no cgroup of {what} at {hierarchy.mount_point}")


def directories(layout: Layout, memberships: Sequence[Membership]) -> list[Path]:
    """The directory of every cgroup the process is in, in every mounted hierarchy (v1,
    named, cgroup2); lines of hierarchies not mounted here are left out."""
    found = []
    for membership in memberships:
        hierarchy = layout.hierarchy_of(membership)
        directory = hierarchy.directory(membership.path) if hierarchy else None
        if directory is not None:
            found.append(directory)
    return found


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash in octal (\\040)."""
    return text.encode().decode("unicode_escape") if "\\" in text else text


# --- this machine -----------------------------------------------------------------------------


def layout() -> Layout:
    """The hierarchies mounted now, as this process sees them."""
    return parse_mountinfo(MOUNTINFO.read_text(), _read_controllers)


def memberships(pid: int) -> list[Membership]:
    """The cgroups of `pid`; FaultError when it is gone."""
    try:
        return parse_proc_cgroup(Path(f"/proc/{pid}/cgroup").read_text())
    except OSError as exc:
        raise FaultError(f"cannot read the cgroup of PID {pid}: {exc.strerror}") from exc


def _read_controllers(mount_point: Path) -> str:
    try:
        return (mount_point / "cgroup.controllers").read_text()
    except OSError:
        return ""
