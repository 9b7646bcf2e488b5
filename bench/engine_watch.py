"""Our own subscription to the Docker engine's events: the reference the harness is held to.

It reads the engine's raw event stream with the Docker SDK, independent of the harness's own
recorder, so a test or benchmark can compare what the harness measured with what the engine
itself stamped.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import docker

from harness.targets.base import INSTANCE_LABEL, RUN_LABEL


class EngineWatch:
    def __init__(self, client: docker.DockerClient) -> None:
        self.events: list[dict[str, Any]] = []
        self._stream = client.events(
            since=int(time.time()), filters={"label": RUN_LABEL, "type": "container"}, decode=True
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._stream:
                self.events.append(event)
        except Exception:
            return  # closed

    def close(self) -> None:
        self._stream.close()
        self._thread.join(timeout=5)

    def first(self, action: str, instance: str, after_ns: int) -> int:
        """The engine's timestamp of the first `action` of `instance` at or after `after_ns`."""
        times = [
            int(e["timeNano"])
            for e in self.events
            if e["Action"] == action
            and e["Actor"]["Attributes"].get(INSTANCE_LABEL) == instance
            and int(e["timeNano"]) >= after_ns
        ]
        assert times, f"the engine sent no {action} for {instance}"
        return min(times)
