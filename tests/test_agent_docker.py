"""The fault agent on a remote Docker engine, for real: `harness lab up --kind docker` (one extra
dockerd in a network namespace of its own, on TCP), a full `harness run` against it with
CHAOS_HARNESS_HOST_ACCESS=none in which a kill by signal, a partition and a CPU stress are done
by the agent container, and `harness lab down`.

The effects are measured: the killed replica's recovery and the partition's failures from the
run's summary, and stress-ng in the container's cgroup read by this test itself from /proc
(the lab's engine shares this machine's PID namespace, so the test can look; the harness may
not). What must be gone is listed by the test: the agent, the rules, stress-ng, and after the
lab's `down` its namespace, links, rules and daemon (ip netns, ip link, iptables -S).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from harness.agent.docker import DockerAgents, agent_name
from harness.agent.image import agent_image as agent_image_of
from harness.agent.protocol import InfoRequest
from harness.agent.relay import call
from harness.hostsys import HOST_ACCESS_ENV
from harness.labs.docker import lab
from harness.targets.base import RUN_LABEL
from tests.helpers import REPO, Sampler, harness_cli, wait_until

pytestmark = pytest.mark.docker

NS = 1_000_000_000
NAME = "agent-docker"


@dataclass(frozen=True)
class LabUp:
    address: str
    env: dict[str, str]
    up_s: float
    directory: Path


def _ip(*args: str, netns: str | None = None) -> str:
    prefix = ["nsenter", f"--net=/var/run/netns/{netns}"] if netns else []
    done = subprocess.run([*prefix, *args], capture_output=True, text=True, check=False)
    return done.stdout


def _host_rules() -> str:
    return _ip("iptables", "-S") + _ip("iptables", "-t", "nat", "-S")


def _lab_leftovers() -> list[str]:
    """What of a Docker lab this machine still has, listed with the system's own tools."""
    found = [f"netns {n}" for n in _ip("ip", "netns", "list").split() if n.startswith("chdock")]
    found += [f"link {line}" for line in _ip("ip", "-o", "link").splitlines() if "chdock" in line]
    found += [f"rule {r}" for r in _host_rules().splitlines() if "chdock" in r or "10.216." in r]
    found += [
        f"process {pid}"
        for pid in os.listdir("/proc")
        if pid.isdigit() and "chdock" in _cmdline(pid) and "dockerd" in _cmdline(pid)
    ]
    return found


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.fixture(scope="module")
def lab_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabUp]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    if Path(f"/sys/class/net/{lab.BRIDGE}").exists() or lab.DockerLab().state() is not None:
        pytest.skip("a Docker lab is already up on this machine")
    directory = tmp_path_factory.mktemp("docker-lab") / "lab"
    env = {**os.environ, "CHAOS_HARNESS_DOCKER_LAB_DIR": str(directory)}
    started = time.monotonic()
    done = harness_cli("lab", "up", "--kind", "docker", env=env, timeout_s=180)
    took = time.monotonic() - started
    try:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        yield LabUp(done.stdout.strip().splitlines()[-1], env, took, directory)
    finally:
        harness_cli("lab", "down", "--kind", "docker", env=env, timeout_s=180)


@pytest.fixture(scope="module")
def agent_image(docker_client: docker.DockerClient) -> str:
    """The agent's image on this machine's engine, built by the harness (cached)."""
    return agent_image_of(docker_client)


@pytest.fixture(scope="module")
def lab_engine(lab_up: LabUp) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=lab_up.address, timeout=60)
    yield client
    client.close()


def test_the_lab_is_an_engine_on_tcp_at_its_bridge_address_only(
    lab_up: LabUp, lab_engine: docker.DockerClient
) -> None:
    print(f"\nlab up in {lab_up.up_s:.1f} s (the CLI, demo image loaded)")
    assert lab_up.address == f"tcp://{lab.ENGINE_ADDRESS}:{lab.ENGINE_PORT}"
    info = lab_engine.info()
    assert info["Name"] == "chdock-n1" and lab.LAB_LABEL in info["Labels"]
    inside = _ip("ss", "-ltnH", netns="chdock-n1")
    assert f"{lab.ENGINE_ADDRESS}:{lab.ENGINE_PORT}" in inside
    assert f"*:{lab.ENGINE_PORT}" not in inside and f"0.0.0.0:{lab.ENGINE_PORT}" not in inside
    assert f":{lab.ENGINE_PORT} " not in _ip("ss", "-ltnH")  # nothing on this host's own side
    assert lab_engine.images.list(name="chaos-harness/demo")  # loaded from this machine's


class StressWatch(Sampler):
    """stress-ng processes in the cgroups of the run's containers on the lab's engine, read
    from /proc by the test every 0.2 s: (time_ns, how many)."""

    interval_s = 0.2

    def __init__(self, client: docker.DockerClient) -> None:
        super().__init__()
        self._client = client
        self.readings: list[tuple[int, int]] = []

    def sample(self) -> None:
        try:
            containers = self._client.containers.list(filters={"label": RUN_LABEL})
        except docker.errors.DockerException:
            return
        pids = [int(c.attrs["State"]["Pid"] or 0) for c in containers]
        own = [_cgroups(pid) for pid in pids if pid > 0]
        count = sum(1 for pid in _stress_pids() if _cgroups(pid) in own)
        self.readings.append((time.time_ns(), count))

    def during(self, start_ns: int, end_ns: int) -> list[int]:
        return [n for t, n in self.readings if start_ns <= t <= end_ns]


def _cgroups(pid: int) -> set[str]:
    try:
        return set(Path(f"/proc/{pid}/cgroup").read_text().splitlines())
    except OSError:
        return set()


def _stress_pids() -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and Path(f"/proc/{pid}/comm").read_text().startswith("stress-ng"):
                found.append(int(pid))
        except OSError:
            continue
    return found


def _scenario(tmp_path: Path, address: str) -> Path:
    data = {
        "name": NAME,
        # no agent.image: the one built on this machine, loaded into the engine by the run
        "target": {"kind": "docker", "engine": address},
        "workload": {
            "image": "demo",
            "replicas": 2,
            "restart": "always",
            "health": {"path": "/health", "interval": "1s", "timeout": "1s", "retries": 3},
        },
        "load": {
            "users": 8,
            "duration": "46s",
            "routing": "per_instance",
            "timeout": "1s",
            "paths": [{"path": "/"}],
        },
        "probes": {"interval": "100ms"},
        "analysis": {"stable_for": "2s"},
        "faults": [
            {"kind": "container_kill", "name": "kill", "at": "8s", "select": {"names": ["web-1"]}},
            {
                "kind": "network_partition",
                "name": "cut",
                "at": "19s",
                "duration": "6s",
                "select": {"names": ["web-2"]},
            },
            {
                "kind": "cpu_stress",
                "name": "burn",
                "at": "31s",
                "duration": "8s",
                "select": {"names": ["web-1"]},
                "workers": 1,
                "load": 100,
            },
        ],
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _events(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_a_run_on_the_remote_engine_does_its_host_side_faults_through_the_agent(
    tmp_path: Path, lab_up: LabUp, lab_engine: docker.DockerClient, agent_image: str
) -> None:
    env = {**lab_up.env, HOST_ACCESS_ENV: "none"}
    del agent_image  # built before the run (cached): the run finds it and loads it
    scenario = _scenario(tmp_path, lab_up.address)
    with StressWatch(lab_engine) as watch:
        done = harness_cli("run", str(scenario), "--out", str(tmp_path / "runs"), env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    run_id = manifest["run_id"]
    agents = manifest["agents"]
    assert agents["nodes"] == ["chdock-n1"] and agent_name(run_id) in agents["where"]
    injected = {
        e["attributes"]["name"]: e for e in _events(run_dir) if e["action"] == "fault_inject"
    }
    reverted = {
        e["attributes"]["fault_id"]: e for e in _events(run_dir) if e["action"] == "fault_revert"
    }
    assert sorted(injected) == ["burn", "cut", "kill"]
    for event in injected.values():  # where, and what the agent said it did
        assert event["attributes"]["mechanism"].startswith("the fault agent on chdock-n1: "), event
    faults = {f["name"]: f for f in summary["faults"]}
    # the kill: a crash the engine restarted, and the replica answered again
    assert faults["kill"]["recovered"] is True and faults["kill"]["ttr_s"] is not None
    # the partition: the cut replica's requests failed while it lasted
    assert faults["cut"]["failed_requests"] > 0
    # the stress: stress-ng in the container's cgroups while it lasted, and none after
    burn = injected["burn"]
    start, end = burn["time_ns"], reverted[burn["attributes"]["fault_id"]]["time_ns"]
    during = watch.during(start + NS // 2, end - NS // 2)
    assert during and min(during) >= 1, during
    assert watch.readings[-1][1] == 0 and _stress_pids() == []
    # nothing left: the agent and the replicas, rules on the engine's side or on this host
    assert lab_engine.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"}) == []
    assert run_id not in _ip("iptables-save", netns="chdock-n1")
    assert run_id not in _host_rules()  # this host was not touched (others' labs may be)
    print(
        f"\nkill ttr {faults['kill']['ttr_s']} s; partition {faults['cut']['failed_requests']} "
        f"failed requests; stress-ng seen in {len(during)} readings; clocks {agents['clocks']}"
    )


def test_the_agent_container_starts_answers_and_goes(
    lab_up: LabUp, lab_engine: docker.DockerClient, agent_image: str
) -> None:
    run_id = f"agent-start-{os.getpid()}"
    agents = DockerAgents(lab_engine, run_id, lab_up.address)
    try:
        started = time.monotonic()
        agents.deploy(agent_image)  # loaded already by the run above, or now
        deployed = time.monotonic()
        agents.wait_ready(120)
        ready = time.monotonic()
        ((node, channel),) = agents.channels().items()
        reply = call(channel, InfoRequest())
        answered = time.monotonic()
        assert reply.ok and reply.node == node == "chdock-n1"
        memory = lab_engine.api.stats(agent_name(run_id), stream=False)["memory_stats"]
        # as `docker stats` shows it: the usage without the inactive page cache
        kept = memory.get("stats", {})
        cache = kept.get("total_inactive_file", kept.get("inactive_file", 0))
        print(
            f"\nagent: created and started {deployed - started:.2f} s, serving "
            f"{ready - deployed:.2f} s later, one call {answered - ready:.2f} s; memory "
            f"{(memory['usage'] - cache) / 2**20:.1f} MiB ({memory['usage'] / 2**20:.1f} MiB "
            "with its page cache)"
        )
    finally:
        agents.remove()
    agents.remove()  # twice: nothing left to do
    assert lab_engine.containers.list(all=True, filters={"name": agent_name(run_id)}) == []


def _injected(runs: Path) -> bool:
    """Whether the run under `runs` has applied its first fault (events.jsonl says so)."""
    return any('"fault_inject"' in e.read_text() for e in runs.glob("*/events.jsonl"))


@pytest.mark.slow
def test_a_killed_runs_agent_is_stopped_by_cleanup_and_reverts_first(
    tmp_path: Path, lab_up: LabUp, lab_engine: docker.DockerClient, agent_image: str
) -> None:
    del agent_image  # built (cached) before the run
    data = yaml.safe_load(_scenario(tmp_path, lab_up.address).read_text())
    data["name"] = "agent-docker-killed"
    data["faults"] = [
        {"kind": "network_partition", "at": "4s", "duration": "60s", "select": {"names": ["web-2"]}}
    ]
    data["load"]["duration"] = "80s"
    scenario = tmp_path / "killed.yaml"
    scenario.write_text(yaml.safe_dump(data))
    runs = tmp_path / "runs"
    env = {**lab_up.env, HOST_ACCESS_ENV: "none"}
    command = [sys.executable, "-m", "harness", "run", str(scenario), "--out", str(runs)]
    harness = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: _injected(runs), 90), "the partition was never applied"
    finally:
        harness.kill()  # SIGKILL: nothing of the harness reverts or removes anything
        harness.wait(30)
    (run_dir,) = runs.iterdir()
    run_id = json.loads((run_dir / "manifest.json").read_text())["run_id"]
    replica = lab_engine.containers.get(f"chaos-{run_id}-web-2")
    pid = str(replica.attrs["State"]["Pid"])
    assert run_id in _ip("nsenter", "-t", pid, "-n", "iptables", "-S")  # still cut off
    swept = harness_cli("cleanup", env=lab_up.env, timeout_s=300)
    assert swept.returncode == 0, swept.stdout[-2000:] + swept.stderr[-2000:]
    assert f"fault agent {agent_name(run_id)} stopped" in swept.stdout, swept.stdout[-3000:]
    assert lab_engine.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"}) == []
    assert run_id not in _host_rules()


def test_down_leaves_no_namespace_link_rule_or_process(lab_up: LabUp) -> None:
    done = harness_cli("lab", "down", "--kind", "docker", env=lab_up.env, timeout_s=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "netns chdock-n1" in done.stdout and "bridge chdock0" in done.stdout
    assert _lab_leftovers() == []
    assert not (lab_up.directory / "state.json").exists()
    again = harness_cli("lab", "down", "--kind", "docker", env=lab_up.env, timeout_s=60)
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == "no lab"
