"""Locust workers that share no filesystem with the master: their records travel through
Locust's own messages (harness/locust/chaos_shipping.py), on real processes on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.errors import ScenarioError
from harness.load import (
    LoadPlan,
    LoadRun,
    collect_requests,
    free_port,
    locust_commands,
    plan_env,
)
from harness.scenario import load_scenario
from tests.test_load import REPO, Server, http_server  # noqa: F401 (the fixture)

SWARM_LAB = {"kind": "swarm", "lab": {"nodes": 3}}


def _spawn(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    cwd.mkdir(parents=True, exist_ok=True)
    log = (cwd / "locust.log").open("wb")
    return subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)


def test_workers_without_the_record_dir_ship_every_request_to_the_master(
    tmp_path: Path,
    http_server: Server,  # noqa: F811
) -> None:
    url = http_server()
    plan = LoadPlan(
        users=6, spawn_rate=100, duration_s=4, endpoints=[("web", url)],
        record_dir=tmp_path / "master", workers=2,
    )  # fmt: skip
    plan.record_dir.mkdir()
    port = free_port()
    commands = dict(locust_commands(plan, sys.executable, port))
    procs = [_spawn(commands["master"], plan_env(plan, os.environ), plan.record_dir)]
    for i in range(2):  # each worker with a record dir and a working dir of its own
        own = tmp_path / f"worker-host-{i}"
        env = plan_env(plan, os.environ) | {
            "CHAOS_HARNESS_RECORD_DIR": str(own),
            "CHAOS_HARNESS_WORKER_NAME": f"box {i}",  # made safe: "box_0"
        }
        procs.append(_spawn(commands[f"worker-{i}"], env, own))
    try:
        assert procs[0].wait(60) == 0
        for proc in procs[1:]:
            proc.wait(15)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)

    for i in range(2):  # the workers wrote no record where they ran
        assert not list((tmp_path / f"worker-host-{i}").glob("requests-*"))
    requests = collect_requests(plan.record_dir)
    per_worker = requests.groupby("worker_name").size()
    assert set(per_worker.index) == {"box_0", "box_1"}
    assert (per_worker > 0).all()
    stats = json.loads((plan.record_dir / "locust-stats.json").read_text())
    assert len(requests) == sum(int(e["num_requests"]) for e in stats)
    assert int((~requests["ok"]).sum()) == sum(int(e["num_failures"]) for e in stats)
    workers = {w["name"]: w for w in json.loads((plan.record_dir / "workers.json").read_text())}
    assert set(workers) == {"box_0", "box_1"}
    assert sum(w["users"] for w in workers.values()) == plan.users
    for name, worker in workers.items():
        assert worker["complete"] and worker["lost_batches"] == 0
        assert worker["requests"] == per_worker[name]
        # one clock here: the offset measured is within half the smallest round trip of 0
        assert 0 < worker["rtt_ns"] < 50_000_000
        assert abs(worker["offset_ns"]) <= worker["rtt_ns"] // 2 + 1
    assert requests["start_ns"].between(time.time_ns() - 120e9, time.time_ns()).all()


def _clean_env() -> dict[str, str]:
    """This environment without any of the run's settings (another machine's)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("CHAOS_HARNESS_", "LOCUST_"))}


def test_harness_worker_joins_a_master_that_waits_for_it(
    tmp_path: Path,
    http_server: Server,  # noqa: F811
) -> None:
    url = http_server()
    plan = LoadPlan(
        users=8, spawn_rate=100, duration_s=5, endpoints=[("web", url)], host=url,
        record_dir=tmp_path / "run", external_workers=2, rate_per_s=40.0,
    )  # fmt: skip
    assert locust_commands(plan, "python", 1)[0][0] == "master"
    with LoadRun(plan) as run:
        address = f"127.0.0.1:{run.master_port}"
        workers = []
        for i in range(2):  # started by hand, as on other machines: no settings, no record dir
            own = tmp_path / f"machine-{i}"
            own.mkdir()
            argv = [sys.executable, "-m", "harness", "worker", "--master", address]
            env = _clean_env() | {"PYTHONPATH": str(REPO)}
            log = (own / "worker.log").open("wb")
            workers.append(
                subprocess.Popen([*argv, "--name", f"m{i}"], env=env, cwd=own, stdout=log,
                                 stderr=subprocess.STDOUT)
            )  # fmt: skip
        try:
            assert run.wait(timeout=60)
            codes = [w.wait(20) for w in workers]
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
                    w.wait(5)
    assert codes == [0, 0]
    requests = collect_requests(plan.record_dir)
    totals = run.locust_totals()
    assert totals is not None and len(requests) == totals.requests
    assert set(requests["worker_name"]) == {"m0", "m1"}
    # the run's settings reached the workers through Locust: its endpoint name, its rate
    assert set(requests["endpoint"]) == {"web"}
    span_s = (requests["start_ns"].max() - requests["start_ns"].min()) / 1e9
    assert 0.75 * 40 <= len(requests) / span_s <= 1.25 * 40


def test_a_worker_lost_mid_run_is_an_event_and_the_rest_goes_on(
    tmp_path: Path,
    http_server: Server,  # noqa: F811
) -> None:
    url = http_server()
    plan = LoadPlan(
        users=8, spawn_rate=100, duration_s=10, endpoints=[("web", url)],
        record_dir=tmp_path / "run", workers=2, rate_per_s=40.0,
    )  # fmt: skip
    with LoadRun(plan) as run:
        assert run.wait_first_request(timeout_s=30) is not None
        time.sleep(2)
        total = run.poll_progress()
        by_worker = run.progress_by_worker()  # the whole run's count, split by worker
        assert set(by_worker) == {"worker-0", "worker-1"}
        assert sum(p.requests for p in by_worker.values()) == total.requests > 0
        os.kill(run.pids[2], 9)  # worker-1, as a node's power cut would
        killed_ns = time.time_ns()
        assert run.wait(timeout=60)  # the run ends on time, a lost worker is no error
    events = [json.loads(line) for line in (plan.record_dir / "worker-events.jsonl").open()]
    missing = [e for e in events if e["event"] == "missing"]
    assert [e["worker"] for e in missing] == ["worker-1"]
    assert 2e9 <= missing[0]["time_ns"] - killed_ns <= 6e9  # Locust's 3 missed heartbeats
    workers = {w["name"]: w for w in json.loads((plan.record_dir / "workers.json").read_text())}
    assert workers["worker-0"]["complete"] and not workers["worker-1"]["complete"]
    requests = collect_requests(plan.record_dir)
    lost = requests[requests["worker_name"] == "worker-1"]
    assert lost["start_ns"].max() < killed_ns
    # the survivor keeps its own share (Locust does not hand it the lost users): half the rate
    after = requests[requests["start_ns"] > killed_ns + 1e9]
    span_s = (after["start_ns"].max() - after["start_ns"].min()) / 1e9
    assert set(after["worker_name"]) == {"worker-0"}
    assert 0.35 * 40 <= len(after) / span_s <= 0.65 * 40


@pytest.mark.parametrize(
    ("load", "target", "expected"),
    [
        ({"placement": "nodes", "workers": 2}, "docker", "needs target: {kind: swarm, lab"),
        ({"placement": "nodes"}, SWARM_LAB, "give 1 or more"),
        ({"placement": "nodes", "workers": 1, "routing": "per_instance"}, SWARM_LAB, "service"),
        ({"master": {"expect_workers": 1, "bind": "0.0.0.0:70000"}}, "docker", "out of range"),
        ({"master": {"expect_workers": 0}}, "docker", "expect_workers"),
    ],
)
def test_placements_that_cannot_work_are_refused_before_anything_runs(
    tmp_path: Path, load: dict[str, object], target: object, expected: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "p", "target": target, "load": load}))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert expected in str(caught.value)


def test_a_nodes_placement_on_the_swarm_lab_validates(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    load = {"placement": "nodes", "workers": 3, "master": {"expect_workers": 1}}
    path.write_text(yaml.safe_dump({"name": "p", "target": SWARM_LAB, "load": load}))
    scenario = load_scenario(path)
    assert scenario.load.master is not None and scenario.load.master.port == 5557


def test_harness_worker_refuses_an_address_without_a_port() -> None:
    argv = [sys.executable, "-m", "harness", "worker", "--master", "just-a-host"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 2
    assert "--master must be HOST:PORT" in done.stderr
