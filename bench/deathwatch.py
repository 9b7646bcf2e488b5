"""The instant a process died, from the kernel, without the harness or the engine.

`DeathWatch(pid)` opens a pidfd on the process (os.pidfd_open) and waits on a thread for it to
become readable, which the kernel signals as soon as the process exits; `died_at_ns` is the
wall clock read right after the wake-up (late by the thread's scheduling only, never early).

    watch = DeathWatch(container_pid)
    ...                                        # something kills it
    watch.wait(timeout=30)
    watch.died_at_ns
"""

from __future__ import annotations

import os
import select
import threading
import time


class DeathWatch:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.died_at_ns: int | None = None
        self._fd = os.pidfd_open(pid)
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"death-{pid}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        try:
            while not self._stop.is_set():
                if poller.poll(200):
                    self.died_at_ns = time.time_ns()
                    return
        finally:
            self._done.set()

    def wait(self, timeout: float) -> int | None:
        """The instant of death, or None if the process still lives after `timeout` s."""
        self._done.wait(timeout)
        return self.died_at_ns

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self._fd)
