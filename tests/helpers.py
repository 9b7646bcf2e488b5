"""Small helpers shared by the engine tests."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable

from harness.engines import podman
from harness.targets.base import RUN_LABEL, EngineEvent, Target
from harness.targets.service_vip import run_jumps


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Poll `predicate` every 50 ms; True as soon as it holds, False after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


class EventCollector:
    """target.events() read on a thread, as the runner's recorder does."""

    def __init__(self, target: Target) -> None:
        self.events: list[EngineEvent] = []
        self._stream = target.events(time.time_ns())
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        for event in self._stream:
            self.events.append(event)

    def actions(self) -> list[str]:
        return [e.action for e in self.events]

    def close(self, grace_s: float = 0.5) -> list[EngineEvent]:
        """Stop reading (after a grace for late events); the events in time order."""
        time.sleep(grace_s)
        self._stream.close()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "close() did not end the event stream"
        return sorted(self.events, key=lambda e: e.time_ns)


def _podman(*args: str) -> list[str]:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=60, check=False
    )
    return [line for line in done.stdout.splitlines() if line.strip()]


def podman_leftovers(run_id: str) -> list[str]:
    """What of the run is left in Podman's store, as podman's own CLI lists it (not the
    harness's code), its API service if it still runs, its files, its iptables chains."""
    found = [f"iptables jump to {j.chain}" for j in run_jumps() if j.run_id == run_id]
    if shutil.which("podman") is None:
        return found
    label = f"label={RUN_LABEL}={run_id}"
    found += [
        f"container {n}" for n in _podman("ps", "-a", "--filter", label, "--format", "{{.Names}}")
    ]
    found += [
        f"network {n}" for n in _podman("network", "ls", "--filter", label, "--format", "{{.Name}}")
    ]
    found += [
        f"volume {n}" for n in _podman("volume", "ls", "--filter", label, "--format", "{{.Name}}")
    ]
    service = podman.recorded(run_id)
    if service is not None and service.alive:
        found.append(f"podman service pid {service.pid}")
    found += [f"file {p}" for p in podman.state_dir().glob(f"{run_id}.*")]
    return found
