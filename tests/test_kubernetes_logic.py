"""The Kubernetes target's pure logic, without a cluster: the objects it creates, what it refuses
at validate time, pod slots, and how successive object views become events with honest times.

The cluster tests are in test_kubernetes.py (the real lab).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import V1Pod

from faults.latency import Latency
from harness.errors import CapabilityError
from harness.scenario import parse_scenario
from harness.targets.base import OWNER_LABEL, RUN_LABEL, SERVICE_LABEL
from harness.targets.checks import target_problems
from harness.targets.kubernetes.events import (
    DeploymentTracker,
    EndpointTracker,
    NodeTracker,
    PodTracker,
    SlotBook,
    stamp,
)
from harness.targets.kubernetes.host import process_start_ns, scan_container_pid, server_is_local
from harness.targets.kubernetes.objects import (
    deployment_object,
    label_value_problem,
    namespace_for,
    service_object,
)
from harness.targets.kubernetes.views import (
    ContainerView,
    DeploymentView,
    EndpointView,
    NodeView,
    PodView,
    SliceView,
    Termination,
    parse_time_ns,
    pod_view,
)
from tests.helpers import wait_until

NS = 1_000_000_000
T0 = 1_800_000_000 * NS  # a whole second, as the API stamps it


# --- objects -----------------------------------------------------------------------------------


def test_namespace_names_are_dns_labels_and_tell_runs_apart() -> None:
    dns_label = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    long_a = "A_very.long-scenario-name-that-fills-41-c-20261201-141100-ab12"
    long_b = "A_very.long-scenario-name-that-fills-41-c-20261201-141100-ab13"
    names = [namespace_for(r) for r in ("quickstart-20261201-141100-ab12", long_a, long_b)]
    for name in names:
        assert len(name) <= 63 and dns_label.match(name), name
        assert name.startswith("chaos-")
    assert names[1] != names[2]  # truncated, but told apart by the hash of the whole id
    assert namespace_for(long_a) == names[1]


def test_the_owner_is_not_a_label_value_but_the_run_id_is() -> None:
    assert label_value_problem("owner", "12345:678901") is not None
    assert label_value_problem("run id", "quickstart-20261201-141100-ab12") is None
    assert label_value_problem("run id", "x" * 64) is not None


def _workload(**fields: Any) -> Any:
    scenario = parse_scenario(yaml.safe_dump({"name": "t", "workload": fields}))
    return scenario.workload


def test_the_deployment_carries_the_workload() -> None:
    workload = _workload(
        replicas=2,
        command="httpd -f -p 9000",
        env={"MODE": "x"},
        resources={"cpus": 0.5, "memory": "64Mi"},
        health={"path": "/ok", "interval": "2s", "timeout": "1s", "retries": 4},
    )
    deployment = deployment_object(workload, "run-1", "12:34", pull_policy="Never", liveness=True)
    spec = deployment.spec
    assert spec.replicas == 2
    pod = spec.template.spec
    assert pod is not None and pod.restart_policy == "Always"
    labels = spec.template.metadata.labels if spec.template.metadata else {}
    assert labels == {RUN_LABEL: "run-1", SERVICE_LABEL: "web"}
    assert spec.selector.match_labels == labels
    annotations = spec.template.metadata.annotations if spec.template.metadata else {}
    assert annotations == {OWNER_LABEL: "12:34"}  # not a label: ':' is not allowed there
    container = pod.containers[0]
    assert container.args == ["httpd", "-f", "-p", "9000"]  # Docker's command is the CMD
    assert container.command is None
    assert container.image_pull_policy == "Never"
    assert container.resources is not None
    assert container.resources.limits == {"cpu": "500m", "memory": str(64 * 1024 * 1024)}
    assert [(e.name, e.value) for e in container.env or []] == [("MODE", "x")]
    for probe in (container.readiness_probe, container.liveness_probe):
        assert probe is not None and probe.http_get is not None
        assert probe.http_get.path == "/ok"
        assert (probe.period_seconds, probe.timeout_seconds, probe.failure_threshold) == (2, 1, 4)
    plain = deployment_object(workload, "run-1", "12:34", pull_policy="IfNotPresent")
    assert plain.spec.template.spec is not None
    assert plain.spec.template.spec.containers[0].liveness_probe is None


def test_the_service_is_a_node_port_over_the_run_pods() -> None:
    service = service_object(_workload(port=9000), "run-1", "12:34")
    assert service.spec is not None and service.spec.type == "NodePort"
    assert service.spec.selector == {RUN_LABEL: "run-1", SERVICE_LABEL: "web"}
    ports = service.spec.ports or []
    assert [(p.port, p.target_port) for p in ports] == [(9000, 9000)]


# --- validation --------------------------------------------------------------------------------


def _problems(document: dict[str, Any]) -> list[str]:
    return target_problems(parse_scenario(yaml.safe_dump(document)))


def test_workload_fields_without_kubernetes_meaning_are_refused() -> None:
    problems = _problems(
        {
            "name": "t",
            "target": "kubernetes",
            "workload": {"restart": "on-failure", "health": {"interval": "500ms"}},
        }
    )
    assert any("workload.restart" in p and "always" in p for p in problems)
    assert any("workload.health.interval" in p and "whole seconds" in p for p in problems)
    assert _problems({"name": "t", "target": "kubernetes"}) == []


def test_faults_kubernetes_does_not_offer_are_refused_with_the_reason() -> None:
    faults = [
        {"kind": "container_stop", "at": "1s", "duration": "1s"},
        {"kind": "container_pause", "at": "1s", "duration": "1s"},
        {"kind": "container_restart", "at": "1s"},
        {"kind": "container_kill", "at": "1s"},
        {"kind": "pod_delete", "at": "1s", "grace_period": "0s"},
    ]
    problems = _problems({"name": "t", "target": "kubernetes", "faults": faults})
    assert [p.split(":")[0] for p in problems] == [
        "faults.0 (container_stop)",
        "faults.1 (container_pause)",
        "faults.2 (container_restart)",
    ]


def _kubeconfig(tmp_path: Path, server: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "current-context": "x",
            }
        )
    )
    return str(path)


HOST_AND_API_FAULTS = [
    {"kind": "container_kill", "at": "1s"},
    {"kind": "network_partition", "at": "1s", "duration": "2s"},
    {"kind": "container_kill", "at": "1s", "mode": "api"},
    {"kind": "pod_delete", "at": "1s"},
]


def _target(kubeconfig: str, **agent: str) -> dict[str, object]:
    return {"kind": "kubernetes", "kubeconfig": kubeconfig, **({"agent": agent} if agent else {})}


def test_host_side_faults_on_a_remote_cluster_need_the_agent_api_faults_do_not(
    tmp_path: Path,
) -> None:
    remote = _kubeconfig(tmp_path, "https://192.0.2.10:6443")  # TEST-NET-1: never this host
    scenario = {"name": "t", "target": _target(remote, use="never"), "faults": HOST_AND_API_FAULTS}
    problems = _problems(scenario)
    assert [p.split(":")[0] for p in problems] == [
        "faults.0 (container_kill)",
        "faults.1 (network_partition)",
    ]
    assert all("192.0.2.10" in p and "use: auto" in p for p in problems)
    # the default: through the fault agent, deployed for the run
    assert _problems({**scenario, "target": _target(remote)}) == []
    local = _kubeconfig(tmp_path, "https://127.0.0.1:6443")
    assert _problems({**scenario, "target": _target(local, use="never")}) == []


def test_without_host_access_the_lab_is_a_cluster_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _kubeconfig(tmp_path, "https://127.0.0.1:6443")
    node_fault = {"kind": "node_down", "at": "1s", "duration": "2s"}
    scenario = {"name": "t", "target": _target(local), "faults": [*HOST_AND_API_FAULTS, node_fault]}
    assert _problems(scenario) == []
    monkeypatch.setenv("CHAOS_HARNESS_HOST_ACCESS", "none")
    problems = _problems(scenario)
    assert [p.split(":")[0] for p in problems] == ["faults.4 (node_down)"]
    assert "CHAOS_HARNESS_HOST_ACCESS=none" in problems[0]
    never = _problems({**scenario, "target": _target(local, use="never")})
    assert [p.split(":")[0] for p in never] == [
        "faults.0 (container_kill)",
        "faults.1 (network_partition)",
        "faults.4 (node_down)",
    ]
    monkeypatch.setenv("CHAOS_HARNESS_HOST_ACCESS", "some")
    with pytest.raises(CapabilityError, match="CHAOS_HARNESS_HOST_ACCESS='some' is not one of"):
        _problems(scenario)


def test_a_fault_the_agent_does_is_not_checked_against_this_hosts_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """netem is missing from this kernel: from the host the latency fault is refused before
    the run; through the agent it is the agent's image and node that matter."""
    from harness.preflight import preflight

    if any(m.available for m in Latency.mechanisms() if m.name == "netem"):
        pytest.skip("this kernel has sch_netem")
    local = _kubeconfig(tmp_path, "https://127.0.0.1:6443")
    latency = {"kind": "latency", "at": "1s", "duration": "2s", "delay": "50ms"}
    scenario = parse_scenario(
        yaml.safe_dump(
            {"name": "t", "target": _target(local), "faults": [{**latency, "mechanism": "netem"}]}
        )
    )
    with pytest.raises(CapabilityError, match="netem"):
        preflight(scenario)
    monkeypatch.setenv("CHAOS_HARNESS_HOST_ACCESS", "none")
    assert len(preflight(scenario)) == 1


def test_server_locality() -> None:
    assert server_is_local("https://127.0.0.1:6443")
    assert server_is_local("https://localhost:6443")
    assert not server_is_local("https://192.0.2.10:6443")


# --- time --------------------------------------------------------------------------------------


def test_times_are_the_latest_instant_the_evidence_allows() -> None:
    # the API says "in second T0", the harness heard of it 1.4 s later: at most T0 + 1 s
    early = stamp(received_ns=T0 + 1_400_000_000, api_ns=T0)
    assert early.time_ns == T0 + NS - 1 and early.attributes["time_source"] == "api"
    assert early.attributes["api_time_ns"] == str(T0)
    # heard of within its second: the receipt is the tighter bound
    late = stamp(received_ns=T0 + 300_000_000, api_ns=T0)
    assert late.time_ns == T0 + 300_000_000 and late.attributes["time_source"] == "received"
    # a stamp with a fraction is taken as microsecond-precise
    fine = stamp(received_ns=T0 + NS, api_ns=T0 + 250_000_000)
    assert fine.time_ns == T0 + 250_000_999
    assert stamp(received_ns=T0, api_ns=None).time_ns == T0
    # a process's start time seen on this host: 10 ms ticks, tighter than the API's second
    host = stamp(received_ns=T0 + 1_400_000_000, api_ns=T0, host_ns=T0 + 420_000_000)
    assert host.time_ns == T0 + 430_000_000 - 1 and host.attributes["time_source"] == "host"
    assert stamp(received_ns=T0, api_ns=None, not_before=T0).time_ns == T0 + 1


def test_rfc3339_with_nanoseconds() -> None:
    assert parse_time_ns("2027-01-15T08:00:00.123456789Z") == 1_800_000_000 * NS + 123_456_789
    assert parse_time_ns("2027-01-15T08:00:00Z") == 1_800_000_000 * NS
    assert parse_time_ns(None) is None


# --- pods --------------------------------------------------------------------------------------


def _pod(uid: str = "u1", name: str = "web-abc", **changes: Any) -> PodView:
    base = PodView(
        uid=uid,
        name=name,
        labels={RUN_LABEL: "r", SERVICE_LABEL: "web"},
        node="",
        ip="",
        phase="Pending",
        created_ns=T0,
        scheduled_ns=None,
        ready=None,
        ready_changed_ns=None,
        deletion_ns=None,
        grace_s=None,
        disruption="",
        reason="",
        container=None,
    )
    return replace(base, **changes)


def _container(cid: str, **changes: Any) -> ContainerView:
    base = ContainerView(
        name="web",
        container_id=cid,
        runtime="containerd",
        restart_count=0,
        ready=False,
        running_since_ns=None,
        waiting_reason="",
        terminated=None,
        last_terminated=None,
    )
    return replace(base, **changes)


def _crash(cid: str, at_ns: int) -> Termination:
    return Termination(cid, 137, "Error", T0 + NS, at_ns, None)


def test_a_crash_and_restart_read_as_die_start_healthy_in_order() -> None:
    tracker = PodTracker(SlotBook())
    running = _container("c1", running_since_ns=T0 + NS, ready=True)
    events = tracker.update(_pod(node="n1", scheduled_ns=T0), T0 + 100_000_000)
    events += tracker.update(
        _pod(
            node="n1",
            ip="10.0.0.5",
            phase="Running",
            container=running,
            ready=True,
            ready_changed_ns=T0 + 2 * NS,
        ),
        T0 + 2 * NS + 300_000_000,
    )
    assert [e.action for e in events] == [
        "create",
        "pod_scheduled",
        "start",
        "health_status",
        "pod_phase",
    ]
    assert {e.instance for e in events} == {"web-1"}
    # the kubelet's one update holds the old container's end AND the new one's start, in the
    # same API second (finishedAt 10 s, startedAt 10 s): die first, start 1 ns after it
    restarted = _container(
        "c2",
        restart_count=1,
        running_since_ns=T0 + 10 * NS,
        last_terminated=_crash("c1", T0 + 10 * NS),
    )
    received = T0 + 11 * NS + 500_000_000
    events = tracker.update(
        _pod(
            node="n1",
            ip="10.0.0.5",
            phase="Running",
            container=restarted,
            ready=False,
            ready_changed_ns=T0 + 10 * NS,
        ),
        received,
    )
    actions = {e.action: e for e in events}
    assert list(actions) == ["die", "start", "health_status"]
    die, start = actions["die"], actions["start"]
    assert die.container_id == "c1" and die.attributes["exitCode"] == "137"
    assert die.time_ns == T0 + 11 * NS - 1  # the end of finishedAt's second
    assert start.container_id == "c2" and start.time_ns == die.time_ns + 1
    assert start.attributes["ordered_after"] == str(die.time_ns)
    assert start.attributes["restart_count"] == "1"
    assert actions["health_status"].attributes["health"] == "unhealthy"
    healthy = tracker.update(
        _pod(
            node="n1",
            ip="10.0.0.5",
            phase="Running",
            container=replace(restarted, ready=True),
            ready=True,
            ready_changed_ns=T0 + 10 * NS,
        ),
        T0 + 12 * NS,
    )
    assert [e.action for e in healthy] == ["health_status"]
    assert healthy[0].time_ns > start.time_ns  # healthy after its start, even in one second
    # the same update again changes nothing
    assert tracker.update(tracker._pods["u1"].view, T0 + 13 * NS) == []


def test_a_start_seen_on_this_host_takes_the_process_start_time() -> None:
    tracker = PodTracker(SlotBook(), started_at={"c1": T0 + 250_000_000}.get)
    events = tracker.update(_pod(container=_container("c1", running_since_ns=T0)), T0 + NS)
    start = next(e for e in events if e.action == "start")
    assert start.time_ns == T0 + 260_000_000 - 1
    assert start.attributes["host_time_ns"] == str(T0 + 250_000_000)


def test_an_oom_kill_is_a_die_and_an_oom() -> None:
    tracker = PodTracker(SlotBook())
    tracker.update(_pod(container=_container("c1", running_since_ns=T0)), T0)
    ended = Termination("c1", 137, "OOMKilled", T0, T0 + 5 * NS, None)
    events = tracker.update(
        _pod(container=_container("c1", terminated=ended, restart_count=0)), T0 + 6 * NS
    )
    assert [e.action for e in events] == ["die", "oom"]


def test_a_deleted_pod_gives_its_slot_to_its_replacement() -> None:
    slots = SlotBook()
    tracker = PodTracker(slots)
    for index in (1, 2):
        tracker.update(_pod(uid=f"u{index}", name=f"web-{index}x", created_ns=T0 + index), T0)
    assert slots.name_by_uid("u2", "") == "web-2"
    deleting = _pod(uid="u2", name="web-2x", deletion_ns=T0 + 40 * NS, grace_s=30)
    events = tracker.update(deleting, T0 + 11 * NS)
    assert [e.action for e in events] == ["pod_terminating"]
    assert events[0].attributes["api_time_ns"] == str(T0 + 10 * NS)  # asked 30 s before
    replacement = tracker.update(_pod(uid="u3", name="web-3x"), T0 + 11 * NS + 5)
    assert [(e.action, e.instance) for e in replacement] == [("create", "web-2")]
    gone = tracker.deleted(deleting, T0 + 50 * NS)
    assert [(e.action, e.instance) for e in gone] == [("destroy", "web-2")]
    # a relist that no longer holds a pod reports it gone
    events = tracker.resync([_pod(uid="u3", name="web-3x")], T0 + 60 * NS)
    assert [(e.action, e.attributes["pod"]) for e in events] == [("destroy", "web-1x")]


def test_pod_view_reads_the_api_json() -> None:
    raw = {
        "metadata": {
            "name": "web-7d9c-xk2p",
            "uid": "9f1",
            "labels": {RUN_LABEL: "r", SERVICE_LABEL: "web"},
            "creationTimestamp": "2027-01-15T08:00:00Z",
            "resourceVersion": "42",
        },
        "spec": {"nodeName": "chk8s-n1", "containers": [{"name": "web", "image": "i"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.221.0.7",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastTransitionTime": "2027-01-15T08:00:00Z",
                },
                {"type": "Ready", "status": "True", "lastTransitionTime": "2027-01-15T08:00:03Z"},
            ],
            "containerStatuses": [
                {
                    "name": "web",
                    "image": "i",
                    "imageID": "x",
                    "ready": True,
                    "restartCount": 1,
                    "containerID": "containerd://abc123def456abc1",
                    "state": {"running": {"startedAt": "2027-01-15T08:00:02Z"}},
                    "lastState": {
                        "terminated": {
                            "exitCode": 137,
                            "reason": "Error",
                            "containerID": "containerd://old",
                            "finishedAt": "2027-01-15T08:00:01Z",
                        }
                    },
                    "someFieldOfANewerServer": True,
                }
            ],
        },
    }
    pod = V1Pod.from_dict(raw)
    assert pod is not None
    view = pod_view(pod)
    assert (view.name, view.node, view.ip, view.ready) == (
        "web-7d9c-xk2p",
        "chk8s-n1",
        "10.221.0.7",
        True,
    )
    assert view.created_ns == T0 and view.ready_changed_ns == T0 + 3 * NS
    container = view.container
    assert container is not None
    assert (container.container_id, container.runtime) == ("abc123def456abc1", "containerd")
    assert container.running_since_ns == T0 + 2 * NS
    assert container.last_terminated is not None
    assert container.last_terminated.container_id == "old"


# --- endpoints, replicas, nodes ----------------------------------------------------------------


def _slice(*ready: tuple[str, bool]) -> SliceView:
    endpoints = tuple(
        EndpointView(address, f"pod-{address}", f"uid-{address}", "n1", ok, ok, False)
        for address, ok in ready
    )
    return SliceView("web-x1", "web", T0, endpoints)


def test_endpoints_are_added_when_ready_and_removed_when_not() -> None:
    tracker = EndpointTracker(SlotBook())
    first = tracker.update(_slice(("10.0.0.1", True), ("10.0.0.2", False)), T0)
    assert [(e.action, e.attributes["address"]) for e in first] == [("endpoint_added", "10.0.0.1")]
    second = tracker.update(_slice(("10.0.0.1", False), ("10.0.0.2", True)), T0 + NS)
    assert sorted((e.action, e.attributes["address"]) for e in second) == [
        ("endpoint_added", "10.0.0.2"),
        ("endpoint_removed", "10.0.0.1"),
    ]
    assert all(e.attributes["time_source"] == "received" for e in second)
    gone = tracker.deleted(_slice(), T0 + 2 * NS)
    assert [(e.action, e.attributes["address"]) for e in gone] == [("endpoint_removed", "10.0.0.2")]


def test_replicas_degraded_and_converged() -> None:
    tracker = DeploymentTracker()
    assert tracker.update(DeploymentView("web", 3, 1, 1, 3), T0) == []  # still coming up
    assert [e.action for e in tracker.update(DeploymentView("web", 3, 3, 3, 3), T0)] == [
        "service_converged"
    ]
    degraded = tracker.update(DeploymentView("web", 3, 2, 2, 3), T0 + NS)
    assert [(e.action, e.attributes["ready"]) for e in degraded] == [("service_degraded", "2")]
    assert tracker.update(DeploymentView("web", 3, 2, 2, 3), T0 + NS) == []


def test_node_conditions_cordons_and_taints() -> None:
    tracker = NodeTracker()
    ready = NodeView("n2", "True", "KubeletReady", T0, False)
    assert tracker.update(ready, T0) == []  # the first view is the baseline
    lost = replace(
        ready, ready="Unknown", ready_reason="NodeStatusUnknown", ready_changed_ns=T0 + 50 * NS
    )
    events = tracker.update(lost, T0 + 51 * NS)
    assert [(e.action, e.attributes["new"], e.attributes["condition"]) for e in events] == [
        ("node_state", "down", "Unknown")
    ]
    from harness.targets.kubernetes.views import TaintView

    tainted = replace(
        lost,
        unschedulable=True,
        taints=(TaintView("node.kubernetes.io/unreachable", "NoExecute", T0),),
    )
    events = tracker.update(tainted, T0 + 52 * NS)
    assert [e.action for e in events] == ["node_availability", "node_taint"]
    assert events[0].attributes["new"] == "cordoned"


# --- host PIDs ---------------------------------------------------------------------------------


@pytest.mark.docker
def test_a_containers_pid_is_found_from_its_id_alone(demo_image: str) -> None:
    """The /proc scan finds the same main PID the engine reports (the engine is the witness)."""
    started = subprocess.run(
        ["docker", "run", "-d", "--rm", "--label", "chaos-harness.test=kube-pid", demo_image],
        capture_output=True,
        text=True,
        check=True,
    )
    container_id = started.stdout.strip()
    try:
        engine_pid = int(
            subprocess.run(
                ["docker", "inspect", "-f", "{{.State.Pid}}", container_id],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        # stress-ng-like company in the cgroup must not be taken for the main process
        subprocess.run(
            ["docker", "exec", "-d", container_id, "sleep", "30"], check=True, capture_output=True
        )

        def company_started() -> bool:
            top = ["docker", "top", container_id]
            listed = subprocess.run(top, capture_output=True, text=True, check=False).stdout
            return "sleep 30" in listed

        assert wait_until(company_started, 10)
        assert scan_container_pid(container_id) == engine_pid
        assert scan_container_pid("f" * 64) == 0
        # its start time from /proc lies between the engine's own (nanosecond) Created and
        # StartedAt: the runtime forks the container's process between the two
        stamps = subprocess.run(
            ["docker", "inspect", "-f", "{{.Created}} {{.State.StartedAt}}", container_id],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        created_ns, started_ns = (parse_time_ns(stamp) for stamp in stamps)
        host_ns = process_start_ns(engine_pid)
        assert created_ns is not None and started_ns is not None and host_ns is not None
        assert created_ns - 10_000_000 <= host_ns <= started_ns
    finally:
        subprocess.run(["docker", "rm", "-f", container_id], capture_output=True, check=False)


# --- the watch loop (the transport faked: the API server only says 410 after a compaction) ----


class _Response:
    """What the client's list function returns with _preload_content=False."""

    def __init__(self, lines: list[str], data: bytes = b"") -> None:
        self._lines = lines
        self.data = data
        self.status = 200

    def stream(self, amt: object = None, decode_content: bool = False) -> Any:
        del amt, decode_content
        for line in self._lines:
            yield (line + "\n").encode()

    def release_conn(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def update(self, view: object, received_ns: int) -> list[Any]:
        self.calls.append(("update", view))
        return []

    def deleted(self, view: object, received_ns: int) -> list[Any]:
        self.calls.append(("deleted", view))
        return []

    def resync(self, views: object, received_ns: int) -> list[Any]:
        self.calls.append(("resync", views))
        return []


def test_a_watch_told_410_gone_lists_again_and_resumes() -> None:
    from harness.targets.kubernetes.watch import Resource, Watcher

    watches: list[object] = []
    lists: list[int] = []
    gone = json.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410}})
    changed = json.dumps(
        {"type": "MODIFIED", "object": {"metadata": {"name": "p", "resourceVersion": "12"}}}
    )
    bookmark = json.dumps({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "13"}}})

    def list_call(**kwargs: Any) -> _Response:
        if not kwargs.get("watch"):
            lists.append(1)
            body = {"metadata": {"resourceVersion": str(10 * len(lists))}, "items": [{}]}
            return _Response([], json.dumps(body).encode())
        watches.append(kwargs["resource_version"])
        if len(watches) == 1:
            return _Response([gone])
        if len(watches) == 2:
            return _Response([changed, bookmark])
        time.sleep(0.05)  # the fake server's idle watch: what it models, not a wait for a state
        return _Response([])

    tracker = _Recorder()
    resource: Resource[object] = Resource("pods", list_call, lambda raw: raw.get("metadata"))
    watcher = Watcher(resource, tracker, lambda _e: None, 0).start()
    try:
        assert _eventually(lambda: len(watches) >= 3)
    finally:
        watcher.close()
    # list (rv 10) -> watch 10: 410 -> list again (rv 20) -> watch 20: a change and a bookmark
    # -> the next watch resumes from the bookmark's version, without listing
    assert watches[:3] == ["10", "20", "13"]
    assert [c[0] for c in tracker.calls[:3]] == ["resync", "resync", "update"]
    assert len(lists) == 2


def _eventually(predicate: Any, timeout_s: float = 10.0) -> bool:
    return wait_until(predicate, timeout_s)
