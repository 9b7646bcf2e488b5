"""Whole runs on the Kubernetes lab with CHAOS_HARNESS_HOST_ACCESS=none: every host-side fault
goes through the fault agent (a DaemonSet reached by exec through the API server), as on a
staging cluster the harness does not run.

Evidence the harness did not produce: the API server's pods and namespaces (the kubelet's
restart count, the agents' namespace gone), stress-ng processes found by this test in a pod
container's cgroup while the run goes, iptables read by this test in a pod's namespace.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.labs.kubernetes import lab as kube_lab
from harness.results import read_json_lines
from harness.targets.base import RUN_LABEL
from harness.targets.kubernetes.host import scan_container_pid
from tests.helpers import Sampler, harness_cli, wait_until
from tests.kube_labs import module_lab

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.docker
NO_HOST = {**os.environ, "CHAOS_HARNESS_HOST_ACCESS": "none"}


@pytest.fixture(scope="module")
def lab(demo_image: str) -> Iterator[kube_lab.KubeLabInfo]:
    """The Kubernetes lab: the one that is up, or two nodes brought up for this module."""
    del demo_image
    yield from module_lab(nodes=2)


def kubectl_json(lab: kube_lab.KubeLabInfo, *args: str) -> Any:
    done = subprocess.run(
        [lab.kubectl, "--kubeconfig", lab.kubeconfig, *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def agent_namespaces(lab: kube_lab.KubeLabInfo) -> list[str]:
    listed = kubectl_json(lab, "get", "namespaces", "-l", "app.kubernetes.io/component")
    return [n["metadata"]["name"] for n in listed["items"] if "agent" in n["metadata"]["name"]]


def run_pod_containers(lab: kube_lab.KubeLabInfo) -> dict[str, str]:
    """container id -> pod name, of every running pod of a harness run."""
    found = {}
    for pod in kubectl_json(lab, "get", "pods", "-A", "-l", RUN_LABEL)["items"]:
        for status in pod["status"].get("containerStatuses", []):
            container_id = status.get("containerID", "").partition("://")[2]
            if container_id:
                found[container_id] = pod["metadata"]["name"]
    return found


class StressWatcher(Sampler):
    """stress-ng processes seen in a run pod's container cgroup, polled while the run goes."""

    def __init__(self, lab: kube_lab.KubeLabInfo) -> None:
        self.lab = lab
        self.seen: set[str] = set()  # pod names
        super().__init__()

    def sample(self) -> None:
        try:
            containers = run_pod_containers(self.lab)
        except (subprocess.SubprocessError, json.JSONDecodeError):
            return
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            try:
                if not Path(f"/proc/{pid}/comm").read_text().startswith("stress-ng"):
                    continue
                cgroup = Path(f"/proc/{pid}/cgroup").read_text()
            except OSError:
                continue
            self.seen |= {pod for cid, pod in containers.items() if cid in cgroup}


def run_dir_of(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


def test_a_kill_a_partition_and_a_stress_through_the_agent_without_host_access(
    lab: kube_lab.KubeLabInfo, tmp_path: Path
) -> None:
    with StressWatcher(lab) as stress:
        done = harness_cli(
            "run", str(REPO / "scenarios/agent-kube.yaml"), "--out", str(tmp_path), env=NO_HOST
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = run_dir_of(tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["agents"]["nodes"], manifest.get("agents")
    clocks = manifest["agents"]["clocks"]
    # one machine, one clock: the measured offset lies within its own bound
    for node, clock in clocks.items():
        assert abs(clock["offset_start_ms"]) <= clock["uncertainty_ms"] + 5, (node, clock)
    injected = [e for e in read_json_lines(run / "events.jsonl") if e["action"] == "fault_inject"]
    assert [e["attributes"]["kind"] for e in injected] == [
        "container_kill",
        "network_partition",
        "cpu_stress",
    ]
    assert all(e["attributes"]["mechanism"].startswith("the fault agent on") for e in injected)
    summary = json.loads((run / "summary.json").read_text())
    crash, cut, _burn = summary["faults"]
    assert crash["recovered"] is True and crash["ttr_s"] is not None
    assert cut["failed_requests"] > 0  # the cut replica's share timed out
    assert stress.seen, "no stress-ng was seen in a pod's cgroup"
    assert agent_namespaces(lab) == []  # the agents went with the run
    print(
        f"\nagent run: crash ttr {crash['ttr_s']:.2f} s, partition failed "
        f"{cut['failed_requests']}, stress seen in {sorted(stress.seen)}, clocks {clocks}"
    )


def tagged_rules_of(pid: int, run_id: str) -> list[str]:
    listing = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "iptables", "-w", "-S"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [line for line in listing.splitlines() if run_id in line]


def events(out: Path) -> list[dict[str, Any]]:
    runs = [p for p in out.iterdir() if p.is_dir()]
    return read_json_lines(runs[0] / "events.jsonl") if runs else []


@pytest.mark.slow  # 70 s; the lease itself is tested by default in test_agent_program.py
def test_a_killed_harness_leaves_the_agent_to_revert_at_its_lease(
    lab: kube_lab.KubeLabInfo, tmp_path: Path
) -> None:
    """SIGKILL during a partition: the agent reverts at the lease's deadline by itself, and
    `harness cleanup` removes the run's namespaces, the agents' with them."""
    scenario = REPO / "scenarios/network_partition.yaml"
    harness = subprocess.Popen(
        [
            *(sys.executable, "-m", "harness", "run", str(scenario)),
            *("--target", "kubernetes", "--out", str(tmp_path)),
        ],
        env=NO_HOST,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: any(e["action"] == "fault_inject" for e in events(tmp_path)), 180)
    finally:
        harness.send_signal(signal.SIGKILL)
        harness.wait(30)
    killed = time.monotonic()
    run = run_dir_of(tmp_path)
    run_id = run.name
    (inject,) = [e for e in events(tmp_path) if e["action"] == "fault_inject"]
    (victim,) = inject["attributes"]["targets"]
    pids = [scan_container_pid(cid) for cid in run_pod_containers(lab)]
    cut = [pid for pid in pids if pid and tagged_rules_of(pid, run_id)]
    assert len(cut) == 1, f"the partition of {victim} is not in one pod's namespace"
    # the scenario's partition lasts 8 s: the agent's lease (8 s + 1.5 s) reverts it
    assert wait_until(lambda: tagged_rules_of(cut[0], run_id) == [], 30)
    print(f"\nreverted by the agent's lease {time.monotonic() - killed:.1f} s after the kill")
    assert agent_namespaces(lab)  # still there: nobody removed them yet
    cleanup = harness_cli("cleanup", "--results", str(tmp_path), env=NO_HOST)
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert wait_until(lambda: agent_namespaces(lab) == [], 120)
