"""The Swarm target on the multi-node lab.

Fast tests cover the pure parts: node events as node_state, a task's node in task_state, the
time of a desired-state change, slot routes to a node's address. The slow tests run
scenarios/node-partition.yaml with `harness run`: once bringing the lab up and down itself, once
on a lab that was already up (`harness lab up`), which the run must use and leave up. Both check
what events.jsonl says happened (the node marked down and ready again, the partitioned node's
task replaced on another node) and that nothing is left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import pytest

from harness.images import DEMO_IMAGE
from harness.labs.swarm import lab
from harness.targets.base import RUN_LABEL
from harness.targets.swarm.events import TaskTracker, TaskView, node_event, task_view
from harness.targets.swarm.routes import SlotRouter
from tests.conftest import labelled_objects

REPO = Path(__file__).resolve().parent.parent
SCENARIO = REPO / "scenarios" / "node-partition.yaml"
NS = 1_000_000_000


# --- fast: pure parts -------------------------------------------------------------------------


def test_node_events_become_node_state_and_availability() -> None:
    raw = {
        "Type": "node",
        "Action": "update",
        "Actor": {"ID": "abc", "Attributes": {"name": "chlab-n2", "state.old": "ready"}},
        "timeNano": 5 * NS,
    }
    raw["Actor"]["Attributes"]["state.new"] = "down"  # type: ignore[index]
    event = node_event(raw)
    assert event is not None and event.action == "node_state" and event.time_ns == 5 * NS
    assert dict(event.attributes) == {
        "node": "chlab-n2",
        "node_id": "abc",
        "old": "ready",
        "new": "down",
    }
    drain = {"Actor": {"ID": "abc", "Attributes": {"name": "n", "availability.new": "drain"}}}
    found = node_event({**drain, "time": 7})
    assert found is not None and found.action == "node_availability" and found.time_ns == 7 * NS
    assert node_event({"Actor": {"ID": "abc", "Attributes": {"name": "n"}}, "time": 1}) is None


def _raw_task(state: str, desired: str, status_at: str, updated_at: str) -> dict[str, Any]:
    return {
        "ID": "t1",
        "Slot": 2,
        "NodeID": "node-2",
        "DesiredState": desired,
        "UpdatedAt": updated_at,
        "Status": {
            "State": state,
            "Timestamp": status_at,
            "ContainerStatus": {"ContainerID": "c1", "PID": 42},
            "PortStatus": {"Ports": [{"PublishedPort": 30001, "TargetPort": 8080}]},
        },
    }


def test_task_state_names_the_node_and_dates_a_desired_state_change() -> None:
    tracker = TaskTracker("r1")
    tracker.node_names["node-2"] = "chlab-n2"
    up = task_view(
        _raw_task("running", "running", "1970-01-01T00:00:01Z", "1970-01-01T00:00:01Z"),
        "chaos-r1-web",
    )
    assert (up.node_id, up.published_port, up.updated_ns) == ("node-2", 30001, NS)
    (first, _converged) = tracker.update([up], desired=1, observed_ns=2 * NS)
    assert first.attributes["node"] == "chlab-n2" and first.attributes["node_id"] == "node-2"
    # the managers lost the node: Swarm wants the task shut down; its state is still the old
    # "running" (of 1 s), the task was written at 9 s: that is when the change happened
    lost = task_view(
        _raw_task("running", "shutdown", "1970-01-01T00:00:01Z", "1970-01-01T00:00:09Z"),
        "chaos-r1-web",
    )
    events = tracker.update([lost], desired=1, observed_ns=10 * NS)
    assert [e.action for e in events] == ["task_state", "service_degraded"]
    assert events[0].time_ns == 9 * NS and events[0].attributes["desired_state"] == "shutdown"


def test_slot_routes_go_to_the_tasks_node_address() -> None:
    addresses = {"node-2": "10.213.0.12"}
    router = SlotRouter("run-a", 8080, lambda node: addresses.get(node, "127.0.0.1"))
    rules = router._rules(
        {2: (router._node_address("node-2"), 30001), 1: (router._node_address(""), 5)}
    )
    assert rules[1][-2:] == ["--to-destination", "10.213.0.12:30001"]
    assert rules[0][-1] == "127.0.0.1:5" and router.address(1) in rules[0]
    task = TaskView("t", "s", 1, "running", "running", 0, "c", 1, 30001, "", "", None)
    assert task.node_id == "" and task.updated_ns == 0  # a single-node swarm's view still works


# --- slow: harness run on the lab -------------------------------------------------------------


def _host_state(client: docker.DockerClient) -> tuple[str, str]:
    """The host engine's swarm state, and the run that created its swarm (if one did)."""
    info = client.info().get("Swarm") or {}
    labels: dict[str, str] = {}
    if info.get("LocalNodeState") == "active" and info.get("ControlAvailable"):
        labels = client.swarm.attrs.get("Spec", {}).get("Labels") or {}
    return str(info.get("LocalNodeState")), labels.get(RUN_LABEL, "")


def _lab_leftovers(directory: Path) -> list[str]:
    def out(*args: str) -> str:
        return subprocess.run(args, capture_output=True, text=True, check=False).stdout

    found = [f"netns {line}" for line in out("ip", "netns", "list").splitlines() if "chlab" in line]
    found += [f"link {line}" for line in out("ip", "-br", "link").splitlines() if "chlab" in line]
    found += [f"socket {p}" for p in Path("/run").glob("chlab/*.sock")]
    found += [f"path {p}" for p in (Path("/run/chlab"), directory / "state.json") if p.exists()]
    rules = out("iptables", "-S") + out("iptables", "-t", "nat", "-S")
    found += [f"rule {line}" for line in rules.splitlines() if lab.RULE_COMMENT in line]
    return found


def _run(tmp_path: Path, env: dict[str, str]) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(SCENARIO), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env=env,
    )
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = out.iterdir()
    return run_dir, done


def _check_partition_events(run_dir: Path) -> dict[str, float]:
    """The node marked down then ready, and the slot's task running on another node."""
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    events.sort(key=lambda e: e["time_ns"])
    inject = next(e for e in events if e["action"] == "fault_inject")
    revert = next(e for e in events if e["action"] == "fault_revert")
    t0, (victim,) = inject["time_ns"], inject["attributes"]["targets"]
    nodes = [e for e in events if e["action"] == "node_state" and e["time_ns"] >= t0]
    down = next(e for e in nodes if e["attributes"]["new"] == "down")
    cut = down["attributes"]["node"]
    ready = next(
        e
        for e in nodes
        if e["attributes"]["node"] == cut
        and e["attributes"]["new"] == "ready"
        and e["time_ns"] > down["time_ns"]
    )
    assert ready["time_ns"] >= revert["time_ns"], "the node came back before the link did"
    tasks = [e for e in events if e["action"] == "task_state" and e["instance"] == victim]
    before = [e for e in tasks if e["time_ns"] < t0 and e["attributes"]["state"] == "running"]
    assert before and before[-1]["attributes"]["node"] == cut, "the victim was not on the cut node"
    moved = next(
        e
        for e in tasks
        if e["time_ns"] >= down["time_ns"]
        and e["attributes"]["state"] == "running"
        and e["attributes"]["desired_state"] == "running"
        and e["attributes"]["node"] != cut
    )
    converged = next(
        e for e in events if e["action"] == "service_converged" and e["time_ns"] >= down["time_ns"]
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    (fault,) = summary["faults"]
    assert fault["kind"] == "node_partition" and fault["targets"] == [victim]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["target"] == "swarm" and manifest["versions"]["lab_nodes"] == "3"
    return {
        "down_s": (down["time_ns"] - t0) / NS,
        "running_elsewhere_s": (moved["time_ns"] - t0) / NS,
        "converged_s": (converged["time_ns"] - t0) / NS,
        "ready_after_revert_s": (ready["time_ns"] - revert["time_ns"]) / NS,
        "ttr_s": fault["ttr_s"] if fault["ttr_s"] is not None else float("nan"),
        "failed_requests": fault["failed_requests"],
        "availability": fault["availability"],
    }


@pytest.fixture
def no_lab(tmp_path: Path, docker_client: docker.DockerClient, demo_image: str) -> dict[str, str]:
    """Root, no lab up on this machine; the environment for a lab in tmp_path."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    if Path(f"/sys/class/net/{lab.BRIDGE}").exists() or lab.Lab().state() is not None:
        pytest.skip("a lab is already up on this machine")
    return {**os.environ, "CHAOS_HARNESS_LAB_DIR": str(tmp_path / "lab")}


@pytest.mark.slow
@pytest.mark.docker
def test_node_partition_run_brings_the_lab_up_and_down(
    tmp_path: Path, docker_client: docker.DockerClient, no_lab: dict[str, str]
) -> None:
    host_before = _host_state(docker_client)
    try:
        run_dir, done = _run(tmp_path, no_lab)
    finally:
        leftovers = _lab_leftovers(tmp_path / "lab")
        lab.Lab(tmp_path / "lab").down()  # whatever the run left, for the next test
    numbers = _check_partition_events(run_dir)
    print(f"\nexit {done.returncode}; " + ", ".join(f"{k} {v:g}" for k, v in numbers.items()))
    assert leftovers == []
    run_id = json.loads((run_dir / "manifest.json").read_text())["run_id"]
    assert labelled_objects(docker_client, run_id) == []
    state, creator = _host_state(docker_client)
    # the lab's swarm is the lab's: the host engine is left as it was (another run may have
    # made it a swarm of its own meanwhile, never this one)
    assert state == host_before[0] or creator not in ("", run_id)
    assert creator != run_id


@pytest.mark.slow
@pytest.mark.docker
def test_node_partition_run_reuses_a_lab_and_leaves_it_up(
    tmp_path: Path, docker_client: docker.DockerClient, no_lab: dict[str, str]
) -> None:
    directory = tmp_path / "lab"
    the_lab = lab.Lab(directory)
    try:
        info = the_lab.up(nodes=3, managers=1, heartbeat_s=5.0, images=[DEMO_IMAGE])
        run_dir, done = _run(tmp_path, no_lab)
        numbers = _check_partition_events(run_dir)
        print(f"\nexit {done.returncode}; " + ", ".join(f"{k} {v:g}" for k, v in numbers.items()))
        state = the_lab.state()
        assert state is not None and state.status == "up", "the run took down a lab it did not make"
        assert state.heartbeat_s == 5.0, "the lab's own heartbeat was not restored"
        run_id = json.loads((run_dir / "manifest.json").read_text())["run_id"]
        for node in info.nodes:
            engine = docker.DockerClient(base_url=node.url)
            assert labelled_objects(engine, run_id) == [], node.name
        manager = docker.DockerClient(base_url=info.manager_url)
        assert manager.services.list(filters={"label": f"{RUN_LABEL}={run_id}"}) == []
        assert manager.info()["Swarm"]["LocalNodeState"] == "active"
    finally:
        the_lab.down()
    assert _lab_leftovers(directory) == []
