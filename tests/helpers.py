"""Small helpers shared by the engine tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from harness.targets.base import EngineEvent, Target


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
