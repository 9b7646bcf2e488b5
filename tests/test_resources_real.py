"""A real `harness run` on Docker with a cpu_stress fault: the summary's resource block says the
fault cost about the CPU the stress was asked for, and agrees with the container's cgroup as
this test read it itself while the run went on (a reading the harness did not make)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import numpy as np
import pytest
import yaml

from harness.errors import HarnessError
from harness.targets.base import RUN_LABEL
from tests.abort import REPO, SCENARIOS
from tests.helpers import Sampler, cpu_seconds

pytestmark = pytest.mark.docker
NAME = "resources-check"
ASKED_CORES = 0.5  # one stress-ng worker at load 50


def _scenario(tmp_path: Path) -> Path:
    data = yaml.safe_load((SCENARIOS / "cpu_stress.yaml").read_text())
    data["name"] = NAME
    data["workload"]["replicas"] = 1
    data["workload"]["resources"] = {"memory": "64Mi"}  # no CPU limit: the stress gets its ask
    # a light open loop on "/" only: the workload's own CPU stays small beside the stress
    data["load"] = {"rate": 20, "duration": "24s", "workers": 0, "paths": [{"path": "/"}]}
    data["faults"] = [
        {"kind": "cpu_stress", "at": "8s", "duration": "10s", "workers": 1, "load": 50}
    ]
    data.pop("slo", None)
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class CgroupReader(Sampler):
    """The run's container's cgroup CPU, read by the test every 0.25 s."""

    interval_s = 0.25

    def __init__(self, client: docker.DockerClient) -> None:
        super().__init__()
        self._client = client
        self.readings: list[tuple[int, float]] = []

    def sample(self) -> None:
        for container in self._client.containers.list(filters={"label": RUN_LABEL}):
            if not container.labels.get(RUN_LABEL, "").startswith(NAME):
                continue
            pid = int(container.attrs["State"]["Pid"] or 0)
            try:
                if pid > 0:
                    self.readings.append((time.time_ns(), cpu_seconds(pid)))
            except (OSError, ValueError, HarnessError):
                continue  # not started yet, or gone

    def cores(self, start_ns: int, end_ns: int) -> float:
        times = np.array([t for t, _ in self.readings], dtype=np.float64)
        used = np.array([c for _, c in self.readings], dtype=np.float64)
        assert times.size > 10 and times[0] <= start_ns and end_ns <= times[-1]
        a, b = np.interp([start_ns, end_ns], times, used)
        return float(b - a) / ((end_ns - start_ns) / 1e9)


@pytest.fixture
def reader(docker_client: docker.DockerClient) -> Iterator[CgroupReader]:
    with CgroupReader(docker_client) as watching:
        yield watching


def test_a_cpu_stress_costs_what_it_asked_for(tmp_path: Path, reader: CgroupReader) -> None:
    command = [sys.executable, "-m", "harness", "run", str(_scenario(tmp_path))]
    done = subprocess.run(
        [*command, "--out", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    assert (run_dir / "resources.parquet").stat().st_size > 0
    use = summary["resources"]
    assert use["sampled"] and len(use["instances"]) == 1
    fault = use["faults"][0]
    assert fault["cpu_cost_cores"] == pytest.approx(ASKED_CORES, abs=0.15)
    for window in ("baseline", "during"):
        theirs = fault[window]
        own = reader.cores(theirs["start_ns"], theirs["end_ns"])
        # the harness spreads each 1 s round evenly: an edge inside a round smears the stress
        # by up to half a core-second over the window
        assert theirs["cpu_cores"] == pytest.approx(own, abs=0.08), window
    assert fault["during"]["memory_max_bytes"] > 0
