"""The fault agent's program on a real engine: `python -m harness.agent call` and `serve` run
as processes on this host (as they run in the agent's container on a node), driven through the
harness's own relay, against containers of the real Docker engine.

The effects are read by the tests themselves: iptables listed in the container's namespace with
nsenter, stress-ng found in the container's cgroup, the engine's own restart count.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import docker
import pytest

from faults.base import AnyFault, FaultContext, RevertRecord, apply_fault, plan_fault, revert_fault
from faults.container_kill import ContainerKill, ContainerKillParams
from faults.cpu_stress import CpuStress, CpuStressParams
from faults.network_partition import NetworkPartition, NetworkPartitionParams
from harness.agent.node import from_instance
from harness.agent.protocol import CALL_ARGV, SERVE_ARGV, ApplyRequest
from harness.agent.relay import AgentRelay, call
from harness.errors import AgentError
from harness.targets.base import Instance
from harness.targets.docker.target import DockerTarget
from harness.waiting import wait_until
from tests.conftest import DeployFactory
from tests.helpers import fetch

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[1]


class LocalChannel:
    """The agent as a process on this host: what an exec in its container does on a node."""

    node = "local"

    def __init__(self, state: Path) -> None:
        self.state = state

    def env(self) -> dict[str, str]:
        return {**os.environ, "CHAOS_AGENT_STATE": str(self.state), "PYTHONPATH": str(ROOT)}

    def run(self, argv: Sequence[str], timeout_s: float) -> str:
        command = [sys.executable, *argv[1:]]  # argv[0] is the image's python3
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, env=self.env()
        )
        if done.returncode != 0:
            raise AgentError(f"exit {done.returncode}: {done.stderr[-500:]}")
        return done.stdout


@pytest.fixture
def channel(tmp_path: Path) -> LocalChannel:
    return LocalChannel(tmp_path / "agent-state")


@pytest.fixture
def serve(channel: LocalChannel) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def _start() -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, *SERVE_ARGV[1:]],
            env=channel.env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield _start
    for process in started:  # only what this test started, by its own handle
        if process.poll() is None:
            process.terminate()
            process.wait(30)


def relayed_context(target: DockerTarget, channel: LocalChannel, tmp_path: Path) -> FaultContext:
    relay = AgentRelay(target.run_id, 7, {channel.node: channel})
    return FaultContext(target, target.run_id, tmp_path, random.Random(7), relay=relay)


def tagged_lines(instance: Instance, run_id: str) -> list[str]:
    """iptables rules carrying the run's tag in the instance's namespace, listed by the test."""
    listing = subprocess.run(
        ["nsenter", "-t", str(instance.pid), "-n", "iptables", "-w", "-S"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in listing.splitlines() if run_id in line]


def _cgroup_lines(pid: int | str) -> set[str]:
    try:
        return set(Path(f"/proc/{pid}/cgroup").read_text().splitlines())
    except OSError:
        return set()


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def stress_pids(instance: Instance) -> list[int]:
    """stress-ng processes in every cgroup of the instance's main process (read by the test)."""
    own = _cgroup_lines(instance.pid)
    found = [p for p in os.listdir("/proc") if p.isdigit() and _comm(p).startswith("stress-ng")]
    return [int(p) for p in found if own and _cgroup_lines(p) == own]


def inject(
    fault: AnyFault, ctx: FaultContext, chosen: list[Instance], lease_s: float | None
) -> RevertRecord:
    record = plan_fault(fault, ctx, "f1", chosen, lease_s)
    apply_fault(fault, ctx, record)
    return record


def test_partition_through_the_agent_cuts_the_instance_off_and_its_revert_leaves_nothing(
    deploy: DeployFactory, channel: LocalChannel, tmp_path: Path
) -> None:
    target = deploy(replicas=1)
    instance = target.instances()[0]
    ctx = relayed_context(target, channel, tmp_path)
    fault = NetworkPartition(NetworkPartitionParams.model_validate({"from": "load"}))
    record = inject(fault, ctx, [instance], lease_s=60)
    assert record.mechanism == "the fault agent on local"
    assert ctx.clock.first_ns is not None  # the agent's action, on our clock
    assert tagged_lines(instance, target.run_id)
    assert [fetch(instance.url) for _ in range(3)] == [False] * 3
    assert revert_fault(NetworkPartition.revert, ctx, record)
    assert revert_fault(NetworkPartition.revert, ctx, record)  # twice: the agent has nothing left
    assert tagged_lines(instance, target.run_id) == []
    assert all(fetch(instance.url) for _ in range(3))
    assert list((channel.state / "held").iterdir()) == []


def test_a_kill_through_the_agent_is_a_crash_the_engine_restarts(
    deploy: DeployFactory, channel: LocalChannel, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    target = deploy(replicas=1)
    instance = target.instances()[0]
    before = docker_client.api.inspect_container(instance.container_id)["RestartCount"]
    ctx = relayed_context(target, channel, tmp_path)
    inject(ContainerKill(ContainerKillParams()), ctx, [instance], lease_s=None)
    assert wait_until(lambda: not Path(f"/proc/{instance.pid}").exists(), 5)

    def restarts() -> int:
        return int(docker_client.api.inspect_container(instance.container_id)["RestartCount"])

    assert wait_until(lambda: restarts() > before, 30)
    assert list((channel.state / "held").iterdir()) == []  # a one-off leaves nothing held


def test_the_agent_reverts_at_its_lease_by_itself(
    deploy: DeployFactory,
    channel: LocalChannel,
    tmp_path: Path,
    serve: Callable[[], subprocess.Popen[str]],
) -> None:
    target = deploy(replicas=1)
    instance = target.instances()[0]
    agent = serve()
    ctx = relayed_context(target, channel, tmp_path)
    inject(CpuStress(CpuStressParams()), ctx, [instance], lease_s=1.0)
    started = time.monotonic()
    assert stress_pids(instance)
    # nobody reverts: the agent's own lease (1 s + its grace) does
    assert wait_until(lambda: stress_pids(instance) == [], 10)
    took = time.monotonic() - started
    assert 1.0 <= took < 6.0, took
    # the held record goes once the revert is done (stress-ng's exit collected)
    assert wait_until(lambda: list((channel.state / "held").iterdir()) == [], 10)
    agent.terminate()
    assert agent.wait(30) == 0
    assert agent.stderr is not None and "by itself" in agent.stderr.read()


def test_a_stopped_agent_reverts_everything_it_holds(
    deploy: DeployFactory,
    channel: LocalChannel,
    tmp_path: Path,
    serve: Callable[[], subprocess.Popen[str]],
) -> None:
    target = deploy(replicas=1)
    instance = target.instances()[0]
    agent = serve()
    ctx = relayed_context(target, channel, tmp_path)
    fault = NetworkPartition(NetworkPartitionParams.model_validate({"from": "load"}))
    inject(fault, ctx, [instance], lease_s=600)
    assert tagged_lines(instance, target.run_id)
    agent.send_signal(signal.SIGTERM)  # the pod deleted, the container removed
    assert agent.wait(30) == 0
    assert tagged_lines(instance, target.run_id) == []
    assert fetch(instance.url)


def test_a_failing_fault_is_the_agents_error_and_a_bad_request_is_refused(
    deploy: DeployFactory, channel: LocalChannel
) -> None:
    target = deploy(replicas=1)
    instance = target.instances()[0]
    ghost = from_instance(instance).model_copy(update={"container_id": "f" * 64})
    request = ApplyRequest(
        run_id=target.run_id,
        fault_id="f1",
        kind="container_kill",
        params={},
        targets=[ghost.name],
        instances=[ghost],  # a container this node does not have
    )
    reply = call(channel, request)
    assert not reply.ok and "not running" in reply.error
    assert Path(f"/proc/{instance.pid}").exists()  # nothing was killed
    garbage = channel.run([*CALL_ARGV, '{"body": {"op": "dance"}}'], 30)
    assert '"ok":false' in garbage and "not a request" in garbage
