"""Node faults on the Kubernetes lab: what "a lost node", "a cut link" and "a drain" do here.

- power_off: the node's link down (its address stops answering: connections hang, as with a
  dead host) and every process of the node SIGKILLed: containerd, kubelet, kube-proxy, the
  shims and every pod. The control plane stops hearing from the kubelet: after
  node-monitor-grace-period the node is NotReady/Unknown and its pods not ready (removed from
  endpoints); after the not-ready/unreachable toleration (300 s by default) they are evicted and
  replaced on the other nodes.
- power_on: a reboot. Whatever a dead node held in memory goes: its mount namespace (container
  root filesystems, pod network namespaces, tmpfs volumes) and its volatile directory (sockets,
  runc and containerd state: /run on a real machine); its disk stays (images, containerd's
  metadata, the kubelet's root). Then the link comes up and containerd, kubelet and kube-proxy
  start again; the kubelet re-creates the sandboxes of the pods still bound to the node.
- stop_agent / start_agent: only the kubelet SIGKILLed and started again: containers keep
  running and keep answering on their pod IPs, but the control plane loses the node just the
  same (and takes its pods out of the Services' endpoints).
- partition rules: DROP in the node's own namespace to and from the control plane, the other
  nodes and their pods (INPUT, OUTPUT, FORWARD), while the host (the load generator) still
  reaches it.
- drain: cordon, then the Eviction API for every pod of the node but DaemonSet and mirror pods
  (as `kubectl drain` does); evictions a PodDisruptionBudget refuses are retried for
  EVICTION_TIMEOUT_S. undrain: uncordon (nothing moves back by itself).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import FaultError, TargetError
from harness.labs import host
from harness.labs.kubernetes import lab, node
from harness.labs.kubernetes.state import CONTROL_PLANE_ADDRESS, KubeLabState, NodeState
from harness.targets.base import Instance
from harness.waiting import wait_until

EVICTION_TIMEOUT_S = 60.0
RESTART_TIMEOUT_S = 60.0


class KubeNodes:
    """The nodes of one Kubernetes lab (implements harness.labs.nodes.LabNodes)."""

    kind = "kubernetes"
    agent = "kubelet"
    drain_mechanism = "cordon + Eviction API"

    def __init__(self, state: KubeLabState) -> None:
        self.state = state

    @classmethod
    def current(cls) -> KubeNodes:
        state = lab.load_state()
        if state is None or state.status != "up":
            raise FaultError(
                "node faults on Kubernetes need the Kubernetes lab, and none is up (state in "
                f"{lab.lab_dir()}): `harness lab up --kind kubernetes` or target.lab"
            )
        return cls(state)

    @classmethod
    def of_lab(cls, directory: Path, created_ns: object) -> KubeNodes | None:
        try:
            state = lab.load_state(directory)
        except TargetError:
            return None
        if state is None or state.created_ns != created_ns:
            return None
        return cls(state)

    def _node(self, name: str) -> NodeState:
        try:
            return self.state.node(name)
        except TargetError as exc:
            raise FaultError(str(exc)) from exc

    # --- choosing -------------------------------------------------------------------------------

    def choose(
        self,
        selected: Sequence[Instance],
        everyone: Sequence[Instance],
        rng: random.Random,
        explicit: str | None,
    ) -> tuple[list[str], str]:
        """The nodes of the selected instances (every node may go: the control plane is apart).

        `explicit` (a node name or address) overrides the selection.
        """
        del everyone, rng
        if explicit is not None:
            return [self._node(explicit).name], "named"
        if any(i.node is None for i in selected):
            raise FaultError("the instances carry no node: node faults need the lab's pods")
        names = {i.node for i in selected if i.node}
        picked = [n.name for n in self.state.nodes if any(n.matches(x) for x in names)]
        if not picked:
            raise FaultError(f"no lab node runs the selected instances (on {sorted(names)})")
        return picked, "selected instances"

    def record_data(self, nodes: Sequence[str]) -> dict[str, Any]:
        return {
            "lab_kind": self.kind,
            "lab_dir": self.state.lab_dir,
            "lab_created_ns": self.state.created_ns,
            "nodes": list(nodes),
        }

    def instances_on(self, nodes: Sequence[str], instances: Sequence[Instance]) -> tuple[str, ...]:
        wanted = [self._node(n) for n in nodes]
        return tuple(
            sorted(i.name for i in instances if i.node and any(n.matches(i.node) for n in wanted))
        )

    # --- power and the agent ------------------------------------------------------------------

    def power_off(self, nodes: Sequence[str]) -> None:
        for name in nodes:
            target = self._node(name)
            host.set_link(target.veth_host, up=False)
            node.kill(target)

    def power_on(self, nodes: Sequence[str]) -> None:
        """A reboot of each node (see the module docstring); all started before any is waited."""
        try:
            for name in nodes:
                self._reboot(self._node(name))
            for name in nodes:
                self._wait_running(self._node(name))
        except (TargetError, OSError) as exc:
            raise FaultError(f"cannot bring {', '.join(nodes)} back: {exc}") from exc

    def _reboot(self, target: NodeState) -> None:
        node.kill(target)
        node.drop_mount_ns(target)
        host.unmount_under([target.run_dir])
        host.remove_tree(Path(target.run_dir))
        node.write_files(self.state, target)  # the volatile directories again
        node.make_mount_ns(target)
        host.make_cgroups(target.cgroup_root)
        host.set_link(target.veth_host, up=True)
        node.start(self.state, target, "containerd")
        node.wait_containerd(target, RESTART_TIMEOUT_S)
        node.start(self.state, target, "kubelet")
        node.start(self.state, target, "kube-proxy")

    def _wait_running(self, target: NodeState) -> None:
        where = target.log_file("kubelet")
        wait_until(
            lambda: all(node.find(self.state, target, c) for c in ("kubelet", "kube-proxy")),
            RESTART_TIMEOUT_S,
            0.2,
            lambda: f"{target.name} did not come back; {where}{host.log_tail(where)}",
        )

    def stop_agent(self, nodes: Sequence[str]) -> None:
        for name in nodes:
            pid = node.find(self.state, self._node(name), "kubelet")
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def start_agent(self, nodes: Sequence[str]) -> None:
        for name in nodes:
            try:
                node.start(self.state, self._node(name), "kubelet")
            except (TargetError, OSError) as exc:
                raise FaultError(f"cannot start the kubelet of {name}: {exc}") from exc

    # --- network ------------------------------------------------------------------------------

    def set_link(self, node_name: str, up: bool) -> bool:
        return host.set_link(self._node(node_name).veth_host, up)

    def partition_rules(self, node_name: str, tag: str) -> list[list[str]]:
        target = self._node(node_name)
        peers = [CONTROL_PLANE_ADDRESS]
        for other in self.state.nodes:
            if other.index != target.index:
                peers += [other.address, other.pod_cidr]
        comment = ["-m", "comment", "--comment", tag, "-j", "DROP"]
        ways = (("INPUT", "-s"), ("OUTPUT", "-d"), ("FORWARD", "-s"), ("FORWARD", "-d"))
        return [[chain, way, peer, *comment] for peer in peers for chain, way in ways]

    def node_iptables(self, node_name: str, action: str, rule: Sequence[str]) -> bool:
        return host.netns_iptables(self._node(node_name).netns, action, rule)

    # --- scheduling ---------------------------------------------------------------------------

    def drain(self, node_name: str) -> list[str]:
        """Cordon, then evict every pod but DaemonSet and mirror pods; the pods evicted."""
        from kubernetes.client import V1Eviction, V1ObjectMeta
        from kubernetes.client.exceptions import ApiException

        name = self._node(node_name).name
        api = lab.core_api(self.state)
        try:
            api.patch_node(name, {"spec": {"unschedulable": True}})
            pods = api.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={name}").items
        except ApiException as exc:
            raise FaultError(f"cannot cordon {name}: {exc.reason}") from exc
        waiting = [p for p in pods if _evictable(p)]
        evicted: list[str] = []
        deadline = time.monotonic() + EVICTION_TIMEOUT_S
        while waiting:
            refused = []
            for pod in waiting:
                meta = V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace)
                try:
                    api.create_namespaced_pod_eviction(
                        pod.metadata.name, pod.metadata.namespace, V1Eviction(metadata=meta)
                    )
                    evicted.append(f"{pod.metadata.namespace}/{pod.metadata.name}")
                except ApiException as exc:
                    if exc.status == 404:
                        continue  # gone already
                    if exc.status != 429 or time.monotonic() > deadline:
                        raise FaultError(
                            f"cannot evict {pod.metadata.namespace}/{pod.metadata.name} from "
                            f"{name}: {exc.status} {exc.reason}"
                        ) from exc
                    refused.append(pod)  # a PodDisruptionBudget says not now
            waiting = refused
            if waiting:
                time.sleep(1.0)
        return evicted

    def undrain(self, node_name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        name = self._node(node_name).name
        try:
            lab.core_api(self.state).patch_node(name, {"spec": {"unschedulable": False}})
        except ApiException as exc:
            raise FaultError(f"cannot uncordon {name}: {exc.reason}") from exc


def _evictable(pod: Any) -> bool:
    """What `kubectl drain` evicts: not DaemonSet pods, not mirror pods, not finished ones."""
    owners = pod.metadata.owner_references or []
    if any(o.kind == "DaemonSet" for o in owners):
        return False
    if "kubernetes.io/config.mirror" in (pod.metadata.annotations or {}):
        return False
    return pod.status.phase not in ("Succeeded", "Failed")
