"""What stops a run before anything is deployed, each with a message that says what to do.

Every case runs the real `harness run` and checks that nothing was made: no run directory (the
run directory is made only after every check passed), no container of the scenario's workload
name on the engine.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml

from faults.latency import Latency, LatencyParams
from harness.preflight import port_in_use

REPO = Path(__file__).resolve().parent.parent


def _scenario(tmp_path: Path, **changes: object) -> Path:
    data: dict[str, object] = {
        "name": "bad-input",
        "target": "docker",
        "workload": {"image": "demo", "replicas": 1},
        "load": {"users": 1, "spawn_rate": 1, "duration": "10s"},
        "faults": [],
        "slo": {},
    }
    data.update(changes)
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _run(scenario: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "run", str(scenario), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _nothing_made(out: Path, stderr: str) -> None:
    assert not out.exists() or not any(out.iterdir()), "a run directory was made"
    assert "Traceback" not in stderr


@pytest.mark.docker
def test_an_image_that_does_not_exist(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, workload={"image": "chaos-harness/no-such-image:1"})
    done = _run(scenario, tmp_path / "runs")
    assert done.returncode == 2, done.stderr
    assert "workload.image: no image 'chaos-harness/no-such-image:1'" in done.stderr
    assert "docker build -t chaos-harness/no-such-image:1" in done.stderr  # what to do
    _nothing_made(tmp_path / "runs", done.stderr)


def test_a_docker_daemon_that_is_not_running(tmp_path: Path) -> None:
    dead = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(dead))  # the socket file is there; nobody will answer on it
    for engine in (f"unix://{dead}", f"unix://{tmp_path}/missing.sock"):
        done = _run(
            _scenario(tmp_path, target={"kind": "docker", "engine": engine}), tmp_path / "r"
        )
        assert done.returncode == 3, done.stderr
        assert f"cannot reach the Docker engine at {engine}" in done.stderr
        assert "make setup" in done.stderr and "target.engine" in done.stderr  # what to do
        _nothing_made(tmp_path / "r", done.stderr)


def test_a_locustfile_with_a_syntax_error(tmp_path: Path) -> None:
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text("from locust import HttpUser\n\nclass User(HttpUser:\n    pass\n")
    scenario = _scenario(
        tmp_path, load={"users": 1, "duration": "5s", "locustfile": "locustfile.py"}
    )
    for command in ("run", "validate"):
        done = subprocess.run(
            [sys.executable, "-m", "harness", command, str(scenario), "--out", str(tmp_path / "r")]
            if command == "run"
            else [sys.executable, "-m", "harness", command, str(scenario)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        # the line Python itself names (compile()), and how to see the same error
        assert f"{locustfile}:3: load.locustfile does not compile" in done.stderr, done.stderr
        assert f"python3 -m py_compile {locustfile}" in done.stderr
        _nothing_made(tmp_path / "r", done.stderr)


def _kernel_has_netem() -> bool:
    return any(m.name == "netem" and m.available for m in Latency.mechanisms())


def test_a_fault_this_kernel_cannot_do(tmp_path: Path) -> None:
    if _kernel_has_netem():
        pytest.skip("this kernel has sch_netem: latency through netem works here")
    # checked against the kernel itself, not the harness's probe: tc refuses netem here
    tc = subprocess.run(
        ["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert tc.returncode != 0
    assert Latency(LatencyParams(delay=0.1, mechanism="netem")).check()
    fault = {"kind": "latency", "at": "2s", "duration": "2s", "delay": "50ms", "mechanism": "netem"}
    done = _run(_scenario(tmp_path, faults=[fault]), tmp_path / "r")
    assert done.returncode == 3, done.stderr
    assert "this machine cannot run the scenario" in done.stderr
    assert "faults.0 (latency)" in done.stderr and "harness faults" in done.stderr
    _nothing_made(tmp_path / "r", done.stderr)


@pytest.fixture
def held_port() -> Iterator[tuple[str, int]]:
    """A listener on 127.0.0.77:2377, the address a swarm of the scenario would listen on
    (not 127.0.0.1: another run's swarm on the shared engine must not be disturbed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.77", 2377))
        listener.listen(1)
        yield "127.0.0.77", 2377


@pytest.mark.docker
def test_a_port_the_run_must_bind_is_in_use(
    tmp_path: Path, held_port: tuple[str, int], docker_client: docker.DockerClient
) -> None:
    if (docker_client.info().get("Swarm") or {}).get("LocalNodeState") != "inactive":
        pytest.skip("the shared engine is in a swarm now: this run would bind no port")
    address, port = held_port
    assert port_in_use(address, port) and not port_in_use(address, port + 1)
    target = {"kind": "swarm", "swarm": {"advertise_addr": address}}
    done = _run(_scenario(tmp_path, target=target), tmp_path / "r")
    assert done.returncode == 3, done.stderr
    assert f"port {port} on {address} is in use by another process" in done.stderr
    assert "target.swarm.advertise_addr" in done.stderr  # what to do
    _nothing_made(tmp_path / "r", done.stderr)
