"""The orchestrator comparison built from two real runs: the same crash on Docker and Swarm."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.abort import REPO, SCENARIOS

pytestmark = pytest.mark.docker


def _run(scenario: Path, out: Path, *extra: str) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(scenario), "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(done.stdout.strip().splitlines()[-1])


def test_docker_and_swarm_runs_compare_with_a_verdict(tmp_path: Path) -> None:
    data = yaml.safe_load((SCENARIOS / "compare-docker-swarm.yaml").read_text())
    # per replica: each fault is measured on its own replica's requests, so the orchestrators'
    # mechanisms show (through the service, Swarm's users recover in about a second, once the
    # dead task leaves the spread, and the replacement is only its target_ttr_s)
    data["load"].update(duration="22s", users=10, spawn_rate=10, routing="per_instance")
    data["faults"][0]["at"] = "5s"
    scenario = tmp_path / "compare.yaml"
    scenario.write_text(yaml.safe_dump(data))
    docker_run = _run(scenario, tmp_path / "runs")
    swarm_run = _run(scenario, tmp_path / "runs", "--target", "swarm")

    out = tmp_path / "compare"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "harness", "compare", str(docker_run), str(swarm_run)),
            *("--by", "target", "--out", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    comparison = json.loads((out / "compare.json").read_text())
    assert [g["name"] for g in comparison["groups"]] == ["docker", "swarm"]
    (fault,) = comparison["faults"]
    ttr = {g: fault["groups"][g]["ttr_s"]["median"] for g in ("docker", "swarm")}
    (pair,) = fault["comparisons"]
    # Docker restarts in place; Swarm waits out its 5 s restart delay and starts a new task
    assert pair["faster"] == "docker" and ttr["swarm"] - ttr["docker"] > 3.0
    assert pair["difference_s"] == pytest.approx(ttr["swarm"] - ttr["docker"], abs=0.01)
    html = (out / "compare.html").read_text()
    assert "docker recovered faster than swarm" in html
    assert (out / "figures" / "timelines.png").stat().st_size > 10_000
