"""The multi-node Swarm lab: several Docker engines on this one machine, as a real Swarm.

One extra `dockerd` per node, each in a network namespace of its own (`chlab-n<i>`) wired to a
bridge (`chlab0`, 10.213.0.1/24) by a veth pair, with its own data root, exec root, socket,
pidfile, managed containerd, cgroup parent (`/chlab-n<i>`) and hostname (a UTS namespace, so
Swarm tells the nodes apart). Node 1 is the manager the harness talks to; with `managers=3`
nodes 2 and 3 join as managers too. Every daemon carries the engine label `chaos-harness.lab=1`.

Choices a change must keep: daemons start under `nsenter --net` (not `ip netns exec`, which
remounts /sys) with a config file of their own; overlay2 where the lab directory allows it,
else vfs ($CHAOS_HARNESS_LAB_STORAGE_DRIVER forces one); on the host one tagged ACCEPT rule
(Docker's FORWARD policy is DROP), route_localnet on the bridge and a MASQUERADE rule (slot
routing DNATs loopback addresses to nodes); each daemon keeps its default bridge and iptables
(a published port stays a DNAT rule that outlives a dead dockerd); no default route in the
nodes (an image pull fails at once instead of hanging).

Crash safety: the state file (`$CHAOS_HARNESS_LAB_DIR/state.json`) names every daemon,
namespace, veth, bridge, host rule, socket and directory BEFORE it is made; `down()` works from
that file alone, finds each node's processes by namespace and cgroup, and is safe to run twice
and after a crash. Why each choice, as measured: docs/LABS.md, Swarm lab.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import docker
import docker.errors

from harness.errors import TargetError
from harness.hostsys import process_start_ticks, require_tool
from harness.labs import host
from harness.labs.host import NamedNode
from harness.targets.base import owner_label_value
from harness.waiting import wait_until

PREFIX = "chlab"
BRIDGE = "chlab0"
SUBNET = "10.213.0.0/24"
BRIDGE_ADDRESS = "10.213.0.1"
LAB_LABEL = "chaos-harness.lab=1"
RULE_COMMENT = "chaos-harness.lab"
DEFAULT_LAB_DIR = Path("/var/lib/chaos-harness/lab")
DEFAULT_RUN_ROOT = Path("/run/chlab")
NETNS_DIR = Path("/var/run/netns")
SWARM_PORT = 2377
DEFAULT_HEARTBEAT_S = 5.0
NS_PER_S = 1_000_000_000
STATE_VERSION = 1
TOOLS = {"ip": "iproute2", "nsenter": "util-linux", "unshare": "util-linux", "setsid": "util-linux"}
TOOLS |= {"umount": "mount", "iptables": "iptables", "dockerd": "docker.io"}
NESTING_FILESYSTEMS = ("overlay", "fuse.fuse-overlayfs", "aufs")


def lab_dir() -> Path:
    """Where the lab's state and data roots live: $CHAOS_HARNESS_LAB_DIR or the default."""
    return Path(os.environ.get("CHAOS_HARNESS_LAB_DIR") or DEFAULT_LAB_DIR)


# --- the state file -------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeState(NamedNode):
    """One node of the lab: every name and path it uses, and its daemon's command line. Its
    name is also its hostname and its containerd namespace."""

    prefix: ClassVar[str] = PREFIX

    index: int
    role: str  # "manager" or "worker"
    address: str
    data_dir: str  # the node's directory under the lab dir (data root, config, log)
    exec_root: str
    argv: tuple[str, ...] = ()
    pid: int | None = None
    start_ticks: int | None = None
    node_id: str | None = None

    @property
    def socket(self) -> str:
        return f"{self.exec_root}.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pidfile(self) -> str:
        return f"{self.exec_root}.pid"

    @property
    def data_root(self) -> str:
        return f"{self.data_dir}/data"

    @property
    def config_file(self) -> str:
        return f"{self.data_dir}/daemon.json"

    @property
    def log_file(self) -> str:
        return f"{self.data_dir}/dockerd.log"

    @property
    def cgroup_parent(self) -> str:
        return f"/{self.name}"

    def matches(self, node: str) -> bool:
        """Whether `node` (a Swarm node ID, hostname or address) names this node."""
        return node in (self.name, self.node_id, self.address, f"n{self.index}")


@dataclass(frozen=True)
class LabState:
    """Everything the lab made or is about to make; the file `down()` works from."""

    lab_dir: str
    run_root: str
    managers: int
    heartbeat_s: float
    storage_driver: str
    nodes: tuple[NodeState, ...]
    host_rules: tuple[tuple[str, ...], ...] = ()  # iptables args after -A/-D: table, chain, spec
    bridge: str = BRIDGE
    subnet: str = SUBNET
    status: str = "creating"  # creating, up
    created_ns: int = 0
    version: int = STATE_VERSION
    # "<pid>:<start ticks>" of the process that built the lab, and whether it built it for a
    # run (Lab.ensure) rather than for `harness lab up`: `harness cleanup` takes down a lab
    # whose builder died half-way, or one built for a run whose harness is gone
    creator: str | None = None
    for_run: bool = False

    @property
    def manager(self) -> NodeState:
        """The node the harness talks to as the Swarm manager."""
        return self.nodes[0]

    def node(self, name: str) -> NodeState:
        for node in self.nodes:
            if node.matches(name):
                return node
        raise TargetError(f"no lab node {name!r}; nodes: {', '.join(n.name for n in self.nodes)}")

    def with_node(self, updated: NodeState) -> LabState:
        nodes = tuple(updated if n.index == updated.index else n for n in self.nodes)
        return replace(self, nodes=nodes)

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["nodes"] = [{**asdict(n), "argv": list(n.argv)} for n in self.nodes]
        raw["host_rules"] = [list(r) for r in self.host_rules]
        return raw

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LabState:
        if raw.get("version") != STATE_VERSION:
            raise TargetError(f"lab state version {raw.get('version')!r} is not {STATE_VERSION}")
        nodes = tuple(NodeState(**{**n, "argv": tuple(n["argv"])}) for n in raw["nodes"])
        rules = tuple(tuple(r) for r in raw.get("host_rules", ()))
        return cls(**{**raw, "nodes": nodes, "host_rules": rules})


def plan_state(
    directory: Path,
    run_root: Path,
    nodes: int,
    managers: int,
    heartbeat_s: float,
    storage_driver: str,
    for_run: bool = False,
) -> LabState:
    """The whole lab as names and command lines; nothing is made."""
    if not 2 <= nodes <= 7:
        raise TargetError(f"a lab has 2 to 7 nodes, got {nodes}")
    if managers not in (1, 3) or managers > nodes:
        raise TargetError(f"a lab has 1 or 3 managers (at most its nodes), got {managers}")
    planned = []
    for index in range(1, nodes + 1):
        node = NodeState(
            index=index,
            role="manager" if index <= managers else "worker",
            address=f"10.213.0.{10 + index}",
            data_dir=str(directory / f"n{index}"),
            exec_root=str(run_root / f"n{index}"),
        )
        planned.append(replace(node, argv=tuple(daemon_argv(node, storage_driver))))
    rules = (
        ("filter", "FORWARD", "-i", BRIDGE, "-o", BRIDGE, *_comment(), "-j", "ACCEPT"),
        # loopback addresses DNAT-ed to a node (slot routing) leave with the bridge's address
        ("nat", "POSTROUTING", "-s", "127.0.0.0/8", "-o", BRIDGE, *_comment(), "-j", "MASQUERADE"),
    )
    return LabState(
        lab_dir=str(directory),
        run_root=str(run_root),
        managers=managers,
        heartbeat_s=heartbeat_s,
        storage_driver=storage_driver,
        nodes=tuple(planned),
        host_rules=rules,
        created_ns=time.time_ns(),
        creator=owner_label_value(),
        for_run=for_run,
    )


def _comment() -> tuple[str, ...]:
    return ("-m", "comment", "--comment", RULE_COMMENT)


def daemon_argv(node: NodeState, storage_driver: str) -> list[str]:
    """The node's daemon: in its network namespace, with a hostname of its own."""
    dockerd = [
        *("dockerd", "--config-file", node.config_file, "--data-root", node.data_root),
        *("--exec-root", node.exec_root, "-H", node.url, "--pidfile", node.pidfile),
        *("--containerd-namespace", node.name),
        *("--containerd-plugins-namespace", f"{node.name}-plugins"),
        *("--bip", f"10.214.{node.index}.1/24", "--ip-masq=false"),
        *("--storage-driver", storage_driver, "--cgroup-parent", node.cgroup_parent),
        # a path parent needs the cgroupfs driver; dockerd picks systemd on a cgroup v2 host
        # that runs systemd, and then refuses any parent not named "*.slice"
        *("--exec-opt", "native.cgroupdriver=cgroupfs"),
        *("--label", LAB_LABEL, "--label", f"chaos-harness.lab.node={node.name}"),
    ]
    return [
        *("nsenter", f"--net={NETNS_DIR / node.netns}", "unshare", "--uts", "--"),
        *("sh", "-c", f'hostname {node.name} && exec "$@"', "sh", *dockerd),
    ]


def load_state(directory: Path | None = None) -> LabState | None:
    """The lab's state, or None when there is no lab."""
    return host.load_json((directory or lab_dir()) / "state.json", LabState.from_json, "lab state")


def save_state(state: LabState) -> None:
    """Write the state file atomically (and durably: it is the lab's undo log)."""
    host.save_json(Path(state.lab_dir) / "state.json", state.to_json())


locked = host.locked  # one lab operation at a time (up, down, a node fault's state update)


def storage_driver_for(directory: Path) -> str:
    """overlay2, unless the lab dir sits on a filesystem overlay cannot nest on (then vfs)."""
    override = os.environ.get("CHAOS_HARNESS_LAB_STORAGE_DRIVER")
    if override:
        return override
    fstype = filesystem_of(directory)
    return "vfs" if fstype in NESTING_FILESYSTEMS else "overlay2"


filesystem_of = host.filesystem_of


# --- what the runner and the targets see ----------------------------------------------------


@dataclass(frozen=True)
class LabNode:
    name: str
    role: str
    address: str
    url: str
    node_id: str | None


@dataclass(frozen=True)
class LabInfo:
    """The lab as the Swarm target needs it: where to talk to, and the nodes."""

    manager_url: str
    nodes: tuple[LabNode, ...]
    managers: int
    heartbeat_s: float
    lab_dir: str
    subnet: str = SUBNET

    @classmethod
    def from_state(cls, state: LabState) -> LabInfo:
        nodes = tuple(LabNode(n.name, n.role, n.address, n.url, n.node_id) for n in state.nodes)
        return cls(
            state.manager.url, nodes, state.managers, state.heartbeat_s, state.lab_dir, state.subnet
        )

    def node(self, name: str) -> LabNode:
        """A node by Swarm node ID, hostname or address."""
        for node in self.nodes:
            if name in (node.name, node.node_id, node.address):
                return node
        raise TargetError(f"no lab node {name!r}")


@dataclass(frozen=True)
class NodeStatus:
    name: str
    role: str
    address: str
    daemon_pid: int | None
    swarm_state: str  # ready, down, unknown... as the manager sees it ("-" if it cannot say)
    availability: str
    manager_status: str


@dataclass(frozen=True)
class LabStatus:
    state_file: str
    status: str
    heartbeat_s: float
    storage_driver: str
    nodes: tuple[NodeStatus, ...] = field(default_factory=tuple)


def connect(url: str, timeout_s: float = 10.0) -> docker.DockerClient:
    """A client of one node's engine; a call that gets no answer raises an APIError."""
    from harness.targets.docker.engine import EngineClient

    return EngineClient(base_url=url, timeout=int(max(timeout_s, 1)))


# --- processes --------------------------------------------------------------------------------


def find_daemon(node: NodeState) -> int | None:
    """The PID of the node's running dockerd (found by its data root), or None."""
    for pid in host.pids():
        argv = host.cmdline(pid)
        if argv[:1] == ["dockerd"] and node.data_root in argv and host.alive(pid):
            return pid
    return None


def node_processes(node: NodeState) -> set[int]:
    """Every live process of the node: in its network namespace, or in its cgroups."""
    daemon = find_daemon(node)
    found = host.processes_of(node.netns, node.cgroup_parent)
    return found | ({daemon} if daemon else set())


def kill_node_processes(node: NodeState, timeout_s: float = 15.0) -> int:
    """SIGKILL every process of the node until none is left; how many were killed."""
    return host.kill_until_gone(lambda: node_processes(node), node.name, timeout_s)


def start_daemon(node: NodeState, timeout_s: float = 60.0) -> NodeState:
    """Start the node's dockerd (detached, reparented to init) and wait until it answers."""
    spawn_daemon(node)
    wait_answers(node, timeout_s)
    return with_pid(node)


def with_pid(node: NodeState) -> NodeState:
    pid = find_daemon(node)
    return replace(node, pid=pid, start_ticks=process_start_ticks(pid) if pid else None)


def spawn_daemon(node: NodeState) -> None:
    """Start the node's dockerd unless it runs; do not wait for it."""
    if find_daemon(node) is not None:
        return
    _clear_stale_pidfiles(node)
    host.spawn_detached(node.argv, Path(node.log_file))
    # until the forked wrapper has exec'd dockerd: never start two
    wait_until(lambda: find_daemon(node) is not None, 10, 0.05)


def _clear_stale_pidfiles(node: NodeState) -> None:
    """Remove the pidfiles of a killed dockerd and its containerd.

    Measured here: a killed daemon (and the containerd that dies with it) may linger as a
    zombie until init reaps it; a new dockerd then finds the PID "running" and refuses to
    start ("pid file found"), or waits for the dead containerd until it times out.
    """
    for path in (Path(node.pidfile), Path(node.exec_root) / "containerd" / "containerd.pid"):
        try:
            pid = int(path.read_text().strip() or 0)
        except (OSError, ValueError):
            continue
        if not pid or not host.alive(pid):
            path.unlink(missing_ok=True)


def wait_answers(node: NodeState, timeout_s: float) -> None:
    last = [""]

    def answers() -> bool:
        try:
            connect(node.url, 3).ping()  # type: ignore[no-untyped-call]
            return True
        except (docker.errors.DockerException, OSError) as exc:
            last[0] = str(exc)
            return False

    wait_until(
        answers,
        timeout_s,
        0.3,
        lambda: (
            f"the daemon of {node.name} did not answer on {node.url} within "
            f"{timeout_s:g} s ({last[0]}); see {node.log_file}"
        ),
    )


# --- host plumbing (shared with the Kubernetes lab: harness.labs.host) --------------------


_sh = host.sh
_exists_link = host.exists_link
_iptables = host.iptables
unmount_under = host.unmount_under


def _make_bridge(state: LabState) -> None:
    host.make_bridge(state.bridge, f"{BRIDGE_ADDRESS}/24", state.host_rules)
    # loopback addresses DNAT-ed to a node (slot routing) must be routable onto the bridge
    Path(f"/proc/sys/net/ipv4/conf/{state.bridge}/route_localnet").write_text("1\n")


def _make_node_network(state: LabState, node: NodeState) -> None:
    host.make_netns_on_bridge(
        state.bridge, node.netns, node.veth_host, node.veth_node, f"{node.address}/24"
    )
    # no default route: nothing in the lab can reach past the bridge, and a node's attempt to
    # pull an image fails at once instead of hanging until a timeout (measured: ~20 s)


def _make_node_dirs(node: NodeState) -> None:
    Path(node.data_root).mkdir(parents=True, exist_ok=True)
    Path(node.exec_root).mkdir(parents=True, exist_ok=True)
    Path(node.config_file).write_text("{}\n")


def remove_cgroups(node: NodeState) -> int:
    return host.remove_cgroups(node.cgroup_parent)


# --- the lab ----------------------------------------------------------------------------------


class Lab:
    """Bring the lab up, say how it is, take it down (from its state file alone)."""

    def __init__(self, directory: Path | None = None, run_root: Path | None = None) -> None:
        self.directory = directory or lab_dir()
        self.run_root = run_root or DEFAULT_RUN_ROOT

    def state(self) -> LabState | None:
        return load_state(self.directory)

    def info(self) -> LabInfo | None:
        state = self.state()
        return LabInfo.from_state(state) if state is not None and state.status == "up" else None

    # --- up ---------------------------------------------------------------------------------

    def up(
        self,
        nodes: int = 3,
        managers: int = 1,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        images: Sequence[str] = (),
        for_run: bool = False,
    ) -> LabInfo:
        """Build the lab; on any failure everything made so far is removed again. `for_run`:
        built for a run (taken down by `harness cleanup` once that run's harness is gone)."""
        check_host()
        with locked(self.directory):
            if self.state() is not None:
                raise TargetError(
                    f"a lab already exists (state in {self.directory}): run `harness lab down`"
                )
            if _exists_link(BRIDGE):
                raise TargetError(f"bridge {BRIDGE} exists without a lab state: another lab?")
            driver = storage_driver_for(self.directory)
            state = plan_state(
                self.directory, self.run_root, nodes, managers, heartbeat_s, driver, for_run
            )
            save_state(state)
            try:
                state = self._build(state)
            except BaseException:
                self._down(state)
                raise
        info = LabInfo.from_state(state)
        for image in images:
            copy_image(image, info)
        return info

    def _build(self, state: LabState) -> LabState:
        _make_bridge(state)
        for node in state.nodes:
            _make_node_network(state, node)
            _make_node_dirs(node)
            state = state.with_node(start_daemon(node))
            save_state(state)
        state = form_swarm(state)
        state = replace(state, status="up")
        save_state(state)
        return state

    def ensure(
        self, nodes: int, managers: int, heartbeat_s: float, images: Sequence[str] = ()
    ) -> tuple[LabInfo, bool]:
        """The lab, brought up if there is none; True if this call made it.

        An existing lab of the same shape is reused, its heartbeat set to `heartbeat_s`.
        """
        state = self.state()
        if state is None:
            return self.up(nodes, managers, heartbeat_s, images, for_run=True), True
        if state.status != "up" or len(state.nodes) != nodes or state.managers != managers:
            raise TargetError(
                f"a lab of {len(state.nodes)} nodes / {state.managers} manager(s) "
                f"({state.status}) exists; wanted {nodes} / {managers}: run `harness lab down`"
            )
        if state.heartbeat_s != heartbeat_s:
            set_heartbeat(state, heartbeat_s)
            with locked(self.directory):
                save_state(replace(state, heartbeat_s=heartbeat_s))
        info = LabInfo.from_state(self.state() or state)
        for image in images:
            copy_image(image, info)
        return info, False

    # --- status -----------------------------------------------------------------------------

    def status(self) -> LabStatus | None:
        state = self.state()
        if state is None:
            return None
        seen = swarm_nodes(state)
        rows = []
        for node in state.nodes:
            swarm = seen.get(node.node_id or "", {})
            rows.append(
                NodeStatus(
                    name=node.name,
                    role=node.role,
                    address=node.address,
                    daemon_pid=find_daemon(node),
                    swarm_state=str(swarm.get("state", "-")),
                    availability=str(swarm.get("availability", "-")),
                    manager_status=str(swarm.get("manager", "")),
                )
            )
        return LabStatus(
            state_file=str(self.directory / "state.json"),
            status=state.status,
            heartbeat_s=state.heartbeat_s,
            storage_driver=state.storage_driver,
            nodes=tuple(rows),
        )

    # --- down -------------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Remove every daemon, namespace, link, rule, mount and file of the lab; idempotent."""
        return host.take_down(self.directory, self.state, self._down)

    def _down(self, state: LabState) -> list[str]:
        removed = []
        for node in state.nodes:
            killed = kill_node_processes(node)
            if killed:
                removed.append(f"{node.name}: {killed} process(es) killed")
        roots = [state.run_root, state.lab_dir, *(n.data_dir for n in state.nodes)]
        removed += [f"unmounted {p}" for p in unmount_under(roots)]
        for node in state.nodes:
            removed += host.remove_netns(node.netns, node.veth_host)
            if remove_cgroups(node):
                removed.append(f"cgroups of {node.name}")
        removed += host.remove_bridge(state.bridge, state.host_rules)
        for node in state.nodes:
            if host.remove_tree(Path(node.data_dir)):
                removed.append(f"dir {node.data_dir}")
        for path in (Path(state.run_root), Path(state.lab_dir) / "images"):
            if host.remove_tree(path):
                removed.append(f"dir {path}")
        (Path(state.lab_dir) / "state.json").unlink(missing_ok=True)
        return removed


def check_host() -> None:
    """The lab needs root and a few host tools; say exactly what is missing."""
    if os.geteuid() != 0:
        raise TargetError("the lab needs root (network namespaces, bridges, dockerd)")
    for tool, package in TOOLS.items():
        require_tool(tool, package)


# --- Swarm ------------------------------------------------------------------------------------


def form_swarm(state: LabState) -> LabState:
    """Init the swarm on node 1 (with the heartbeat), join the others; record node IDs."""
    manager = connect(state.manager.url, 30)
    try:
        manager.swarm.init(  # type: ignore[no-untyped-call]
            advertise_addr=state.manager.address,
            listen_addr=f"{state.manager.address}:{SWARM_PORT}",
            default_addr_pool=["10.215.0.0/16"],
            subnet_size=24,
            dispatcher_heartbeat_period=int(state.heartbeat_s * NS_PER_S),
        )
        tokens = manager.swarm.attrs["JoinTokens"]
        for node in state.nodes[1:]:
            connect(node.url, 30).swarm.join(  # type: ignore[no-untyped-call]
                remote_addrs=[f"{state.manager.address}:{SWARM_PORT}"],
                join_token=tokens["Manager" if node.role == "manager" else "Worker"],
                listen_addr=f"{node.address}:{SWARM_PORT}",
                advertise_addr=node.address,
            )
    except docker.errors.APIError as exc:
        raise TargetError(f"cannot form the lab's swarm: {exc}") from exc
    nodes = tuple(
        replace(n, node_id=str(connect(n.url).info()["Swarm"]["NodeID"])) for n in state.nodes
    )
    state = replace(state, nodes=nodes)
    save_state(state)
    wait_ready(state, timeout_s=60)
    return state


def swarm_nodes(state: LabState) -> dict[str, dict[str, str]]:
    """The manager's view of each node by ID: state, availability, manager status."""
    try:
        raw = connect(state.manager.url, 5).api.nodes()  # type: ignore[no-untyped-call]
    except (docker.errors.DockerException, OSError):
        return {}
    return {
        n["ID"]: {
            "state": n["Status"]["State"],
            "availability": n["Spec"].get("Availability", ""),
            "manager": (n.get("ManagerStatus") or {}).get("Reachability", ""),
            "hostname": n["Description"]["Hostname"],
        }
        for n in raw
    }


def wait_ready(state: LabState, timeout_s: float) -> None:
    waiting: list[str] = []

    def all_ready() -> bool:
        seen = swarm_nodes(state)
        waiting[:] = [
            n.name for n in state.nodes if seen.get(n.node_id or "", {}).get("state") != "ready"
        ]
        return not waiting

    wait_until(
        all_ready,
        timeout_s,
        0.3,
        lambda: f"lab nodes not ready after {timeout_s:g} s: {', '.join(waiting)}",
    )


def set_heartbeat(state: LabState, heartbeat_s: float) -> None:
    """Change the dispatcher heartbeat of the running swarm (`swarm update`)."""
    try:
        connect(state.manager.url).swarm.update(  # type: ignore[no-untyped-call]
            dispatcher_heartbeat_period=int(heartbeat_s * NS_PER_S)
        )
    except docker.errors.APIError as exc:
        raise TargetError(f"cannot set the lab's heartbeat to {heartbeat_s:g} s: {exc}") from exc


def copy_image(image: str, lab: LabInfo, host: docker.DockerClient | None = None) -> None:
    """Copy a locally built image to every node (`docker save | docker load`; no registry)."""
    host = host or docker.from_env()
    try:
        wanted = str(host.images.get(image).id)
    except docker.errors.ImageNotFound as exc:
        raise TargetError(f"image {image!r} is not on the host engine; build it first") from exc
    tar = Path(lab.lab_dir) / "images" / f"{wanted.replace(':', '-')}.tar"
    try:
        for node in lab.nodes:
            client = connect(node.url, 120)
            with contextlib.suppress(docker.errors.ImageNotFound):
                if client.images.get(image).id == wanted:
                    continue
            if not tar.exists():
                tar.parent.mkdir(parents=True, exist_ok=True)
                with tar.open("wb") as out:
                    for chunk in host.api.get_image(image):  # type: ignore[no-untyped-call]
                        out.write(chunk)
            with tar.open("rb") as data:
                client.api.load_image(data)  # type: ignore[no-untyped-call]
    except docker.errors.APIError as exc:
        raise TargetError(f"cannot copy {image} to the lab: {exc}") from exc
    finally:
        tar.unlink(missing_ok=True)
