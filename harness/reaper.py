"""The lease reaper: `python -m harness.reaper RUN_DIR FAULT_ID DEADLINE_NS`.

Sleeps until DEADLINE_NS; exits early once the undo log says the fault was reverted; at the
deadline reverts it from its revert record and logs the revert in events.jsonl. The target is
the run's own, rebuilt from the run directory's scenario.yaml (kind, engine, lab) and attached
to its engine (a Podman run's API service is reused while it lives).
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness.waiting import wait_until

if TYPE_CHECKING:
    from harness.results import RunDir
    from harness.targets.base import Target

POLL_S = 0.2


def _reverted(journal_path: Path, fault_id: str) -> bool:
    from harness.journal import Journal

    return all(o.record.fault_id != fault_id for o in Journal(journal_path).outstanding())


def _revert(run_dir: Path, fault_id: str) -> None:
    from harness.cleanup import attached_target
    from harness.results import RunDir

    run = RunDir(run_dir)
    with attached_target(run) as target:
        _revert_with(run, target, fault_id)


def _revert_with(run: RunDir, target: Target, fault_id: str) -> None:
    from faults.base import FaultContext, revert_fault
    from faults.registry import fault_kinds
    from harness.journal import Journal
    from harness.results import append_json_line

    journal = Journal(run.journal)
    ctx = FaultContext(target, run.run_id, run.path, random.Random(0))
    for item in journal.outstanding():
        if item.record.fault_id != fault_id:
            continue
        reverted_ns = time.time_ns()
        if not revert_fault(fault_kinds()[item.record.kind].revert, ctx, item.record):
            return  # the fault agent holds it, and its own lease reverts it
        # the event before the undo log's mark: whoever sees the fault reverted there finds
        # who reverted it (a crash in between only makes `cleanup` revert it again: idempotent)
        append_json_line(
            run.events,
            {
                "time_ns": reverted_ns,
                "source": "harness",
                "action": "fault_revert",
                "instance": None,
                "container_id": None,
                "attributes": {"fault_id": fault_id, "kind": item.record.kind, "by": "lease"},
            },
        )
        journal.reverted(fault_id)
        print(f"lease expired: reverted {fault_id} ({item.record.kind})", flush=True)


def main(argv: list[str]) -> int:
    run_dir, fault_id, deadline_ns = Path(argv[0]), argv[1], int(argv[2])
    journal_path = run_dir / "faults.jsonl"
    # the deadline is the harness's wall clock; from here on, time left is all that counts
    left_s = max(0.0, (deadline_ns - time.time_ns()) / 1e9)
    if not wait_until(lambda: _reverted(journal_path, fault_id), left_s, interval_s=POLL_S):
        _revert(run_dir, fault_id)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
