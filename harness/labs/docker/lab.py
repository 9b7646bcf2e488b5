"""The Docker lab: one extra Docker engine on this machine that stands in for a remote one.

One `dockerd` in a network namespace of its own (`chdock-n1`, 10.216.0.2) wired to a bridge
(`chdock0`, 10.216.0.1/24; the Swarm lab has 10.213-10.215, the Kubernetes lab 10.220-10.222)
by a veth pair, listening on TCP on that address only (`tcp://10.216.0.2:2375`, `--tls=false`:
the address is reachable from this machine alone), with its own data root, exec root, pidfile,
managed containerd, cgroup parent (`/chdock-n1`), hostname (a UTS namespace) and default
bridge (10.217.0.1/24). A scenario whose target is `{kind: docker, engine: <that address>}`
then runs against an engine the harness reaches only through its API and the ports it
publishes (harness.targets.docker.remote). No default route in the namespace: an image pull
fails at once; images come from this machine's engine (a save loaded into the lab's).

The daemon is started and found as the Swarm lab's are (harness.labs.swarm.lab: `nsenter
--net`, a config file of its own, processes found by namespace and cgroup). Crash safety: the
state file (`$CHAOS_HARNESS_DOCKER_LAB_DIR/state.json`) names the daemon, namespace, veth,
bridge and directories BEFORE they are made; `down()` works from that file alone, and is safe
to run twice and after a crash.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import docker
import docker.errors

from harness.errors import TargetError
from harness.labs import host
from harness.labs.swarm.lab import (
    NETNS_DIR,
    TOOLS,
    NodeState,
    find_daemon,
    kill_node_processes,
    start_daemon,
    storage_driver_for,
)
from harness.owners import owner_label_value
from harness.targets.docker.engine import connect, copy_image

PREFIX = "chdock"
BRIDGE = "chdock0"
SUBNET = "10.216.0.0/24"
BRIDGE_ADDRESS = "10.216.0.1"
ENGINE_ADDRESS = "10.216.0.2"
ENGINE_PORT = 2375
ENGINE_BRIDGE = "10.217.0.1/24"  # the engine's own docker0, inside its namespace
LAB_LABEL = "chaos-harness.lab=docker"
DEFAULT_LAB_DIR = Path("/var/lib/chaos-harness/docker-lab")
DEFAULT_RUN_ROOT = Path("/run/chdock")
STATE_VERSION = 1
START_TIMEOUT_S = 60.0
IMAGE_TIMEOUT_S = 600


def lab_dir() -> Path:
    """Where the lab's state and data root live: $CHAOS_HARNESS_DOCKER_LAB_DIR or the default."""
    return Path(os.environ.get("CHAOS_HARNESS_DOCKER_LAB_DIR") or DEFAULT_LAB_DIR)


@dataclass(frozen=True)
class EngineNode(NodeState):
    """The lab's one engine: a Swarm lab node's names and paths, reached over TCP."""

    prefix: ClassVar[str] = PREFIX

    @property
    def url(self) -> str:
        return f"tcp://{self.address}:{ENGINE_PORT}"


@dataclass(frozen=True)
class DockerLabState:
    """Everything the lab made or is about to make; the file `down()` works from."""

    lab_dir: str
    run_root: str
    storage_driver: str
    node: EngineNode
    bridge: str = BRIDGE
    subnet: str = SUBNET
    status: str = "creating"  # creating, up
    created_ns: int = 0
    version: int = STATE_VERSION
    creator: str | None = None  # "<pid>:<start ticks>" of the process that built it
    for_run: bool = False  # never: only `harness lab up` makes this lab

    @property
    def url(self) -> str:
        return self.node.url

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["node"] = {**asdict(self.node), "argv": list(self.node.argv)}
        return raw

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> DockerLabState:
        if raw.get("version") != STATE_VERSION:
            raise TargetError(
                f"Docker lab state version {raw.get('version')!r} is not {STATE_VERSION}"
            )
        node = EngineNode(**{**raw["node"], "argv": tuple(raw["node"]["argv"])})
        return cls(**{**raw, "node": node})


def plan_state(directory: Path, run_root: Path, storage_driver: str) -> DockerLabState:
    """The whole lab as names and a command line; nothing is made."""
    node = EngineNode(
        index=1,
        role="engine",
        address=ENGINE_ADDRESS,
        data_dir=str(directory / "n1"),
        exec_root=str(run_root / "n1"),
    )
    node = replace(node, argv=tuple(daemon_argv(node, storage_driver)))
    return DockerLabState(
        lab_dir=str(directory),
        run_root=str(run_root),
        storage_driver=storage_driver,
        node=node,
        created_ns=time.time_ns(),
        creator=owner_label_value(),
    )


def daemon_argv(node: EngineNode, storage_driver: str) -> list[str]:
    """The engine: in its network namespace, with a hostname of its own, on TCP only."""
    dockerd = [
        *("dockerd", "--config-file", node.config_file, "--data-root", node.data_root),
        *("--exec-root", node.exec_root, "-H", node.url, "--pidfile", node.pidfile),
        # said explicitly, or dockerd waits 15 s to warn that TCP without TLS is insecure
        "--tls=false",
        *("--containerd-namespace", node.name),
        *("--containerd-plugins-namespace", f"{node.name}-plugins"),
        *("--bip", ENGINE_BRIDGE, "--storage-driver", storage_driver),
        *("--cgroup-parent", node.cgroup_parent, "--exec-opt", "native.cgroupdriver=cgroupfs"),
        *("--label", LAB_LABEL),
    ]
    return [
        *("nsenter", f"--net={NETNS_DIR / node.netns}", "unshare", "--uts", "--"),
        *("sh", "-c", f'hostname {node.name} && exec "$@"', "sh", *dockerd),
    ]


def load_state(directory: Path | None = None) -> DockerLabState | None:
    path = (directory or lab_dir()) / "state.json"
    return host.load_json(path, DockerLabState.from_json, "Docker lab state")


def save_state(state: DockerLabState) -> None:
    host.save_json(Path(state.lab_dir) / "state.json", state.to_json())


def check_host() -> None:
    """The lab needs root and the Swarm lab's host tools; say exactly what is missing."""
    problem = host.host_problem(*TOOLS)
    if problem:
        raise TargetError(f"the Docker lab {problem} (network namespaces, a bridge, dockerd)")


class DockerLab:
    """Bring the engine up, say how it is, take it down (from its state file alone)."""

    def __init__(self, directory: Path | None = None, run_root: Path | None = None) -> None:
        self.directory = directory or lab_dir()
        self.run_root = run_root or DEFAULT_RUN_ROOT

    def state(self) -> DockerLabState | None:
        return load_state(self.directory)

    def up(self, images: Sequence[str] = ()) -> DockerLabState:
        """Start the engine and load `images` into it; on any failure everything made so far
        is removed again."""
        check_host()
        with host.locked(self.directory):
            if self.state() is not None:
                raise TargetError(
                    f"a Docker lab already exists (state in {self.directory}): run "
                    "`harness lab down --kind docker`"
                )
            if host.exists_link(BRIDGE):
                raise TargetError(f"bridge {BRIDGE} exists without a Docker lab state")
            state = plan_state(self.directory, self.run_root, storage_driver_for(self.directory))
            save_state(state)
            try:
                state = self._build(state, images)
            except BaseException:
                self._down(state)
                raise
        return state

    def _build(self, state: DockerLabState, images: Sequence[str]) -> DockerLabState:
        node = state.node
        host.make_bridge(state.bridge, f"{BRIDGE_ADDRESS}/24", ())
        host.make_netns_on_bridge(
            state.bridge, node.netns, node.veth_host, node.veth_node, f"{node.address}/24"
        )
        Path(node.data_root).mkdir(parents=True, exist_ok=True)
        Path(node.exec_root).mkdir(parents=True, exist_ok=True)
        Path(node.config_file).write_text("{}\n")
        started = start_daemon(node, START_TIMEOUT_S)
        state = replace(state, node=EngineNode(**asdict(started)))
        save_state(state)
        load_images(state, images)
        state = replace(state, status="up")
        save_state(state)
        return state

    def down(self) -> list[str]:
        """Remove the daemon, its containers, namespace, links, mounts and files; idempotent."""
        return host.take_down(self.directory, self.state, self._down)

    def _down(self, state: DockerLabState) -> list[str]:
        node = state.node
        removed = []
        killed = kill_node_processes(node)
        if killed:
            removed.append(f"{node.name}: {killed} process(es) killed")
        roots = [state.run_root, state.lab_dir, node.data_dir]
        removed += [f"unmounted {p}" for p in host.unmount_under(roots)]
        removed += host.remove_netns(node.netns, node.veth_host)
        if host.remove_cgroups(node.cgroup_parent):
            removed.append(f"cgroups of {node.name}")
        removed += host.remove_bridge(state.bridge, ())
        for path in (Path(node.data_dir), Path(state.run_root)):
            if host.remove_tree(path):
                removed.append(f"dir {path}")
        (Path(state.lab_dir) / "state.json").unlink(missing_ok=True)
        return removed


def load_images(state: DockerLabState, images: Sequence[str]) -> None:
    """Images from this machine's engine into the lab's (no registry is reachable there)."""
    if not images:
        return
    source = connect(None, IMAGE_TIMEOUT_S)
    engine = connect(state.url, IMAGE_TIMEOUT_S)
    try:
        for image in images:
            copy_image(source, engine, image)
    finally:
        source.close()
        engine.close()


def daemon_pid(state: DockerLabState) -> int | None:
    return find_daemon(state.node)


def answers(state: DockerLabState) -> bool:
    try:
        client = connect(state.url, 5)
    except TargetError:
        return False
    try:
        return bool(client.ping())
    except (docker.errors.DockerException, OSError):
        return False
    finally:
        client.close()
