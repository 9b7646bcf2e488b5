"""The Kubernetes lab: its plan, its configuration files, its certificates, and a real cluster.

Fast tests cover the pure parts; where Kubernetes' own source says what a default is, the test
reads it there. The lab tests bring up real etcd, API server, controller manager, scheduler,
containerd, kubelet and kube-proxy processes and check them with the build's own kubectl,
openssl, curl-like HTTP from the host and /proc, never with the lab's own view alone:
- default suite: a one-node lab serves a pod on its pod IP, a NodePort and a ClusterIP, leaves
  the host's kernel settings as they were, and leaves nothing behind; a lab whose API server
  cannot start is removed completely;
- slow: three Ready nodes, pods spread over them and talking across nodes, then each node fault
  on one lab (NotReady timing, what the load generator can still reach, drain and revert).
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from faults.base import AnyFault, FaultContext
from faults.node_base import NodeParams
from faults.node_down import NodeDown, NodeDownParams
from faults.node_drain import NodeDrain
from faults.node_partition import NodePartition, NodePartitionParams
from harness import labs as lab_nodes
from harness.cli_lab import control_plane_args
from harness.errors import FaultError, TargetError
from harness.images import DEMO_IMAGE
from harness.labs.kubernetes import build, config, pki, state
from harness.labs.kubernetes.lab import KubeLab, KubeLabInfo, leftovers
from harness.labs.kubernetes.nodeops import KubeNodes
from harness.labs.swarm import lab as swarm_lab
from harness.targets.base import Instance

NS = 1_000_000_000
TUNABLES = ("kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory", "vm/panic_on_oom")


def _plan(tmp_path: Path, nodes: int = 3, **args: tuple[str, ...]) -> state.KubeLabState:
    return state.plan(tmp_path / "lab", Path("/run/chk8s-test"), tmp_path / "bin", nodes, args)


# --- fast: the plan -----------------------------------------------------------------------------


def test_every_node_has_its_own_names_addresses_and_pod_range(tmp_path: Path) -> None:
    planned = _plan(tmp_path, nodes=3)
    names = [n.name for n in planned.nodes]
    assert names == ["chk8s-n1", "chk8s-n2", "chk8s-n3"]
    assert [n.veth_host for n in planned.nodes] == ["chk8s-n1h", "chk8s-n2h", "chk8s-n3h"]
    assert all(len(n.veth_host) <= 15 for n in planned.nodes)  # IFNAMSIZ
    subnet = ipaddress.ip_network(state.SUBNET)
    assert all(ipaddress.ip_address(n.address) in subnet for n in planned.nodes)
    pods = [ipaddress.ip_network(n.pod_cidr) for n in planned.nodes]
    cluster = ipaddress.ip_network(state.CLUSTER_CIDR)
    assert all(p.subnet_of(cluster) for p in pods)  # type: ignore[arg-type]
    assert not any(a.overlaps(b) for i, a in enumerate(pods) for b in pods[i + 1 :])
    assert (
        len({n.cgroup_root for n in planned.nodes} | {n.containerd_socket for n in planned.nodes})
        == 6
    )
    # apart from each other and from the Swarm lab's ranges, so both labs can be up at once
    ranges = [state.SUBNET, state.CLUSTER_CIDR, state.SERVICE_CIDR, swarm_lab.SUBNET]
    ranges += ["10.214.0.0/16", "10.215.0.0/16"]  # Swarm nodes' bridges, its overlay pool
    networks = [ipaddress.ip_network(r) for r in ranges]
    assert not any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1 :])
    assert state.BRIDGE != swarm_lab.BRIDGE and state.PREFIX != swarm_lab.PREFIX


@pytest.mark.parametrize("nodes", [0, 8])
def test_the_plan_refuses_impossible_labs(tmp_path: Path, nodes: int) -> None:
    with pytest.raises(TargetError, match="1 to 7"):
        _plan(tmp_path, nodes)
    with pytest.raises(TargetError, match="kubelet"):
        state.plan(tmp_path, tmp_path, tmp_path, 1, {"kubelet": ("--v=2",)})


def test_state_round_trips_through_the_file(tmp_path: Path) -> None:
    from harness.labs.kubernetes.lab import load_state, save_state

    planned = replace(_plan(tmp_path, 2), status="up", host_dirs=("/var/lib/cni",))
    save_state(planned)
    assert load_state(tmp_path / "lab") == planned
    assert load_state(tmp_path / "none") is None
    raw = json.loads((tmp_path / "lab" / "state.json").read_text())
    (tmp_path / "lab" / "state.json").write_text(json.dumps({**raw, "kind": "swarm"}))
    with pytest.raises(TargetError, match="kubernetes"):
        load_state(tmp_path / "lab")


def _kubernetes_source() -> Path:
    try:
        return build.kubernetes_module(build.find_go()).directory
    except Exception as exc:
        pytest.skip(f"Kubernetes' module is not available here: {exc}")


def test_node_failure_timing_defaults_are_kubernetes_own(tmp_path: Path) -> None:
    source = _kubernetes_source()
    defaults = (source / "pkg/controller/nodelifecycle/config/v1alpha1/defaults.go").read_text()
    grace = re.search(r"NodeMonitorGracePeriod = metav1.Duration\{Duration: (\d+) \*", defaults)
    admission = (source / "plugin/pkg/admission/defaulttolerationseconds/admission.go").read_text()
    not_ready = re.search(r"defaultNotReadyTolerationSeconds\s+= int64\((\d+)\)", admission)
    unreachable = re.search(r"defaultUnreachableTolerationSeconds\s+= int64\((\d+)\)", admission)
    assert grace and not_ready and unreachable
    settings = _plan(tmp_path).settings
    assert settings.node_monitor_grace_period_s == float(grace[1])
    assert settings.not_ready_toleration_s == int(not_ready[1])
    assert settings.unreachable_toleration_s == int(unreachable[1])


def test_control_plane_args_change_the_settings_in_force(tmp_path: Path) -> None:
    args = control_plane_args(
        [
            "kube-controller-manager:--node-monitor-grace-period=20s",
            "kube-apiserver:--default-unreachable-toleration-seconds=30",
        ]
    )
    planned = _plan(tmp_path, 1, **args)
    assert planned.settings.node_monitor_grace_period_s == 20.0
    assert planned.settings.unreachable_toleration_s == 30
    assert planned.settings.not_ready_toleration_s == 300
    with pytest.raises(TargetError, match="grace"):
        _plan(tmp_path, 1, **{"kube-controller-manager": ("--node-monitor-grace-period=soon",)})
    with pytest.raises(Exception, match="COMPONENT:--flag"):
        control_plane_args(["--node-monitor-grace-period=20s"])


def test_a_scenarios_lab_sets_the_eviction_timing_it_asks_for(tmp_path: Path) -> None:
    from harness.labs.kubernetes.session import control_plane_args as scenario_args
    from harness.scenario import LabSpec

    spec = LabSpec(nodes=1, node_monitor_grace_period=15.0, unreachable_toleration=20)
    settings = _plan(tmp_path, 1, **scenario_args(spec)).settings
    assert (settings.node_monitor_grace_period_s, settings.not_ready_toleration_s) == (15.0, 20)
    assert settings.unreachable_toleration_s == 20
    assert scenario_args(LabSpec(nodes=1)) == {}


def test_a_lab_is_reused_when_it_has_what_is_asked_for(tmp_path: Path) -> None:
    from harness.labs.kubernetes.lab import save_state

    grace = "--node-monitor-grace-period=20s"
    args = {"kube-controller-manager": (grace,), "kube-apiserver": ("--v=2",)}
    save_state(replace(_plan(tmp_path, 3, **args), status="up"))
    the_lab = KubeLab(tmp_path / "lab", Path("/run/chk8s-test"))
    info, made = the_lab.ensure(3, {"kube-controller-manager": (grace,)})
    assert not made and [n.name for n in info.nodes] == ["chk8s-n1", "chk8s-n2", "chk8s-n3"]
    assert info.settings.node_monitor_grace_period_s == 20.0
    assert the_lab.ensure(3)[1] is False
    with pytest.raises(TargetError, match="harness lab down"):
        the_lab.ensure(3, {"kube-controller-manager": ("--node-monitor-grace-period=30s",)})
    with pytest.raises(TargetError, match="3 node"):
        the_lab.ensure(2)


# --- fast: configuration files ------------------------------------------------------------------


def _paths_in(text: str) -> set[str]:
    """The absolute paths a TOML text sets (quoted values starting with /)."""
    return set(re.findall(r'"(/[^"]*)"', text))


def test_containerd_runs_apart_for_each_node(tmp_path: Path) -> None:
    planned = _plan(tmp_path, 2)
    n1, n2 = planned.nodes
    parsed = [tomllib.loads(config.containerd_toml(planned, n)) for n in (n1, n2)]
    cri = parsed[0]["plugins"]["io.containerd.grpc.v1.cri"]
    assert parsed[0]["root"].startswith(n1.data_dir) and parsed[0]["state"].startswith(n1.run_dir)
    assert parsed[0]["grpc"]["address"] == n1.containerd_socket
    assert cri["sandbox_image"] == config.PAUSE_IMAGE
    assert cri["netns_mounts_under_state_dir"] is True  # never in the host's /var/run/netns
    assert cri["restrict_oom_score_adj"] is True
    runc = cri["containerd"]["runtimes"]["runc"]["options"]
    assert runc["SystemdCgroup"] is False and runc["Root"].startswith(n1.run_dir)
    assert cri["cni"]["conf_dir"].startswith(n1.data_dir)
    texts = [config.containerd_toml(planned, n) for n in (n1, n2)]
    assert _paths_in(texts[0]) & _paths_in(texts[1]) == {"/usr/lib/cni"}  # the plugins only


def test_kubelet_config_keeps_the_host_as_it_is(tmp_path: Path) -> None:
    planned = _plan(tmp_path, 2)
    node = planned.nodes[1]
    kubelet = yaml.safe_load(config.kubelet_config(planned, node))
    assert kubelet["protectKernelDefaults"] is True  # it refuses to start rather than write
    assert kubelet["cgroupRoot"] == "/chk8s-n2" and kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["containerRuntimeEndpoint"] == f"unix://{node.containerd_socket}"
    assert kubelet["imageGCHighThresholdPercent"] == 100  # the lab's images cannot be pulled
    assert kubelet["podLogsDir"].startswith(node.data_dir)
    assert kubelet["address"] == node.address
    proxy = yaml.safe_load(config.kube_proxy_config(planned, node))
    assert proxy["mode"] == "iptables" and proxy["conntrack"]["maxPerCore"] == 0
    assert proxy["clusterCIDR"] == state.CLUSTER_CIDR
    cni = json.loads(config.cni_conflist(node))
    ipam = cni["plugins"][0]["ipam"]
    assert ipam["ranges"] == [[{"subnet": node.pod_cidr}]]
    assert ipam["dataDir"].startswith(node.data_dir)


def test_certificates_verify_and_name_each_identity(tmp_path: Path) -> None:
    authority = pki.Authority(tmp_path)
    authority.create()
    for identity in pki.cluster_identities(
        ["10.220.0.2"], "10.222.0.1", [("chk8s-n1", "10.220.0.11")]
    ):
        authority.issue(identity)

    def openssl(*args: str) -> str:
        return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout

    ca = str(tmp_path / "ca.crt")
    for stem in ("admin", "apiserver", "kubelet-chk8s-n1", "kube-proxy"):
        assert (
            openssl("verify", "-CAfile", ca, str(tmp_path / f"{stem}.crt")).strip().endswith("OK")
        )
    sans = openssl(
        "x509", "-in", str(tmp_path / "apiserver.crt"), "-noout", "-ext", "subjectAltName"
    )
    assert "IP Address:10.220.0.2" in sans and "IP Address:10.222.0.1" in sans
    assert "DNS:kubernetes.default.svc" in sans
    subject = openssl("x509", "-in", str(tmp_path / "kubelet-chk8s-n1.crt"), "-noout", "-subject")
    assert "O = system:nodes" in subject and "CN = system:node:chk8s-n1" in subject
    admin = openssl("x509", "-in", str(tmp_path / "admin.crt"), "-noout", "-subject")
    assert "O = system:masters" in admin


# --- fast: node faults' choices -----------------------------------------------------------------


def _instance(name: str, node: str | None) -> Instance:
    return Instance(name, "web", name, name, 1, "http://x", {}, node=node)


def test_node_faults_take_the_nodes_of_the_selected_pods(tmp_path: Path) -> None:
    planned = replace(_plan(tmp_path, 3), status="up")
    nodes = KubeNodes(planned)
    on = [_instance("a", "chk8s-n1"), _instance("b", "chk8s-n2"), _instance("c", "chk8s-n2")]
    rng = random.Random(1)
    assert nodes.choose(on[1:2], on, rng, None) == (["chk8s-n2"], "selected instances")
    assert nodes.choose(on[:1], on, rng, None)[0] == ["chk8s-n1"]  # no manager to spare here
    assert nodes.choose(on, on, rng, "10.220.0.13") == (["chk8s-n3"], "named")
    assert nodes.instances_on(["chk8s-n2"], on) == ("b", "c")
    with pytest.raises(FaultError, match="no node"):
        nodes.choose([_instance("d", None)], on, rng, None)
    with pytest.raises(FaultError, match="chk8s-n9"):
        nodes.choose(on, on, rng, "chk8s-n9")


def test_cluster_partition_cuts_the_control_plane_and_other_nodes_only(tmp_path: Path) -> None:
    nodes = KubeNodes(replace(_plan(tmp_path, 3), status="up"))
    rules = nodes.partition_rules("chk8s-n2", "tag")
    peers = {r[2] for r in rules}
    assert peers == {
        state.CONTROL_PLANE_ADDRESS,
        "10.220.0.11",
        "10.220.0.13",
        "10.221.1.0/24",
        "10.221.3.0/24",
    }
    assert state.BRIDGE_ADDRESS not in peers  # the load generator still reaches the node
    assert {(r[0], r[1]) for r in rules} == {
        ("INPUT", "-s"),
        ("OUTPUT", "-d"),
        ("FORWARD", "-s"),
        ("FORWARD", "-d"),
    }
    assert all(r[-2:] == ["-j", "DROP"] and "tag" in r for r in rules)


def test_a_record_of_another_lab_reverts_nothing(tmp_path: Path) -> None:
    from harness.labs.kubernetes.lab import save_state

    planned = replace(_plan(tmp_path, 2), status="up")
    save_state(planned)
    data = KubeNodes(planned).record_data(["chk8s-n2"])
    found = lab_nodes.of_record(data)
    assert isinstance(found, KubeNodes) and found.state == planned
    assert lab_nodes.of_record({**data, "lab_created_ns": 1}) is None
    (tmp_path / "lab" / "state.json").unlink()
    assert lab_nodes.of_record(data) is None
    with pytest.raises(FaultError, match="lab"):
        lab_nodes.for_target("docker")


# --- the real lab -------------------------------------------------------------------------------


def _require_room_for_a_lab() -> None:
    if os.geteuid() != 0:
        pytest.skip("the Kubernetes lab needs root")
    if Path(f"/sys/class/net/{state.BRIDGE}").exists():
        pytest.skip("a Kubernetes lab is already up on this machine")


def _tunables() -> dict[str, str]:
    return {name: Path("/proc/sys", name).read_text().strip() for name in TUNABLES}


def _kubectl(info: KubeLabInfo, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [info.kubectl, "--kubeconfig", info.kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _get(url: str, timeout_s: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            return int(answer.status)
    except OSError:
        return 0


def _wait(what: str, condition: Callable[[], object], timeout_s: float, step_s: float = 0.2) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return time.time_ns()
        time.sleep(step_s)
    raise AssertionError(f"{what}: not within {timeout_s} s")


WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - {{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway,
         labelSelector: {{matchLabels: {{app: web}}}}}}
      containers:
      - name: web
        image: {image}
        imagePullPolicy: Never
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /health, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080, nodePort: 30080}}]
"""


def _pods(info: KubeLabInfo) -> list[dict[str, Any]]:
    raw = json.loads(_kubectl(info, "get", "pods", "-l", "app=web", "-o", "json"))
    return [
        p
        for p in raw["items"]
        if p["status"].get("phase") == "Running" and "deletionTimestamp" not in p["metadata"]
    ]


def _ready_pods(info: KubeLabInfo) -> list[dict[str, Any]]:
    return [
        p
        for p in _pods(info)
        if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])
    ]


def _deploy_web(info: KubeLabInfo, replicas: int) -> None:
    _kubectl(info, "apply", "-f", "-", stdin=WEB.format(replicas=replicas, image=DEMO_IMAGE))
    _wait(f"{replicas} web pods ready", lambda: len(_ready_pods(info)) == replicas, 120)


def _node_ready(info: KubeLabInfo, name: str) -> str:
    raw = json.loads(_kubectl(info, "get", "node", name, "-o", "json"))
    return next(c["status"] for c in raw["status"]["conditions"] if c["type"] == "Ready")


def _runtime_root() -> Path:
    """A short directory for the lab's sockets (a unix socket path has at most 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix="chk8s-test-", dir="/run"))


@pytest.mark.docker
def test_a_one_node_lab_serves_pods_and_leaves_nothing(tmp_path: Path, demo_image: str) -> None:
    _require_room_for_a_lab()
    directory, runtime = tmp_path / "kube-lab", _runtime_root()
    the_lab = KubeLab(directory, runtime)
    before = _tunables()
    started = time.monotonic()
    try:
        info = the_lab.up(nodes=1, images_to_load=[DEMO_IMAGE], progress=lambda _line: None)
        up_s = time.monotonic() - started
        (node,) = json.loads(_kubectl(info, "get", "nodes", "-o", "json"))["items"]
        status = node["status"]
        assert node["metadata"]["name"] == "chk8s-n1"
        assert status["nodeInfo"]["kubeletVersion"] == build.KUBERNETES_VERSION
        assert status["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://1.")
        assert _node_ready(info, "chk8s-n1") == "True"
        _deploy_web(info, 1)
        (pod,) = _pods(info)
        service = json.loads(_kubectl(info, "get", "service", "web", "-o", "json"))
        urls = {
            "pod IP": f"http://{pod['status']['podIP']}:8080/health",
            "NodePort": f"http://{info.nodes[0].address}:30080/health",
            "ClusterIP": f"http://{service['spec']['clusterIP']}/health",
        }
        ready_ns = time.time_ns()
        # kube-proxy programs a new Service within its sync period: wait for it, then measure
        answers = {
            name: (_wait(f"{name} answers", lambda u=url: _get(u) == 200, 15) - ready_ns) / NS
            for name, url in urls.items()
        }
        assert _tunables() == before  # the kubelet saw its values in its own mount namespace
        waits = ", ".join(f"{name} {s:.1f} s" for name, s in answers.items())
        print(f"\none-node lab up in {up_s:.1f} s; answering after the pod was ready: {waits}")
    finally:
        removed = the_lab.down()
    assert removed and the_lab.down() == []  # safe twice
    assert _tunables() == before
    assert leftovers(directory, runtime) == []


@pytest.mark.docker
def test_a_lab_that_cannot_start_is_removed(tmp_path: Path) -> None:
    _require_room_for_a_lab()
    directory, runtime = tmp_path / "kube-lab", _runtime_root()
    the_lab = KubeLab(directory, runtime)
    broken = {"kube-apiserver": ("--no-such-flag=1",)}
    with pytest.raises(TargetError, match="no-such-flag"):
        the_lab.up(nodes=1, control_plane_args=broken, progress=lambda _line: None)
    assert the_lab.state() is None
    assert leftovers(directory, runtime) == []


@pytest.mark.docker
def test_down_after_a_crash_during_up_leaves_nothing(tmp_path: Path, demo_image: str) -> None:
    """`harness lab up` SIGKILLed halfway (control plane started, nodes coming up), then
    `harness lab down` twice: the state file alone is enough to remove everything."""
    _require_room_for_a_lab()
    directory, runtime = tmp_path / "kube-lab", _runtime_root()
    env = {
        **os.environ,
        "CHAOS_HARNESS_KUBE_LAB_DIR": str(directory),
        "CHAOS_HARNESS_KUBE_RUN_ROOT": str(runtime),
    }
    harness = [sys.executable, "-m", "harness", "lab"]
    up = subprocess.Popen(
        [*harness, "up", "--kind", "kubernetes", "--nodes", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert up.stdout is not None
        for line in up.stdout:  # until the control plane is starting: processes, mounts, links
            if line.startswith("starting etcd"):
                break
        _wait("a node's containerd", lambda: list(runtime.glob("n*/containerd.sock")), 60)
    finally:
        up.kill()
        up.wait()
    assert json.loads((directory / "state.json").read_text())["status"] == "creating"
    assert leftovers(directory, runtime) != []  # the crash did leave things behind
    for _ in range(2):
        done = subprocess.run(
            [*harness, "down", "--kind", "kubernetes"], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "no lab"
    assert leftovers(directory, runtime) == []


# --- slow: three nodes and the node faults -----------------------------------------------------

GRACE_S = 20  # node-monitor-grace-period for the fault tests (Kubernetes' default: 50 s)


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeLabInfo]:
    _require_room_for_a_lab()
    from harness.images import build_demo_image
    from harness.targets.docker.target import connect

    build_demo_image(connect(None))
    root, runtime = tmp_path_factory.mktemp("kube3"), _runtime_root()
    the_lab = KubeLab(root / "kube-lab", runtime)
    grace = ("kube-controller-manager", (f"--node-monitor-grace-period={GRACE_S}s",))
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CHAOS_HARNESS_KUBE_LAB_DIR", str(root / "kube-lab"))  # the faults' lab
        try:
            info = the_lab.up(3, dict([grace]), [DEMO_IMAGE], progress=lambda _line: None)
            print(f"\nthree-node lab up in {time.monotonic() - started:.1f} s")
            yield info
        finally:
            the_lab.down()
            assert leftovers(root / "kube-lab", runtime) == []


class WebPods:
    """The web pods as the instances a node fault selects from (the target's view)."""

    kind = "kubernetes"

    def __init__(self, info: KubeLabInfo) -> None:
        self.info = info

    def instances(self) -> list[Instance]:
        return [
            Instance(
                name=p["metadata"]["name"],
                service="web",
                container_id=p["metadata"]["uid"],
                container_name=p["metadata"]["name"],
                pid=0,
                url=f"http://{p['status']['podIP']}:8080",
                node=p["spec"]["nodeName"],
            )
            for p in _ready_pods(self.info)
        ]


@pytest.mark.slow
@pytest.mark.docker
def test_three_nodes_are_ready_and_pods_talk_across_them(three_nodes: KubeLabInfo) -> None:
    info = three_nodes
    listed = _kubectl(info, "get", "nodes", "--no-headers").splitlines()
    assert sorted((line.split()[0], line.split()[1]) for line in listed) == [
        (f"chk8s-n{i}", "Ready") for i in (1, 2, 3)
    ]
    _deploy_web(info, 3)
    pods = _ready_pods(info)
    assert {p["spec"]["nodeName"] for p in pods} == {"chk8s-n1", "chk8s-n2", "chk8s-n3"}
    source, *others = pods
    for other in others:  # pod to pod across nodes, from inside the first pod
        request = (
            f"printf 'GET /health HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {other['status']['podIP']} 8080"
        )
        out = _kubectl(info, "exec", source["metadata"]["name"], "--", "sh", "-c", request)
        assert out.startswith("HTTP/1.1 200"), (
            source["spec"]["nodeName"],
            other["spec"]["nodeName"],
        )
    for node in info.nodes:
        assert _get(f"http://{node.address}:30080/health") == 200


def _fault_cases() -> dict[str, tuple[AnyFault, bool, bool | None]]:
    """Each fault: (the fault, the node goes NotReady, the host still reaches its pods; None:
    not asked, an evicted pod serves until its grace period ends)."""
    return {
        "power": (NodeDown(NodeDownParams(mode="power")), True, False),
        "daemon": (NodeDown(NodeDownParams(mode="daemon")), True, True),
        "link": (NodePartition(NodePartitionParams(mode="link")), True, False),
        "cluster": (NodePartition(NodePartitionParams(mode="cluster")), True, True),
        "drain": (NodeDrain(NodeParams()), False, None),
    }


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.parametrize("case", list(_fault_cases()))
def test_a_node_fault_on_kubernetes(case: str, three_nodes: KubeLabInfo, tmp_path: Path) -> None:
    info = three_nodes
    _deploy_web(info, 3)
    target = WebPods(info)
    fault, goes_not_ready, host_reaches = _fault_cases()[case]
    victim = next(i for i in target.instances() if i.node == "chk8s-n2")
    ctx = FaultContext(target, "r", tmp_path, random.Random(3))  # type: ignore[arg-type]
    record = fault.plan(ctx, "f1", [victim])
    assert record.data["nodes"] == ["chk8s-n2"] and victim.name in record.targets
    assert record.data["lab_kind"] == "kubernetes"
    t0 = time.time_ns()
    fault.apply(ctx, record)
    try:
        assert host_reaches is None or (_get(victim.url + "/health") == 200) == host_reaches
        if goes_not_ready:
            t_lost = _wait(
                "NotReady", lambda: _node_ready(info, "chk8s-n2") != "True", GRACE_S + 40
            )
            lost_s = (t_lost - t0) / NS
            print(f"\n{case}: chk8s-n2 not Ready after {lost_s:.1f} s (grace {GRACE_S} s)")
            # the lease is renewed every 10 s: lost between grace - 10 s and grace (+ slack)
            assert GRACE_S - 11 < lost_s < GRACE_S + 30
            assert (_get(victim.url + "/health") == 200) == host_reaches
        else:

            def moved() -> bool:
                ready = target.instances()
                return len(ready) == 3 and "chk8s-n2" not in {i.node for i in ready}

            t_moved = _wait("3 pods ready, none on the drained node", moved, 90)
            node = json.loads(_kubectl(info, "get", "node", "chk8s-n2", "-o", "json"))
            assert node["spec"].get("unschedulable") is True
            print(f"\ndrain: pods running elsewhere after {(t_moved - t0) / NS:.1f} s")
    finally:
        type(fault).revert(ctx, record)
    t_back = time.time_ns()
    type(fault).revert(ctx, record)  # idempotent
    t_ready = _wait("Ready again", lambda: _node_ready(info, "chk8s-n2") == "True", 90)
    print(f"{case}: Ready again {(t_ready - t_back) / NS:.1f} s after the revert")
    node = json.loads(_kubectl(info, "get", "node", "chk8s-n2", "-o", "json"))
    assert not node["spec"].get("unschedulable")
    _wait("3 web pods ready", lambda: len(_ready_pods(info)) == 3, 120)
    assert all(_get(i.url + "/health") == 200 for i in target.instances())
