"""What one run left on this machine, asked of the machine itself (engines' own listings, the
kernel's /proc and /sys, iptables-save, tc, podman's CLI, the Kubernetes lab's API server),
never of the harness's records.

    found = run_leftovers(run_id, run_dir, seen)   # [] when the run left nothing
    found += kube_leftovers(run_id)                # a run on the Kubernetes lab: its objects
    found += kube_lagging(run_id)                  # what Kubernetes itself removes later

`seen` is what was observed of the run while it ran (`RunSightings`: its bridges, the chains its
rules used), so objects that carry no run label (a bridge device, a chain) can be looked for
after the run is gone. Bystanders (`Bystanders`) are containers and a network the stress made
without the run label; `changed()` says how they differ from when they were made.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

from harness.hostnet import run_hash
from harness.images import DEMO_IMAGE
from harness.labs.kubernetes.state import KubeLabState
from harness.results import read_json_lines
from harness.targets.base import RUN_LABEL
from harness.targets.kubernetes.objects import namespace_for

BYSTANDER_LABEL = "chaos-harness-bench.bystander"
NETNS_DIR = Path("/var/run/netns")
TABLES = ("filter", "nat", "mangle", "raw")
QDISC_HANDLE = "ca05:"
# a pod's cgroup as the kubelet names it (cgroupfs driver: dashes; systemd: underscores)
POD_CGROUP = re.compile(r"/pod([0-9a-f]{8}(?:[-_][0-9a-f]{4}){3}[-_][0-9a-f]{12})(?:/|$)")
KUBE_API_TIMEOUT_S = 10


def _out(*args: str, timeout: float = 30) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout


def _tags(run_id: str) -> tuple[str, str]:
    """The strings a run's rules, chains and processes carry: its id, and its chains' hash."""
    return run_id, run_hash(run_id)


@dataclass
class RunSightings:
    """What was seen of a run while it ran: its bridge devices and podman networks."""

    bridges: set[str] = field(default_factory=set)
    fill_files: set[str] = field(default_factory=set)

    def look(self, client: docker.DockerClient, run_id: str, run_dir: Path) -> None:
        with contextlib.suppress(docker.errors.DockerException, OSError):
            for network in client.networks.list(filters={"label": f"{RUN_LABEL}={run_id}"}):
                if network.attrs.get("Driver") == "bridge":
                    self.bridges.add(f"br-{(network.id or '')[:12]}")
        if shutil.which("podman"):
            listing = _out(
                "podman",
                "network",
                "ls",
                "--filter",
                f"label={RUN_LABEL}={run_id}",
                "--format",
                "{{.NetworkInterface}}",
            )
            self.bridges.update(line.strip() for line in listing.splitlines() if line.strip())
        for line in read_json_lines(run_dir / "faults.jsonl"):
            record = line.get("record") or {}
            for fill in (record.get("data") or {}).get("files", []):
                self.fill_files.add(str(fill.get("path")))


def host_rules(run_id: str) -> list[str]:
    """Rules and chains of the run in every table of the host's iptables."""
    tags = _tags(run_id)
    found = []
    for table in TABLES:
        for line in _out("iptables-save", "-t", table).splitlines():
            if any(tag in line for tag in tags):
                found.append(f"host iptables {table}: {line}")
    return found


def netns_leftovers(run_id: str) -> list[str]:
    """Rules of the run in every named network namespace (the labs' nodes). kube-proxy's rules
    for the run's Service are Kubernetes' own, removed at its next sync: `kube_lagging`."""
    tags = _tags(run_id)
    found: list[str] = []
    for netns in _named_netns():
        rules = _out("nsenter", f"--net={netns}", "iptables-save")
        found += [
            f"netns {netns.name}: {r}"
            for r in rules.splitlines()
            if any(t in r for t in tags) and not _kube_proxy_rule(r)
        ]
    return found


def _named_netns() -> list[Path]:
    return sorted(NETNS_DIR.iterdir()) if NETNS_DIR.is_dir() else []


def _kube_proxy_rule(rule: str) -> bool:
    return "KUBE-" in rule and "chaos-harness" not in rule


def run_processes(run_id: str, run_dir: Path) -> list[str]:
    """Live processes that belong to the run: its id or directory in their command line,
    environment (a stress-ng leader's marker) or working directory."""
    return processes_mentioning(run_id, str(run_dir))


def processes_mentioning(*needles: str) -> list[str]:
    """Live processes (not zombies, not this one) with one of `needles` in their command line
    or environment, or whose working directory is under one of them."""
    encoded = tuple(n.encode() for n in needles)
    found = []
    for pid, _fields in _live_processes():
        entry = Path(f"/proc/{pid}")
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        environ = b""
        with contextlib.suppress(OSError):
            environ = (entry / "environ").read_bytes()
        cwd = ""
        with contextlib.suppress(OSError):
            cwd = os.readlink(entry / "cwd")
        if any(n in cmdline or n in environ for n in encoded) or any(
            cwd == n or cwd.startswith(n.rstrip("/") + "/") for n in needles
        ):
            found.append(f"process {pid}: {_shown(cmdline)}")
    return found


def session_processes(session: int) -> list[str]:
    """Live processes of a session: a harness started as a session leader and killed leaves
    there whatever it started that did not make a session of its own."""
    found = []
    for pid, fields in _live_processes():
        if int(fields[3]) == session:  # state, ppid, pgrp, session
            with contextlib.suppress(OSError):
                found.append(f"process {pid}: {_shown(Path(f'/proc/{pid}/cmdline').read_bytes())}")
    return found


def _live_processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/pid/stat after the command name) of every process but this
    one and zombies (a zombie holds nothing but its exit status)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields and fields[0] != "Z":
            yield int(entry.name), fields


def _shown(cmdline: bytes) -> str:
    return cmdline.replace(b"\0", b" ").decode(errors="replace")[:160]


def engine_objects(client: docker.DockerClient, run_id: str, where: str) -> list[str]:
    label: dict[str, str | list[str] | bool] = {"label": f"{RUN_LABEL}={run_id}"}
    found: list[str] = []
    try:
        found += [
            f"{where} container {c.name}" for c in client.containers.list(all=True, filters=label)
        ]
        found += [f"{where} network {n.name}" for n in client.networks.list(filters=label)]
        found += [f"{where} volume {v.name}" for v in client.volumes.list(filters=label)]
        with contextlib.suppress(docker.errors.APIError):  # not a swarm manager
            found += [f"{where} service {s.name}" for s in client.services.list(filters=label)]
    except (docker.errors.DockerException, OSError) as exc:
        found.append(f"{where}: cannot list ({exc})")
    return found


def podman_objects(run_id: str) -> list[str]:
    if shutil.which("podman") is None:
        return []
    label = f"label={RUN_LABEL}={run_id}"
    found = [
        f"podman container {n}"
        for n in _out("podman", "ps", "-a", "--filter", label, "--format", "{{.Names}}").split()
    ]
    found += [
        f"podman network {n}"
        for n in _out("podman", "network", "ls", "--filter", label, "--format", "{{.Name}}").split()
    ]
    found += [
        f"podman volume {n}"
        for n in _out("podman", "volume", "ls", "--filter", label, "--format", "{{.Name}}").split()
    ]
    state = Path(os.environ.get("CHAOS_HARNESS_PODMAN_DIR") or "/run/chaos-harness/podman")
    found += [f"podman service file {p}" for p in state.glob(f"{run_id}.*")]
    return found


def lab_engines() -> list[tuple[str, str]]:
    """(node name, engine url) of the Swarm lab's nodes, when a lab is up."""
    from harness.labs.swarm import lab

    with contextlib.suppress(Exception):
        info = lab.Lab().info()
        if info is not None:
            return [(n.name, n.url) for n in info.nodes]
    return []


def run_leftovers(
    run_id: str, run_dir: Path, seen: RunSightings, host: docker.DockerClient
) -> list[str]:
    """Everything of the run still on the machine (empty: nothing)."""
    found = engine_objects(host, run_id, "docker")
    for name, url in lab_engines():
        with contextlib.suppress(docker.errors.DockerException):
            found += engine_objects(docker.DockerClient(base_url=url, timeout=10), run_id, name)
    found += podman_objects(run_id)
    found += host_rules(run_id)
    found += netns_leftovers(run_id)
    found += run_processes(run_id, run_dir)
    found += [f"bridge {b}" for b in sorted(seen.bridges) if Path(f"/sys/class/net/{b}").exists()]
    return found


def lab_health() -> list[str]:
    """A Swarm lab that is up: every node's daemon answers, every node ready and active (a
    node fault that was not reverted shows here)."""
    from harness.labs.swarm import lab

    problems = []
    with contextlib.suppress(Exception):
        status = lab.Lab().status()
        if status is None or status.status != "up":
            return []
        for node in status.nodes:
            if not node.daemon_pid:
                problems.append(f"lab node {node.name}: its daemon is not running")
            if node.swarm_state != "ready" or node.availability != "active":
                problems.append(f"lab node {node.name}: {node.swarm_state}/{node.availability}")
            link = _out("ip", "-br", "link", "show", f"{node.name}h")
            if "DOWN" in link.split()[1:2]:
                problems.append(f"lab node {node.name}: its link is down")
    return problems


# --- the Kubernetes lab ---------------------------------------------------------------------------


def kube_lab_up() -> KubeLabState | None:
    """The Kubernetes lab's state when one is up (else None)."""
    from harness.labs.kubernetes import lab as kube_lab

    with contextlib.suppress(Exception):
        state = kube_lab.load_state()
        if state is not None and state.status == "up":
            return state
    return None


@dataclass(frozen=True)
class KubeApis:
    core: Any
    apps: Any
    discovery: Any


@contextlib.contextmanager
def kube_apis(state: KubeLabState) -> Iterator[KubeApis]:
    """The official client as the lab's admin (its own kubeconfig), closed after."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(state.kubeconfig), persist_config=False
    )
    try:
        yield KubeApis(
            client.CoreV1Api(api_client),
            client.AppsV1Api(api_client),
            client.DiscoveryV1Api(api_client),
        )
    finally:
        with contextlib.suppress(Exception):
            api_client.close()


def kube_leftovers(run_id: str) -> list[str]:
    """The run's namespace and every object labelled with the run, in any namespace, as the
    lab's API server lists them (the harness waits for its namespace to be gone: at once)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    state = kube_lab_up()
    if state is None:
        return []
    name = namespace_for(run_id)
    found = []
    try:
        with kube_apis(state) as api:
            try:
                namespace = api.core.read_namespace(name, _request_timeout=KUBE_API_TIMEOUT_S)
                found.append(f"kubernetes namespace {name} ({namespace.status.phase})")
            except ApiException as exc:
                if exc.status != 404:  # 404: gone, as it should be
                    raise
            for what, listing in _run_listings(api).items():
                items = listing(
                    label_selector=f"{RUN_LABEL}={run_id}", _request_timeout=KUBE_API_TIMEOUT_S
                ).items
                found += [f"kubernetes {what} {_where(i.metadata)}" for i in items]
    except (ApiException, HTTPError, OSError) as exc:
        found.append(f"kubernetes lab: cannot ask its API server ({exc})")
    return found


def _run_listings(api: KubeApis) -> dict[str, Any]:
    return {
        "namespace": api.core.list_namespace,
        "pod": api.core.list_pod_for_all_namespaces,
        "service": api.core.list_service_for_all_namespaces,
        "deployment": api.apps.list_deployment_for_all_namespaces,
        "replicaset": api.apps.list_replica_set_for_all_namespaces,
        "endpointslice": api.discovery.list_endpoint_slice_for_all_namespaces,
    }


def _where(metadata: Any) -> str:
    return f"{metadata.namespace}/{metadata.name}" if metadata.namespace else str(metadata.name)


def kube_lagging(run_id: str) -> list[str]:
    """What Kubernetes itself removes some seconds after the run's objects are gone: kube-proxy's
    rules for the run's Service in the nodes' namespaces (its next sync), and containers of pods
    the API server no longer has (the kubelet kills them; later if it was down). And in every
    pod's network namespace, a rule of the run or a qdisc of the harness."""
    state = kube_lab_up()
    if state is None:
        return []
    name = namespace_for(run_id)
    found = [
        f"netns {node.netns}: kube-proxy still has {rule}"
        for node in state.nodes
        for rule in _out("nsenter", f"--net={NETNS_DIR / node.netns}", "iptables-save").splitlines()
        if name in rule and _kube_proxy_rule(rule)
    ]
    pods = pod_processes(state)
    known = _pod_uids(state)
    if known is None:
        return [*found, "kubernetes lab: cannot list its pods"]
    found += [
        f"{node} pod {uid}: processes {sorted(pids)} of a pod the API server no longer has"
        for (node, uid), pids in sorted(pods.items())
        if uid not in known
    ]
    return found + pod_netns_leftovers(run_id, pods)


def pod_processes(state: KubeLabState) -> dict[tuple[str, str], set[int]]:
    """(node, pod uid) -> the live processes in that pod's cgroup, on every node of the lab
    (containerd keeps pod network namespaces inside the node's mount namespace: the host's
    /var/run/netns does not show them, their processes do)."""
    roots = {node.cgroup_root.rstrip("/") + "/": node.name for node in state.nodes}
    found: dict[tuple[str, str], set[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cgroups = (entry / "cgroup").read_text().splitlines()
        except (OSError, IndexError):
            continue
        for line in cgroups:
            path = line.split(":", 2)[-1]
            node = next((n for root, n in roots.items() if path.startswith(root)), None)
            match = POD_CGROUP.search(path)
            if node is not None and match is not None:
                found.setdefault((node, match.group(1).replace("_", "-")), set()).add(
                    int(entry.name)
                )
                break
    return found


def _pod_uids(state: KubeLabState) -> set[str] | None:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        with kube_apis(state) as api:
            pods = api.core.list_pod_for_all_namespaces(_request_timeout=KUBE_API_TIMEOUT_S)
    except (ApiException, HTTPError, OSError):
        return None
    return {str(p.metadata.uid) for p in pods.items}


def pod_netns_leftovers(run_id: str, pods: dict[tuple[str, str], set[int]]) -> list[str]:
    """Rules of the run and harness qdiscs in each pod's network namespace (entered through
    one of its processes)."""
    tags = _tags(run_id)
    found = []
    seen: set[int] = set()
    for (node, uid), pids in sorted(pods.items()):
        for pid in sorted(pids):
            with contextlib.suppress(OSError):
                inode = os.stat(f"/proc/{pid}/ns/net").st_ino
                if inode in seen:
                    break
                seen.add(inode)
                enter = ("nsenter", "-t", str(pid), "-n")
                rules = _out(*enter, "iptables-save").splitlines()
                found += [f"{node} pod {uid}: {r}" for r in rules if any(t in r for t in tags)]
                qdiscs = _out(*enter, "tc", "qdisc", "show").splitlines()
                found += [f"{node} pod {uid}: qdisc {q}" for q in qdiscs if QDISC_HANDLE in q]
                break
    return found


def kube_lab_health() -> list[str]:
    """The Kubernetes lab, when up: its control plane running, and every node's containerd,
    kubelet and kube-proxy running, the node Ready and schedulable, its link up."""
    from harness.labs.kubernetes import lab as kube_lab

    try:
        status = kube_lab.KubeLab().status()
    except Exception as exc:  # a damaged state file is a finding, not a crash of the stress
        return [f"kubernetes lab: cannot read its status ({exc})"]
    if status is None or status.status != "up":
        return []
    problems = [
        f"kubernetes lab: {p.component} is not running" for p in status.control_plane if not p.pid
    ]
    for node in status.nodes:
        dead = [p.component for p in node.processes if not p.pid]
        if dead:
            problems.append(f"kubernetes lab node {node.name}: {', '.join(dead)} not running")
        if node.ready != "True":
            problems.append(f"kubernetes lab node {node.name}: Ready is {node.ready}")
        if node.schedulable != "yes":
            problems.append(f"kubernetes lab node {node.name}: cordoned")
        if "DOWN" in _out("ip", "-br", "link", "show", f"{node.name}h").split()[1:2]:
            problems.append(f"kubernetes lab node {node.name}: its link is down")
    return problems


# --- bystanders ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """A bystander as the engine and the kernel see it."""

    container_id: str
    restart_count: int
    started_at: str
    pid: int
    status: str


def seen_of(container: Any) -> Seen:
    container.reload()
    state = container.attrs["State"]
    return Seen(
        container.id,
        container.attrs["RestartCount"],
        state["StartedAt"],
        state["Pid"],
        state["Status"],
    )


def netns_rules(pid: int) -> list[str]:
    """The iptables rules and chains of a process's netns, without the date and counters."""
    lines = _out("nsenter", "-t", str(pid), "-n", "iptables-save").splitlines()
    return [re.sub(r"\[\d+:\d+\]", "", line) for line in lines if not line.startswith("#")]


class Bystanders:
    """Containers and a network without the run label, made once for the whole stress."""

    def __init__(self, client: docker.DockerClient, count: int = 2) -> None:
        self.client = client
        self.tag = secrets.token_hex(3)
        labels = {BYSTANDER_LABEL: self.tag}
        self.network = client.networks.create(
            f"bystander-{self.tag}", driver="bridge", labels=labels
        )
        self.containers: list[Any] = []
        for index in range(count):
            self.containers.append(
                client.containers.run(
                    DEMO_IMAGE,
                    name=f"bystander-{self.tag}-{index}",
                    detach=True,
                    network=self.network.name,
                    labels=labels,
                    restart_policy={"Name": "always"},
                    mem_limit="64m",
                )
            )
        self.before = self.seen()
        self.rules_before = [netns_rules(s.pid) for s in self.before]

    def seen(self) -> list[Seen]:
        return [seen_of(container) for container in self.containers]

    def changed(self) -> list[str]:
        problems = []
        now = self.seen()
        for before, after in zip(self.before, now, strict=True):
            if before != after:
                problems.append(
                    f"bystander {before.container_id[:12]} changed: {before} -> {after}"
                )
        for seen, rules in zip(now, self.rules_before, strict=True):
            if netns_rules(seen.pid) != rules:
                problems.append(f"bystander {seen.container_id[:12]}: its iptables rules changed")
            qdiscs = _out("nsenter", "-t", str(seen.pid), "-n", "tc", "qdisc", "show")
            if QDISC_HANDLE in qdiscs:
                problems.append(f"bystander {seen.container_id[:12]}: a harness qdisc: {qdiscs}")
        return problems

    def remove(self) -> None:
        for container in self.containers:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)
        with contextlib.suppress(docker.errors.DockerException):
            self.network.remove()


def describe(found: list[str]) -> str:
    return json.dumps(found, indent=2)
