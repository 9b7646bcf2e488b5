"""Containers and a network the harness did not create stand next to a run whose selectors are
as broad as they go (percent: 100, every fault family: network, process, resource): they are
untouched, as the kernel and the engine see them, during the run and after it.

The bystanders carry no run label; one of them even carries the instance and service labels a
run's replica has (`web-1`, service `web`), so only the run label can tell them apart. Checked
with evidence the harness does not produce: the engine's inspect (same ids, restart counts,
start times, PIDs), iptables-save and tc inside their own network namespaces (nsenter), the
processes in their cgroups, their root filesystems, and their answers to HTTP during the run.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from bench.leftovers import netns_rules, seen_of
from harness.hostsys import cgroup_dir
from harness.images import DEMO_IMAGE
from harness.results import read_json_lines
from harness.targets.base import INSTANCE_LABEL, SERVICE_LABEL
from tests.conftest import labelled_objects
from tests.helpers import Sampler, fetch

REPO = Path(__file__).resolve().parent.parent
BYSTANDER_LABEL = "chaos-harness-test.bystander"  # not the run label: the harness must not care
pytestmark = pytest.mark.docker


def _in_netns(pid: int, *command: str) -> str:
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-n", *command],
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    ).stdout


def _foreign_processes(pid: int) -> list[str]:
    """Processes of the harness's kinds in the bystander's cgroups: stress-ng (its workers
    retitle to stress-ng-*), a Python proxy, anything whose command line names the harness."""
    found = []
    for controller in ("memory", "cpu"):
        procs = (cgroup_dir(pid, controller) / "cgroup.procs").read_text().split()
        for each in procs:
            try:
                comm = Path(f"/proc/{each}/comm").read_text().strip()
                cmdline = Path(f"/proc/{each}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if comm.startswith(("stress-ng", "python")) or b"chaos-harness" in cmdline:
                found.append(f"{controller}: {each} {comm}")
    return found


@pytest.fixture
def bystanders(docker_client: docker.DockerClient, demo_image: str) -> Iterator[list[Any]]:
    tag = secrets.token_hex(3)
    labels = {BYSTANDER_LABEL: tag}
    network = docker_client.networks.create(f"bystander-{tag}", driver="bridge", labels=labels)
    made = []
    try:
        for index, extra in enumerate([{}, {INSTANCE_LABEL: "web-1", SERVICE_LABEL: "web"}]):
            made.append(
                docker_client.containers.run(
                    DEMO_IMAGE,
                    name=f"bystander-{tag}-{index}",
                    detach=True,
                    network=network.name,
                    labels={**labels, **extra},
                    restart_policy={"Name": "always"},
                    mem_limit="64m",
                )
            )
        yield made
    finally:
        for container in made:
            container.remove(force=True)
        network.remove()


def _scenario(path: Path) -> Path:
    every = {"percent": 100}
    faults = [
        {"kind": "network_partition", "at": "3s", "duration": "4s", "from": "all"},
        {"kind": "packet_loss", "at": "3s", "duration": "4s", "percent": 50, "direction": "both"},
        {"kind": "cpu_stress", "at": "8s", "duration": "5s", "workers": 1},
        {"kind": "memory_stress", "at": "8s", "duration": "5s", "percent": 50},
        {"kind": "disk_fill", "at": "8s", "duration": "5s", "size": "8Mi"},
        {"kind": "bandwidth", "at": "14s", "duration": "4s", "rate": "1mbit"},
        {"kind": "latency", "at": "14s", "duration": "4s", "delay": "50ms"},
        {"kind": "container_pause", "at": "19s", "duration": "2s"},
        {"kind": "container_stop", "at": "22s", "duration": "2s", "timeout": "1s"},
        {"kind": "container_restart", "at": "26s", "timeout": "1s"},
        {"kind": "container_kill", "at": "29s"},
    ]
    scenario = {
        "name": "bystanders",
        "target": "docker",
        "workload": {"image": "demo", "replicas": 2, "resources": {"cpus": 0.5, "memory": "64Mi"}},
        "load": {"users": 4, "spawn_rate": 4, "duration": "34s"},
        "probes": {"interval": "200ms"},
        "faults": [{**fault, "select": every} for fault in faults],
        "slo": {},
    }
    path.write_text(yaml.safe_dump(scenario))
    return path


class Watch(Sampler):
    """Samples the bystanders while the run goes: rules, qdiscs, foreign processes, answers."""

    def __init__(self, containers: list[Any]) -> None:
        self.containers = containers
        self.problems: list[str] = []
        self.answers = 0
        self.failures = 0
        super().__init__()

    def sample(self) -> None:
        for container in self.containers:
            self._look(container)

    def _look(self, container: Any) -> None:
        container.reload()
        pid = container.attrs["State"]["Pid"]
        address = next(iter(container.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
        rules = _in_netns(pid, "iptables-save")
        if "chaos-harness" in rules:
            self.problems.append(f"{container.name}: a harness rule in its netns:\n{rules}")
        qdiscs = _in_netns(pid, "tc", "qdisc", "show")
        if "ca05:" in qdiscs:
            self.problems.append(f"{container.name}: a harness qdisc: {qdiscs}")
        self.problems += [f"{container.name}: {p}" for p in _foreign_processes(pid)]
        if fetch(f"http://{address}:8080/health", connect_timeout_s=2.0, read_timeout_s=5.0):
            self.answers += 1
        else:
            self.failures += 1


def test_a_run_that_selects_everything_leaves_bystanders_alone(
    bystanders: list[Any], docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    before = [seen_of(c) for c in bystanders]
    rules_before = [netns_rules(s.pid) for s in before]
    qdiscs_before = [_in_netns(s.pid, "tc", "qdisc", "show") for s in before]
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "harness", "run", str(_scenario(tmp_path / "s.yaml"))]
    with Watch(bystanders) as watch:
        done = subprocess.run(
            [*command, "--out", str(out)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    (run_dir,) = out.iterdir()

    # the run really hit everything it could: every fault on both of its replicas
    injected = [
        e for e in read_json_lines(run_dir / "events.jsonl") if e["action"] == "fault_inject"
    ]
    assert len(injected) == 11
    assert all(sorted(e["attributes"]["targets"]) == ["web-1", "web-2"] for e in injected)

    # and nothing of it reached the bystanders, during the run or after it
    assert watch.problems == []
    assert watch.failures == 0 and watch.answers > 20
    after = [seen_of(c) for c in bystanders]
    assert after == before  # same ids, restart counts, start times, PIDs, running
    assert [netns_rules(s.pid) for s in after] == rules_before
    assert [_in_netns(s.pid, "tc", "qdisc", "show") for s in after] == qdiscs_before
    for seen in after:
        fills = subprocess.run(
            ["find", f"/proc/{seen.pid}/root/", "-xdev", "-name", "chaos-harness-fill-*"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        assert fills == ""
    assert labelled_objects(docker_client, run_dir.name) == []
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
