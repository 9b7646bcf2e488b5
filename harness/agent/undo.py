"""The agent's own undo log: one file per fault it holds, written before the change.

A file names the run, the fault, its record, the instances it was applied to and the lease's
deadline on the agent's clock; it goes when the fault is reverted. Every change of the log
and every apply or revert runs under one lock file, so the `serve` loop reverting at a
deadline and a `call` reverting on the harness's word never undo the same fault at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from faults.base import RevertRecord
from harness.agent.protocol import AgentInstance


@dataclass(frozen=True)
class Held:
    """One fault the agent holds."""

    run_id: str
    kind: str
    record: RevertRecord
    instances: list[AgentInstance]
    deadline_ns: int | None

    def to_json(self) -> str:
        return json.dumps(
            {
                "run_id": self.run_id,
                "kind": self.kind,
                "record": self.record.to_json(),
                "instances": [i.model_dump(mode="json") for i in self.instances],
                "deadline_ns": self.deadline_ns,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Held:
        raw = json.loads(text)
        return cls(
            run_id=str(raw["run_id"]),
            kind=str(raw["kind"]),
            record=RevertRecord.from_json(raw["record"]),
            instances=[AgentInstance.model_validate(i) for i in raw["instances"]],
            deadline_ns=raw.get("deadline_ns"),
        )


class UndoLog:
    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / "held"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_path = state_dir / "lock"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _path(self, run_id: str, fault_id: str) -> Path:
        return self.directory / f"{run_id}--{fault_id}.json"

    def hold(self, held: Held) -> None:
        path = self._path(held.run_id, held.record.fault_id)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(held.to_json())
        os.replace(temporary, path)

    def get(self, run_id: str, fault_id: str) -> Held | None:
        try:
            return Held.from_json(self._path(run_id, fault_id).read_text())
        except FileNotFoundError:
            return None

    def release(self, run_id: str, fault_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(run_id, fault_id).unlink()

    def held(self) -> list[Held]:
        found = []
        for path in sorted(self.directory.glob("*.json")):
            with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
                found.append(Held.from_json(path.read_text()))
        return found
