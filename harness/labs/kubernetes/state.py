"""The Kubernetes lab's plan and state file: every name, address, path and command line.

The state file (`<lab dir>/state.json`) is written before anything it names is made, and
`down()` works from it alone. Addresses (chosen apart from the Swarm lab's 10.213-10.215, so
both labs can be up at once):

    bridge chk8s0          10.220.0.1/24   the host's address in the lab
    control plane netns    10.220.0.2      etcd (on its loopback), API server :6443, KCM, scheduler
    node i netns           10.220.0.(10+i) containerd, kubelet, kube-proxy
    pods of node i         10.221.i.0/24   (cluster CIDR 10.221.0.0/16)
    services               10.222.0.0/16   (`kubernetes` is 10.222.0.1)
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from harness.errors import TargetError
from harness.labs.host import NamedNode

KIND = "kubernetes"
PREFIX = "chk8s"
BRIDGE = "chk8s0"
SUBNET = "10.220.0.0/24"
BRIDGE_ADDRESS = "10.220.0.1"
CONTROL_PLANE_ADDRESS = "10.220.0.2"
CLUSTER_CIDR = "10.221.0.0/16"
SERVICE_CIDR = "10.222.0.0/16"
API_PORT = 6443
RULE_COMMENT = "chaos-harness.kube-lab"
STATE_VERSION = 1
MAX_NODES = 7
COMPONENTS_CP = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
COMPONENTS_NODE = ("containerd", "kubelet", "kube-proxy")


@dataclass(frozen=True)
class Settings:
    """Node-failure timing in force (Kubernetes' defaults unless the lab was told otherwise)."""

    node_monitor_grace_period_s: float = 50.0  # kube-controller-manager, default since 1.32
    node_monitor_period_s: float = 5.0
    node_startup_grace_period_s: float = 60.0
    not_ready_toleration_s: int = 300  # kube-apiserver's DefaultTolerationSeconds admission
    unreachable_toleration_s: int = 300
    node_status_update_frequency_s: float = 10.0  # kubelet
    node_lease_duration_s: int = 40  # kubelet; renewed every quarter of it


@dataclass(frozen=True)
class NodeState(NamedNode):
    """One Kubernetes node (its name is the Kubernetes node name): its namespace, addresses,
    directories and processes."""

    prefix: ClassVar[str] = PREFIX

    index: int
    address: str
    pod_cidr: str
    data_dir: str  # persistent: containerd root, kubelet root, configs, logs
    run_dir: str  # volatile: sockets, containerd state, the mount namespace file

    @property
    def cgroup_root(self) -> str:
        """The kubelet's cgroupRoot: every pod of the node lives under it."""
        return f"/{self.name}"

    @property
    def mount_ns(self) -> str:
        """The file that holds the node's mount namespace (see harness.labs.kubernetes.node)."""
        return f"{self.run_dir}/mnt"

    @property
    def containerd_socket(self) -> str:
        return f"{self.run_dir}/containerd.sock"

    @property
    def kubelet_root(self) -> str:
        return f"{self.data_dir}/kubelet"

    def path(self, name: str) -> Path:
        return Path(self.data_dir) / name

    def log_file(self, component: str) -> Path:
        return self.path(f"{component}.log")

    def matches(self, name: str) -> bool:
        """Whether `name` (node name, address, or n<i>) names this node."""
        return name in (self.name, self.address, f"n{self.index}")


@dataclass(frozen=True)
class KubeLabState:
    """Everything the lab made or is about to make; the file `down()` works from."""

    lab_dir: str
    run_root: str
    bin_dir: str
    nodes: tuple[NodeState, ...]
    settings: Settings = field(default_factory=Settings)
    control_plane_args: dict[str, tuple[str, ...]] = field(default_factory=dict)
    snapshotter: str = "overlayfs"
    host_rules: tuple[tuple[str, ...], ...] = ()
    host_dirs: tuple[str, ...] = ()  # mount points made on the host (removed if empty)
    bridge: str = BRIDGE
    subnet: str = SUBNET
    status: str = "creating"  # creating, up
    created_ns: int = 0
    kind: str = KIND
    version: int = STATE_VERSION
    # "<pid>:<start ticks>" of the process that built the lab, and whether it built it for a
    # run (KubeLab.ensure) rather than for `harness lab up`: `harness cleanup` takes down a lab
    # whose builder died half-way, or one built for a run whose harness is gone
    creator: str | None = None
    for_run: bool = False

    @property
    def control_plane_netns(self) -> str:
        return f"{PREFIX}-cp"

    @property
    def control_plane_dir(self) -> Path:
        return Path(self.lab_dir) / "control-plane"

    @property
    def pki_dir(self) -> Path:
        return Path(self.lab_dir) / "pki"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig written for the user."""
        return Path(self.lab_dir) / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{CONTROL_PLANE_ADDRESS}:{API_PORT}"

    def node(self, name: str) -> NodeState:
        for node in self.nodes:
            if node.matches(name):
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise TargetError(f"no Kubernetes lab node {name!r}; nodes: {known}")

    def with_status(self, status: str) -> KubeLabState:
        return replace(self, status=status)

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["control_plane_args"] = {k: list(v) for k, v in self.control_plane_args.items()}
        raw["host_rules"] = [list(r) for r in self.host_rules]
        raw["host_dirs"] = list(self.host_dirs)
        return raw

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> KubeLabState:
        if raw.get("version") != STATE_VERSION or raw.get("kind") != KIND:
            raise TargetError(
                f"Kubernetes lab state of kind {raw.get('kind')!r} version {raw.get('version')!r}"
                f" is not {KIND!r} version {STATE_VERSION}"
            )
        return cls(
            **{
                **raw,
                "nodes": tuple(NodeState(**n) for n in raw["nodes"]),
                "settings": Settings(**raw["settings"]),
                "control_plane_args": {
                    k: tuple(v) for k, v in raw.get("control_plane_args", {}).items()
                },
                "host_rules": tuple(tuple(r) for r in raw.get("host_rules", ())),
                "host_dirs": tuple(raw.get("host_dirs", ())),
            }
        )


def node_address(index: int) -> str:
    return str(ipaddress.ip_address(BRIDGE_ADDRESS) + 9 + index)


def pod_cidr(index: int) -> str:
    network = ipaddress.ip_network(CLUSTER_CIDR)
    return str(list(network.subnets(new_prefix=24))[index])


def kubernetes_service_ip() -> str:
    return str(ipaddress.ip_network(SERVICE_CIDR).network_address + 1)


def plan(
    lab_dir: Path,
    run_root: Path,
    bin_dir: Path,
    nodes: int,
    control_plane_args: dict[str, tuple[str, ...]] | None = None,
    snapshotter: str = "overlayfs",
) -> KubeLabState:
    """The whole lab as names, addresses and paths; nothing is made."""
    if not 1 <= nodes <= MAX_NODES:
        raise TargetError(f"a Kubernetes lab has 1 to {MAX_NODES} nodes, got {nodes}")
    args = dict(control_plane_args or {})
    unknown = sorted(set(args) - set(COMPONENTS_CP))
    if unknown:
        raise TargetError(
            f"--control-plane-args for {', '.join(unknown)}: only {', '.join(COMPONENTS_CP)}"
        )
    planned = tuple(
        NodeState(
            index=i,
            address=node_address(i),
            pod_cidr=pod_cidr(i),
            data_dir=str(lab_dir / f"n{i}"),
            run_dir=str(run_root / f"n{i}"),
        )
        for i in range(1, nodes + 1)
    )
    comment = ("-m", "comment", "--comment", RULE_COMMENT)
    rules = (("filter", "FORWARD", "-i", BRIDGE, "-o", BRIDGE, *comment, "-j", "ACCEPT"),)
    return KubeLabState(
        lab_dir=str(lab_dir),
        run_root=str(run_root),
        bin_dir=str(bin_dir),
        nodes=planned,
        settings=settings_in_force(args),
        control_plane_args=args,
        snapshotter=snapshotter,
        host_rules=rules,
        created_ns=time.time_ns(),
    )


def settings_in_force(args: dict[str, tuple[str, ...]]) -> Settings:
    """Kubernetes' defaults, overridden by the control-plane flags that set them."""
    from harness.units import parse_duration

    settings = Settings()
    flags = {
        ("kube-controller-manager", "--node-monitor-grace-period"): "node_monitor_grace_period_s",
        ("kube-controller-manager", "--node-monitor-period"): "node_monitor_period_s",
        ("kube-controller-manager", "--node-startup-grace-period"): "node_startup_grace_period_s",
        ("kube-apiserver", "--default-not-ready-toleration-seconds"): "not_ready_toleration_s",
        ("kube-apiserver", "--default-unreachable-toleration-seconds"): "unreachable_toleration_s",
    }
    for (component, flag), attribute in flags.items():
        for arg in args.get(component, ()):
            name, _, value = arg.partition("=")
            if name != flag:
                continue
            try:
                number: float = (
                    int(value) if attribute.endswith("toleration_s") else parse_duration(value)
                )
            except ValueError as exc:
                raise TargetError(f"{component} {arg}: {exc}") from exc
            settings = replace(settings, **{attribute: number})  # type: ignore[arg-type]
    return settings
