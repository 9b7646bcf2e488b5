"""The relay's logic with a scripted channel (the real agent is in test_agent_program.py and
test_agent_kube.py): faults split by node, the clock offset applied, errors carried."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from faults.base import RELAYED, FaultContext, FaultParams, apply_fault, plan_fault, revert_fault
from faults.container_kill import ContainerKill, ContainerKillParams
from faults.container_pause import ContainerPause
from faults.network_partition import NetworkPartition, NetworkPartitionParams
from faults.registry import fault_kind
from harness.agent.protocol import PROTOCOL_VERSION, Reply, Request
from harness.agent.relay import AgentRelay
from harness.errors import AgentError, FaultError
from harness.targets.base import Instance

SKEW_NS = 5_000_000_000  # the scripted agents' clocks run 5 s ahead of ours


def instance(name: str, node: str | None) -> Instance:
    return Instance(
        name=name,
        service="web",
        container_id=name * 12,
        container_name=name,
        pid=0,
        url=f"http://10.0.0.{len(name)}:80",
        node=node,
    )


class ScriptedAgent:
    """Answers like an agent whose clock is SKEW_NS ahead; remembers every request."""

    def __init__(self, node: str, error: str = "", version: int = PROTOCOL_VERSION) -> None:
        self.node = node
        self.error = error
        self.version = version
        self.requests: list[dict[str, Any]] = []

    def run(self, argv: Sequence[str], timeout_s: float) -> str:
        if "time.time_ns()" in argv[-1]:  # the clock read
            return f"{time.time_ns() + SKEW_NS}\n"
        body = Request.model_validate_json(argv[-1]).body
        self.requests.append(body.model_dump())
        now = time.time_ns() + SKEW_NS
        ok = not (self.error and body.op != "info")
        reply = Reply(
            version=self.version,
            ok=ok,
            error="" if ok else self.error,
            node=self.node,
            time_ns=now,
            action_ns=now if body.op != "info" else None,
            mechanism=f"did {body.op} on {self.node}" if body.op == "apply" else "",
        )
        return "some log line\n" + reply.model_dump_json() + "\n"


class ListedTarget:
    def __init__(self, instances: list[Instance]) -> None:
        self._instances = instances

    def instances(self) -> list[Instance]:
        return self._instances


def context(relay: AgentRelay, instances: list[Instance], tmp_path: Path) -> FaultContext:
    target: Any = ListedTarget(instances)
    return FaultContext(target, "run-1", tmp_path, random.Random(1), relay=relay)


def test_a_fault_on_two_nodes_goes_to_each_nodes_agent_with_its_share(tmp_path: Path) -> None:
    a, b = ScriptedAgent("n1"), ScriptedAgent("n2")
    relay = AgentRelay("run-1", 3, {"n1": a, "n2": b})
    pods = [instance("web-1", "n1"), instance("web-2", "n2"), instance("web-3", "n1")]
    ctx = context(relay, pods, tmp_path)
    fault = NetworkPartition(NetworkPartitionParams.model_validate({"from": "load"}))
    record = plan_fault(fault, ctx, "f1", pods, lease_s=10.0)
    assert record.data[RELAYED] == {"n1": ["web-1", "web-3"], "n2": ["web-2"]}
    apply_fault(fault, ctx, record)
    applied = [r for r in a.requests if r["op"] == "apply"]
    assert applied[0]["targets"] == ["web-1", "web-3"]
    assert applied[0]["lease_s"] == 10.0 and applied[0]["seed"] == 3
    assert len(applied[0]["instances"]) == 3  # every instance: a partition needs the others
    # the agents' instants, put back on our clock: within the round trip of now
    assert ctx.clock.first_ns is not None
    assert abs(ctx.clock.first_ns - time.time_ns()) < 1_000_000_000
    assert revert_fault(NetworkPartition.revert, ctx, record)
    assert [r["op"] for r in b.requests] == ["info", "apply", "revert"]


def test_the_fault_s_mechanism_says_what_each_agent_did(tmp_path: Path) -> None:
    relay = AgentRelay("run-1", 0, {"n1": ScriptedAgent("n1"), "n2": ScriptedAgent("n2")})
    pods = [instance("web-1", "n1"), instance("web-2", "n2")]
    ctx = context(relay, pods, tmp_path)
    fault = NetworkPartition(NetworkPartitionParams.model_validate({"from": "load"}))
    record = plan_fault(fault, ctx, "f1", pods, lease_s=10.0)
    assert relay.mechanism(record) == "the fault agent on n1, n2"  # not applied yet
    apply_fault(fault, ctx, record)
    assert relay.mechanism(record) == (
        "the fault agent on n1: did apply on n1; the fault agent on n2: did apply on n2"
    )


def test_offsets_are_measured_against_each_agent(tmp_path: Path) -> None:
    relay = AgentRelay("run-1", 0, {"n1": ScriptedAgent("n1")})
    offset = relay.offsets["n1"]
    assert abs(offset.offset_ns - SKEW_NS) <= offset.uncertainty_ns + 1_000_000
    report = relay.clock_report()["n1"]
    assert abs(report["offset_end_ms"] - SKEW_NS / 1e6) < 100


def test_only_faults_on_processes_and_namespaces_are_relayed(tmp_path: Path) -> None:
    relay = AgentRelay("run-1", 0, {"n1": ScriptedAgent("n1")})
    assert relay.takes(ContainerKill(ContainerKillParams(mode="signal")))
    assert not relay.takes(ContainerKill(ContainerKillParams(mode="api")))
    assert not relay.takes(ContainerPause(FaultParams()))


def test_an_agents_failure_is_a_fault_error_naming_the_node(tmp_path: Path) -> None:
    relay = AgentRelay("run-1", 0, {"n1": ScriptedAgent("n1", error="cannot kill web-1")})
    pods = [instance("web-1", "n1")]
    ctx = context(relay, pods, tmp_path)
    fault = ContainerKill(ContainerKillParams())
    record = plan_fault(fault, ctx, "f1", pods, None)
    with pytest.raises(FaultError, match="fault agent on n1: cannot kill web-1"):
        apply_fault(fault, ctx, record)


def test_an_instance_on_a_node_without_agent_is_refused_before_anything(tmp_path: Path) -> None:
    relay = AgentRelay("run-1", 0, {"n1": ScriptedAgent("n1")})
    pods = [instance("web-1", "n9")]
    ctx = context(relay, pods, tmp_path)
    with pytest.raises(AgentError, match="no fault agent runs on n9"):
        plan_fault(ContainerKill(ContainerKillParams()), ctx, "f1", pods, None)


def test_a_relayed_record_without_its_relay_is_left_to_the_agent(tmp_path: Path) -> None:
    relay = AgentRelay("run-1", 0, {"n1": ScriptedAgent("n1")})
    pods = [instance("web-1", "n1")]
    record = plan_fault(
        ContainerKill(ContainerKillParams()), context(relay, pods, tmp_path), "f1", pods, None
    )
    bare = FaultContext(ListedTarget(pods), "run-1", tmp_path, random.Random(1))  # type: ignore[arg-type]
    assert revert_fault(ContainerKill.revert, bare, record) is False
    with pytest.raises(FaultError, match="planned for the fault agent"):
        apply_fault(ContainerKill(ContainerKillParams()), bare, record)
    assert json.loads(json.dumps(record.to_json()))["data"][RELAYED] == {"n1": ["web-1"]}


def test_an_agent_of_another_protocol_version_is_refused() -> None:
    with pytest.raises(AgentError, match="rebuild its image"):
        AgentRelay("run-1", 0, {"n1": ScriptedAgent("n1", version=PROTOCOL_VERSION + 1)})


def test_the_agent_imports_only_the_fault_kind_it_is_asked_for() -> None:
    """One action per call: the kind's module alone, not all sixteen (60 ms a call here)."""
    import subprocess
    import sys

    probe = (
        "import sys; from faults.registry import fault_kind; "
        "print(fault_kind('packet_loss').__name__, "
        "sorted(m for m in sys.modules if m.startswith('faults.') and m.count('.') == 1))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split(" ", 1)[0] == "PacketLoss"
    assert "faults.latency" not in done.stdout and "faults.node_down" not in done.stdout
    with pytest.raises(KeyError):
        fault_kind("no_such_kind")
