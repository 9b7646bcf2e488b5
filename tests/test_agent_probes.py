"""Probes from the fault agent (harness.agent.probing, harness.agent.prober), for real.

Without an engine: the agent's program run as processes of this host (as in its container),
probing HTTP servers of this test and a port nobody listens on; the choice of `probes.via` by
trying, with real probes. On the Docker engine: the agent as a container with the host's PID
and network namespaces, probing the demo replicas, one of them killed and started again by
the test through the Docker SDK; and a whole run whose probes come from the agent. On the
Kubernetes lab (slow): a run without host access whose probes come from each node's agent.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import pandas as pd
import pytest
import yaml

from harness.agent.docker import DockerAgents, agent_name
from harness.agent.image import agent_image as agent_image_of
from harness.agent.prober import AgentProber, agent_url, choose_probes
from harness.agent.protocol import (
    CALL_ARGV,
    PROTOCOL_VERSION,
    SERVE_ARGV,
    ProbeReadRequest,
    ProbeStartRequest,
    ProbeStopRequest,
    ProbeTarget,
    Reply,
)
from harness.agent.relay import AgentRelay, call
from harness.errors import AgentError
from harness.hostsys import HOST_ACCESS_ENV
from harness.labs.kubernetes import lab as kube_lab
from harness.results.probes import read_probe_log
from harness.targets.base import Instance
from harness.targets.docker.remote import engine_address
from tests.conftest import DeployFactory
from tests.helpers import REPO, harness_cli, wait_until

NS = 1_000_000_000


class LocalChannel:
    """The agent as processes of this host: what an exec in its container does on a node."""

    node = "local"

    def __init__(self, state: Path) -> None:
        self.state = state

    def env(self) -> dict[str, str]:
        return {**os.environ, "CHAOS_AGENT_STATE": str(self.state), "PYTHONPATH": str(REPO)}

    def run(self, argv: Sequence[str], timeout_s: float) -> str:
        command = [sys.executable, *argv[1:]]  # argv[0] is the image's python3
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, env=self.env()
        )
        if done.returncode != 0:
            raise AgentError(f"exit {done.returncode}: {done.stderr[-500:]}")
        return done.stdout


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return None


@pytest.fixture
def server() -> Iterator[str]:
    """An HTTP server of this test on loopback: its URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def closed_url() -> str:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def channel(tmp_path: Path) -> Iterator[LocalChannel]:
    local = LocalChannel(tmp_path / "agent-state")
    yield local
    for pid in _probe_processes(str(local.state)):  # only those of this test's state dir
        os.kill(pid, signal.SIGKILL)


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent that does not reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _probe_processes(where: str) -> list[int]:
    """The live probe processes whose directory holds `where`, read from /proc by the test."""
    found = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    probing = [p for p in found if "harness.agent probe" in _cmdline(str(p))]
    return [p for p in probing if where in _cmdline(str(p)) and _alive(p)]


def _start(channel: LocalChannel, targets: list[ProbeTarget], idle_s: float = 60.0) -> Reply:
    request = ProbeStartRequest(
        run_id="r1", targets=targets, interval_s=0.05, timeout_s=0.5, idle_s=idle_s
    )
    reply = call(channel, request)
    assert reply.ok, reply.error
    return reply


# --- the agent's program, as processes of this host ------------------------------------------


def test_the_probe_process_probes_each_target_and_reads_return_only_new_lines(
    channel: LocalChannel, server: str, closed_url: str
) -> None:
    before = time.time_ns()
    started = _start(
        channel, [ProbeTarget(name="up", url=server), ProbeTarget(name="down", url=closed_url)]
    )
    assert started.pid is not None and _alive(started.pid) and started.next_offset == 0
    time.sleep(1.0)
    first = call(channel, ProbeReadRequest(run_id="r1", offset=started.next_offset))
    assert first.pid == started.pid
    up = [p for p in first.probes if p.instance == "up"]
    down = [p for p in first.probes if p.instance == "down"]
    assert len(up) >= 5 and all(p.ok and p.error is None for p in up)
    assert len(down) >= 5 and all(not p.ok for p in down)
    assert {p.error for p in down} == {"ConnectionRefusedError"}
    assert all(before <= p.start_ns <= first.time_ns for p in first.probes)
    second = call(channel, ProbeReadRequest(run_id="r1", offset=first.next_offset))
    assert second.probes and second.next_offset > first.next_offset
    assert min(p.start_ns for p in second.probes) >= max(p.start_ns for p in first.probes) - (
        NS // 2  # the two threads write in their own order; never a line twice
    )
    assert call(channel, ProbeStopRequest(run_id="r1")).ok
    assert not _alive(started.pid)
    after = call(channel, ProbeReadRequest(run_id="r1", offset=second.next_offset))
    assert after.pid is None
    assert call(channel, ProbeStopRequest(run_id="r1")).ok  # twice: nothing running, ok
    print(f"\nprobes in 1 s from the process: {len(up)} up, {len(down)} down (interval 50 ms)")


def test_a_probe_process_nobody_reads_stops_by_itself(channel: LocalChannel, server: str) -> None:
    started = _start(channel, [ProbeTarget(name="up", url=server)], idle_s=1.0)
    assert started.pid is not None
    began = time.monotonic()
    assert wait_until(lambda: not _alive(started.pid or 0), 10)
    took = time.monotonic() - began
    assert 0.5 <= took < 5.0, took
    log = channel.state / "runs" / "r1" / "probes" / "probe.log"
    assert "no read for 1 s" in log.read_text()


def test_a_stopped_agent_stops_its_probe_processes(channel: LocalChannel, server: str) -> None:
    serve = subprocess.Popen(
        [sys.executable, *SERVE_ARGV[1:]], env=channel.env(), stderr=subprocess.PIPE, text=True
    )
    try:
        started = _start(channel, [ProbeTarget(name="up", url=server)])
        assert started.pid is not None and _alive(started.pid)
        serve.send_signal(signal.SIGTERM)  # the pod deleted, the container removed
        assert serve.wait(30) == 0
        assert not _alive(started.pid)
        assert serve.stderr is not None and "stopped the probes of r1" in serve.stderr.read()
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait(10)


def test_both_sides_refuse_another_protocol_version_by_name(channel: LocalChannel) -> None:
    old = json.dumps({"version": PROTOCOL_VERSION - 1, "body": {"op": "info"}})
    reply = Reply.model_validate_json(channel.run([*CALL_ARGV, old], 30).strip())
    assert not reply.ok and f"protocol {PROTOCOL_VERSION - 1}" in reply.error

    class NewerAgent:
        node = "n1"

        def run(self, argv: Sequence[str], timeout_s: float) -> str:
            return json.dumps({"version": PROTOCOL_VERSION + 1, "ok": True, "novel": 1})

    with pytest.raises(AgentError, match=f"speaks protocol {PROTOCOL_VERSION + 1}"):
        call(NewerAgent(), ProbeReadRequest(run_id="r1"))


def test_a_probe_request_names_a_run_never_a_path(channel: LocalChannel) -> None:
    for op in ("probe_read", "probe_stop"):
        raw = json.dumps({"body": {"op": op, "run_id": "../../etc"}})
        reply = Reply.model_validate_json(channel.run([*CALL_ARGV, raw], 30).strip())
        assert not reply.ok and "names one directory" in reply.error, reply
    assert not (channel.state.parent / "etc").exists()


# --- probes.via: chosen by trying -------------------------------------------------------------


def _instance(name: str, url: str, node: str | None = None) -> Instance:
    return Instance(
        name=name, service="web", container_id=name, container_name=name, pid=0, url=url, node=node
    )


def test_auto_probes_from_here_when_every_instance_answers_and_from_the_agents_when_one_does_not(
    server: str, closed_url: str
) -> None:
    reachable = [_instance("web-1", server), _instance("web-2", server)]
    choice = choose_probes("auto", reachable, "/health", have_agents=True)
    assert (choice.via, choice.asked) == ("harness", "auto")
    assert "every instance (2) answered" in choice.reason
    one_unreachable = [_instance("web-1", server), _instance("web-2", closed_url)]
    choice = choose_probes("auto", one_unreachable, "/health", have_agents=True)
    assert choice.via == "agent"
    assert "web-2 (ConnectionRefusedError)" in choice.reason and "web-1" not in choice.reason
    without = choose_probes("auto", one_unreachable, "/health", have_agents=False)
    assert without.via == "harness" and "has no agents" in without.reason


def test_asked_explicitly_nothing_is_tried_and_agent_without_agents_is_an_error() -> None:
    tried: list[str] = []

    def probe(url: str, timeout_s: float) -> tuple[bool, str | None]:
        tried.append(url)
        return False, "timeout"

    instances = [_instance("web-1", "http://192.0.2.1:80")]
    assert choose_probes("harness", instances, "/", True, probe).via == "harness"
    assert choose_probes("agent", instances, "/", True, probe).via == "agent"
    assert tried == []
    with pytest.raises(AgentError, match="no fault agents"):
        choose_probes("agent", instances, "/", False, probe)


def test_auto_tries_every_instance_at_once() -> None:
    def silent(url: str, timeout_s: float) -> tuple[bool, str | None]:
        time.sleep(0.5)  # an address that drops packets: the timeout, here shortened
        return False, "timeout"

    instances = [_instance(f"web-{n}", f"http://192.0.2.{n}:80") for n in range(1, 7)]
    began = time.monotonic()
    choice = choose_probes("auto", instances, "/", True, silent)
    assert choice.via == "agent" and choice.reason.count("(timeout)") == 6
    assert time.monotonic() - began < 1.5  # 6 x 0.5 s one after the other would be 3 s


def test_the_agent_probes_an_instances_own_address_not_a_route_of_this_host() -> None:
    routed = Instance(
        name="web-1",
        service="web",
        container_id="c",
        container_name="c",
        pid=0,
        url="http://127.0.77.1:80",  # a slot address of this machine
        address="10.244.1.7",
        port=8080,
    )
    assert agent_url(routed, "/health") == "http://10.244.1.7:8080/health"
    v6 = _instance("web-2", "http://[fd00::7]:8080")
    assert agent_url(v6, "/") == "http://[fd00::7]:8080/"


def _scenario(tmp_path: Path, **extra: object) -> Path:
    data: dict[str, object] = {
        "name": "agent-probes",
        "target": "docker",
        "workload": {"image": "demo", "replicas": 2},
        "load": {"users": 2, "duration": "20s", "routing": "per_instance"},
        "probes": {"via": "agent", "interval": "100ms"},
        "faults": [{"kind": "container_kill", "at": "6s", "select": {"names": ["web-1"]}}],
        **extra,
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_probes_via_agent_without_agents_is_refused_before_anything_runs(tmp_path: Path) -> None:
    refused = harness_cli("validate", str(_scenario(tmp_path)), timeout_s=120)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "probes.via: agent needs the run's fault agents" in refused.stderr
    allowed = _scenario(tmp_path, target={"kind": "docker", "agent": {"use": "always"}})
    done = harness_cli("validate", str(allowed), timeout_s=120)
    assert done.returncode == 0, done.stdout + done.stderr


# --- on the Docker engine: the agent as a container ------------------------------------------


@pytest.fixture(scope="module")
def agent_image(docker_client: docker.DockerClient) -> str:
    """The agent's image on this machine's engine, built by the harness (cached)."""
    return agent_image_of(docker_client)


@pytest.fixture
def local_agent(docker_client: docker.DockerClient, agent_image: str) -> Iterator[DockerAgents]:
    run_id = f"agent-probes-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    agents = DockerAgents(docker_client, run_id, engine_address(None))
    try:
        agents.deploy(agent_image)
        agents.wait_ready(60)
        yield agents
    finally:
        agents.remove()
    assert docker_client.containers.list(all=True, filters={"name": agent_name(run_id)}) == []


def _of(frame: pd.DataFrame, name: str, since_ns: int = 0) -> pd.DataFrame:
    return frame[(frame["instance"] == name) & (frame["start_ns"] >= since_ns)]


@pytest.mark.docker
def test_the_agent_container_probes_the_replicas_and_sees_a_kill_and_the_restart(
    deploy: DeployFactory,
    docker_client: docker.DockerClient,
    local_agent: DockerAgents,
    tmp_path: Path,
) -> None:
    target = deploy(replicas=2)
    web1, web2 = target.instances()
    relay = AgentRelay(local_agent.run_id, 0, local_agent.channels())
    offset = next(iter(relay.offsets.values()))
    bound_ns = offset.uncertainty_ns
    warnings: list[str] = []
    log = tmp_path / "probes.tsv"
    began = time.time_ns()
    prober = AgentProber(relay, [web1, web2], "/health", 0.1, 1.0, log, warnings.append)
    prober.start()
    try:
        assert wait_until(lambda: len(_of(prober.frame(), web1.name)) >= 10, 20)
        victim = docker_client.containers.get(web1.container_id)
        killed_ns = time.time_ns()
        victim.kill()  # SIGKILL through the engine's API
        assert wait_until(lambda: (~_of(prober.frame(), web1.name, killed_ns)["ok"]).sum() >= 3, 20)
        victim.reload()
        if victim.status != "running":  # a kill through the API is not restarted by policy
            victim.start()
        restarted_ns = time.time_ns()
        assert wait_until(lambda: _of(prober.frame(), web1.name, restarted_ns)["ok"].sum() >= 5, 30)
    finally:
        prober.stop()
    ended = time.time_ns()
    frame = prober.frame()
    assert warnings == []
    # every probe on our clock, inside the window the test held the prober
    assert frame["start_ns"].min() >= began - bound_ns
    assert frame["start_ns"].max() <= ended + bound_ns
    # the other replica answered throughout
    assert len(_of(frame, web2.name)) >= 20 and _of(frame, web2.name)["ok"].all()
    mine = _of(frame, web1.name)
    failed = mine[~mine["ok"]]
    assert len(failed) >= 3
    # failed only after the kill (within the clock's bound), answered before it and after
    assert failed["start_ns"].min() >= killed_ns - bound_ns - NS // 10
    assert mine[mine["start_ns"] < killed_ns - bound_ns]["ok"].all()
    assert mine[mine["start_ns"] > failed["start_ns"].max()]["ok"].sum() >= 5
    # the probe log holds what the prober kept, and no probe process is left on the host
    assert len(read_probe_log(log)) == len(frame)
    assert _probe_processes(f"runs/{local_agent.run_id}/probes") == []
    back_ns = mine[mine["start_ns"] > failed["start_ns"].max()]["start_ns"].min()
    print(
        f"\nagent probes: {len(frame)} in {(ended - began) / NS:.1f} s; web-1 failed "
        f"{len(failed)} (first {(failed['start_ns'].min() - killed_ns) / 1e6:.0f} ms after the "
        f"kill), answered again {(back_ns - restarted_ns) / 1e6:.0f} ms after the start; "
        f"clock offset {offset.offset_ns / 1e6:.1f} ms +- {bound_ns / 1e6:.1f}"
    )


@pytest.mark.docker
def test_the_agent_stopped_stops_its_probe_process(
    deploy: DeployFactory, docker_client: docker.DockerClient, local_agent: DockerAgents
) -> None:
    target = deploy(replicas=1)
    relay = AgentRelay(local_agent.run_id, 0, local_agent.channels())
    prober = AgentProber(relay, target.instances(), "/health", 0.1, 1.0).start()
    where = f"runs/{local_agent.run_id}/probes"
    assert len(_probe_processes(where)) == 1
    container = docker_client.containers.get(agent_name(local_agent.run_id))
    container.stop(timeout=30)  # SIGTERM to serve, as at the run's end
    logs = container.logs().decode(errors="replace")
    assert f"stopped the probes of {local_agent.run_id}" in logs, logs
    assert _probe_processes(where) == []
    with pytest.raises(AgentError):  # its last reads have no agent left to ask
        prober.stop()


@pytest.mark.docker
def test_a_run_takes_its_probes_from_the_agent_and_says_so(
    tmp_path: Path, docker_client: docker.DockerClient, agent_image: str, demo_image: str
) -> None:
    del agent_image, demo_image  # built (cached) before the run
    scenario = _scenario(tmp_path, target={"kind": "docker", "agent": {"use": "always"}})
    done = harness_cli("run", str(scenario), "--out", str(tmp_path / "runs"), timeout_s=240)
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-4000:]
    assert "probes: from the agent (probes.via: agent)" in done.stderr
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["probes"]["via"] == "agent" and manifest["probes"]["asked"] == "agent"
    assert manifest["probes"]["nodes"] == manifest["agents"]["nodes"]
    probes = pd.read_parquet(run_dir / "probes.parquet")
    assert set(probes["instance"]) == {"web-1", "web-2"}
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    (kill,) = [e for e in events if e["action"] == "fault_inject"]
    web1 = probes[probes["instance"] == "web-1"]
    failed = web1[~web1["ok"]]
    assert len(failed) >= 1 and failed["start_ns"].min() >= kill["time_ns"] - NS // 5
    assert web1[web1["start_ns"] > failed["start_ns"].max()]["ok"].sum() >= 5
    start, end = manifest["started_at_ns"], manifest["ended_at_ns"]
    assert start <= probes["start_ns"].min() and probes["start_ns"].max() <= end
    run_id = manifest["run_id"]
    assert _probe_processes(f"runs/{run_id}/probes") == []
    assert docker_client.containers.list(all=True, filters={"name": agent_name(run_id)}) == []
    summary = json.loads((run_dir / "summary.json").read_text())
    print(
        f"\nrun with agent probes: {len(probes)} probes, web-1 failed {len(failed)}; kill ttr "
        f"{summary['faults'][0].get('ttr_s')} s"
    )


# --- on the Kubernetes lab, as on a cluster the harness does not run -----------------------


@pytest.fixture(scope="module")
def kube(demo_image: str) -> Iterator[kube_lab.KubeLabInfo]:
    """The Kubernetes lab: the one that is up, or two nodes brought up for this module."""
    del demo_image
    info = kube_lab.current()
    if info is not None:
        yield info
        return
    made = kube_lab.KubeLab()
    info = made.up(nodes=2, progress=lambda line: print(line, file=sys.stderr))
    try:
        yield info
    finally:
        made.down()


@pytest.mark.docker
@pytest.mark.slow  # a lab, a DaemonSet and a 30 s run: about 2 minutes
def test_on_kubernetes_each_nodes_agent_probes_its_pods_through_a_crash(
    kube: kube_lab.KubeLabInfo, tmp_path: Path
) -> None:
    del kube  # up: the run finds it
    data = {
        "name": "agent-probes-kube",
        "target": {"kind": "kubernetes"},
        "workload": {"image": "demo", "replicas": 3, "port": 8080},
        "load": {"users": 4, "duration": "30s", "paths": [{"path": "/"}], "timeout": "1s"},
        "probes": {"via": "agent", "interval": "100ms"},
        "faults": [{"kind": "container_kill", "at": "10s", "select": {"count": 1}}],
    }
    scenario = tmp_path / "kube.yaml"
    scenario.write_text(yaml.safe_dump(data))
    env = {**os.environ, HOST_ACCESS_ENV: "none"}
    done = harness_cli("run", str(scenario), "--out", str(tmp_path / "runs"), env=env)
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-4000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["probes"]["via"] == "agent"
    assert set(manifest["probes"]["nodes"]) <= set(manifest["agents"]["nodes"])
    probes = pd.read_parquet(run_dir / "probes.parquet")
    assert len(set(probes["instance"])) == 3
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    (kill,) = [e for e in events if e["action"] == "fault_inject"]
    (victim,) = kill["attributes"]["targets"]
    mine = probes[probes["instance"] == victim]
    failed = mine[~mine["ok"]]
    assert len(failed) >= 1 and failed["start_ns"].min() >= kill["time_ns"] - NS // 5
    assert mine[mine["start_ns"] > failed["start_ns"].max()]["ok"].sum() >= 5
    others = probes[probes["instance"] != victim]
    assert others["ok"].mean() > 0.99
    start, end = manifest["started_at_ns"], manifest["ended_at_ns"]
    assert start <= probes["start_ns"].min() and probes["start_ns"].max() <= end
    assert _probe_processes(f"runs/{manifest['run_id']}/probes") == []
    print(
        f"\nkubernetes, agent probes from {manifest['probes']['nodes']}: {len(probes)} probes, "
        f"{victim} failed {len(failed)} after the crash; clocks {manifest['agents']['clocks']}"
    )
