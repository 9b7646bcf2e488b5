"""The multi-node Swarm lab and the node faults.

Fast tests cover the pure parts (the state file, the command lines, the choice of nodes).
The slow test brings a real 3-node lab up, partitions a worker under a 3-replica service,
measures when the manager marks it down and when its task runs elsewhere, heals it, takes the
lab down and checks that nothing is left (namespaces, links, daemons, mounts, rules, files).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.types import EndpointSpec, RestartPolicy, ServiceMode
from typer.testing import CliRunner

from faults.base import FaultContext, RevertRecord
from faults.node_base import NodeFault, NodeParams
from faults.node_down import NodeDown, NodeDownParams
from faults.node_drain import NodeDrain
from faults.node_partition import NodePartition, NodePartitionParams
from harness.cli_lab import lab_app
from harness.errors import FaultError, TargetError
from harness.images import DEMO_IMAGE
from harness.labs.swarm import lab
from harness.labs.swarm import nodes as swarm_nodes
from harness.targets.base import RUN_LABEL, Instance

NS = 1_000_000_000


def _plan(tmp_path: Path, nodes: int = 3, managers: int = 1) -> lab.LabState:
    return lab.plan_state(tmp_path / "lab", Path("/run/chlab"), nodes, managers, 5.0, "overlay2")


def _instance(name: str, node: str | None) -> Instance:
    return Instance(name, "web", name, name, 1, "http://x", {RUN_LABEL: "r"}, node=node)


# --- fast: pure parts ---------------------------------------------------------------------


def test_state_round_trips_through_the_file(tmp_path: Path) -> None:
    state = _plan(tmp_path)
    state = state.with_node(replace(state.nodes[1], pid=42, start_ticks=7, node_id="abc"))
    lab.save_state(state)
    assert lab.load_state(tmp_path / "lab") == state
    raw = json.loads((tmp_path / "lab" / "state.json").read_text())
    assert raw["nodes"][1]["node_id"] == "abc"
    assert lab.load_state(tmp_path / "nothing") is None


def test_plan_names_every_thing_before_it_is_made(tmp_path: Path) -> None:
    state = _plan(tmp_path, nodes=3, managers=3)
    assert [n.role for n in state.nodes] == ["manager"] * 3
    node = state.node("chlab-n2")
    assert (node.netns, node.veth_host, node.veth_node) == ("chlab-n2", "chlab-n2h", "chlab-n2c")
    assert node.address == "10.213.0.12"
    assert node.url == "unix:///run/chlab/n2.sock"
    assert node.data_root == str(tmp_path / "lab" / "n2" / "data")
    assert state.manager.name == "chlab-n1"
    assert [r[:2] for r in state.host_rules] == [("filter", "FORWARD"), ("nat", "POSTROUTING")]
    assert [n.role for n in _plan(tmp_path, 4, 1).nodes] == ["manager", *["worker"] * 3]


@pytest.mark.parametrize(("nodes", "managers"), [(1, 1), (8, 1), (3, 2), (2, 3)])
def test_plan_refuses_impossible_labs(tmp_path: Path, nodes: int, managers: int) -> None:
    with pytest.raises(TargetError):
        _plan(tmp_path, nodes, managers)


def test_daemon_command_line(tmp_path: Path) -> None:
    node = _plan(tmp_path).node("chlab-n2")
    argv = list(node.argv)
    # nsenter --net (not `ip netns exec`, which remounts /sys), a hostname of its own
    assert argv[:5] == ["nsenter", "--net=/var/run/netns/chlab-n2", "unshare", "--uts", "--"]
    assert argv[5:9] == ["sh", "-c", 'hostname chlab-n2 && exec "$@"', "sh"]
    dockerd = argv[9:]
    assert dockerd[0] == "dockerd"

    def flag(name: str) -> str:
        return dockerd[dockerd.index(name) + 1]

    assert flag("--config-file") == node.config_file  # not the host's /etc/docker/daemon.json
    assert flag("--data-root") == node.data_root
    assert flag("--exec-root") == "/run/chlab/n2"
    assert flag("-H") == "unix:///run/chlab/n2.sock"
    assert flag("--pidfile") == "/run/chlab/n2.pid"
    assert flag("--containerd-namespace") == "chlab-n2"
    assert flag("--storage-driver") == "overlay2"
    assert flag("--cgroup-parent") == "/chlab-n2"
    # iptables stays on, inside the node's namespace: published ports are DNAT rules there, so
    # a node's containers keep serving while its dockerd (and docker-proxy with it) is dead
    assert "--iptables=false" not in dockerd and "--ip-masq=false" in dockerd
    assert "--bridge=none" not in dockerd  # Swarm tasks need the default bridge
    assert lab.LAB_LABEL in dockerd


def test_storage_driver_follows_the_filesystem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHAOS_HARNESS_LAB_STORAGE_DRIVER", raising=False)
    expected = "vfs" if lab.filesystem_of(tmp_path) in lab.NESTING_FILESYSTEMS else "overlay2"
    assert lab.storage_driver_for(tmp_path) == expected
    monkeypatch.setenv("CHAOS_HARNESS_LAB_STORAGE_DRIVER", "vfs")
    assert lab.storage_driver_for(tmp_path) == "vfs"


def test_node_choice_never_takes_the_manager(tmp_path: Path) -> None:
    state = _plan(tmp_path)
    state = replace(state, nodes=tuple(replace(n, node_id=f"id{n.index}") for n in state.nodes))
    rng = random.Random(1)
    on = [_instance("web-1", "id1"), _instance("web-2", "id2"), _instance("web-3", "chlab-n3")]
    nodes, how = swarm_nodes.choose_nodes(state, on[1:], on, rng)
    assert [n.name for n in nodes] == ["chlab-n2", "chlab-n3"] and how == "selected instances"
    nodes, how = swarm_nodes.choose_nodes(
        state, on[:1], on, rng
    )  # only the manager's: another node
    assert nodes[0].name in ("chlab-n2", "chlab-n3") and how.startswith("another node")
    assert swarm_nodes.on_nodes(nodes, on) == (on[nodes[0].index - 1].name,)
    assert (
        swarm_nodes.choose_nodes(state, on[:1], on, rng, explicit="chlab-n3")[0][0].name
        == "chlab-n3"
    )
    with pytest.raises(FaultError, match="manager"):
        swarm_nodes.choose_nodes(state, on, on, rng, explicit="id1")
    with pytest.raises(FaultError, match="no node"):
        swarm_nodes.choose_nodes(state, [_instance("web-1", None)], on, rng)


def test_partition_rules_cut_only_the_other_nodes(tmp_path: Path) -> None:
    state = _plan(tmp_path)
    rules = swarm_nodes.partition_rules(state, state.node("chlab-n2"), "tag")
    assert sorted((r[0], r[2]) for r in rules) == [
        ("INPUT", "10.213.0.11"),
        ("INPUT", "10.213.0.13"),
        ("OUTPUT", "10.213.0.11"),
        ("OUTPUT", "10.213.0.13"),
    ]
    assert all(r[-2:] == ["-j", "DROP"] and "tag" in r for r in rules)


def test_a_record_of_another_lab_reverts_nothing(tmp_path: Path) -> None:
    state = replace(_plan(tmp_path), status="up")
    lab.save_state(state)
    data = swarm_nodes.node_record_data(state, [state.nodes[1]], mode="link", rules={})
    found = swarm_nodes.recorded_nodes(data)
    assert found is not None and [n.name for n in found[1]] == ["chlab-n2"]
    assert swarm_nodes.recorded_nodes({**data, "lab_created_ns": 1}) is None
    (tmp_path / "lab" / "state.json").unlink()
    assert swarm_nodes.recorded_nodes(data) is None  # lab gone: NodePartition.revert is a no-op
    record = RevertRecord("f1", "node_partition", ("web-2",), "veth down", data)
    NodePartition.revert(None, record)  # type: ignore[arg-type]


def test_cli_without_a_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOS_HARNESS_LAB_DIR", str(tmp_path / "lab"))
    monkeypatch.setenv("CHAOS_HARNESS_KUBE_LAB_DIR", str(tmp_path / "kube-lab"))
    runner = CliRunner()
    assert runner.invoke(lab_app, ["status"]).output.strip() == "no lab"
    for _ in range(2):
        done = runner.invoke(lab_app, ["down"])
        assert done.exit_code == 0 and done.output.strip() == "no lab"
    assert runner.invoke(lab_app, ["up", "--managers", "2"]).exit_code != 0


# --- slow: a real lab ---------------------------------------------------------------------


class LabService:
    """The tasks of one service on the lab, as the instances a node fault selects from."""

    kind = "swarm"

    def __init__(self, info: lab.LabInfo, service: str, run_id: str, port: int) -> None:
        self.client = docker.DockerClient(base_url=info.manager_url)
        self.info, self.service, self.run_id, self.port = info, service, run_id, port

    def tasks(self) -> list[dict[str, object]]:
        return self.client.api.tasks(filters={"service": self.service})  # type: ignore[no-any-return]

    def instances(self) -> list[Instance]:
        found = []
        for task in self.tasks():
            if task["DesiredState"] != "running" or task["Status"]["State"] != "running":
                continue
            ports = task["Status"].get("PortStatus", {}).get("Ports", [])
            node = self.info.node(task["NodeID"])
            found.append(
                Instance(
                    name=f"web-{task['Slot']}",
                    service="web",
                    container_id=task["Status"]["ContainerStatus"]["ContainerID"],
                    container_name="",
                    pid=int(task["Status"]["ContainerStatus"].get("PID") or 0),
                    url=f"http://{node.address}:{ports[0]['PublishedPort']}",
                    labels={RUN_LABEL: self.run_id},
                    node=task["NodeID"],
                )
            )
        return found

    def running_by_node(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for instance in self.instances():
            name = self.info.node(instance.node or "").name
            counts[name] = counts.get(name, 0) + 1
        return counts


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _wait(what: str, condition: object, timeout_s: float, step_s: float = 0.1) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return time.time_ns()
        time.sleep(step_s)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def _leftovers(directory: Path) -> list[str]:
    def out(*args: str) -> str:
        return subprocess.run(args, capture_output=True, text=True, check=False).stdout

    found = [f"netns {line}" for line in out("ip", "netns", "list").splitlines() if "chlab" in line]
    found += [f"link {line}" for line in out("ip", "-br", "link").splitlines() if "chlab" in line]
    found += [
        f"process {line}"
        for line in out("ps", "-eo", "pid,stat,args").splitlines()
        if ("chlab" in line or str(directory) in line) and " Z" not in line
    ]
    found += [
        f"mount {line}"
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if "chlab" in line or str(directory) in line
    ]
    rules = out("iptables", "-S") + out("iptables", "-t", "nat", "-S")
    found += [f"rule {line}" for line in rules.splitlines() if lab.RULE_COMMENT in line]
    found += [f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob("*/chlab-n*")]
    found += [f"path {p}" for p in (Path("/run/chlab"), directory / "state.json") if p.exists()]
    found += [f"path {p}" for p in (directory,) if p.exists()]
    return found


def _node_faults() -> dict[str, tuple[NodeFault[Any], bool]]:
    """Each node fault under test, and whether the managers should mark the node down."""
    return {
        "partition": (NodePartition(NodePartitionParams(mode="link")), True),
        "daemon_down": (NodeDown(NodeDownParams(mode="daemon")), True),
        "drain": (NodeDrain(NodeParams()), False),
    }


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.parametrize("case", ["partition", "daemon_down", "drain"])
def test_lab_node_fault_reschedules_and_down_leaves_nothing(
    case: str, tmp_path: Path, demo_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    if Path("/sys/class/net/chlab0").exists():
        pytest.skip("a lab is already up on this machine")
    directory = tmp_path / "lab"
    monkeypatch.setenv("CHAOS_HARNESS_LAB_DIR", str(directory))
    the_lab = lab.Lab(directory)
    started = time.monotonic()
    try:
        heartbeat_s = float(os.environ.get("CHAOS_HARNESS_TEST_HEARTBEAT", "5"))
        info = the_lab.up(nodes=3, managers=1, heartbeat_s=heartbeat_s, images=[DEMO_IMAGE])
        print(f"\nlab up in {time.monotonic() - started:.1f} s: {info.manager_url}")
        status = the_lab.status()
        assert status is not None
        assert [n.swarm_state for n in status.nodes] == ["ready"] * 3
        assert all(n.daemon_pid for n in status.nodes)
        fault, marks_down = _node_faults()[case]
        _lose_a_worker(info, tmp_path, fault, marks_down)
    finally:
        removed = the_lab.down()
        print(f"lab down: {len(removed)} things removed")
    assert the_lab.down() == []  # safe twice
    assert _leftovers(directory) == []


def _measure_down(
    info: lab.LabInfo,
    node: lab.LabNode,
    t0: int,
    marked_down: Callable[[], bool],
    rescheduled: Callable[[], bool],
) -> None:
    t_down = _wait("node marked down", marked_down, 60)
    t_moved = _wait("task rescheduled elsewhere", rescheduled, 60)
    events = swarm_nodes.node_events(
        swarm_nodes.lab_for_fault(str(info.lab_dir)), t0, time.time_ns()
    )
    event_down = next(t for t, name, _old, new in events if name == node.name and new == "down")
    print(
        f"\n{node.name} lost (heartbeat {info.heartbeat_s:g} s): marked down after "
        f"{(t_down - t0) / NS:.1f} s (node event {(event_down - t0) / NS:.2f} s), its task "
        f"running elsewhere after {(t_moved - t0) / NS:.1f} s"
    )
    assert info.heartbeat_s < (event_down - t0) / NS < 6 * info.heartbeat_s + 5


def _lose_a_worker(
    info: lab.LabInfo, tmp_path: Path, fault: NodeFault[Any], marks_down: bool
) -> None:
    manager = docker.DockerClient(base_url=info.manager_url)
    service = manager.services.create(  # type: ignore[no-untyped-call]
        DEMO_IMAGE,
        name="chlab-test-web",
        mode=ServiceMode("replicated", replicas=3),
        endpoint_spec=EndpointSpec(
            ports=[{"Protocol": "tcp", "TargetPort": 8080, "PublishMode": "host"}]
        ),
        restart_policy=RestartPolicy(condition="any", delay=NS),
        preferences=[("spread", "node.id")],
    )
    tasks = LabService(info, service.name, "r", 8080)
    _wait("3 replicas, one a node", lambda: len(tasks.running_by_node()) == 3, 90)
    victim = next(i for i in tasks.instances() if info.node(i.node or "").role == "worker")
    node = info.node(victim.node or "")
    assert _answers(victim.url)

    ctx = FaultContext(tasks, "r", tmp_path, random.Random(3))  # type: ignore[arg-type]
    record = fault.plan(ctx, "f1", [victim])
    assert record.data["nodes"] == [node.name] and record.targets == (victim.name,)

    def marked_down() -> bool:
        return manager.api.inspect_node(node.node_id)["Status"]["State"] == "down"

    def rescheduled() -> bool:
        spread = tasks.running_by_node()
        return node.name not in spread and sum(spread.values()) == 3

    t0 = time.time_ns()
    fault.apply(ctx, record)
    try:
        if isinstance(fault, NodePartition):
            assert not _answers(victim.url)  # cut off: the load generator cannot reach it
        if marks_down:
            _measure_down(info, node, t0, marked_down, rescheduled)
        else:  # drained: the node stays up and Swarm moves its task away
            t_moved = _wait("task moved off the drained node", rescheduled, 60)
            print(
                f"\n{node.name} drained: task running elsewhere after {(t_moved - t0) / NS:.1f} s"
            )
    finally:
        type(fault).revert(ctx, record)
    t_healed = time.time_ns()
    type(fault).revert(ctx, record)  # idempotent
    ready = lambda: manager.api.inspect_node(node.node_id)["Status"]["State"] == "ready"  # noqa: E731
    t_back = _wait("node ready again", ready, 60)
    print(f"{node.name} ready again {(t_back - t_healed) / NS:.1f} s after the revert")
    assert all(_answers(i.url) for i in tasks.instances())
    service.remove()  # type: ignore[no-untyped-call]


@pytest.mark.slow
@pytest.mark.docker
def test_a_lab_built_for_a_sigkilled_run_is_taken_down_by_cleanup(
    tmp_path: Path, demo_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`target: {kind: swarm, lab: ...}` builds a lab for the run; the run SIGKILLed, nobody
    takes it down but `harness cleanup`, which finds its builder dead (the state's creator)."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    if Path("/sys/class/net/chlab0").exists():
        pytest.skip("a lab is already up on this machine")
    directory = tmp_path / "lab"
    monkeypatch.setenv("CHAOS_HARNESS_LAB_DIR", str(directory))
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "name: lab-for-a-run\n"
        "target: {kind: swarm, lab: {nodes: 2, heartbeat: 2s}}\n"
        "workload: {image: demo, replicas: 2}\n"
        "load: {users: 2, spawn_rate: 2, duration: 60s}\n"
    )
    out = tmp_path / "runs"
    repo = Path(__file__).resolve().parent.parent
    harness = [sys.executable, "-m", "harness"]
    process = subprocess.Popen(
        [*harness, "run", str(scenario), "--out", str(out)],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def deployed() -> bool:
            return any('"action":"load_start"' in p.read_text() for p in out.glob("*/events.jsonl"))

        deadline = time.monotonic() + 240
        while not deployed() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.5)
        assert deployed(), "the run never started its load"
        os.kill(process.pid, 9)
        process.wait(timeout=30)
        state = lab.load_state(directory)
        assert state is not None and state.for_run and state.status == "up"
        done = subprocess.run(
            [*harness, "cleanup", "--results", str(out)],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "took down the swarm lab" in done.stdout
    finally:
        if process.poll() is None:
            process.kill()
        lab.Lab(directory).down()
    assert _leftovers(directory) == []
