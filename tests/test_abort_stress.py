"""A few runs of bench/abort_stress.py in the default suite: `harness run` killed in the middle
of a fault (SIGINT, SIGTERM and SIGKILL once each) at random instants, then the machine asked
for anything of the run: containers, networks, bridges, rules in every table and namespace,
processes, Podman services, and two bystander containers compared with how they were made.

The seed is printed (a failure replays with CHAOS_HARNESS_STRESS_SEED); the 50-run stress,
every fault kind on Docker, Podman, Swarm and the Swarm lab, and killed `lab up`s, is
`python -m bench.abort_stress`.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
from collections import Counter
from pathlib import Path

import docker
import pytest

from bench.abort_stress import CATALOGUE, TARGETS, Run, phase_of, plan, stress
from harness.hostsys import process_start_ticks
from harness.targets.base import OWNER_LABEL, RUN_LABEL

pytestmark = pytest.mark.docker


def test_runs_killed_at_random_instants_leave_nothing() -> None:
    seed = int(os.environ.get("CHAOS_HARNESS_STRESS_SEED") or random.randrange(2**31))
    print(f"abort stress seed {seed}")
    report = stress(
        3,
        seed,
        ["docker"],
        signals=(signal.SIGINT, signal.SIGTERM, signal.SIGKILL),
        # faults whose revert stops a process of the harness's or deletes rules and qdiscs
        kinds=("latency", "cpu_stress", "network_partition", "bandwidth", "disk_fill"),
        window=(6.0, 13.0),  # the fault is on from about 6 s to 12 s after the start
    )
    lines = "\n".join(report.lines())
    assert report.leftovers == 0 and report.problems == 0, lines
    assert len(report.outcomes) == 3
    assert {o.signum for o in report.outcomes} == {signal.SIGINT, signal.SIGTERM, signal.SIGKILL}
    # the kills fell in the run, not after it: each run says it was aborted
    early = ("preflight", "before its manifest", "finished before the kill")
    assert all(o.phase not in early for o in report.outcomes), lines


def test_fewer_runs_than_cases_are_shared_out_among_the_targets() -> None:
    planned = plan(12, list(TARGETS), random.Random(0))
    # five targets in turn: docker, podman, swarm, lab, kube twice (10 runs), then docker and
    # podman once more: 3, 3, 2, 2, 2
    counts = Counter(case.target for case, _signal, _at in planned)
    assert counts == {"docker": 3, "podman": 3, "swarm": 2, "lab": 2, "kube": 2}
    assert len({id(case) for case, _signal, _at in planned}) == 12  # no case twice


# --- a harness killed before it wrote anything --------------------------------------------------
# A SIGKILL between `mkdir` of the run directory and the write of its manifest (a few ms, found
# by polling for the directory every 0.5 ms) leaves an empty directory: that is what these tests
# build by hand, then give to the stress's checks as if its harness had just been killed.

RUN_ID = "abort-container-kill-20261207-012523-aa72"  # the shape make_run_id gives


def _killed_before_its_manifest(tmp_path: Path) -> tuple[Run, int]:
    """A stress run whose harness died leaving an empty run directory; (run, harness pid)."""
    run = Run(CATALOGUE["docker"][0], signal.SIGKILL, 0.05, tmp_path)
    (run.out / RUN_ID).mkdir(parents=True)
    harness = subprocess.Popen(["true"], start_new_session=True)  # stands for the dead harness
    harness.wait()
    return run, harness.pid


def test_a_run_killed_before_its_manifest_is_a_case_not_a_failure(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    run, pid = _killed_before_its_manifest(tmp_path)
    outcome = run.check(phase_of(run.out), pid, -signal.SIGKILL, "", docker_client)
    assert outcome.phase == "before its manifest"
    assert outcome.run_id == RUN_ID
    assert outcome.problems == [] and outcome.leftovers == []
    assert (run.out / RUN_ID / "manifest.json").exists() is False  # cleanup had nothing to mark


def test_what_a_run_killed_before_its_manifest_left_is_found(
    tmp_path: Path, docker_client: docker.DockerClient, demo_image: str
) -> None:
    run, _ = _killed_before_its_manifest(tmp_path)
    # a process left in the harness's session, owning a container labelled with the run (a
    # live owner: no one's `harness cleanup` removes it meanwhile)
    left = subprocess.Popen(["sleep", "120"], start_new_session=True)
    owner = f"{left.pid}:{process_start_ticks(left.pid)}"
    container = docker_client.containers.create(
        demo_image, name=f"abort-test-{RUN_ID}", labels={RUN_LABEL: RUN_ID, OWNER_LABEL: owner}
    )
    try:
        outcome = run.check(phase_of(run.out), left.pid, -signal.SIGKILL, "", docker_client)
    finally:
        container.remove(force=True)
        left.kill()
        left.wait()
    # 2 leftovers: the process in the session (sleep), the container on the host's engine
    assert sorted(outcome.leftovers) == [
        f"docker container abort-test-{RUN_ID}",
        f"process {left.pid}: sleep 120 ",
    ], outcome.leftovers
    assert outcome.problems == []
