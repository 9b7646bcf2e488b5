"""Load from the Swarm lab's nodes (`load.placement: nodes`): a worker in each node's network
namespace, a kill measured as with local load, and a node partition that cuts one worker off:
an event on the timeline, its failures its own, its records shipped once it is back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docker
import pandas as pd
import pytest
import yaml

from harness.labs.swarm import lab
from harness.results import read_json_lines
from tests.test_swarm_lab import _lab_leftovers, no_lab  # noqa: F401 (the fixture)

REPO = Path(__file__).resolve().parent.parent
NS = 1_000_000_000
SCENARIO = {
    "name": "nodes-load",
    "target": {
        "kind": "swarm",
        "lab": {"nodes": 3, "managers": 1, "heartbeat": "2s"},
        "swarm": {"restart_delay": "1s"},
    },
    "workload": {
        "image": "demo", "replicas": 3, "port": 8080, "restart": "always",
        "health": {"path": "/health", "interval": "1s", "timeout": "1s", "retries": 3},
        "resources": {"cpus": 0.25, "memory": "64Mi"},
    },
    "load": {"placement": "nodes", "workers": 3, "rate": "60/s", "duration": "45s"},
    "probes": {"interval": "200ms", "path": "/health"},
    "analysis": {"stable_for": "2s"},
    "faults": [
        {"kind": "container_kill", "name": "crash", "at": "8s", "select": {"count": 1}},
        {
            "kind": "node_partition", "name": "cut", "at": "22s", "duration": "10s",
            "mode": "link", "select": {"count": 1},
        },
    ],
    "slo": {},
}  # fmt: skip


# slow (70 s): the default suite keeps placement pods' run on the Kubernetes lab and the
# shipping, lost-worker and external-worker tests on loopback; the suite's time is 45 min
@pytest.mark.slow
@pytest.mark.docker
def test_node_workers_measure_a_kill_and_lose_a_cut_node(
    tmp_path: Path,
    docker_client: docker.DockerClient,
    no_lab: dict[str, str],  # noqa: F811
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    out = tmp_path / "results"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "harness", "run", str(scenario), "--out", str(out)],
            capture_output=True, text=True, timeout=600, cwd=REPO, env=no_lab,
        )  # fmt: skip
    finally:
        leftovers = _lab_leftovers(tmp_path / "lab")
        lab.Lab(tmp_path / "lab").down()
    assert done.returncode in (0, 1), done.stderr[-3000:]
    assert leftovers == []
    (run_dir,) = out.iterdir()

    requests = pd.read_parquet(run_dir / "requests.parquet")
    names = {f"{lab.PREFIX}-n{i}" for i in (1, 2, 3)}
    assert set(requests["worker_name"]) == names
    stats = json.loads((run_dir / "load" / "locust-stats.json").read_text())
    assert len(requests) == sum(int(e["num_requests"]) for e in stats)
    # the rate is split across the workers and holds: 60/s over the run
    span_s = (requests["start_ns"].max() - requests["start_ns"].min()) / NS
    assert 0.85 * 60 <= len(requests) / span_s <= 1.1 * 60

    summary = json.loads((run_dir / "summary.json").read_text())
    crash = next(f for f in summary["faults"] if f["kind"] == "container_kill")
    assert crash["recovered"], crash  # measured as with local load

    events = read_json_lines(run_dir / "events.jsonl")
    inject = next(
        e for e in events if e["action"] == "fault_inject" and e["attributes"]["name"] == "cut"
    )
    missing = [e for e in events if e["action"] == "load_worker_missing"]
    assert len(missing) == 1 and missing[0]["time_ns"] > inject["time_ns"]
    cut = missing[0]["attributes"]["worker"]
    assert any(
        e["action"] == "load_worker_healed" and e["attributes"]["worker"] == cut for e in events
    )
    # the cut worker's users lost the service on other nodes: its failures, not the others'
    during = requests[
        (requests["start_ns"] > inject["time_ns"] + 2 * NS)
        & (requests["start_ns"] < inject["time_ns"] + 8 * NS)
    ]
    failed = 1 - during.groupby("worker_name")["ok"].mean()
    assert failed[cut] > 0.5 and failed[cut] > failed.drop(cut).max() + 0.2, failed
    manifest = json.loads((run_dir / "manifest.json").read_text())
    seen = {w["name"]: w for w in manifest["load"]["workers_seen"]}
    assert set(seen) == names and all(w["complete"] for w in seen.values())
    assert manifest["load"]["placement"] == "nodes"
