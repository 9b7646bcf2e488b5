"""The run directory: where each file goes, the writers that append to it safely, and the
words a run ends with.

Statuses, one vocabulary for every reader (manifest, summary, exit codes, trials, matrix,
compare): manifest `running` (no summary yet), `completed` (summary passed | slo_violated |
baseline_broken: exit 0 | 1 | 1), `aborted` (a signal, or found dead by `harness cleanup`:
128 + signal) and `failed` (exit 3). `abort` says which signal, when and in which phase;
`error` and `failure` why a run failed. Older directories' `interrupted` and `error` are read
as `aborted` and `failed` (`normalized_status`).

manifest.json and summary.json are typed and versioned (harness.results.manifest, .summary),
probes in harness.results.probes. This package imports nothing above it.

A crash never leaves a half-written file under its final name: whole files go through a
temporary name and a rename (`write_json`, `write_text_atomic`), logs one complete line per
write (`append_json_line`, `EventLog`), and a torn last line is skipped by the readers and cut
off by `repair_torn_tail`. The status table: docs/RUNS.md, The run directory.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from harness.hostsys import process_start_ticks

RUNNING: Final = "running"
COMPLETED: Final = "completed"
ABORTED: Final = "aborted"
FAILED: Final = "failed"
RUN_STATUSES: Final = (RUNNING, COMPLETED, ABORTED, FAILED)
SUMMARY_STATUSES: Final = ("passed", "slo_violated", "baseline_broken", ABORTED, FAILED)
LEGACY_STATUSES: Final = {"interrupted": ABORTED, "error": FAILED}


def normalized_status(raw: object) -> str:
    """A run's or summary's status in today's words (older run directories say `interrupted`
    and `error`); anything unknown is returned unchanged."""
    text = str(raw)
    return LEGACY_STATUSES.get(text, text)


@dataclass(frozen=True)
class RunDir:
    """Paths of one run's files."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    scenario = property(lambda self: self.path / "scenario.yaml")
    manifest = property(lambda self: self.path / "manifest.json")
    requests = property(lambda self: self.path / "requests.parquet")
    probes = property(lambda self: self.path / "probes.parquet")
    probes_log = property(lambda self: self.path / "probes.tsv")  # appended as probes complete
    events = property(lambda self: self.path / "events.jsonl")
    journal = property(lambda self: self.path / "faults.jsonl")
    summary = property(lambda self: self.path / "summary.json")
    report = property(lambda self: self.path / "report.html")
    load_dir = property(lambda self: self.path / "load")
    load_pids = property(lambda self: self.path / "load" / "pids.json")
    logs = property(lambda self: self.path / "logs")

    def create(self) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=False)
        self.load_dir.mkdir()
        self.logs.mkdir()
        return self


def write_text_atomic(path: Path, text: str) -> None:
    """Write a whole file so that a crash leaves the old file or the new one, never half:
    a temporary name in the same directory, flushed to disk, then renamed over `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON atomically (a crash leaves the old file or the new one, never half)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def repair_torn_tail(path: Path) -> bool:
    """Cut off a last line that a crash left without its newline; True if one was cut.

    A log is appended one complete line per write, so only the very last line can be torn
    (a kill or a full disk in the middle of a write)."""
    try:
        with path.open("rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return False
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return False
            handle.seek(max(0, size - 1_048_576))
            tail = handle.read()
            cut = tail.rfind(b"\n")
            keep = size - len(tail) + cut + 1 if cut >= 0 else max(0, size - len(tail))
            handle.truncate(keep)
            return True
    except FileNotFoundError:
        return False


def append_json_line(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line and flush it to disk (the undo log must survive a crash)."""
    line = json.dumps(record, separators=(",", ":")) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by a crash: the ones before it still count
    return records


class EngineEventLike(Protocol):
    """What events.jsonl records of an engine event (harness.targets.base.EngineEvent)."""

    @property
    def time_ns(self) -> int: ...
    @property
    def action(self) -> str: ...
    @property
    def instance(self) -> str | None: ...
    @property
    def container_id(self) -> str | None: ...
    @property
    def attributes(self) -> Mapping[str, Any]: ...


class EventLog:
    """events.jsonl: engine and harness events, one JSON object a line, thread-safe."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._file = path.open("a", buffering=1)

    def engine(self, event: EngineEventLike) -> None:
        self._write(
            {
                "time_ns": event.time_ns,
                "source": "engine",
                "action": event.action,
                "instance": event.instance,
                "container_id": event.container_id,
                "attributes": dict(event.attributes),
            }
        )

    def harness(self, time_ns: int, action: str, **attributes: Any) -> None:
        self._write(
            {
                "time_ns": time_ns,
                "source": "harness",
                "action": action,
                "instance": None,
                "container_id": None,
                "attributes": attributes,
            }
        )

    def _write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            if not self._file.closed:
                self._file.write(line)

    def close(self) -> None:
        with self._lock:
            self._file.close()


def write_pid_file(path: Path, pids: Iterable[int]) -> None:
    """Record processes we started, with their start times, so cleanup can stop exactly them."""
    write_json(path, {"processes": [{"pid": p, "start": process_start_ticks(p)} for p in pids]})


def read_pid_file(path: Path) -> list[tuple[int, int | None]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return [(int(p["pid"]), p.get("start")) for p in data.get("processes", [])]
