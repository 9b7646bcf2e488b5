"""The files of a run's probe process on the agent, and the probe read: standard library only.

DIR = STATE_DIR/runs/<run id>/probes holds the process's settings, its PID (with its start
time, so a recycled PID is never signalled), its results (one tab-separated line per probe:
start_ns on the agent's clock, latency_ms, ok, instance, error) and the read mark, touched by
every read: the process stops by itself when no read came for its `idle_s`. `read_reply`
answers a probe read without pydantic (harness.agent.wire says why); the harness validates the
reply with the protocol's Reply all the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from harness.agent.wire import PROTOCOL_VERSION, safe_run_id
from harness.hostsys import process_start_ticks

RESULTS = "probes.tsv"
CONFIG = "config.json"
PID_FILE = "pid"
READ_MARK = "read"
LOG = "probe.log"
MAX_READ_BYTES = 512 * 1024  # one reply's worth; the rest comes with the next read
READ_FIELDS = frozenset({"op", "run_id", "offset"})


def probe_dir(state_dir: Path, run_id: str) -> Path:
    return state_dir / "runs" / run_id / "probes"


def _clean(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ")


def line(name: str, start_ns: int, latency_ms: float, ok: bool, error: str | None) -> str:
    return f"{start_ns}\t{latency_ms:.3f}\t{int(ok)}\t{_clean(name)}\t{_clean(error or '')}\n"


def _parsed(text: str) -> dict[str, Any] | None:
    """One result line as the protocol's AgentProbe fields; None for a line that is not one."""
    fields = text.split("\t")
    if len(fields) != 5:
        return None
    try:
        start_ns, latency_ms = int(fields[0]), float(fields[1])
    except ValueError:
        return None
    return {
        "instance": fields[3],
        "start_ns": start_ns,
        "latency_ms": latency_ms,
        "ok": fields[2] == "1",
        "error": fields[4] or None,
    }


def lines_after(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The complete lines after `offset` (at most MAX_READ_BYTES of them) and where they end."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read(MAX_READ_BYTES)
    except FileNotFoundError:
        return [], offset
    whole = data[: data.rfind(b"\n") + 1]
    parsed = (_parsed(t) for t in whole.decode("utf-8", errors="replace").splitlines())
    return [p for p in parsed if p is not None], offset + len(whole)


def running(directory: Path) -> tuple[int, int] | None:
    """(pid, start ticks) of the directory's probe process while it runs (not a zombie)."""
    try:
        raw = json.loads((directory / PID_FILE).read_text())
        pid, ticks = int(raw["pid"]), int(raw["start_ticks"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    return (pid, ticks) if process_start_ticks(pid) == ticks and not _zombie(pid) else None


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def is_read(body: object) -> bool:
    """Whether a request's body is a well-formed probe read (else the full parse judges it)."""
    if not isinstance(body, dict) or body.get("op") != "probe_read" or set(body) - READ_FIELDS:
        return False
    run_id, offset = body.get("run_id"), body.get("offset", 0)
    safe = isinstance(run_id, str) and safe_run_id(run_id)
    return safe and type(offset) is int and offset >= 0


def read_reply(run_id: str, offset: int, state_dir: Path, node: str) -> dict[str, Any]:
    """The reply to a probe read: the new probes, where the next read starts, the pid."""
    directory = probe_dir(state_dir, run_id)
    with contextlib.suppress(FileNotFoundError):
        os.utime(directory / READ_MARK)
    probes, next_offset = lines_after(directory / RESULTS, offset)
    alive = running(directory)
    return {
        "version": PROTOCOL_VERSION,
        "ok": True,
        "node": node,
        "time_ns": time.time_ns(),
        "pid": None if alive is None else alive[0],
        "probes": probes,
        "next_offset": next_offset,
    }
