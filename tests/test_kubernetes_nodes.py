"""The Kubernetes target on a three-node lab (slow: a lab of three nodes, node-failure timing):
pods spread over the nodes as kubectl sees them, a drained node's pods evicted and replaced in
their slots on the other nodes, and a node whose kubelet died reported NotReady, as the
orchestrator's view says it (events), checked against kubectl's.
"""

from __future__ import annotations

import json
import random
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faults.base import FaultContext
from faults.node_base import NodeParams
from faults.node_down import NodeDown, NodeDownParams
from faults.node_drain import NodeDrain
from harness.labs.kubernetes import lab as kube_lab
from harness.scenario import WorkloadSpec
from harness.targets import target_spec
from harness.targets.base import EngineEvent
from harness.targets.kubernetes.target import KubernetesTarget
from tests.helpers import EventCollector, wait_until
from tests.kube_labs import module_lab

pytestmark = [pytest.mark.slow, pytest.mark.docker]
NODES = 3


@pytest.fixture(scope="module")
def lab3(demo_image: str) -> Iterator[kube_lab.KubeLabInfo]:
    """A three-node lab: the one that is up if it has three nodes, else one made here."""
    del demo_image
    yield from module_lab(nodes=NODES, exact=True)


def kubectl_pods(lab: kube_lab.KubeLabInfo, namespace: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [lab.kubectl, "--kubeconfig", lab.kubeconfig, "get", "pods", "-n", namespace, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    items: list[dict[str, object]] = json.loads(done.stdout)["items"]
    return items


@pytest.fixture
def target(lab3: kube_lab.KubeLabInfo) -> Iterator[KubernetesTarget]:
    made = KubernetesTarget(f"test-{secrets.token_hex(3)}", target_spec("kubernetes"))
    try:
        made.deploy(WorkloadSpec.model_validate({"replicas": 3}))
        made.wait_healthy(180)
        yield made
    finally:
        made.teardown()


def _ready_elsewhere(lab: kube_lab.KubeLabInfo, namespace: str, node: str) -> bool:
    pods = kubectl_pods(lab, namespace)
    ready = [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")  # type: ignore[union-attr]
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions", [])  # type: ignore[union-attr]
        )
    ]
    nodes = {p["spec"]["nodeName"] for p in ready}  # type: ignore[index]
    return len(ready) == 3 and node not in nodes


def test_a_drained_nodes_pods_are_evicted_and_replaced_in_their_slots(
    target: KubernetesTarget, lab3: kube_lab.KubeLabInfo, tmp_path: Path
) -> None:
    before = {i.name: i for i in target.instances()}
    seen_nodes = {p["spec"]["nodeName"] for p in kubectl_pods(lab3, target.namespace)}  # type: ignore[index]
    assert {i.node for i in before.values()} == seen_nodes
    events = EventCollector(target)
    victim = before["web-1"]
    fault = NodeDrain(NodeParams())
    ctx = FaultContext(target, target.run_id, tmp_path, random.Random(1))
    record = fault.plan(ctx, "f1", [victim])
    fault.apply(ctx, record)
    try:
        assert wait_until(lambda: _ready_elsewhere(lab3, target.namespace, str(victim.node)), 120)
        after = {i.name: i for i in target.instances()}
        assert set(after) == set(before)
        moved = [n for n, i in before.items() if i.node == victim.node]
        for name in moved:  # the slot now holds a new pod on another node
            assert after[name].container_name != before[name].container_name
            assert after[name].node != victim.node
    finally:
        fault.revert(ctx, record)
    seen = events.close(until=lambda got: _availability(got, "active"), timeout_s=60)
    cordon = [e for e in seen if e.action == "node_availability"]
    assert [(e.attributes["node"], e.attributes["new"]) for e in cordon] == [
        (victim.node, "cordoned"),
        (victim.node, "active"),
    ]
    evicted = [e for e in seen if e.action == "pod_terminating"]
    assert {e.attributes["pod"] for e in evicted} == {before[n].container_name for n in moved}
    assert all(e.attributes["reason"] == "EvictionByEvictionAPI" for e in evicted)
    starts = [e for e in seen if e.action == "start" and e.instance in moved]
    assert all(e.time_ns > cordon[0].time_ns for e in starts) and len(starts) == len(moved)


def test_a_node_whose_kubelet_died_is_reported_not_ready(
    target: KubernetesTarget, lab3: kube_lab.KubeLabInfo, tmp_path: Path
) -> None:
    victim = target.instances()[0]
    events = EventCollector(target)
    fault = NodeDown(NodeDownParams(mode="daemon"))
    ctx = FaultContext(target, target.run_id, tmp_path, random.Random(1))
    record = fault.plan(ctx, "f1", [victim])
    killed_ns = time.time_ns()
    fault.apply(ctx, record)
    grace_s = lab3.settings.node_monitor_grace_period_s
    try:
        assert wait_until(lambda: _node_state(events.events, "down"), grace_s + 60)
    finally:
        fault.revert(ctx, record)
    assert wait_until(lambda: _node_state(events.events, "ready"), 120)
    seen = events.close(until=lambda got: _node_state(got, "ready"))
    down = next(e for e in seen if e.action == "node_state" and e.attributes["new"] == "down")
    assert down.attributes["node"] == victim.node
    assert down.attributes["condition"] == "Unknown"  # the kubelet stopped posting status
    # the controller manager waits node-monitor-grace-period from the node's last heartbeat
    # (its lease, renewed every quarter of its duration: up to that long before the kill), and
    # looks every node-monitor-period
    settings = lab3.settings
    renew_s = settings.node_lease_duration_s / 4
    after_s = (down.time_ns - killed_ns) / 1e9
    assert grace_s - renew_s - 1 <= after_s <= grace_s + settings.node_monitor_period_s + 5
    taints = {
        e.attributes["key"]
        for e in seen
        if e.action == "node_taint" and e.attributes["change"] == "added"
    }
    assert "node.kubernetes.io/unreachable" in taints
    print(
        f"kubelet killed -> node {down.attributes['new']} {(down.time_ns - killed_ns) / 1e9:.1f} s"
    )


def _availability(events: list[EngineEvent], new: str) -> bool:
    return any(e.action == "node_availability" and e.attributes["new"] == new for e in events)


def _node_state(events: list[EngineEvent], new: str) -> bool:
    return any(e.action == "node_state" and e.attributes["new"] == new for e in list(events))
