"""The Kubernetes target on the real one-node lab (labs/kubernetes): deploy, the Service as the
load balancer, a crash by signal restarted by the kubelet, a pod deleted and replaced by its
ReplicaSet, teardown and orphan cleanup, and `harness run` of the quickstart on Kubernetes.

Evidence the harness did not produce comes from `kubectl` of the lab's build (pods, restart
counts, namespaces) and from the pods themselves (the demo's /cgi-bin/work answers with the
pod's hostname, which is its name). The lab is used as it is when it is up; otherwise one node
is brought up for this module and taken down after it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from faults.base import FaultContext
from faults.pod_delete import PodDelete, PodDeleteParams
from harness.errors import TargetError
from harness.hostsys import process_start_ticks
from harness.labs.kubernetes import lab as kube_lab
from harness.scenario import WorkloadSpec, parse_scenario
from harness.targets import target_spec
from harness.targets.base import EngineEvent
from harness.targets.checks import target_problems
from harness.targets.kubernetes.host import process_start_ns
from harness.targets.kubernetes.objects import namespace_for
from harness.targets.kubernetes.routes import routes_chain
from harness.targets.kubernetes.target import KubernetesTarget
from tests.helpers import EventCollector, wait_until
from tests.kube_labs import module_lab

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.docker  # the lab's images come from the host's Docker engine


@pytest.fixture(scope="module")
def lab(demo_image: str) -> Iterator[kube_lab.KubeLabInfo]:
    """The Kubernetes lab: the one that is up, or one node brought up for this module."""
    del demo_image
    yield from module_lab(nodes=1)


def kubectl(lab: kube_lab.KubeLabInfo, *args: str, check: bool = True) -> str:
    done = subprocess.run(
        [lab.kubectl, "--kubeconfig", lab.kubeconfig, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr}")
    return done.stdout


def pods_json(lab: kube_lab.KubeLabInfo, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        kubectl(lab, "get", "pods", "-n", namespace, "-o", "json")
    )["items"]
    return items


Deploy = Callable[..., KubernetesTarget]


@pytest.fixture
def deploy(lab: kube_lab.KubeLabInfo) -> Iterator[Deploy]:
    """Deploy the demo workload on the lab; the namespace must be gone after the test."""
    targets: list[KubernetesTarget] = []

    def _deploy(**workload: object) -> KubernetesTarget:
        target = KubernetesTarget(f"test-{secrets.token_hex(3)}", target_spec("kubernetes"))
        targets.append(target)
        target.deploy(WorkloadSpec.model_validate({"replicas": 2, **workload}))
        target.wait_healthy(120)
        return target

    yield _deploy
    for target in targets:
        target.teardown()
        gone = kubectl(lab, "get", "namespace", target.namespace, check=False)
        assert gone == "", f"namespace {target.namespace} left behind"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def test_deploy_gives_pods_as_instances_behind_a_balancing_service(
    deploy: Deploy, lab: kube_lab.KubeLabInfo
) -> None:
    target = deploy()
    instances = target.instances()
    assert [i.name for i in instances] == ["web-1", "web-2"]
    seen = {p["metadata"]["name"]: p for p in pods_json(lab, target.namespace)}
    for instance in instances:
        pod = seen[instance.container_name]
        assert instance.node == pod["spec"]["nodeName"]
        assert instance.address == pod["status"]["podIP"]
        assert pod["status"]["containerStatuses"][0]["containerID"].endswith(instance.container_id)
        # the host PID is the container's: its cgroup names the container id
        assert instance.pid > 0
        assert instance.container_id in Path(f"/proc/{instance.pid}/cgroup").read_text()
        assert _get(f"{instance.url}/health").strip() == "ok"  # the host reaches the pod IP
    # through the Service: kube-proxy spreads new connections over both pods
    answered = {
        _get(f"{target.service_url()}/cgi-bin/work").split("host=")[1].strip() for _ in range(40)
    }
    assert answered == set(seen)
    info = target.engine_info()
    assert info["engine"] == "kubernetes" and info["engine_version"].startswith("v1.")
    assert info["host_access"] == "true"


def test_a_host_kill_is_a_crash_the_kubelet_restarts(
    deploy: Deploy, lab: kube_lab.KubeLabInfo
) -> None:
    target = deploy(replicas=1)
    events = EventCollector(target)
    victim = target.instances()[0]
    killed_ns = time.time_ns()
    os.kill(victim.pid, signal.SIGKILL)

    def restarted() -> bool:
        pod = pods_json(lab, target.namespace)[0]
        return bool(pod["status"]["containerStatuses"][0]["restartCount"] == 1)

    assert wait_until(restarted, 60), "kubectl never showed restartCount 1"
    assert wait_until(lambda: target.instances()[0].pid not in (0, victim.pid), 30)
    after = target.instances()[0]
    assert after.name == victim.name and after.container_name == victim.container_name
    assert after.container_id != victim.container_id
    assert process_start_ticks(after.pid) is not None
    assert after.container_id in Path(f"/proc/{after.pid}/cgroup").read_text()
    assert wait_until(lambda: _healthy_after(events.events, victim.name, killed_ns), 60)
    seen = events.close()
    mine = [e for e in seen if e.instance == victim.name]
    die = next(e for e in mine if e.action == "die")
    start = next(e for e in mine if e.action == "start" and e.time_ns > die.time_ns)
    healthy = next(
        e
        for e in mine
        if e.action == "health_status"
        and e.attributes["health"] == "healthy"
        and e.time_ns > start.time_ns
    )
    assert die.container_id == victim.container_id and die.attributes["exitCode"] == "137"
    assert start.container_id == after.container_id
    assert killed_ns <= die.time_ns < start.time_ns < healthy.time_ns
    for event in (die, start, healthy):
        assert event.attributes["time_source"] in ("api", "received", "host")
        assert int(event.attributes["received_ns"]) >= event.time_ns
    # this host runs the pod: the start is the new process's own start time (10 ms ticks)
    assert start.attributes["time_source"] == "host"
    started_ns = process_start_ns(after.pid)
    assert started_ns is not None
    assert abs(int(start.attributes["host_time_ns"]) - started_ns) < 2_000_000
    print(
        f"kill->die {(die.time_ns - killed_ns) / 1e9:.3f} s, die->start "
        f"{(start.time_ns - die.time_ns) / 1e9:.3f} s, start->healthy "
        f"{(healthy.time_ns - start.time_ns) / 1e9:.3f} s"
    )


def _healthy_after(events: list[EngineEvent], instance: str, after_ns: int) -> bool:
    return any(
        e.instance == instance
        and e.action == "health_status"
        and e.attributes["health"] == "healthy"
        and e.time_ns > after_ns
        for e in list(events)
    )


def test_a_deleted_pod_is_replaced_by_its_replicaset(
    deploy: Deploy, lab: kube_lab.KubeLabInfo, tmp_path: Path
) -> None:
    target = deploy()
    events = EventCollector(target)
    before = {i.name: i for i in target.instances()}
    fault = PodDelete(PodDeleteParams(grace_period=0))
    ctx = FaultContext(target, target.run_id, tmp_path, __import__("random").Random(1))
    record = fault.plan(ctx, "f1", [before["web-2"]])
    fault.apply(ctx, record)
    old = before["web-2"].container_name

    def replaced() -> bool:
        pods = {p["metadata"]["name"]: p for p in pods_json(lab, target.namespace)}
        fresh = [p for n, p in pods.items() if n not in {i.container_name for i in before.values()}]
        ready = [
            p
            for p in fresh
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions", [])
            )
        ]
        return old not in pods and len(ready) == 1

    assert wait_until(replaced, 90), "no ready replacement pod in kubectl's view"
    assert wait_until(lambda: len(target.instances()) == 2, 30)
    now = {i.name: i for i in target.instances()}
    assert now["web-1"].container_name == before["web-1"].container_name
    assert now["web-2"].container_name != old  # a new pod in the freed slot
    # the slot keeps its address, which this host now sends on to the new pod (the pod
    # itself says who answered: its hostname is its name)
    assert now["web-2"].url == before["web-2"].url
    assert now["web-2"].address != before["web-2"].address
    chain = routes_chain(target.run_id)
    answered = _get(f"{now['web-2'].url}/cgi-bin/work").split("host=")[1].strip()
    assert answered == now["web-2"].container_name
    assert (
        chain
        in subprocess.run(
            ["iptables", "-t", "nat", "-S", chain], capture_output=True, text=True, check=False
        ).stdout
    )
    assert wait_until(lambda: "service_converged" in [e.action for e in events.events[1:]], 30)
    seen = events.close()
    actions = [(e.action, e.attributes.get("pod")) for e in seen if e.instance == "web-2"]
    assert ("pod_terminating", old) in actions and ("destroy", old) in actions
    new = now["web-2"].container_name
    assert ("create", new) in actions and ("start", new) in actions
    assert [e.action for e in seen if e.action.startswith("service_")][-2:] == [
        "service_degraded",
        "service_converged",
    ]
    target.teardown()  # the route goes with the run
    rules = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True)
    assert chain not in rules.stdout


def test_teardown_deletes_the_namespace_and_is_safe_twice(lab: kube_lab.KubeLabInfo) -> None:
    target = KubernetesTarget(f"test-{secrets.token_hex(3)}", target_spec("kubernetes"))
    target.deploy(WorkloadSpec.model_validate({"replicas": 1}))
    assert kubectl(lab, "get", "namespace", target.namespace, "-o", "name").strip()
    labels = json.loads(kubectl(lab, "get", "namespace", target.namespace, "-o", "json"))
    assert labels["metadata"]["labels"]["chaos-harness.run-id"] == target.run_id
    target.teardown()  # without waiting for health: a half-deployed run is removed too
    assert kubectl(lab, "get", "namespace", target.namespace, check=False) == ""
    target.teardown()


def test_cleanup_removes_the_namespaces_of_dead_runs_only(lab: kube_lab.KubeLabInfo) -> None:
    dead = KubernetesTarget(f"test-{secrets.token_hex(3)}", target_spec("kubernetes"))
    live = KubernetesTarget(f"test-{secrets.token_hex(3)}", target_spec("kubernetes"))
    # a harness that is gone: a PID that is no process (the kernel's limit is below 2**22)
    dead._owner = "4194305:1"
    try:
        for target in (dead, live):
            target._create_namespace()
        removed = KubernetesTarget.remove_orphans(target_spec("kubernetes"), keep=set())
        assert any(dead.namespace in line for line in removed)
        assert kubectl(lab, "get", "namespace", dead.namespace, check=False) == ""
        assert kubectl(lab, "get", "namespace", live.namespace, "-o", "name").strip()
    finally:
        for target in (dead, live):
            target.teardown()


def test_an_unknown_cluster_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    target = KubernetesTarget("test-x", target_spec("kubernetes", kubeconfig=str(config)))
    with pytest.raises(TargetError, match="cannot reach the Kubernetes API"):
        target.engine_info()
    target.teardown()


def test_per_instance_routing_is_refused_on_a_cluster_elsewhere(tmp_path: Path) -> None:
    """Its pods' addresses are not reached from this machine: validate says so up front."""
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "clusters: [{name: c, cluster: {server: 'https://192.0.2.10:6443'}}]\n"  # TEST-NET-1
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    text = f"name: s\ntarget: {{kind: kubernetes, kubeconfig: {config}}}\nload: {{routing: "
    problems = target_problems(parse_scenario(text + "per_instance}"))
    assert [p for p in problems if "load.routing" in p] == [
        "load.routing per_instance sends the load to each pod's address, and the cluster's API "
        "server https://192.0.2.10:6443 is not on this machine (its pods are not reached from "
        "here); use routing: service (the Service's NodePort)"
    ]
    assert target_problems(parse_scenario(text + "service}")) == []


def test_quickstart_runs_on_kubernetes_and_recovers(
    lab: kube_lab.KubeLabInfo, tmp_path: Path
) -> None:
    """`harness run scenarios/quickstart.yaml --target kubernetes`: exit 0, the kill recovered,
    and the kubelet's restart in the orchestrator view."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "harness", "run", str(REPO / "scenarios/quickstart.yaml")),
            *("--target", "kubernetes", "--out", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    summary = json.loads((run_dir / "summary.json").read_text())
    fault = summary["faults"][0]
    assert fault["recovered"] and fault["ttr_s"] is not None
    view = fault["orchestrator"][0]
    assert view["restarted"] and view["die_to_start_s"] is not None
    assert view["start_to_healthy_s"] is not None
    # the load went through the Service, as users' traffic does: one endpoint, the NodePort
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["load"]["routing"] == "service" and manifest["load"]["endpoints"] == ["service"]
    assert fault["view"] == "service"
    node_ips = {n.address for n in lab.nodes}
    host = urllib.parse.urlsplit(manifest["load"]["host"])
    assert host.hostname in node_ips and host.port is not None and 30000 <= host.port <= 32767
    assert manifest["load"]["path"].startswith(f"NodePort {host.netloc} (node ")
    assert "through kube-proxy" in manifest["load"]["path"]
    assert kubectl(lab, "get", "namespace", namespace_for(summary["run_id"]), check=False) == ""
    print(json.dumps({k: fault[k] for k in ("ttd_s", "ttr_s", "availability")}), view)
