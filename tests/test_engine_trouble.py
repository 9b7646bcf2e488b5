"""An engine that stops answering, or goes away, in the middle of a run: the harness does not
hang, the run ends `failed` with a reason that says what happened, what could be undone without
the engine was, and `harness cleanup` removes the rest once the engine answers again.

The engine is cut through a socket proxy in front of it (tests.helpers.EngineProxy, the run's
target.engine), never by stopping the machine's daemon, which other work shares. What is left
is checked with Docker's own view and iptables, not the harness's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from harness.journal import Journal
from harness.results import read_json_lines
from tests.conftest import labelled_objects
from tests.helpers import EngineProxy, wait_until

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.docker


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[EngineProxy]:
    cut = EngineProxy(str(tmp_path / "engine.sock"))
    yield cut
    cut.close()


def _scenario(engine: str) -> str:
    return f"""
name: engine-trouble
target: {{kind: docker, engine: "{engine}"}}
workload: {{image: demo, replicas: 2, resources: {{cpus: 0.5, memory: 64Mi}}}}
load: {{users: 4, spawn_rate: 4, duration: 60s}}
probes: {{interval: 200ms}}
faults:
  - {{kind: packet_loss, at: 2s, duration: 40s, percent: 30, select: {{count: 1}}}}
slo: {{}}
"""


def _start_run(scenario: Path, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "CHAOS_HARNESS_ENGINE_SILENCE_S": "6"}
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "run", str(scenario), "--out", str(out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _applied_run(out: Path) -> Path | None:
    for journal in out.glob("*/faults.jsonl"):
        if any(line.get("state") == "applied" for line in read_json_lines(journal)):
            return journal.parent
    return None


def _run_rules(run_id: str) -> list[str]:
    """Host rules of the run's service address (its chains carry the run id in a comment)."""
    listing = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return [line for line in listing.splitlines() if run_id in line]


def _cleanup(out: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness", "cleanup", "--results", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("trouble", ["stall", "close"])
def test_an_engine_that_stops_answering_fails_the_run_without_hanging(
    trouble: str,
    proxy: EngineProxy,
    tmp_path: Path,
    demo_image: str,
    docker_client: docker.DockerClient,
) -> None:
    out = tmp_path / "runs"
    scenario = tmp_path / "engine-trouble.yaml"
    scenario.write_text(_scenario(proxy.url))
    process = _start_run(scenario, out)
    try:
        assert wait_until(lambda: _applied_run(out) is not None, 90), "no fault was applied"
        run_dir = _applied_run(out)
        assert run_dir is not None
        cut_at = time.monotonic()
        proxy.stall() if trouble == "stall" else proxy.close()
        _stdout, stderr = process.communicate(timeout=150)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    took_s = time.monotonic() - cut_at
    print(f"engine {trouble}: the run gave up {took_s:.1f} s after the cut")

    assert process.returncode == 3, stderr[-3000:]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    reason = manifest["error"] or ""
    assert manifest["status"] == "failed" and manifest["failure"]["engine_lost"] is True
    if trouble == "stall":
        assert "has not answered for" in reason, reason
    else:  # the engine closed every connection: its event stream ended
        assert "event stream ended" in reason or "has not answered" in reason, reason
    assert "harness cleanup" in reason and reason in stderr  # it says what to do
    assert "Traceback" not in stderr
    # bounded: 6 s of silence, then 20 s at most for each step that needs the engine (the
    # reverts, the teardown) and the load's stop; never the SDK's 60 s per call
    assert took_s < 90, f"the run took {took_s:.0f} s to give up"
    assert (run_dir / "requests.parquet").exists() and (run_dir / "probes.parquet").exists()
    # the fault needs the engine to be found again: it is still in the undo log
    assert [o.record.fault_id for o in Journal(run_dir / "faults.jsonl").outstanding()] == ["f1"]

    # the engine answers again: cleanup reaches the rest, and nothing of the run is left
    proxy.resume() if trouble == "stall" else proxy.reopen()
    _cleanup(out)
    assert Journal(run_dir / "faults.jsonl").outstanding() == []
    assert labelled_objects(docker_client, run_dir.name) == []
    assert _run_rules(run_dir.name) == []


def _events(run_dir: Path) -> list[dict[str, object]]:
    return read_json_lines(run_dir / "events.jsonl")


def _load_started(out: Path) -> Path | None:
    for events in out.glob("*/events.jsonl"):
        if any(e.get("action") == "load_start" for e in read_json_lines(events)):
            return events.parent
    return None


def _kill_scenario(engine: str) -> str:
    return f"""
name: engine-streams
target: {{kind: docker, engine: "{engine}"}}
workload: {{image: demo, replicas: 2, resources: {{cpus: 0.5, memory: 64Mi}}}}
load: {{users: 4, spawn_rate: 4, duration: 16s}}
probes: {{interval: 200ms}}
faults:
  - {{kind: container_kill, at: 8s, select: {{count: 1}}}}
slo: {{}}
"""


def test_a_stream_the_engine_ends_while_it_runs_on_is_taken_over(
    proxy: EngineProxy, tmp_path: Path, demo_image: str, docker_client: docker.DockerClient
) -> None:
    """The engine closes the event stream (Podman 4.3 does) but still answers, as the same
    process: the run subscribes again from its last event and completes, events included."""
    out = tmp_path / "runs"
    scenario = tmp_path / "s.yaml"
    scenario.write_text(_kill_scenario(proxy.url))
    process = _start_run(scenario, out)
    try:
        assert wait_until(lambda: _load_started(out) is not None, 90), "the load never started"
        proxy.drop_connections()
        _stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode in (0, 1), stderr[-3000:]
    run_dir = _load_started(out)
    assert run_dir is not None
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "completed"
    events = _events(run_dir)
    resumed = [e for e in events if e["action"] == "events_resumed"]
    assert len(resumed) == 1
    # the kill came after the new subscription: the engine's die and start of it were recorded
    (killed,) = [e for e in events if e["action"] == "fault_inject"]
    after = {
        e["action"] for e in events if e["source"] == "engine" and e["time_ns"] > killed["time_ns"]
    }  # type: ignore[operator]
    assert {"die", "start"} <= after, after
    assert labelled_objects(docker_client, run_dir.name) == []


def test_an_engine_that_restarts_fails_the_run(
    tmp_path: Path, demo_image: str, docker_client: docker.DockerClient
) -> None:
    """The process that serves the engine's socket is replaced mid-run (a restart: the socket
    answers again at once, from another process): the run fails and says so."""
    path = str(tmp_path / "engine.sock")

    def serve() -> subprocess.Popen[bytes]:
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers", path], cwd=REPO, start_new_session=True
        )
        assert wait_until(lambda: os.path.exists(path), 10)
        return server

    server = serve()
    out = tmp_path / "runs"
    scenario = tmp_path / "s.yaml"
    scenario.write_text(_scenario(f"unix://{path}"))
    process = _start_run(scenario, out)
    try:
        assert wait_until(lambda: _applied_run(out) is not None, 90), "no fault was applied"
        server.kill()
        server.wait()
        server = serve()  # the engine is back at once, as another process
        _stdout, stderr = process.communicate(timeout=150)
        run_dir = _applied_run(out)
        assert run_dir is not None
        assert process.returncode == 3, stderr[-3000:]
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["status"] == "failed", manifest["error"]
        assert "the engine restarted" in manifest["error"]
        _cleanup(out)
        assert labelled_objects(docker_client, run_dir.name) == []
        assert _run_rules(run_dir.name) == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        server.kill()
        server.wait()
