"""The run directory: where each file goes, and the writers that append to it safely."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.hostsys import process_start_ticks
from harness.targets.base import EngineEvent


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


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON atomically (a crash leaves the old file or the new one, never half)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


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


class EventLog:
    """events.jsonl: engine and harness events, one JSON object a line, thread-safe."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._file = path.open("a", buffering=1)

    def engine(self, event: EngineEvent) -> None:
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
