"""Leases: a fault with a duration is reverted when its time is up, even if the harness died.

For each such fault the runner starts a small reaper process (`python -m harness.reaper`) in
its own session, so a SIGKILL of the harness or a Ctrl-C on its terminal does not reach it.
The reaper owns the deadline: it sleeps until the deadline plus a grace period, and if the
undo log does not say the fault was reverted by then, it reverts it from the record alone.
After a normal revert the runner ends the reaper by the PID it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# The harness reverts at the deadline; the reaper waits this much longer, so it acts only
# when the harness could not.
GRACE_NS = 1_500_000_000


@dataclass(frozen=True)
class Lease:
    fault_id: str
    pid: int
    deadline_ns: int


def start_lease(run_dir: Path, fault_id: str, deadline_ns: int) -> Lease:
    """Start the reaper that reverts `fault_id` at `deadline_ns` unless it was reverted."""
    log = (run_dir / "logs" / f"reaper-{fault_id}.log").open("ab")
    with log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.reaper",
                str(run_dir),
                fault_id,
                str(deadline_ns + GRACE_NS),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    return Lease(fault_id, process.pid, deadline_ns)


def end_lease(lease: Lease) -> None:
    """Stop the reaper we started (by its PID only); it is no longer needed."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(lease.pid, signal.SIGTERM)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(lease.pid, 0)
