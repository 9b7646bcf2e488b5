"""The cgroup layout read from mountinfo, and paths built from /proc/PID/cgroup, for the three
layouts machines of this kind boot with:
(a) v1 controllers plus a cgroup2 hierarchy holding a controller (this machine: hugetlb),
(b) v1 controllers with an empty or absent cgroup2 hierarchy,
(c) cgroup2 only.
Every expected path is written by hand from the constructed texts. Then, on this machine: a
lab's top-level cgroup lands in every hierarchy the kernel puts a process in, and stress-ng
joins a container's cgroup in every hierarchy (the cgroup2 one of a hybrid layout too).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from faults.mechanisms import stress
from harness import cgroups
from harness.errors import FaultError
from harness.labs import host

P = Path
ID = "3f2a9c"

# (a) this machine's layout: separate cpu and cpuacct, a named systemd hierarchy, cgroup2 at
# /sys/fs/cgroup/unified holding hugetlb (which no v1 hierarchy has)
HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_CONTROLLERS = {P("/sys/fs/cgroup/unified"): "hugetlb\n"}
HYBRID_PROC = f"""\
9:name=systemd:/docker/{ID}
7:blkio:/docker/{ID}
4:memory:/docker/{ID}
2:cpuacct:/docker/{ID}
1:cpu:/docker/{ID}
0::/docker/{ID}
"""

# (b) systemd's v1 layout: joint cpu,cpuacct and net_cls,net_prio mounts, optional fields
# (shared:N), generic options among the controllers, an empty cgroup2 hierarchy
V1 = """\
25 24 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,relatime shared:5 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:6 - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/net_cls,net_prio rw shared:10 - cgroup cgroup rw,net_cls,net_prio
32 25 0:29 / /sys/fs/cgroup/memory rw,nosuid shared:11 - cgroup cgroup rw,memory
33 25 0:30 / /sys/fs/cgroup/cpuset rw shared:12 - cgroup cgroup rw,cpuset,clone_children
"""
V1_NO_UNIFIED = "\n".join(line for line in V1.splitlines() if "cgroup2" not in line)
V1_PROC = f"""\
12:cpuset:/docker/{ID}
11:memory:/docker/{ID}
9:net_cls,net_prio:/docker/{ID}
5:cpu,cpuacct:/docker/{ID}
1:name=systemd:/docker/{ID}
0::/docker/{ID}
"""

# (c) cgroup2 only, Docker's systemd driver naming
V2 = """\
30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev shared:4 - cgroup2 cgroup2 rw,nsdelegate
"""
V2_CONTROLLERS = {P("/sys/fs/cgroup"): "cpuset cpu io memory hugetlb pids rdma misc\n"}
V2_PROC = f"0::/system.slice/docker-{ID}.scope\n"


def layout_of(mountinfo: str, controllers: dict[Path, str] | None = None) -> cgroups.Layout:
    return cgroups.parse_mountinfo(mountinfo, lambda point: (controllers or {}).get(point, ""))


def test_hybrid_layout_finds_hugetlb_on_cgroup2_and_every_v1_hierarchy() -> None:
    layout = layout_of(HYBRID, HYBRID_CONTROLLERS)
    assert layout.mode == "hybrid"
    # 4 v1 hierarchies (cpu, cpuacct, memory, name=systemd) + 1 cgroup2; the tmpfs is none
    assert len(layout.hierarchies) == 5
    assert layout.holding("hugetlb") == cgroups.Hierarchy(
        2, P("/sys/fs/cgroup/unified"), "/", frozenset({"hugetlb"})
    )
    assert layout.holding("blkio") is None  # not in the constructed mountinfo
    found = cgroups.parse_proc_cgroup(HYBRID_PROC)
    memory = cgroups.directory_for(layout, found, "memory")
    assert memory == P(f"/sys/fs/cgroup/memory/docker/{ID}")
    hugetlb = cgroups.directory_for(layout, found, "hugetlb")
    assert hugetlb == P(f"/sys/fs/cgroup/unified/docker/{ID}")
    # every mounted hierarchy of the process, in its lines' order; blkio is not mounted
    assert cgroups.directories(layout, found) == [
        P(f"/sys/fs/cgroup/systemd/docker/{ID}"),
        P(f"/sys/fs/cgroup/memory/docker/{ID}"),
        P(f"/sys/fs/cgroup/cpuacct/docker/{ID}"),
        P(f"/sys/fs/cgroup/cpu/docker/{ID}"),
        P(f"/sys/fs/cgroup/unified/docker/{ID}"),
    ]


def test_v1_layout_matches_joint_hierarchies_by_their_controller_set() -> None:
    layout = layout_of(V1)  # the cgroup2 mount is there and holds nothing
    assert layout.mode == "hybrid"
    cpuset = layout.holding("cpuset")  # its mount options also hold clone_children
    assert cpuset is not None and cpuset.controllers == frozenset({"cpuset"})
    found = cgroups.parse_proc_cgroup(V1_PROC)
    cpu = cgroups.directory_for(layout, found, "cpuacct")
    assert cpu == P(f"/sys/fs/cgroup/cpu,cpuacct/docker/{ID}")
    named = cgroups.directory_for(layout, found, "name=systemd")
    assert named == P(f"/sys/fs/cgroup/systemd/docker/{ID}")  # not .../name=systemd/...
    with pytest.raises(FaultError, match="hugetlb"):
        cgroups.directory_for(layout, found, "hugetlb")
    assert cgroups.directories(layout, found) == [
        P(f"/sys/fs/cgroup/cpuset/docker/{ID}"),
        P(f"/sys/fs/cgroup/memory/docker/{ID}"),
        P(f"/sys/fs/cgroup/net_cls,net_prio/docker/{ID}"),
        P(f"/sys/fs/cgroup/cpu,cpuacct/docker/{ID}"),
        P(f"/sys/fs/cgroup/systemd/docker/{ID}"),
        P(f"/sys/fs/cgroup/unified/docker/{ID}"),
    ]


def test_v1_layout_without_cgroup2_leaves_the_0_line_out() -> None:
    layout = layout_of(V1_NO_UNIFIED)
    assert layout.mode == "v1"
    found = cgroups.parse_proc_cgroup(V1_PROC)
    # 6 lines, the 0:: one has no mounted hierarchy: 5 directories
    assert len(cgroups.directories(layout, found)) == 5
    with pytest.raises(FaultError, match="no cgroup hierarchy"):
        cgroups.directory_for(layout, found, "")


def test_v2_layout_puts_every_controller_in_the_one_directory() -> None:
    layout = layout_of(V2, V2_CONTROLLERS)
    assert layout.mode == "v2"
    found = cgroups.parse_proc_cgroup(V2_PROC)
    scope = P(f"/sys/fs/cgroup/system.slice/docker-{ID}.scope")
    for controller in ("cpu", "memory", "hugetlb", ""):
        assert cgroups.directory_for(layout, found, controller) == scope
    assert cgroups.directories(layout, found) == [scope]
    with pytest.raises(FaultError, match="freezer"):  # v2 freezes through cgroup.freeze
        cgroups.directory_for(layout, found, "freezer")


def test_a_named_v1_hierarchy_beside_cgroup2_is_still_a_v2_machine() -> None:
    # hosts on cgroup2 mount name=systemd as v1 for containers whose systemd wants it
    named = "35 30 0:40 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"
    layout = layout_of(V2 + named, V2_CONTROLLERS)
    assert layout.mode == "v2"
    assert layout.holding("memory") == cgroups.Hierarchy(
        2, P("/sys/fs/cgroup"), "/", frozenset(V2_CONTROLLERS[P("/sys/fs/cgroup")].split())
    )


def test_a_mount_of_a_subtree_shows_only_what_is_under_its_root() -> None:
    # a hierarchy mounted twice: first a subtree (as a container sees its own), then whole
    text = """\
50 40 0:32 /docker/abc /run/inner/memory rw - cgroup cgroup rw,memory
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
60 40 0:40 /docker/abc /run/my\\040mount rw - cgroup cgroup rw,pids
"""
    layout = layout_of(text)
    memory = layout.holding("memory")
    assert memory is not None and memory.mount_point == P("/sys/fs/cgroup/memory")
    pids = layout.holding("pids")
    assert pids is not None and pids.mount_point == P("/run/my mount")  # \040 is a space
    assert pids.directory("/docker/abc/sub") == P("/run/my mount/sub")
    assert pids.directory("/docker/abcd") is None  # a sibling, not under the root
    assert pids.directory("/") is None


# --- this machine -----------------------------------------------------------------------------


@pytest.fixture
def lab_cgroup() -> Iterator[str]:
    name = f"chaos-harness-cgtest-{secrets.token_hex(3)}"
    yield name
    host.remove_cgroups(name)


@pytest.mark.skipif(os.geteuid() != 0, reason="making cgroups needs root")
def test_make_cgroups_reaches_every_hierarchy_the_kernel_lists(lab_cgroup: str) -> None:
    host.make_cgroups(lab_cgroup)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        for directory in host.cgroup_dirs(lab_cgroup):
            (directory / "cgroup.procs").write_text(str(sleeper.pid))
        # the kernel's own account: every line of the process names the lab's cgroup (here:
        # 9 v1 hierarchies and the cgroup2 one, 10 lines)
        lines = Path(f"/proc/{sleeper.pid}/cgroup").read_text().splitlines()
        assert [line.split(":", 2)[2] for line in lines] == [f"/{lab_cgroup}"] * len(lines)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert host.remove_cgroups(lab_cgroup) == len(lines)
    assert host.cgroup_dirs(lab_cgroup) == []


@pytest.mark.docker
def test_stress_ng_joins_the_container_in_every_hierarchy(
    docker_client: docker.DockerClient, demo_image: str, tmp_path: Path
) -> None:
    container = docker_client.containers.run(
        demo_image, ["60"], entrypoint="/bin/sleep", detach=True, remove=True
    )
    try:
        container.reload()
        pid = int(container.attrs["State"]["Pid"])
        spec = stress.StressSpec(
            instance="probe",
            marker=f"cgtest/{secrets.token_hex(3)}",
            cgroups=stress.target_cgroups(pid),
            args=("--cpu", "1", "--cpu-load", "5", "--timeout", "30"),
            pidfile=str(tmp_path / "s.pid"),
            log=str(tmp_path / "s.log"),
        )
        started = stress.start(spec)
        try:
            # the kernel's account of both: the same cgroup in every hierarchy, the cgroup2
            # line (0::) and the named ones included
            ours = Path(f"/proc/{started}/cgroup").read_text()
            assert ours == Path(f"/proc/{pid}/cgroup").read_text()
        finally:
            stress.stop(spec)
    finally:
        container.kill()
