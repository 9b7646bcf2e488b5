"""One Kubernetes node of the lab: its namespaces, files and processes (containerd, kubelet,
kube-proxy).

A node is a network namespace (`chk8s-n<i>`, on the lab's bridge) and a mount namespace of its
own, held by a file (`<run dir>/mnt`, made with `unshare --mount=FILE`); every process of the
node is started with `nsenter --net=... --mount=...`. The mount namespace keeps the host as it
was: the /proc/sys files the kubelet would set are covered by bind mounts holding the values
it wants (so it runs with protectKernelDefaults: true and writes nothing); the volumes the
kubelet mounts are what containerd binds into containers, and none of the node's mounts appears
on the host; paths containerd 1.6 cannot be told (/run/containerd/s, /var/lib/cni) are covered
by the node's own directories.

cgroups: the kubelet's cgroupRoot is /<node name>, made in every hierarchy mountinfo lists
(harness.cgroups); on a cgroup2-only host its root must pass it cpu, cpuset, memory, hugetlb
and pids. The node's processes are found by that cgroup or by their network namespace.

The runtime is Debian's containerd 1.6 (its CRI plugin) and runc, one per node, not
cri-dockerd over a dockerd per node: fewer moving parts and less memory, and the target needs a
PID, a network namespace and a cgroup, not a Docker API. The long form, with the memory
figures: docs/LABS.md, Kubernetes node.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

from harness import commands
from harness.errors import CommandError, TargetError
from harness.labs import host
from harness.labs.kubernetes import config
from harness.labs.kubernetes.state import (
    BRIDGE_ADDRESS,
    SERVICE_CIDR,
    KubeLabState,
    NodeState,
)

# The kernel settings the kubelet insists on (setupKernelTunables, Kubernetes 1.34).
KERNEL_TUNABLES = {
    "vm/overcommit_memory": 1,
    "vm/panic_on_oom": 0,
    "kernel/panic": 10,
    "kernel/panic_on_oops": 1,
    "kernel/keys/root_maxkeys": 1000000,
    "kernel/keys/root_maxbytes": 25000000,
}
# Host paths containerd or CNI use whatever they are told: covered by node directories.
COVERED_HOST_DIRS = {"/run/containerd/s": "shims", "/var/lib/cni": "cni-lib"}


# --- files ------------------------------------------------------------------------------------


def write_files(state: KubeLabState, node: NodeState) -> None:
    """The node's directories and configuration files (certificates are issued before)."""
    for sub in ("containerd", "cni", "cni-ipam", "pod-logs", "opt", "kubelet", "sysctl"):
        node.path(sub).mkdir(parents=True, exist_ok=True)
    for sub in COVERED_HOST_DIRS.values():
        Path(node.run_dir, sub).mkdir(parents=True, exist_ok=True)
    node.path("containerd.toml").write_text(config.containerd_toml(state, node))
    (node.path("cni") / "10-lab.conflist").write_text(config.cni_conflist(node))
    node.path("kubelet.yaml").write_text(config.kubelet_config(state, node))
    node.path("kube-proxy.yaml").write_text(config.kube_proxy_config(state, node))
    pki = state.pki_dir
    for user, stem in (("kubelet", f"kubelet-{node.name}"), ("kube-proxy", "kube-proxy")):
        node.path(f"{user}.kubeconfig").write_text(
            config.kubeconfig(
                state.server, stem, pki / "ca.crt", pki / f"{stem}.crt", pki / f"{stem}.key"
            )
        )


def covered_tunables() -> dict[str, int]:
    """The kubelet's kernel settings whose host value differs (and so must be covered)."""
    differing = {}
    for name, wanted in KERNEL_TUNABLES.items():
        try:
            current = int(Path("/proc/sys", name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # absent here: the kubelet will say so itself
        if current != wanted:
            differing[name] = wanted
    return differing


# --- network ----------------------------------------------------------------------------------


def make_network(state: KubeLabState, node: NodeState) -> None:
    """The node's namespace on the bridge, routes to the other nodes' pods, forwarding on."""
    host.make_netns_on_bridge(
        state.bridge, node.netns, node.veth_host, node.veth_node, f"{node.address}/24"
    )
    inside = ["ip", "-n", node.netns, "route", "replace"]
    for other in state.nodes:
        if other.index != node.index:
            host.sh([*inside, other.pod_cidr, "via", other.address])
    # the node's own processes reaching a ClusterIP need a route for it (kube-proxy DNATs it)
    host.sh([*inside, SERVICE_CIDR, "via", BRIDGE_ADDRESS])
    host.write_netns_sysctl(node.netns, "net.ipv4.ip_forward", "1")
    host.write_netns_sysctl(node.netns, "net.bridge.bridge-nf-call-iptables", "1")
    # no default route: nothing in the lab reaches past the bridge (no image can be pulled)


def host_routes(state: KubeLabState) -> list[list[str]]:
    """Routes on the host: each node's pods via the node, Services via the first node."""
    routes = [[node.pod_cidr, "via", node.address] for node in state.nodes]
    routes.append([SERVICE_CIDR, "via", state.nodes[0].address])
    return routes


# --- the mount namespace ----------------------------------------------------------------------


def make_private_dir(path: Path) -> None:
    """A directory that is a private mount of itself: mount namespace files may live there."""
    path.mkdir(parents=True, exist_ok=True)
    if str(path) not in host.mounts_under([str(path)]):
        host.sh(["mount", "--bind", str(path), str(path)])
    host.sh(["mount", "--make-private", str(path)])


def make_mount_ns(node: NodeState) -> None:
    """The node's mount namespace: tunables and host directories covered (see the docstring)."""
    ns_file = Path(node.mount_ns)
    if ns_file.exists() and str(ns_file) in host.mounts_under([str(ns_file)]):
        return
    ns_file.touch()
    script = ["set -e"]
    for name, wanted in covered_tunables().items():
        value_file = node.path("sysctl") / name.replace("/", ".")
        value_file.write_text(f"{wanted}\n")
        script.append(f"mount --bind {value_file} /proc/sys/{name}")
    for target, sub in COVERED_HOST_DIRS.items():
        script.append(f"mount --bind {Path(node.run_dir, sub)} {target}")
    host.sh(
        ["unshare", f"--mount={ns_file}", "--propagation", "private", "sh", "-c", "\n".join(script)]
    )


def drop_mount_ns(node: NodeState) -> None:
    """Let the node's mount namespace go (it dies with the last process inside it)."""
    ns_file = Path(node.mount_ns)
    if str(ns_file) in host.mounts_under([str(ns_file)]):
        host.sh(["umount", "-l", str(ns_file)], check=False)


def ensure_host_dirs() -> tuple[str, ...]:
    """Create the covered host directories that are missing; the ones this call made."""
    made = []
    for target in COVERED_HOST_DIRS:
        path = Path(target)
        missing = []
        while not path.exists():
            missing.append(path)
            path = path.parent
        for directory in reversed(missing):
            directory.mkdir()
            made.append(str(directory))
    return tuple(made)


def remove_host_dirs(made: tuple[str, ...]) -> list[str]:
    """Remove the directories `ensure_host_dirs` made, deepest first, if they are empty."""
    removed = []
    for path in sorted(made, key=lambda p: p.count("/"), reverse=True):
        with contextlib.suppress(OSError):
            Path(path).rmdir()
            removed.append(f"dir {path}")
    return removed


# --- processes --------------------------------------------------------------------------------


def argv(state: KubeLabState, node: NodeState, component: str) -> list[str]:
    """The command line of one node component (what /proc/PID/cmdline shows)."""
    bin_dir = Path(state.bin_dir)
    if component == "containerd":
        binary = shutil.which("containerd") or "/usr/bin/containerd"
        return [binary, "--config", str(node.path("containerd.toml"))]
    if component == "kubelet":
        return [
            str(bin_dir / "kubelet"),
            f"--config={node.path('kubelet.yaml')}",
            f"--kubeconfig={node.path('kubelet.kubeconfig')}",
            f"--root-dir={node.kubelet_root}",
            f"--hostname-override={node.name}",
            f"--node-ip={node.address}",
            "--v=1",
        ]
    if component == "kube-proxy":
        return [str(bin_dir / "kube-proxy"), f"--config={node.path('kube-proxy.yaml')}", "--v=1"]
    raise TargetError(f"no node component {component!r}")


def launcher(node: NodeState) -> list[str]:
    return ["nsenter", f"--net={host.netns_path(node.netns)}", f"--mount={node.mount_ns}", "--"]


def find(state: KubeLabState, node: NodeState, component: str) -> int | None:
    return host.find_process(argv(state, node, component))


def start(state: KubeLabState, node: NodeState, component: str) -> None:
    """Start one component of the node unless it runs; do not wait for it."""
    command = argv(state, node, component)
    if host.find_process(command) is not None:
        return
    host.spawn_detached([*launcher(node), *command], node.log_file(component))
    deadline = time.monotonic() + 10
    while host.find_process(command) is None and time.monotonic() < deadline:
        time.sleep(0.05)  # until nsenter has exec'd it: never start two


def wait_containerd(node: NodeState, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        done = ctr(node, ["version"], check=False, timeout_s=10)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise TargetError(
                f"containerd of {node.name} did not answer on {node.containerd_socket} within "
                f"{timeout_s:g} s: {done.stderr.strip()}; see {node.log_file('containerd')}"
            )
        time.sleep(0.2)


def ctr(
    node: NodeState, args: list[str], check: bool = True, timeout_s: float = 120.0
) -> commands.Done:
    """Debian's `ctr` against the node's containerd, in the Kubernetes namespace."""
    command = [
        *("ctr", "--address", node.containerd_socket, "--namespace", config.CONTAINERD_NAMESPACE),
        *args,
    ]
    try:
        return commands.run(command, timeout_s=timeout_s, check=check)
    except CommandError as exc:
        raise TargetError(str(exc)) from exc


def processes(node: NodeState) -> set[int]:
    """Every live process of the node: its daemons (by namespace) and its pods (by cgroup)."""
    return host.processes_of(node.netns, node.cgroup_root)


def kill(node: NodeState) -> int:
    """SIGKILL every process of the node until none is left; how many were killed."""
    return host.kill_until_gone(lambda: processes(node), node.name)
