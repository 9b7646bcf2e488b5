"""End-to-end runs of `harness run` on the real engine, checked against facts the harness did not
record: the kernel's word on when the killed process died (a pidfd), and a packet capture of
what the replica sent on the run's bridge (bench.witness). Also: a fault that never recovers
exits 1 with its reason, overlapping faults are measured on their own observations, a user's
locustfile (Locust's own example, unchanged) loads the target, and an interrupted run leaves
nothing behind."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import pandas as pd
import pytest
import yaml

from bench.witness import RunWitness
from harness.results import read_json_lines
from harness.targets.base import RUN_LABEL
from tests.abort import REPO, SCENARIOS

pytestmark = pytest.mark.docker
NS = 1_000_000_000


def _scenario(
    tmp_path: Path, source: str = "quickstart.yaml", routing: str | None = None, **changes: Any
) -> Path:
    data = yaml.safe_load((SCENARIOS / source).read_text())
    data["load"]["duration"] = "22s"
    if routing is not None:
        data["load"]["routing"] = routing
    for key, value in changes.items():
        data[key] = value
    if source == "locust-example.yaml":  # its locustfile is relative to the scenario
        data["load"]["locustfile"] = str(SCENARIOS / data["load"]["locustfile"])
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _command(scenario: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "harness", "run", str(scenario), "--out", str(out)]


def _run(scenario: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(scenario, out), capture_output=True, text=True, timeout=300, check=False, cwd=REPO
    )


def _summary(done: subprocess.CompletedProcess[str]) -> tuple[Path, dict[str, Any]]:
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return run_dir, summary


def _nothing_left(client: docker.DockerClient, run_dir: Path) -> None:
    label = {"label": f"{RUN_LABEL}={run_dir.name}"}
    assert client.containers.list(all=True, filters=label) == []
    assert client.networks.list(filters=label) == []


@pytest.fixture
def witness(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[RunWitness]:
    watcher = RunWitness(docker_client, tmp_path / "runs", "web-2")
    yield watcher
    watcher.close()


def test_a_kill_against_the_kernel_and_the_wire(
    tmp_path: Path, witness: RunWitness, docker_client: docker.DockerClient
) -> None:
    kill = {"kind": "container_kill", "at": "8s", "select": {"names": ["web-2"]}}
    out = tmp_path / "runs"
    process = subprocess.Popen(
        # the dead replica's own requests: per_instance names each request's replica
        _command(
            _scenario(tmp_path, routing="per_instance", faults=[kill], slo={"ttr_s": 10}), out
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    witness.attach(timeout_s=120)
    stdout, stderr = process.communicate(timeout=300)
    facts = witness.facts()
    assert process.returncode == 0, stderr[-3000:]
    run_dir, summary = _summary(subprocess.CompletedProcess([], 0, stdout, stderr))

    (fault,) = summary["faults"]
    (engine,) = fault["orchestrator"]
    t0, died = fault["injected_at_ns"], facts.died_at_ns
    assert fault["view"] == "instance" and fault["impact"] == "visible" and fault["recovered"]
    assert died is not None, "the witness never saw web-2's process die"
    # t0 is the kill itself: before the death the kernel reported, and close to it (measured
    # here: 5 ms, wake-up of the witness included; stamped before the fault's container
    # listing, as before issue 7, it was 170 ms early)
    assert 0 <= died - t0 <= 0.1 * NS
    # the engine reports the death after the kernel saw it (measured: 150 ms after)
    assert engine["die_at_ns"] >= died - 0.01 * NS
    # users saw the first failure right after the death, not before
    assert -0.05 * NS <= fault["detected_at_ns"] - died <= 1.0 * NS
    # on the wire: web-2 answered until it died and answered again after its restart; users
    # cannot have recovered before that first answer, and did soon after it: once the last
    # request sent while web-2 was down has timed out (load.timeout 2 s) at the latest
    assert facts.responses > 100
    assert facts.last_answer_before_ns is not None and facts.last_answer_before_ns < died
    served = facts.first_answer_after_ns
    assert served is not None, "web-2 never answered again on the wire"
    assert engine["start_at_ns"] < served
    recovered = fault["recovered_at_ns"]
    assert served - 0.002 * NS <= recovered <= served + 2.5 * NS

    requests = pd.read_parquet(run_dir / "requests.parquet")
    assert set(requests["endpoint"]) == {"web-1", "web-2", "web-3"}
    _nothing_left(docker_client, run_dir)


def test_a_fault_that_never_recovers_exits_1_with_its_reason(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    # the engine's kill is a manual stop: web-2 stays down; the only SLO is an error rate
    kill = {"kind": "container_kill", "at": "5s", "mode": "api", "select": {"names": ["web-2"]}}
    # web-2's own requests, which fail until the end (routing: per_instance)
    scenario = _scenario(
        tmp_path, routing="per_instance", faults=[kill], slo={"error_rate": {"after": 0.01}}
    )
    data = yaml.safe_load(scenario.read_text())
    data["load"]["duration"] = "14s"
    scenario.write_text(yaml.safe_dump(data))
    done = _run(scenario, tmp_path / "runs")

    assert done.returncode == 1, done.stderr[-3000:]
    run_dir, summary = _summary(done)
    assert summary["status"] == "slo_violated"
    assert "f1 container_kill on web-2: NOT recovered" in done.stderr
    assert "failures continued until the end of the run" in done.stderr
    assert "restart policy does not apply" in done.stderr
    assert "phase after is empty: f1 never recovered" in done.stderr
    assert "SLOs met" not in done.stderr
    _nothing_left(docker_client, run_dir)


def test_overlapping_faults_are_each_measured_on_their_own_replica(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    scenario = _scenario(tmp_path, "overlap.yaml")
    data = yaml.safe_load(scenario.read_text())
    data["faults"][0].update(at="6s", duration="8s")  # web-2 slowed 6-14 s
    data["faults"][1]["at"] = "8s"  # web-1 killed at 8 s
    # a latency fault's recovery is counted from its injection: 8 s of fault plus the 1 s
    # windows' settling (11.7 and 12.2 s seen on a loaded machine) cannot meet 10 s
    data["slo"]["ttr_s"] = 15
    scenario.write_text(yaml.safe_dump(data))
    done = _run(scenario, tmp_path / "runs")

    assert done.returncode == 0, done.stderr[-3000:]
    run_dir, summary = _summary(done)
    slow, crash = summary["faults"]
    assert (slow["kind"], crash["kind"]) == ("latency", "container_kill")
    assert slow["overlapped_with"] == ["f2"] and crash["overlapped_with"] == ["f1"]
    assert slow["shared_observations_with"] == [] == crash["shared_observations_with"]
    assert crash["observed"] == "requests sent to web-1 and probes of web-1"
    assert crash["recovered"] is True

    # recount from the stored requests, by completion, what each fault's own view holds
    requests = pd.read_parquet(run_dir / "requests.parquet")
    latency_ns = (requests["latency_ms"] * 1e6).round().astype("int64")
    requests["end_ns"] = requests["start_ns"] + latency_ns

    def failed(endpoint: str, fault: dict[str, Any]) -> int:
        inside = requests["end_ns"].between(fault["injected_at_ns"], fault["window_end_ns"])
        return int((inside & ~requests["ok"] & (requests["endpoint"] == endpoint)).sum())

    assert crash["view_counts"]["failed_requests"] == failed("web-1", crash) > 0
    assert slow["view_counts"]["failed_requests"] == failed("web-2", slow)
    assert failed("web-1", slow) > 0  # the crash's failures fall in the slow fault's window...
    # ...and are not taken by it: the slowed replica answered, slowly, so the slow fault is a
    # latency impact, and an error impact of it would need web-2's own failures
    assert slow["impact_kind"] in ("latency", "both")
    assert slow["impact_kind"] == "latency" or failed("web-2", slow) > 0
    _nothing_left(docker_client, run_dir)


def test_locusts_own_example_loads_the_target_and_a_kill_is_measured(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    scenario = _scenario(tmp_path, "locust-example.yaml")
    data = yaml.safe_load(scenario.read_text())
    data["faults"][0]["at"] = "8s"
    scenario.write_text(yaml.safe_dump(data))
    done = _run(scenario, tmp_path / "runs")

    assert done.returncode == 0, done.stderr[-3000:]
    run_dir, summary = _summary(done)
    host = summary["load"]["host"]
    requests = pd.read_parquet(run_dir / "requests.parquet")
    # the example's own host (127.0.0.1:8089) was overridden by the target's service address
    assert set(requests["endpoint"]) == {urlsplit(host).netloc}
    assert summary["baseline"]["broken"] is False
    (fault,) = summary["faults"]
    assert fault["view"] == "service" and fault["impact"] == "visible"
    assert fault["recovered"] is True and fault["ttr_s"] is not None
    # the example's users wait 2-5 s between requests: a 1-2 s outage may catch none of
    # them (once, in a full run), so the failures are the requests' or the probes'
    assert fault["failed_requests"] + fault["probes_failed"] > 0
    # the default routing: the run's virtual address, whatever the locustfile
    manifest = json.loads((run_dir / "manifest.json").read_text())
    load = manifest["load"]
    assert (load["routing"], load["endpoints"]) == ("service", ["service"])
    assert load["path"].startswith(f"iptables virtual address {urlsplit(host).netloc}")
    assert "does not follow health" in load["path"]
    assert manifest["analysis"]["window_s"] == 10.0
    # the load's start is its first request, and the fault's offset counts from it
    assert load["started_at_ns"] == int(requests["start_ns"].min())
    events = read_json_lines(run_dir / "events.jsonl")
    (start,) = [e["time_ns"] for e in events if e["action"] == "load_start"]
    (inject,) = [e["time_ns"] for e in events if e["action"] == "fault_inject"]
    assert start == load["started_at_ns"]
    # at: 8s from the first request (from Locust's spawn it came 1-3 s early); then its plan
    assert 8 * NS <= inject - start <= 9.5 * NS
    _nothing_left(docker_client, run_dir)


def test_sigint_in_the_middle_of_a_fault_leaves_nothing(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    scenario = _scenario(
        tmp_path,
        faults=[{"kind": "container_pause", "at": "4s", "duration": "10s"}],
        slo={},
    )
    out = tmp_path / "runs"
    process = subprocess.Popen(
        _command(scenario, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    run_dir = None
    while time.monotonic() < deadline and run_dir is None:
        for candidate in out.glob("*/events.jsonl"):
            if any(e["action"] == "fault_inject" for e in read_json_lines(candidate)):
                run_dir = candidate.parent
        time.sleep(0.1)
    assert run_dir is not None, "the fault never started"
    os.kill(process.pid, signal.SIGINT)
    _stdout, stderr = process.communicate(timeout=90)

    assert process.returncode == 128 + signal.SIGINT, stderr[-2000:]
    _nothing_left(docker_client, run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "aborted"
    assert manifest["abort"]["signal"] == "SIGINT"
    assert manifest["abort"]["phase"].startswith("fault")
    actions = [e["action"] for e in read_json_lines(run_dir / "events.jsonl")]
    assert "fault_revert" in actions  # reverted before the teardown, not just torn down
    pids = json.loads((run_dir / "load" / "pids.json").read_text())["processes"]
    for entry in pids:
        assert not Path(f"/proc/{entry['pid']}").exists(), "a Locust process is still running"


class _Ingress:
    """A user's own front door, for `load.host`: a reverse proxy on loopback that spreads
    requests round robin over the run's replicas (found by the run's label) and counts what it
    answered, so the test holds the proxy's tally, not the harness's."""

    def __init__(self, client: docker.DockerClient, scenario_name: str) -> None:
        self.client, self.scenario_name = client, scenario_name
        self.answered: dict[int, int] = {}
        self._lock = threading.Lock()
        self._turn = 0
        self._upstreams: list[str] = []
        ingress = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = ingress.forward(self.path)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _replicas(self) -> list[str]:
        found = self.client.containers.list(filters={"label": RUN_LABEL})
        return sorted(
            network["IPAddress"]
            for c in found
            if (c.name or "").startswith(f"chaos-{self.scenario_name}-")
            for network in c.attrs["NetworkSettings"]["Networks"].values()
            if network.get("IPAddress")
        )

    def forward(self, path: str) -> tuple[int, bytes]:
        # the upstreams, listed once as an Ingress is configured (a restarting replica has no
        # address in the engine's listing, and would otherwise be routed around)
        with self._lock:
            if not self._upstreams:
                self._upstreams = self._replicas()
            replicas = self._upstreams
        with self._lock:
            self._turn += 1
            address = replicas[self._turn % len(replicas)] if replicas else None
        try:
            if address is None:
                raise OSError("no replica")
            with urllib.request.urlopen(f"http://{address}:8080{path}", timeout=1) as reply:
                status, body = reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, b""
        except OSError:
            status, body = 502, b"bad gateway"
        with self._lock:
            self.answered[status] = self.answered.get(status, 0) + 1
        return status, body

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_load_host_sends_the_load_to_the_users_own_address(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    ingress = _Ingress(docker_client, "ingress-front")
    kill = {"kind": "container_kill", "at": "8s", "select": {"count": 1}}
    try:
        load = yaml.safe_load((SCENARIOS / "quickstart.yaml").read_text())["load"]
        load.update(host=ingress.url, users=5, duration="18s")
        scenario = _scenario(tmp_path, name="ingress-front", load=load, faults=[kill], slo={})
        done = _run(scenario, tmp_path / "runs")
    finally:
        ingress.close()
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir, summary = _summary(done)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["load"]["host"] == ingress.url and "load.host" in manifest["load"]["path"]
    requests = pd.read_parquet(run_dir / "requests.parquet")
    answered = sum(ingress.answered.values())
    bad_gateway = ingress.answered.get(502, 0)
    print(f"ingress answered {answered} ({bad_gateway} x 502); harness recorded {len(requests)}")
    # every recorded request went through the ingress; the few in flight when Locust stopped
    # reached it without being recorded (at most one per user)
    assert 0 <= answered - len(requests) <= 5
    # the kill reached users through the ingress: its 502s are the harness's failures
    assert bad_gateway > 0
    assert (requests["error"] == "HTTP 502").sum() == pytest.approx(bad_gateway, abs=5)
    (fault,) = summary["faults"]
    assert fault["impact"] == "visible"
    _nothing_left(docker_client, run_dir)
