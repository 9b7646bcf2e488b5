"""The undo log (faults.jsonl): a revert record is written BEFORE its change is made.

Each line is one state change of one fault occurrence: planned (with the revert record and
the lease deadline), applied, reverted. `outstanding()` replays the lines, so a crashed run
can be cleaned up from the file alone (`harness cleanup`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from faults.base import FaultContext, RevertRecord, revert_fault
from harness.errors import FaultError, HarnessError
from harness.results import append_json_line, read_json_lines


@dataclass(frozen=True)
class Outstanding:
    record: RevertRecord
    deadline_ns: int | None


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path

    def planned(self, record: RevertRecord, deadline_ns: int | None) -> None:
        append_json_line(
            self.path,
            {
                "state": "planned",
                "time_ns": time.time_ns(),
                "deadline_ns": deadline_ns,
                "record": record.to_json(),
            },
        )

    def applied(self, fault_id: str) -> None:
        append_json_line(
            self.path, {"state": "applied", "time_ns": time.time_ns(), "fault_id": fault_id}
        )

    def reverted(self, fault_id: str) -> None:
        append_json_line(
            self.path, {"state": "reverted", "time_ns": time.time_ns(), "fault_id": fault_id}
        )

    def outstanding(self) -> list[Outstanding]:
        """Faults planned but not yet reverted (including ones whose apply may have half run)."""
        pending: dict[str, Outstanding] = {}
        for line in read_json_lines(self.path):
            if line.get("state") == "planned":
                record = RevertRecord.from_json(line["record"])
                pending[record.fault_id] = Outstanding(record, line.get("deadline_ns"))
            elif line.get("state") == "reverted":
                pending.pop(str(line.get("fault_id")), None)
        return list(pending.values())


def revert_outstanding(
    journal: Journal, ctx: FaultContext
) -> Iterator[tuple[RevertRecord, Exception | None]]:
    """Revert every outstanding fault of the journal; yield each record and its failure."""
    from faults.registry import fault_kinds  # the table, for records of any kind

    kinds = fault_kinds()
    for item in journal.outstanding():
        try:
            if not revert_fault(kinds[item.record.kind].revert, ctx, item.record):
                raise FaultError(
                    f"{item.record.mechanism} holds it: the agent reverts it at its lease's "
                    "deadline, or when it is removed (harness cleanup removes dead runs' agents)"
                )
        except (HarnessError, OSError, KeyError) as exc:
            yield item.record, exc
            continue
        journal.reverted(item.record.fault_id)
        yield item.record, None
