"""The agent's probes: a GET of each of the run's instances from the agent's node, where pod
addresses are routable when they are not from the harness.

`start` spawns `python3 -m harness.agent probe DIR`, detached from the `call` that started it
(its own session, no pipe to the exec), which probes each target on a thread of its own and
appends one line per probe to its results (harness.agent.probe_log: the files, and the read).
`stop` ends the process by its recorded PID and start time. The process stops by itself when
no read came for `idle_s` (a harness that died), and `serve` stops every one when it is
stopped, so nothing is left. Standard library only, beside the protocol's models.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from harness.agent.probe_log import (
    CONFIG,
    LOG,
    PID_FILE,
    READ_MARK,
    RESULTS,
    line,
    probe_dir,
    running,
)
from harness.agent.protocol import ProbeStartRequest, ProbeStopRequest, ProbeTarget, Reply
from harness.errors import AgentError
from harness.hostsys import kill_recorded, process_start_ticks
from harness.http_probe import probe_once

STARTED_WITHIN_S = 10.0
STOP_GRACE_S = 5.0
IDLE_CHECK_S = 0.5


# --- the probe process ---------------------------------------------------------------------


class _Loop:
    """The probe threads of one process, writing one line per probe under one lock."""

    def __init__(self, config: ProbeStartRequest, out: IO[str]) -> None:
        self._config = config
        self._out = out
        self._lock = threading.Lock()
        self.stop = threading.Event()

    def run(self, target: ProbeTarget) -> None:
        interval_s, timeout_s = self._config.interval_s, self._config.timeout_s
        next_at = time.monotonic()
        while not self.stop.is_set():
            start_ns = time.time_ns()
            started = time.perf_counter()
            ok, error = probe_once(target.url, timeout_s)
            latency_ms = (time.perf_counter() - started) * 1000
            with self._lock:
                self._out.write(line(target.name, start_ns, latency_ms, ok, error))
            next_at += interval_s
            self.stop.wait(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - interval_s)


def _idle_for_s(directory: Path) -> float:
    try:
        return time.time() - (directory / READ_MARK).stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def run_probes(directory: Path) -> int:
    """The probe process's main: probe until SIGTERM or `idle_s` without a read."""
    config = ProbeStartRequest.model_validate_json((directory / CONFIG).read_text())
    with (directory / RESULTS).open("a", buffering=1, encoding="utf-8") as out:
        loop = _Loop(config, out)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: loop.stop.set())
        threads = [
            threading.Thread(target=loop.run, args=(t,), name=f"probe-{t.name}", daemon=True)
            for t in config.targets
        ]
        for thread in threads:
            thread.start()
        _write_pid(directory)
        while not loop.stop.wait(IDLE_CHECK_S):
            if _idle_for_s(directory) > config.idle_s:
                print(f"no read for {config.idle_s:g} s: stopping", file=sys.stderr, flush=True)
                loop.stop.set()
        for thread in threads:
            thread.join(timeout=config.timeout_s + 1)
    with contextlib.suppress(FileNotFoundError):
        (directory / PID_FILE).unlink()
    return 0


def _write_pid(directory: Path) -> None:
    pid = os.getpid()
    temporary = directory / f".{PID_FILE}.tmp"
    temporary.write_text(json.dumps({"pid": pid, "start_ticks": process_start_ticks(pid)}))
    os.replace(temporary, directory / PID_FILE)


# --- the calls -----------------------------------------------------------------------------


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def start(request: ProbeStartRequest, state_dir: Path, node: str) -> Reply:
    directory = probe_dir(state_dir, request.run_id)
    directory.mkdir(parents=True, exist_ok=True)
    _stop_in(directory)
    offset = _size(directory / RESULTS)  # before the first probe: the next read starts here
    (directory / CONFIG).write_text(request.model_dump_json())
    (directory / READ_MARK).touch()
    with (directory / LOG).open("a") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "harness.agent", "probe", str(directory)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # not the exec's: it outlives the call
            cwd="/",
        )
    deadline = time.monotonic() + STARTED_WITHIN_S
    while (alive := running(directory)) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            said = (directory / LOG).read_text(errors="replace")[-600:]
            raise AgentError(f"the probe process on {node} did not start: {said}")
        time.sleep(0.02)
    return Reply(
        ok=True,
        node=node,
        time_ns=time.time_ns(),
        pid=alive[0],
        next_offset=offset,
    )


def stop(request: ProbeStopRequest, state_dir: Path, node: str) -> Reply:
    _stop_in(probe_dir(state_dir, request.run_id))
    return Reply(ok=True, node=node, time_ns=time.time_ns())


def _stop_in(directory: Path) -> bool:
    """Stop the directory's probe process (SIGTERM, then SIGKILL after a grace); True if
    one was running."""
    alive = running(directory)
    if alive is None:
        return False
    pid, ticks = alive
    kill_recorded(pid, ticks, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while running(directory) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    if running(directory) is not None:
        kill_recorded(pid, ticks, signal.SIGKILL)
    return True


def stop_all(state_dir: Path) -> list[str]:
    """Stop every run's probe process (the agent stopping); the run ids that had one."""
    runs: Sequence[Path] = sorted((state_dir / "runs").glob("*/probes"))
    return [directory.parent.name for directory in runs if _stop_in(directory)]
