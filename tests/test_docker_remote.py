"""The Docker target on an engine the harness does not run on, without an engine: which engine
counts as remote, what it provides through the fault agent, and what it refuses with a reason
(the real engine's side is tests/test_agent_docker.py)."""

from __future__ import annotations

import pytest

from harness import capabilities as caps
from harness.hostsys import HOST_ACCESS_ENV
from harness.scenario import parse_scenario
from harness.targets import target_kind, target_spec
from harness.targets.checks import target_problems
from harness.targets.docker.engine import AGENT_ROLE, ROLE_LABEL, engine_event
from harness.targets.docker.remote import (
    engine_host,
    is_remote,
    port_candidates,
    port_taken,
    publish_address,
)
from harness.targets.podman.target import PodmanTarget

ELSEWHERE = "tcp://192.0.2.7:2375"  # TEST-NET-1: never an address of this machine


def scenario(target: str, routing: str = "per_instance", fault: str = "container_kill") -> str:
    extra = ", duration: 2s, size: 1Mi" if fault == "disk_fill" else ""
    return f"""
name: remote
target: {target}
workload: {{image: demo, replicas: 2}}
load: {{users: 2, duration: 10s, routing: {routing}}}
faults:
  - {{kind: {fault}, at: 2s{extra}}}
"""


def test_which_engine_is_remote(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HOST_ACCESS_ENV, raising=False)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert not is_remote(None) and not is_remote("unix:///var/run/docker.sock")
    assert not is_remote("tcp://127.0.0.1:2375")
    assert is_remote(ELSEWHERE) and is_remote("ssh://user@192.0.2.7")
    monkeypatch.setenv("DOCKER_HOST", ELSEWHERE)
    assert is_remote(None)  # the environment's engine, as the SDK would use it
    monkeypatch.delenv("DOCKER_HOST")
    monkeypatch.setenv(HOST_ACCESS_ENV, "none")
    assert is_remote(None)  # a local engine stands in for one elsewhere


def test_where_replicas_are_published_and_reached() -> None:
    assert engine_host(ELSEWHERE) == "192.0.2.7" == publish_address(ELSEWHERE)
    assert engine_host("ssh://me@build.example") == "build.example"
    assert publish_address("ssh://me@build.example") == "0.0.0.0"
    assert engine_host("unix:///run/docker.sock") == "127.0.0.1"
    first = list(port_candidates("run-1", set()))
    assert first == list(port_candidates("run-1", set()))  # the same run, the same ports
    assert len(first) == 20 and all(20000 <= p < 30000 for p in first)
    assert first[0] not in list(port_candidates("run-1", {first[0]}))
    assert port_taken("driver failed: Bind for 0.0.0.0:25000 failed: port is already allocated")
    assert not port_taken("No such image: demo")


def test_a_remote_engine_offers_host_faults_through_the_agent_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(HOST_ACCESS_ENV, raising=False)
    kind = target_kind("docker")
    local = kind.capabilities(target_spec("docker"))
    assert local.provided == caps.ENGINE_ON_THIS_HOST
    remote = kind.capabilities(target_spec("docker", engine=ELSEWHERE))
    assert {caps.HOST_PROCESS, caps.NETNS, caps.API_KILL} <= remote.provided
    assert caps.NODES not in remote.provided and "192.0.2.7" in remote.reasons[caps.NODES]
    never = kind.capabilities(target_spec("docker", engine=ELSEWHERE, agent={"use": "never"}))
    assert caps.HOST_PROCESS not in never.provided and caps.API_KILL in never.provided
    assert "target.agent.use is never" in never.reasons[caps.HOST_PROCESS]
    monkeypatch.setenv(HOST_ACCESS_ENV, "none")
    forbidden = kind.capabilities(target_spec("docker"))
    assert caps.NETNS in forbidden.provided  # through the agent
    assert f"{HOST_ACCESS_ENV}=none" in forbidden.reasons[caps.NODES]


def test_a_remote_engine_refuses_the_virtual_address_and_a_disk_fill_without_agent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(HOST_ACCESS_ENV, raising=False)
    for kind in ("docker", "podman"):
        target = f"{{kind: {kind}, engine: '{ELSEWHERE}'}}"
        assert target_problems(parse_scenario(scenario(target))) == []
        problems = target_problems(parse_scenario(scenario(target, routing="service")))
        assert len(problems) == 1 and "load.routing: per_instance" in problems[0]
        # the agent fills the layer, checking the free space on the engine's host
        assert target_problems(parse_scenario(scenario(target, fault="disk_fill"))) == []
        never = f"{{kind: {kind}, engine: '{ELSEWHERE}', agent: {{use: never}}}}"
        refused = target_problems(parse_scenario(scenario(never)))
        assert len(refused) == 1 and "target.agent.use is never" in refused[0]
        fill = target_problems(parse_scenario(scenario(never, fault="disk_fill")))
        assert any(p.startswith("faults.0 (disk_fill)") for p in fill), fill
    # a local engine is not affected; Podman's own service is remote only under `none`
    assert target_problems(parse_scenario(scenario("docker", routing="service"))) == []
    assert not PodmanTarget.remote_engine(target_spec("podman"))  # type: ignore[arg-type]
    monkeypatch.setenv(HOST_ACCESS_ENV, "none")
    assert PodmanTarget.remote_engine(target_spec("podman"))  # type: ignore[arg-type]


def test_the_runs_fault_agent_is_no_instance_of_it() -> None:
    labels = {"chaos-harness.run-id": "r1", ROLE_LABEL: AGENT_ROLE, "name": "chaos-agent-r1"}
    raw = {"Action": "die", "Actor": {"ID": "c1", "Attributes": labels}, "timeNano": 1}
    assert engine_event(raw) is None
    replica = {**raw, "Actor": {"ID": "c2", "Attributes": {"name": "chaos-r1-web-1"}}}
    found = engine_event(replica)
    assert found is not None and found.action == "die"
