"""Abort tests: the harness SIGKILLed in the middle of a fault, and what is left afterwards.

Use in a test:

    aborted = run_and_kill_during_fault(SCENARIOS / "latency.yaml", tmp_path)
    # the harness is dead now, the fault is in place, its lease reaper is waiting
    wait_for_lease_revert(aborted)      # the reaper reverted it at the deadline
    ... assert the fault's own leftovers are gone (rules, qdiscs, processes, files), using
        aborted.instances() (the run's containers are still there: nobody tore them down)
    finish_with_cleanup(aborted)        # `harness cleanup` removes every labelled object and
                                        # marks the run aborted

Scenarios for abort tests should put the fault early (at ~3 s) with a short duration (~6 s)
and a load long enough to still be running; `shortened()` writes such a copy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import yaml

from harness.cleanup import attached_target
from harness.journal import Journal
from harness.lease import GRACE_NS
from harness.results import RunDir, read_json_lines
from harness.targets.base import RUN_LABEL, Instance
from tests.helpers import podman_leftovers

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = REPO / "scenarios"


@dataclass(frozen=True)
class AbortedRun:
    run_dir: Path
    run_id: str
    deadline_ns: int
    fault_id: str

    def instances(self) -> list[Instance]:
        """The run's instances now, through the run's own engine (a Podman run's service)."""
        with attached_target(RunDir(self.run_dir)) as target:
            return target.instances()


def shortened(
    scenario: Path,
    out: Path,
    at_s: float = 4.0,
    duration_s: float = 6.0,
    fault_overrides: dict[str, object] | None = None,
) -> Path:
    """A copy of the scenario with its first fault at `at_s` for `duration_s`, load 40 s."""
    data = yaml.safe_load(scenario.read_text())
    fault = dict(data["faults"][0], at=f"{at_s}s", **(fault_overrides or {}))
    if "duration" in fault:
        fault["duration"] = f"{duration_s}s"
    data["faults"] = [fault]
    data["load"] = {**data.get("load", {}), "duration": "40s"}
    data["workload"] = {**data.get("workload", {}), "replicas": 2}
    path = out / f"abort-{scenario.name}"
    path.write_text(yaml.safe_dump(data))
    return path


def _harness(*args: str, **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        **kwargs,  # type: ignore[call-overload]
    )


def run_and_kill_during_fault(scenario: Path, out: Path, timeout_s: float = 90) -> AbortedRun:
    """Start `harness run`, SIGKILL it once its first fault is applied; return the run."""
    process = _harness("run", str(scenario), "--out", str(out))
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            applied = _applied_fault(out)
            if applied is not None:
                time.sleep(0.5)
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
                return applied
            if process.poll() is not None:
                raise AssertionError(f"harness exited with {process.returncode} before a fault")
            time.sleep(0.1)
        raise AssertionError("no fault was applied in time")
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _applied_fault(out: Path) -> AbortedRun | None:
    for run_dir in out.iterdir() if out.exists() else []:
        lines = read_json_lines(run_dir / "faults.jsonl")
        applied = {line["fault_id"] for line in lines if line.get("state") == "applied"}
        for line in lines:
            if line.get("state") == "planned" and line["record"]["fault_id"] in applied:
                return AbortedRun(
                    run_dir=run_dir,
                    run_id=run_dir.name,
                    deadline_ns=int(line.get("deadline_ns") or time.time_ns()),
                    fault_id=line["record"]["fault_id"],
                )
    return None


def wait_for_lease_revert(run: AbortedRun, slack_s: float = 15.0) -> None:
    """Wait until the lease reaper has reverted the fault; fail if it does not in time."""
    limit = (run.deadline_ns + GRACE_NS) / 1e9 + slack_s
    journal = Journal(run.run_dir / "faults.jsonl")
    while time.time() < limit:
        if not journal.outstanding():
            events = read_json_lines(run.run_dir / "events.jsonl")
            by_lease = [e for e in events if e["attributes"].get("by") == "lease"]
            assert by_lease, "the fault was reverted, but not by its lease"
            assert by_lease[0]["time_ns"] >= run.deadline_ns, "reverted before its deadline"
            return
        time.sleep(0.2)
    raise AssertionError(f"the lease did not revert {run.fault_id}: {journal.outstanding()}")


def finish_with_cleanup(run: AbortedRun) -> None:
    """`harness cleanup` twice: the second finds nothing; no labelled object is left, on the
    host's Docker engine or in Podman's store (asked with podman's own CLI)."""
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "harness", "cleanup", "--results", str(run.run_dir.parent)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    client = docker.from_env()
    label = {"label": f"{RUN_LABEL}={run.run_id}"}
    assert client.containers.list(all=True, filters=label) == []
    assert client.networks.list(filters=label) == []
    assert podman_leftovers(run.run_id) == []
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    # the harness died before it could say so; cleanup found it dead and says it for it
    assert manifest["status"] == "aborted" and manifest["abort"]["by"] == "harness cleanup"
