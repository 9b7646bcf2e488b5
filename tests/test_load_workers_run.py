"""A whole run whose load comes partly from a worker the harness did not start: the run waits
for it, says how to start it, and merges its shipped records with the local worker's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.load import free_port
from harness.results import read_json_lines

REPO = Path(__file__).resolve().parent.parent


def _scenario(tmp_path: Path, port: int) -> Path:
    data = {
        "name": "remote-worker",
        "target": "docker",
        "workload": {"image": "demo", "replicas": 2, "resources": {"cpus": 0.5, "memory": "64Mi"}},
        "load": {
            "users": 6,
            "spawn_rate": 6,
            "duration": "14s",
            "workers": 1,
            "master": {"bind": f"127.0.0.1:{port}", "expect_workers": 1, "wait": "60s"},
        },
        "probes": {"interval": "200ms"},
        "analysis": {"stable_for": "1s"},
        "faults": [{"kind": "container_kill", "at": "4s", "select": {"count": 1}}],
        "slo": {},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _start_worker_when_asked(run: subprocess.Popen[str], far: Path, seen: list[str]) -> None:
    """Read the run's stderr; start the worker it asks for (as another machine would)."""
    assert run.stderr is not None
    for line in run.stderr:
        seen.append(line)
        if "harness worker --master" in line and not far.exists():
            address = line.split("--master", 1)[1].split()[0]
            far.mkdir()
            env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOS_HARNESS_")}
            argv = [sys.executable, "-m", "harness", "worker", "--master", address]
            log = (far / "worker.log").open("wb")
            proc = subprocess.Popen(
                [*argv, "--name", "far"], cwd=far, env=env | {"PYTHONPATH": str(REPO)},
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            seen.append(f"worker pid {proc.pid}\n")
            proc.wait(120)


@pytest.mark.docker
def test_a_run_waits_for_a_remote_worker_and_merges_its_requests(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    scenario = _scenario(tmp_path, free_port())
    run = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", str(scenario), "--out", str(out)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: list[str] = []
    reader = threading.Thread(
        target=_start_worker_when_asked, args=(run, tmp_path / "far", seen), daemon=True
    )
    reader.start()
    try:
        code = run.wait(180)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(10)
    reader.join(60)
    assert code in (0, 1), "".join(seen)
    (run_dir,) = out.iterdir()
    assert not list((tmp_path / "far").glob("requests-*"))  # the worker kept no records
    requests = pd.read_parquet(run_dir / "requests.parquet")
    per_worker = requests.groupby("worker_name").size()
    assert set(per_worker.index) == {"worker-0", "far"} and (per_worker > 0).all()
    stats = json.loads((run_dir / "load" / "locust-stats.json").read_text())
    assert len(requests) == sum(int(e["num_requests"]) for e in stats)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    seen_workers = {w["name"]: w for w in manifest["load"]["workers_seen"]}
    assert set(seen_workers) == {"worker-0", "far"}
    assert all(w["complete"] for w in seen_workers.values())
    actions = [e["action"] for e in read_json_lines(run_dir / "events.jsonl")]
    assert actions.count("load_worker_connected") == 2
    summary = json.loads((run_dir / "summary.json").read_text())
    (fault,) = summary["faults"]
    assert fault["recovered"], fault  # recovery measured as with local load
