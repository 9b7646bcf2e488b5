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

import pytest

from bench.abort_stress import stress

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
    assert all(o.phase not in ("preflight", "finished before the kill") for o in report.outcomes), (
        lines
    )
