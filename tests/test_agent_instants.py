"""Container start and exit instants read by the fault agent on the node (harness.agent.watching,
harness.agent.instants), checked against what this test reads itself: its own pidfd on the
container's init process (the kernel's word on the exit) and that process's /proc start time.

On Docker (default, a few seconds): the agent's watcher and its `instants` call, in this
process, on a real container. On the Kubernetes lab with CHAOS_HARNESS_HOST_ACCESS=none: a
whole run whose kill goes through the agent, its die and start stamped from the agent; the same
run from the host (slow) for the comparison of kill -> die and die -> start.
"""

from __future__ import annotations

import os
import secrets
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.agent.instants import AgentInstants
from harness.agent.protocol import ContainerInstants, InstantsRequest, Reply, Request
from harness.agent.relay import AgentRelay
from harness.agent.watching import Watcher, instants, read_seen
from harness.labs.kubernetes import lab as kube_lab
from harness.results import read_json_lines
from harness.targets.kubernetes.events import PodTracker, SlotBook
from harness.targets.kubernetes.host import TICK_NS, process_start_ns, scan_container_pid
from harness.targets.kubernetes.target import InstantSources
from tests.conftest import DeployFactory
from tests.helpers import Sampler, harness_cli, wait_until
from tests.kube_labs import module_lab
from tests.test_agent_kube_run import NO_HOST, run_dir_of, run_pod_containers
from tests.test_agent_relay import SKEW_NS, ScriptedAgent
from tests.test_kubernetes_logic import NS, T0, _container, _crash, _pod

pytestmark = pytest.mark.docker
SLACK_NS = 25_000_000  # two threads' wake-ups on a busy 2-core machine


@pytest.fixture
def watcher(tmp_path: Path) -> Iterator[Path]:
    """The agent's exit watcher (serve's thread) over a state dir of its own."""
    stop = threading.Event()
    thread = threading.Thread(target=Watcher(tmp_path).run, args=(stop,), daemon=True)
    thread.start()
    yield tmp_path
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


def own_exit_ns(pidfd: int, timeout_s: float = 10.0) -> int:
    readable, _, _ = select.select([pidfd], [], [], timeout_s)
    assert readable, "the process did not exit"
    return time.time_ns()


def test_the_agent_stamps_a_container_s_start_and_exit_as_the_kernel_says(
    deploy: DeployFactory, watcher: Path
) -> None:
    target = deploy()
    (instance,) = target.instances()
    asked = InstantsRequest(run_id="r1", container_ids=[instance.container_id], watch=True)
    (seen,) = instants(asked, watcher, "here").instants
    assert seen.watching and seen.exited_ns is None
    started = process_start_ns(instance.pid)
    assert started is not None and seen.started_ns is not None
    assert abs(seen.started_ns - started) <= TICK_NS  # the same tick, read at another time
    own = os.pidfd_open(instance.pid)
    try:
        os.kill(instance.pid, signal.SIGKILL)
        exited = own_exit_ns(own)
    finally:
        os.close(own)
    read = InstantsRequest(run_id="r1", container_ids=[instance.container_id])
    assert wait_until(lambda: instants(read, watcher, "here").instants[0].exited_ns, 5)
    (after,) = instants(read, watcher, "here").instants
    assert after.exited_ns is not None and not after.watching
    print(f"\nagent's exit - the test's: {(after.exited_ns - exited) / 1e6:+.2f} ms")
    assert abs(after.exited_ns - exited) <= SLACK_NS


def test_a_container_of_another_node_is_not_watched_and_not_waited_for(watcher: Path) -> None:
    absent = secrets.token_hex(32)
    began = time.monotonic()
    asked = InstantsRequest(run_id="r1", container_ids=[absent, "short"], watch=True)
    reply = instants(asked, watcher, "here")
    assert time.monotonic() - began < 1.0
    assert [(i.started_ns, i.exited_ns, i.watching) for i in reply.instants] == [
        (None, None, False),
        (None, None, False),
    ]
    assert not (watcher / "runs/r1/instants/watch").exists()


def test_seen_lines_cut_short_or_unknown_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "seen.tsv").write_text(
        "start\tc1\t42\t1000\nexit\tc1\t2000\ngone\tc2\nstart\tc3\t43\tnot a time\n"
        "odd\tc4\nexit\tc3\t30"  # the last line is still being written
    )
    seen = read_seen(tmp_path)
    assert (seen["c1"].started_ns, seen["c1"].exited_ns, seen["c1"].watching) == (1000, 2000, False)
    assert seen["c2"].taken and seen["c2"].started_ns is None
    assert seen["c3"].started_ns is None and seen["c3"].exited_ns is None
    assert not seen["c4"].taken


def test_the_tracker_takes_the_agents_instants_set_after_it_subscribed() -> None:
    """The holder the target gives its trackers: this host's sources, then the agents' (set
    by the runner once they answer), which this host's never replace again."""
    sources = InstantSources()
    sources.fallback({"c0": T0}.get, None)
    tracker = PodTracker(SlotBook(), sources.started_at, sources.exited_at, lambda: sources.via)
    sources.use({"c1": T0 + 250_000_000}.get, {"c1": T0 + 3 * NS + 123}.get, "agent")
    sources.fallback({"c1": T0}.get, None)  # a resubscription's: the agents' stay
    running = _container("c1", running_since_ns=T0)
    (start,) = [e for e in tracker.update(_pod(container=running), T0 + NS) if e.action == "start"]
    assert start.time_ns == T0 + 260_000_000 - 1
    assert start.attributes["time_source"] == "host" and start.attributes["host_via"] == "agent"
    ended = replace(running, running_since_ns=None, terminated=_crash("c1", T0 + 3 * NS))
    (die,) = [e for e in tracker.update(_pod(container=ended), T0 + 4 * NS) if e.action == "die"]
    assert die.time_ns == T0 + 3 * NS + 123  # the node's instant, not the API's second
    assert die.attributes["host_via"] == "agent"
    unseen = _container("c9", running_since_ns=T0 + 5 * NS)
    (late,) = [
        e for e in tracker.update(_pod(container=unseen), T0 + 6 * NS) if e.action == "start"
    ]
    assert late.attributes["time_source"] == "api" and "host_via" not in late.attributes


class NodeAgent(ScriptedAgent):
    """A scripted agent (clock SKEW_NS ahead) that holds the containers in `here`:
    container id -> (started_ns, exited_ns) on its own clock."""

    def __init__(self, node: str, here: dict[str, tuple[int, int | None]]) -> None:
        super().__init__(node)
        self.here = here

    def run(self, argv: Sequence[str], timeout_s: float) -> str:
        body = None if "time.time_ns()" in argv[-1] else Request.model_validate_json(argv[-1]).body
        if not isinstance(body, InstantsRequest):
            return super().run(argv, timeout_s)
        self.requests.append(body.model_dump())
        found = [
            ContainerInstants(
                container_id=cid,
                started_ns=self.here[cid][0],
                exited_ns=self.here[cid][1],
                watching=body.watch and self.here[cid][1] is None,
            )
            if cid in self.here
            else ContainerInstants(container_id=cid)
            for cid in body.container_ids
        ]
        return Reply(ok=True, node=self.node, instants=found).model_dump_json() + "\n"


def test_the_agents_instants_come_from_the_container_s_node_on_our_clock() -> None:
    n1 = NodeAgent("n1", {})
    n2 = NodeAgent("n2", {"c2": (T0 + SKEW_NS, T0 + 3 * NS + SKEW_NS)})
    relay = AgentRelay("run-1", 0, {"n1": n1, "n2": n2})
    found = AgentInstants(relay)
    error_ns = relay.offsets["n2"].uncertainty_ns + 1_000_000
    started = found.started_at("c2")
    assert started is not None and abs(started - T0) <= error_ns
    asked = [r for r in n1.requests + n2.requests if r["op"] == "instants"]
    assert [(r["container_ids"], r["watch"]) for r in asked] == [(["c2"], True)] * 2  # both
    exited = found.exited_at("c2")
    assert exited is not None and abs(exited - (T0 + 3 * NS)) <= error_ns
    assert [r["watch"] for r in n2.requests if r["op"] == "instants"] == [True, False]
    assert len([r for r in n1.requests if r["op"] == "instants"]) == 1  # its node is known now
    assert found.started_at("c-nowhere") is None and found.exited_at("not an id!") is None


# --- the Kubernetes lab: a whole run ---------------------------------------------------------


@pytest.fixture(scope="module")
def lab(demo_image: str) -> Iterator[kube_lab.KubeLabInfo]:
    del demo_image
    yield from module_lab(nodes=2)


class Witness(Sampler):
    """This test's own pidfd on every run pod's container and its /proc start time, and the
    instant each pidfd says the process exited (read on a thread of its own)."""

    interval_s = 0.5

    def __init__(self, lab: kube_lab.KubeLabInfo) -> None:
        self.lab = lab
        self.started: dict[str, int] = {}  # container id -> its process's start (wall, ns)
        self.exited: dict[str, int] = {}
        self._fds: dict[int, str] = {}
        self._poll = select.poll()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._waiter = threading.Thread(target=self._wait, daemon=True)
        self._waiter.start()
        super().__init__()

    def sample(self) -> None:
        try:
            containers = run_pod_containers(self.lab)
        except (subprocess.SubprocessError, ValueError):
            return
        for cid in containers:
            if cid in self.started:
                continue
            pid = scan_container_pid(cid)
            started = process_start_ns(pid) if pid else None
            if started is None:
                continue
            fd = os.pidfd_open(pid)
            with self._lock:
                self.started[cid] = started
                self._fds[fd] = cid
                self._poll.register(fd, select.POLLIN)

    def _wait(self) -> None:
        while not self._done.is_set():
            ready = self._poll.poll(50)
            now = time.time_ns()
            with self._lock:
                for fd, _ in ready:
                    self.exited[self._fds.pop(fd)] = now
                    self._poll.unregister(fd)
                    os.close(fd)

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self._done.set()
        self._waiter.join(5)
        for fd in self._fds:
            os.close(fd)


SCENARIO = """
name: agent-instants
target: {kind: kubernetes, agent: {use: auto}}
workload:
  image: demo
  replicas: 2
  port: 8080
  health: {path: /health, interval: 1s, timeout: 1s, retries: 3}
load: {users: 2, spawn_rate: 2, duration: 12s, paths: [{path: /}], timeout: 1s}
probes: {interval: 200ms, path: /health}
faults:
  - {kind: container_kill, name: crash, at: 4s, select: {count: 1}}
"""


def kill_die_start(run: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The kill's fault_inject, its container's die, the next start in its pod."""
    events = read_json_lines(run / "events.jsonl")
    (kill,) = [e for e in events if e["action"] == "fault_inject"]
    (victim,) = kill["attributes"]["targets"]
    later = [e for e in events if e["time_ns"] >= kill["time_ns"] and e["instance"] == victim]
    die = next(e for e in later if e["action"] == "die")
    start = next(e for e in later if e["action"] == "start" and e["time_ns"] > die["time_ns"])
    return kill, die, start


# both slow (a minute each, a lab run): the default suite keeps the agent's stamps against
# the kernel's on Docker (above) and the tracker's logic; the suite's time is 45 min at most
@pytest.mark.slow
@pytest.mark.parametrize("via", ["agent", "host"])
def test_a_kill_s_die_and_start_are_the_node_s_instants(
    lab: kube_lab.KubeLabInfo, tmp_path: Path, via: str
) -> None:
    scenario = tmp_path / "kill.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "out"
    env = NO_HOST if via == "agent" else {**os.environ}
    with Witness(lab) as witness:
        done = harness_cli("run", str(scenario), "--out", str(out), env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = run_dir_of(out)
    kill, die, start = kill_die_start(run)
    seen_die, seen_start = die["attributes"], start["attributes"]
    assert seen_die["time_source"] == "host" and seen_start["time_source"] == "host"
    bound_ns = SLACK_NS
    if via == "agent":
        assert seen_die.get("host_via") == "agent" and seen_start.get("host_via") == "agent"
        # what the agent itself did, beside where (its reply's own words)
        assert ": host signal to PID" in kill["attributes"]["mechanism"], kill["attributes"]
        clocks = read_json(run / "manifest.json")["agents"]["clocks"]
        bound_ns += int(max(c["uncertainty_ms"] for c in clocks.values()) * 1e6)
    else:
        assert "host_via" not in seen_die and "host_via" not in seen_start
    exited = witness.exited[die["container_id"]]
    started = witness.started[start["container_id"]]
    host_start = int(seen_start["host_time_ns"])
    print(
        f"\n{via}: kill -> die {(die['time_ns'] - kill['time_ns']) / 1e6:.1f} ms, "
        f"die -> start {(host_start - die['time_ns']) / 1e6:.1f} ms; "
        f"die - the test's pidfd {(die['time_ns'] - exited) / 1e6:+.2f} ms, start - the "
        f"test's /proc {(host_start - started) / 1e6:+.2f} ms (bound {bound_ns / 1e6:.1f} ms); "
        f"API: die {seen_die.get('api_time_ns')}, start {seen_start.get('api_time_ns')}"
    )
    assert abs(die["time_ns"] - exited) <= bound_ns
    assert abs(host_start - started) <= TICK_NS + bound_ns


def read_json(path: Path) -> Any:
    import json

    return json.loads(path.read_text())
