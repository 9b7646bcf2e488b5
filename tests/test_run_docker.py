"""End-to-end runs of `harness run` on the real engine: the numbers against the engine's own
timestamps and an independent computation, and an interrupted run that leaves nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pandas as pd
import pytest
import yaml

from bench.engine_watch import EngineWatch
from harness.results import read_json_lines
from harness.targets.base import RUN_LABEL
from tests.abort import REPO, SCENARIOS

pytestmark = pytest.mark.docker
NS = 1_000_000_000


@pytest.fixture
def engine_watch(docker_client: docker.DockerClient) -> Iterator[EngineWatch]:
    watch = EngineWatch(docker_client)
    yield watch
    watch.close()


def _scenario(tmp_path: Path, **changes: Any) -> Path:
    data = yaml.safe_load((SCENARIOS / "quickstart.yaml").read_text())
    data["load"]["duration"] = "22s"
    data["faults"][0]["at"] = "8s"
    for key, value in changes.items():
        data[key] = value
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _independent_ttr(run_dir: Path, t0: int, stable_for_s: float) -> float:
    """DESIGN.md's ttr_s, computed plainly from the stored tables (requests and probes)."""
    observations = []
    for table in ("requests.parquet", "probes.parquet"):
        frame = pd.read_parquet(run_dir / table)
        ends = frame["start_ns"] + (frame["latency_ms"] * 1e6).round().astype("int64")
        observations += list(zip(ends.tolist(), frame["ok"].tolist(), strict=True))
    observations.sort()
    before = [ok for end, ok in observations if end < t0]
    baseline_rate = before.count(False) / len(before)
    after = [(end, ok) for end, ok in observations if end >= t0]
    detected = next(end for end, ok in after if not ok)
    for index, (end, ok) in enumerate(after):
        if not ok or end < detected:
            continue
        window = [o for e, o in after[index + 1 :] if e <= end + stable_for_s * NS]
        if window and window.count(False) / len(window) <= baseline_rate:
            return (end - t0) / NS
    raise AssertionError("never recovered")


def test_kill_run_matches_the_engine_and_an_independent_ttr(
    tmp_path: Path, engine_watch: EngineWatch, docker_client: docker.DockerClient
) -> None:
    out = tmp_path / "runs"
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(_scenario(tmp_path)), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    assert run_dir.parent == out
    for name in ("scenario.yaml", "manifest.json", "requests.parquet", "probes.parquet"):
        assert (run_dir / name).exists(), name
    assert (run_dir / "report.html").exists() and (run_dir / "figures" / "timeline.png").exists()

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "passed"
    (fault,) = summary["faults"]
    assert fault["recovered"] and fault["restart_policy_applies"] is True
    assert fault["failed_requests"] > 0  # users did see the crash
    (orchestrator,) = fault["orchestrator"]
    instance, t0 = orchestrator["instance"], fault["injected_at_ns"]

    # the orchestrator's intervals against the engine's own event timestamps (within 20 ms)
    die = engine_watch.first("die", instance, t0)
    start = engine_watch.first("start", instance, die)
    healthy = engine_watch.first("health_status: healthy", instance, start)
    assert abs(orchestrator["kill_to_die_s"] - (die - t0) / NS) <= 0.020
    assert abs(orchestrator["die_to_start_s"] - (start - die) / NS) <= 0.020
    assert abs(orchestrator["start_to_healthy_s"] - (healthy - start) / NS) <= 0.020

    # user-visible ttr against an independent computation from the stored tables
    stable_for = summary["analysis"]["stable_for_s"]
    assert fault["ttr_s"] == pytest.approx(_independent_ttr(run_dir, t0, stable_for), abs=0.002)

    requests = pd.read_parquet(run_dir / "requests.parquet")
    assert requests["start_ns"].dtype == "int64" and requests["ok"].dtype == "bool"
    assert set(requests["endpoint"]) == {"web-1", "web-2", "web-3"}
    label = {"label": f"{RUN_LABEL}={run_dir.name}"}
    assert docker_client.containers.list(all=True, filters=label) == []
    assert docker_client.networks.list(filters=label) == []


def test_sigint_in_the_middle_of_a_fault_leaves_nothing(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    scenario = _scenario(
        tmp_path,
        faults=[{"kind": "container_pause", "at": "4s", "duration": "10s"}],
    )
    out = tmp_path / "runs"
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", str(scenario), "--out", str(out)],
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
    label = {"label": f"{RUN_LABEL}={run_dir.name}"}
    assert docker_client.containers.list(all=True, filters=label) == []
    assert docker_client.networks.list(filters=label) == []
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    actions = [e["action"] for e in read_json_lines(run_dir / "events.jsonl")]
    assert "fault_revert" in actions  # reverted before the teardown, not just torn down
    pids = json.loads((run_dir / "load" / "pids.json").read_text())["processes"]
    for entry in pids:
        assert not Path(f"/proc/{entry['pid']}").exists(), "a Locust process is still running"
