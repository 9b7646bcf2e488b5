"""Resilience checks beside your tests: an example of chaos-harness's pytest plugin.

Installing chaos-harness gives pytest the `chaos_run` fixture (no conftest needed). Each call
runs a scenario for real on the local engine and returns its summary:

    pytest examples/test_resilience.py                  # on the scenario's own target
    pytest examples/test_resilience.py --chaos-target podman
    pytest examples/test_resilience.py --chaos-out results/

A team keeps such tests beside its own, with its own scenario files; this one reuses the
repository's quickstart (three replicas of the demo workload under load, one killed) and
shortens it so that it runs in about 20 s.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.pytest_plugin import RunFactory

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "quickstart.yaml"
SHORTER = {
    "load": {"duration": "16s", "users": 10, "spawn_rate": 10},
    "faults": [{"kind": "container_kill", "name": "crash", "at": "5s", "select": {"count": 1}}],
}


@pytest.mark.chaos
def test_a_crashed_replica_is_back_before_users_notice_much(chaos_run: RunFactory) -> None:
    summary = chaos_run(SCENARIO, overrides=SHORTER, seed=1)

    assert summary.passed, summary.verdict  # every SLO of the scenario held
    crash = summary.fault("f1")
    assert crash.recovered and crash.ttr_s < 5.0  # users saw recovery within 5 s
    assert crash.availability > 0.5  # most requests still succeeded meanwhile
    # and hardly anything failed afterwards: a request sent during the outage may still time
    # out after users' recovery (recovery is judged on what was sent after it)
    assert summary.phase("after").error_rate < 0.001
