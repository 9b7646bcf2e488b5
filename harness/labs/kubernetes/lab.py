"""A multi-node Kubernetes cluster on this machine, built from Kubernetes' own module.

    lab = KubeLab(); info = lab.up(nodes=3)      # `harness lab up --kind kubernetes --nodes 3`
    lab.status(); lab.down()                     # safe twice, and after a crash

The control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) runs in the
network namespace chk8s-cp on the bridge chk8s0 (.controlplane); each node is a network and
mount namespace of its own with its own containerd, kubelet and kube-proxy (.node). Names and
addresses are in .state; the state file is written before anything it names is made, and
`down()` works from it alone. `current()` reads the lab that is up (KubeLabInfo: kubeconfig,
server, nodes, node-failure settings, kubectl), or None.

Reaching the cluster from the host: pod IPs directly (a route per node's pod /24 via the
node), NodePorts on every node's address (10.220.0.1x), and ClusterIPs through a route of the
service range via the first node, whose kube-proxy DNATs them (and masquerades: the host is not
in the cluster CIDR). Images: the host engine's local images are copied into every node's
containerd; use `imagePullPolicy: Never` (nothing can be pulled). Times to come up, memory and
node-failure timings, as measured: docs/LABS.md, Kubernetes lab.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.errors import TargetError
from harness.hostsys import require_tool
from harness.labs import host
from harness.labs.kubernetes import build, controlplane, images, node
from harness.labs.kubernetes.state import (
    BRIDGE,
    BRIDGE_ADDRESS,
    CLUSTER_CIDR,
    COMPONENTS_CP,
    COMPONENTS_NODE,
    CONTROL_PLANE_ADDRESS,
    PREFIX,
    RULE_COMMENT,
    SERVICE_CIDR,
    KubeLabState,
    NodeState,
    Settings,
    plan,
)
from harness.targets.base import owner_label_value
from harness.waiting import wait_until

DEFAULT_LAB_DIR = Path("/var/lib/chaos-harness/kube-lab")
DEFAULT_RUN_ROOT = Path("/run/chk8s")
TOOLS = {"ip": "iproute2", "nsenter": "util-linux", "unshare": "util-linux"}
TOOLS |= {"setsid": "util-linux", "mount": "mount", "umount": "mount", "iptables": "iptables"}
TOOLS |= {"containerd": "containerd", "ctr": "containerd", "runc": "runc"}
NESTING_FILESYSTEMS = ("overlay", "fuse.fuse-overlayfs", "aufs")
API_TIMEOUT_S = 180.0
NODES_TIMEOUT_S = 240.0

Progress = Callable[[str], None]


def lab_dir() -> Path:
    """Where the lab's state and node directories live: $CHAOS_HARNESS_KUBE_LAB_DIR or default."""
    return Path(os.environ.get("CHAOS_HARNESS_KUBE_LAB_DIR") or DEFAULT_LAB_DIR)


def run_root() -> Path:
    return Path(os.environ.get("CHAOS_HARNESS_KUBE_RUN_ROOT") or DEFAULT_RUN_ROOT)


def load_state(directory: Path | None = None) -> KubeLabState | None:
    path = (directory or lab_dir()) / "state.json"
    return host.load_json(path, KubeLabState.from_json, "Kubernetes lab state")


def save_state(state: KubeLabState) -> None:
    host.save_json(Path(state.lab_dir) / "state.json", state.to_json())


# --- what the target sees ---------------------------------------------------------------------


@dataclass(frozen=True)
class KubeNodeInfo:
    name: str
    address: str
    netns: str  # /var/run/netns/<netns>
    pod_cidr: str
    containerd_socket: str  # ctr --address <socket> --namespace k8s.io
    cgroup_root: str  # every pod of the node is under this cgroup, in each hierarchy
    kubelet_root: str


@dataclass(frozen=True)
class KubeLabInfo:
    """The lab as the Kubernetes target needs it."""

    kubeconfig: str
    server: str
    nodes: tuple[KubeNodeInfo, ...]
    settings: Settings
    cluster_cidr: str
    service_cidr: str
    host_address: str  # the host's address on the lab bridge (where load comes from)
    lab_dir: str
    bin_dir: str
    created_ns: int

    @property
    def kubectl(self) -> str:
        return str(Path(self.bin_dir) / "kubectl")

    def node(self, name: str) -> KubeNodeInfo:
        """A node by name or address."""
        for found in self.nodes:
            if name in (found.name, found.address):
                return found
        raise TargetError(f"no Kubernetes lab node {name!r}")

    @classmethod
    def from_state(cls, state: KubeLabState) -> KubeLabInfo:
        nodes = tuple(
            KubeNodeInfo(
                n.name,
                n.address,
                n.netns,
                n.pod_cidr,
                n.containerd_socket,
                n.cgroup_root,
                n.kubelet_root,
            )
            for n in state.nodes
        )
        return cls(
            kubeconfig=str(state.kubeconfig),
            server=state.server,
            nodes=nodes,
            settings=state.settings,
            cluster_cidr=CLUSTER_CIDR,
            service_cidr=SERVICE_CIDR,
            host_address=BRIDGE_ADDRESS,
            lab_dir=state.lab_dir,
            bin_dir=state.bin_dir,
            created_ns=state.created_ns,
        )


def current(directory: Path | None = None) -> KubeLabInfo | None:
    """The Kubernetes lab that is up on this machine, or None."""
    state = load_state(directory)
    return KubeLabInfo.from_state(state) if state is not None and state.status == "up" else None


@dataclass(frozen=True)
class ProcessStatus:
    component: str
    pid: int | None


@dataclass(frozen=True)
class KubeNodeStatus:
    name: str
    address: str
    pod_cidr: str
    processes: tuple[ProcessStatus, ...]
    ready: str  # the node's Ready condition (True, False, Unknown) or "-" if it cannot be read
    schedulable: str


@dataclass(frozen=True)
class KubeLabStatus:
    state_file: str
    status: str
    kubeconfig: str
    server: str
    control_plane: tuple[ProcessStatus, ...]
    nodes: tuple[KubeNodeStatus, ...]
    settings: Settings


# --- the API, through the official client ------------------------------------------------------


def core_api(state: KubeLabState) -> Any:
    """The official client's CoreV1Api as the lab's admin."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(state.kubeconfig)
    )
    return client.CoreV1Api(api_client)


def node_conditions(state: KubeLabState) -> dict[str, tuple[str, bool]]:
    """Each registered node's Ready condition status and whether it is schedulable."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        listed = core_api(state).list_node(_request_timeout=5)
    except (ApiException, HTTPError, OSError):
        return {}
    found = {}
    for item in listed.items:
        ready = next((c.status for c in item.status.conditions or [] if c.type == "Ready"), "-")
        found[item.metadata.name] = (str(ready), not bool(item.spec.unschedulable))
    return found


def wait_nodes_ready(state: KubeLabState, timeout_s: float) -> None:
    waiting: list[str] = []

    def all_ready() -> bool:
        seen = node_conditions(state)
        waiting[:] = [n.name for n in state.nodes if seen.get(n.name, ("-", True))[0] != "True"]
        for name in waiting:
            lost = [c for c in COMPONENTS_NODE if node.find(state, state.node(name), c) is None]
            if lost:
                where = state.node(name).log_file(lost[0])
                raise TargetError(
                    f"{', '.join(lost)} of {name} exited; {where} ends:{host.log_tail(where)}"
                )
        return not waiting

    def failure() -> str:
        logs = ", ".join(str(state.node(n).log_file("kubelet")) for n in waiting)
        return (
            f"Kubernetes lab nodes not Ready after {timeout_s:g} s: {', '.join(waiting)}; "
            f"see {logs}"
        )

    wait_until(all_ready, timeout_s, 0.5, failure)


def wait_default_service_account(state: KubeLabState, timeout_s: float) -> None:
    """Until the `default` namespace's service account exists (pods are refused before)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    api = core_api(state)
    last = [""]

    def exists() -> bool:
        try:
            api.read_namespaced_service_account("default", "default", _request_timeout=5)
            return True
        except (ApiException, HTTPError, OSError) as exc:
            last[0] = str(exc)
            return False

    def failure() -> str:
        where = controlplane.log_file(state, "kube-controller-manager")
        return (
            f"the controller manager made no default service account within {timeout_s:g} s "
            f"({last[0]}); {where} ends:{host.log_tail(where)}"
        )

    wait_until(exists, timeout_s, 0.2, failure)


# --- the lab ------------------------------------------------------------------------------------


def check_host() -> None:
    """The lab needs root and a few host tools; say exactly what is missing."""
    if os.geteuid() != 0:
        raise TargetError("the Kubernetes lab needs root (namespaces, bridges, containerd)")
    for tool, package in TOOLS.items():
        require_tool(tool, package)
    missing = [p for p in ("bridge", "host-local", "loopback", "portmap") if not _cni(p)]
    if missing:
        raise TargetError(
            f"CNI plugins {', '.join(missing)} are missing from /usr/lib/cni: "
            "apt-get install -y containernetworking-plugins"
        )


def _cni(plugin: str) -> bool:
    return os.access(f"/usr/lib/cni/{plugin}", os.X_OK)


def snapshotter_for(directory: Path) -> str:
    """overlayfs, unless the lab dir is on a filesystem overlay cannot nest on (then native)."""
    override = os.environ.get("CHAOS_HARNESS_KUBE_SNAPSHOTTER")
    if override:
        return override
    probe = directory
    while not probe.exists():
        probe = probe.parent
    return "native" if host.filesystem_of(probe) in NESTING_FILESYSTEMS else "overlayfs"


class KubeLab:
    """Bring the Kubernetes lab up, say how it is, take it down (from its state file alone)."""

    def __init__(self, directory: Path | None = None, runtime_root: Path | None = None) -> None:
        self.directory = directory or lab_dir()
        self.run_root = runtime_root or run_root()

    def state(self) -> KubeLabState | None:
        return load_state(self.directory)

    def info(self) -> KubeLabInfo | None:
        return current(self.directory)

    # --- up -----------------------------------------------------------------------------------

    def up(
        self,
        nodes: int = 1,
        control_plane_args: dict[str, tuple[str, ...]] | None = None,
        images_to_load: Sequence[str] = (),
        progress: Progress = print,
        for_run: bool = False,
    ) -> KubeLabInfo:
        """Build (if needed) and start the lab; on any failure everything made is removed.
        `for_run`: built for a run (taken down by `harness cleanup` once that run's harness is
        gone); the builder is recorded either way (a builder that died half-way is cleaned)."""
        check_host()
        built = build.ensure_built(progress)
        pause = images.pause_archive(images.kubernetes_source_dir(), built.directory.parent)
        started = time.monotonic()
        with host.locked(self.directory):
            if self.state() is not None:
                raise TargetError(
                    f"a Kubernetes lab already exists (state in {self.directory}): "
                    "run `harness lab down --kind kubernetes`"
                )
            if host.exists_link(BRIDGE):
                raise TargetError(f"bridge {BRIDGE} exists without a lab state: another lab?")
            state = plan(
                self.directory,
                self.run_root,
                built.bin_dir,
                nodes,
                control_plane_args,
                snapshotter_for(self.directory),
            )
            state = replace(state, creator=owner_label_value(), for_run=for_run)
            save_state(state)
            try:
                state = self._build(state, [pause, *self._archives(images_to_load)], progress)
            except BaseException:
                self._down(self.state() or state)  # the file has what was made so far
                raise
        progress(f"Kubernetes lab up in {time.monotonic() - started:.1f} s")
        return KubeLabInfo.from_state(state)

    def _archives(self, names: Sequence[str]) -> list[Path]:
        return [images.save_host_image(n, self.directory / "images") for n in names]

    def _build(self, state: KubeLabState, archives: list[Path], progress: Progress) -> KubeLabState:
        state = replace(state, host_dirs=node.ensure_host_dirs())
        save_state(state)
        host.make_bridge(state.bridge, f"{BRIDGE_ADDRESS}/24", state.host_rules)
        cp = state.control_plane_netns
        host.make_netns_on_bridge(
            state.bridge, cp, f"{cp}h", f"{cp}c", f"{CONTROL_PLANE_ADDRESS}/24"
        )
        controlplane.issue_certificates(state)
        progress("starting etcd and the API server")
        for component in ("etcd", "kube-apiserver"):
            controlplane.start(state, component)
        node.make_private_dir(Path(state.run_root))
        for each in state.nodes:
            self._start_runtime(state, each)
        for route in node.host_routes(state):
            host.sh(["ip", "route", "replace", *route])
        # the images load while the API server starts; the kubelets start once it answers
        # (started earlier, a kubelet backs its registration off for up to 7 s)
        progress(f"loading {len(archives)} image(s) into {len(state.nodes)} node(s)")
        for each in state.nodes:
            node.wait_containerd(each)
            for archive in archives:
                images.import_archive(state, each, archive)
        images.remove_archives(self.directory / "images")
        controlplane.wait_ready(state, API_TIMEOUT_S)
        for component in ("kube-controller-manager", "kube-scheduler"):
            controlplane.start(state, component)
        for each in state.nodes:
            node.start(state, each, "kubelet")
            node.start(state, each, "kube-proxy")
        progress("waiting for the nodes to be Ready")
        wait_nodes_ready(state, NODES_TIMEOUT_S)
        # usable means pods can be made: the controller manager has made the default account
        wait_default_service_account(state, API_TIMEOUT_S)
        state = state.with_status("up")
        save_state(state)
        return state

    def _start_runtime(self, state: KubeLabState, each: NodeState) -> None:
        node.make_network(state, each)
        node.write_files(state, each)
        node.make_mount_ns(each)
        host.make_cgroups(each.cgroup_root)  # the kubelet wants its cgroupRoot to exist
        node.start(state, each, "containerd")

    def ensure(
        self,
        nodes: int,
        control_plane_args: dict[str, tuple[str, ...]] | None = None,
        images_to_load: Sequence[str] = (),
        progress: Progress = print,
    ) -> tuple[KubeLabInfo, bool]:
        """The lab, brought up if there is none; True if this call made it.

        An existing lab is reused when it has `nodes` nodes and was started with every one of
        the control-plane args asked for (more are fine: whoever started it set them on purpose,
        and the settings in force are in its state); otherwise a clear error (a lab is not
        changed under another user's feet).
        """
        state = self.state()
        if state is None:
            return self.up(nodes, control_plane_args, images_to_load, progress, for_run=True), True
        wanted = dict(control_plane_args or {})
        missing = {
            component: [a for a in args if a not in state.control_plane_args.get(component, ())]
            for component, args in wanted.items()
        }
        if state.status != "up" or len(state.nodes) != nodes or any(missing.values()):
            raise TargetError(
                f"a Kubernetes lab of {len(state.nodes)} node(s) ({state.status}, control-plane "
                f"args {state.control_plane_args or 'none'}) exists; wanted {nodes} node(s), "
                f"args {wanted or 'none'}: run `harness lab down --kind kubernetes`"
            )
        archives = self._archives(images_to_load)
        for each in state.nodes:
            for archive in archives:
                images.import_archive(state, each, archive)
        images.remove_archives(self.directory / "images")
        return KubeLabInfo.from_state(state), False

    # --- status -------------------------------------------------------------------------------

    def status(self) -> KubeLabStatus | None:
        state = self.state()
        if state is None:
            return None
        seen = node_conditions(state) if state.status == "up" else {}
        nodes = tuple(
            KubeNodeStatus(
                name=n.name,
                address=n.address,
                pod_cidr=n.pod_cidr,
                processes=tuple(ProcessStatus(c, node.find(state, n, c)) for c in COMPONENTS_NODE),
                ready=seen.get(n.name, ("-", True))[0],
                schedulable="yes" if seen.get(n.name, ("-", True))[1] else "no (cordoned)",
            )
            for n in state.nodes
        )
        return KubeLabStatus(
            state_file=str(self.directory / "state.json"),
            status=state.status,
            kubeconfig=str(state.kubeconfig),
            server=state.server,
            control_plane=tuple(
                ProcessStatus(c, controlplane.find(state, c)) for c in COMPONENTS_CP
            ),
            nodes=nodes,
            settings=state.settings,
        )

    # --- down ---------------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Remove every process, namespace, link, rule, mount, cgroup and file; idempotent."""
        return host.take_down(self.directory, self.state, self._down)

    def _down(self, state: KubeLabState) -> list[str]:
        removed = []
        for each in state.nodes:
            killed = node.kill(each)
            if killed:
                removed.append(f"{each.name}: {killed} process(es) killed")
        killed = host.kill_until_gone(lambda: controlplane.processes(state), "the control plane")
        if killed:
            removed.append(f"control plane: {killed} process(es) killed")
        roots = [state.run_root, state.lab_dir, *(n.data_dir for n in state.nodes)]
        removed += [f"unmounted {p}" for p in host.unmount_under(roots)]
        for each in state.nodes:
            removed += host.remove_netns(each.netns, each.veth_host)
            if host.remove_cgroups(each.cgroup_root):
                removed.append(f"cgroups of {each.name}")
        cp = state.control_plane_netns
        removed += host.remove_netns(cp, f"{cp}h")
        removed += host.remove_bridge(state.bridge, state.host_rules)
        removed += node.remove_host_dirs(state.host_dirs)
        lab = Path(state.lab_dir)
        for path in [
            *(Path(n.data_dir) for n in state.nodes),
            Path(state.run_root),
            state.control_plane_dir,
            state.pki_dir,
            lab / "images",
        ]:
            if host.remove_tree(path):
                removed.append(f"dir {path}")
        state.kubeconfig.unlink(missing_ok=True)
        (lab / "state.json").unlink(missing_ok=True)
        return removed


def leftovers(directory: Path, runtime_root: Path) -> list[str]:
    """What a lab in `directory` left behind: links, namespaces, mounts, processes, cgroups,
    host rules, files (empty when `down()` did its job)."""
    found = []
    if host.exists_link(BRIDGE):
        found.append(f"bridge {BRIDGE}")
    if host.NETNS_DIR.exists():
        found += [
            f"netns {p.name}" for p in host.NETNS_DIR.iterdir() if p.name.startswith(f"{PREFIX}-")
        ]
    roots = [str(directory), str(runtime_root)]
    found += [f"mount {p}" for p in host.mounts_under(roots)]
    for pid in host.pids():
        line = " ".join(host.cmdline(pid))
        if pid != os.getpid() and any(root in line for root in roots) and host.alive(pid):
            found.append(f"process {pid}: {line[:120]}")
    found += [f"cgroup {c}" for c in host.leftover_cgroups(f"{PREFIX}-n")]
    rules = host.sh(["iptables-save"], check=False)
    found += [f"rule {r}" for r in rules.splitlines() if RULE_COMMENT in r]
    found += [f"path {p}" for p in (directory / "state.json", runtime_root) if p.exists()]
    return found
