"""The fault matrix's Kubernetes column: every fault kind on pods of the local Kubernetes lab.

One Deployment (two pods, 0.5 CPU and 64 MiB each) shared by the cells, as in
tests/test_fault_matrix.py, whose helpers these cells use. Each cell injects one fault into one
pod, measures its effect against what the kernel, kubectl or an HTTP client sees (not the
harness's own record), reverts it, and checks nothing of it is left. The kinds Kubernetes has
no meaning for are refused by `harness validate`, with the reason, before anything runs.
`pod_delete` and the node faults have their own tests (test_kubernetes.py,
test_kubernetes_nodes.py).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faults.container_kill import ContainerKill, ContainerKillParams
from faults.disk_fill import DiskFill, DiskFillParams
from faults.network_partition import NetworkPartition, NetworkPartitionParams
from harness.agent.on_kubernetes import AGENTS
from harness.agent.relay import AgentRelay
from harness.hostsys import HOST_ACCESS_ENV, host_access_allowed
from harness.labs.kubernetes import lab as kube_lab
from harness.scenario import WorkloadSpec
from harness.targets import target_spec
from harness.targets.kubernetes.target import KubernetesTarget
from tests.helpers import (
    fetch,
    wait_until,
)
from tests.test_fault_matrix import (
    MIB,
    WORKLOAD,
    Deployed,
    _answers_again,
    _apply,
    _leftovers,
    _revert,
    check_bandwidth,
    check_cpu_stress,
    check_latency,
    check_memory_stress,
    check_packet_loss,
    filled_path,
    refused_by_validate,
)
from tests.test_kubernetes import kubectl, lab, pods_json

pytestmark = pytest.mark.docker  # the lab's images come from the host's Docker engine
__all__ = ["lab"]  # the module-scoped lab fixture, shared with test_kubernetes.py

REFUSED = ["container_stop", "container_pause", "container_restart", "manager_quorum_loss"]


@pytest.fixture(scope="module", params=["host", pytest.param("agent", marks=pytest.mark.slow)])
def deployed(
    request: pytest.FixtureRequest,
    lab: kube_lab.KubeLabInfo,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployed]:
    path = str(request.param)
    with pytest.MonkeyPatch.context() as env:
        if path == "agent":  # the lab as a cluster elsewhere: agents by `use: auto`'s own choice
            env.setenv(HOST_ACCESS_ENV, "none")
        yield from _deployed(path, lab, tmp_path_factory)


def _deployed(
    path: str, lab: kube_lab.KubeLabInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    spec = target_spec("kubernetes")
    target = KubernetesTarget(f"matrix-kubernetes-{secrets.token_hex(3)}", spec)
    started = time.monotonic()
    agents = None
    try:
        target.deploy(WorkloadSpec.model_validate(WORKLOAD))
        target.wait_healthy(120)
        print(f"\nkubernetes ({path}): deployed in {time.monotonic() - started:.1f} s")
        # through the agents (a DaemonSet of the run), as on a cluster the harness does not
        # run; the tests still read the effects from this host, with their own PID lookup
        cell = Deployed("kubernetes", target, tmp_path_factory.mktemp("matrix-kubernetes"))
        if path == "agent":
            assert not target.host_access
            agents = AGENTS.open(target, spec, target.run_id)
            assert agents is not None
            agents.wait_ready(120)
            cell.relay = AgentRelay(target.run_id, 7, agents.channels())
        yield cell
    finally:
        if agents is not None:
            agents.remove()
        target.teardown()
    assert kubectl(lab, "get", "namespace", target.namespace, check=False) == ""


@pytest.fixture
def cell(deployed: Deployed) -> Iterator[Deployed]:
    """The deployment, healthy before the cell; afterwards no fault of the cell is left."""
    deployed.target.wait_healthy(120)
    yield deployed
    deployed.target.wait_healthy(120)
    for instance in deployed.instances():
        assert _leftovers(deployed, instance) == [], instance.name
    if deployed.relay is not None:
        assert host_access_allowed() is False  # the harness's side read nothing of this host


def _namespace(cell: Deployed) -> str:
    assert isinstance(cell.target, KubernetesTarget)
    return cell.target.namespace


def _restart_count(lab: kube_lab.KubeLabInfo, cell: Deployed, pod: str) -> int:
    """kubectl's word for how often the kubelet restarted the pod's container."""
    found = {p["metadata"]["name"]: p for p in pods_json(lab, _namespace(cell))}
    return int(found[pod]["status"]["containerStatuses"][0]["restartCount"])


def _exec(lab: kube_lab.KubeLabInfo, cell: Deployed, pod: str, *command: str) -> int:
    """Run a command in a pod through the API server (kubectl exec); its exit code."""
    where = ("--kubeconfig", lab.kubeconfig, "exec", "-n", _namespace(cell), pod)
    done = subprocess.run(
        [lab.kubectl, *where, "--", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode


# --- the pod's process -------------------------------------------------------------------------


def test_container_kill_is_a_crash_the_kubelet_restarts(
    cell: Deployed, lab: kube_lab.KubeLabInfo
) -> None:
    before = cell.victim()
    restarts = _restart_count(lab, cell, before.container_name)
    killed = time.monotonic()
    _apply(ContainerKill(ContainerKillParams(mode="signal")), cell, [before])
    assert wait_until(lambda: not Path(f"/proc/{before.pid}").exists(), 5), "still alive"
    assert wait_until(lambda: _restart_count(lab, cell, before.container_name) > restarts, 60)
    assert _answers_again(before.name, cell, 60)
    after = cell.victim()
    # the same pod (its slot), a new container in it
    assert after.container_name == before.container_name
    assert after.container_id != before.container_id
    print(f"\nkubernetes: kill -> answering again {time.monotonic() - killed:.2f} s")


# --- resources --------------------------------------------------------------------------------


def test_cpu_stress_the_pods_cgroup_uses_its_cpu_limit(cell: Deployed) -> None:
    check_cpu_stress(cell)


def test_memory_stress_the_pods_usage_rises(cell: Deployed) -> None:
    check_memory_stress(cell)


def test_disk_fill_the_bytes_land_in_the_pods_filesystem(
    cell: Deployed, lab: kube_lab.KubeLabInfo
) -> None:
    victim = cell.victim()
    fault = DiskFill(DiskFillParams.model_validate({"size": "16Mi"}))
    record = _apply(fault, cell, [victim])
    inside = filled_path(victim.pid, record)
    seen_by_kernel = Path(f"/proc/{victim.pid}/root") / inside.lstrip("/")
    on_host = _writable_layer(victim.pid) / inside.lstrip("/")
    try:
        assert seen_by_kernel.stat().st_blocks * 512 >= 16 * MIB  # allocated, not sparse
        assert _exec(lab, cell, victim.container_name, "test", "-s", inside) == 0
        # the bytes are in the pod's writable layer, in the node's containerd storage here
        data_root = cell.target.data_root()
        assert data_root is not None and on_host.is_relative_to(data_root)
        assert on_host.stat().st_blocks * 512 >= 16 * MIB
        assert on_host.stat().st_dev == data_root.stat().st_dev
    finally:
        _revert(fault, cell, record)
    assert not seen_by_kernel.exists() and not on_host.exists()
    assert _exec(lab, cell, victim.container_name, "test", "-e", inside) != 0


def _writable_layer(pid: int) -> Path:
    """Where the container's root filesystem takes writes on the host, from the kernel's own
    mount table: an overlay's upperdir (containerd's overlayfs snapshotter)."""
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        if before.split()[4] != "/":
            continue
        fstype, _source, options = after.split(maxsplit=2)
        assert fstype == "overlay", f"the pod's root is {fstype}, not an overlay"
        upper = next(o for o in options.split(",") if o.startswith("upperdir="))
        return Path(upper.removeprefix("upperdir="))
    raise AssertionError(f"no root mount in /proc/{pid}/mountinfo")


# --- network ----------------------------------------------------------------------------------


def test_network_partition_requests_fail_and_pods_are_cut_apart(
    cell: Deployed, lab: kube_lab.KubeLabInfo
) -> None:
    one, two = cell.victim(), cell.other()
    fault = NetworkPartition(NetworkPartitionParams.model_validate({"from": "load"}))
    record = _apply(fault, cell, [one])
    try:
        assert [fetch(f"{one.url}/health") for _ in range(3)] == [False] * 3
        assert fetch(f"{two.url}/health")
    finally:
        _revert(fault, cell, record)
    assert fetch(f"{one.url}/health")

    wget = ("timeout", "2", "wget", "-q", "-O", "/dev/null", f"http://{two.address}:{two.port}/")
    assert _exec(lab, cell, one.container_name, *wget) == 0  # pod to pod
    groups = NetworkPartition(NetworkPartitionParams(groups=[[one.name], [two.name]]))
    record = _apply(groups, cell, [])
    try:
        assert _exec(lab, cell, one.container_name, *wget) != 0
        assert fetch(f"{one.url}/health") and fetch(f"{two.url}/health")
    finally:
        _revert(groups, cell, record)
    assert _exec(lab, cell, one.container_name, *wget) == 0


def test_packet_loss_fails_its_share_of_fresh_requests(cell: Deployed) -> None:
    check_packet_loss(cell)


def test_bandwidth_caps_the_download(cell: Deployed) -> None:
    check_bandwidth(cell)


def test_latency_raises_the_median_by_the_delay(cell: Deployed) -> None:
    check_latency(cell)


# --- the health check as a liveness probe ------------------------------------------------------


def test_liveness_the_kubelet_restarts_a_pod_that_fails_its_health_check(
    lab: kube_lab.KubeLabInfo,
) -> None:
    """`target.kubernetes.liveness: true`: with its health file removed (through kubectl
    exec), the pod fails the check and the kubelet restarts its container from the image."""
    spec = target_spec("kubernetes", kubernetes={"liveness": True})
    target = KubernetesTarget(f"test-{secrets.token_hex(3)}", spec)
    try:
        target.deploy(WorkloadSpec.model_validate({**WORKLOAD, "replicas": 1}))
        target.wait_healthy(120)
        deployed = Deployed("kubernetes", target, Path("/nonexistent"))
        pod = target.instances()[0].container_name
        probe = pods_json(lab, target.namespace)[0]["spec"]["containers"][0]["livenessProbe"]
        assert probe["httpGet"]["path"] == "/health"
        broken = time.monotonic()
        assert _exec(lab, deployed, pod, "rm", "/www/health") == 0
        assert wait_until(lambda: _restart_count(lab, deployed, pod) == 1, 60)
        print(f"\nkubernetes: health removed -> restarted {time.monotonic() - broken:.1f} s")
        assert _answers_again(target.instances()[0].name, deployed, 60)  # a fresh rootfs
    finally:
        target.teardown()


# --- refused up front --------------------------------------------------------------------------


def test_what_kubernetes_cannot_do_is_refused_by_validate(
    lab: kube_lab.KubeLabInfo, tmp_path: Path
) -> None:
    del lab  # up, as a run's default cluster: validate must still refuse before deploying
    stderr = refused_by_validate("kubernetes", REFUSED, tmp_path)
    assert "Kubernetes cannot pause a pod" in stderr
    print(f"\nkubernetes: validate refused {json.dumps(REFUSED)}")
