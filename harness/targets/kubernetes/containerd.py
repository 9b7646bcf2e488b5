"""Container exits as each lab node's containerd saw them, to the nanosecond.

The API stamps a container's end to the second, and the kubelet notices it up to a second
late (its PLEG relists every second), so kill -> die reads far longer than Docker's for the
same SIGKILL (docs/TARGETS.md, Kubernetes containerd). On the local lab this host can follow
each node's containerd: `ctr events` prints every `/tasks/exit` with the exit instant
(`exited_at`). The pod tracker then stamps a die with it (`time_source: host`), the API's stamps
kept beside it. A probe or an exec in the container exits too, with its own exec id: only the
init process (id equal to the container id) ends the container.

Each `ctr` is this process's child with a parent-death signal, stopped by its PID at close().
The kernel sends that signal when the THREAD that forked the child ends, not the process, and
the runner subscribes from short-lived threads: so the children are forked by a keeper thread
of their own that lives until close().
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from collections.abc import Sequence

from harness.hostsys import with_parent_death_signal
from harness.targets.kubernetes.views import parse_time_ns

EXIT_TOPIC = "/tasks/exit"
NAMESPACE = "k8s.io"
STOP_TIMEOUT_S = 5.0


def parse_exit(line: str) -> tuple[str, int] | None:
    """(container id, exit instant in ns) from one line of `ctr events`; None for others.

    A line is `<timestamp> <namespace> <topic> <event as JSON>`, the timestamp itself holding
    spaces ("2026-12-07 01:50:00.123456789 +0000 UTC")."""
    head, brace, payload = line.partition("{")
    words = head.split()
    if not brace or len(words) < 2 or words[-1] != EXIT_TOPIC or words[-2] != NAMESPACE:
        return None
    try:
        event = json.loads(brace + payload)
    except ValueError:
        return None
    container, process = event.get("container_id"), event.get("id")
    exited = parse_time_ns(event.get("exited_at"))
    if not container or process != container or exited is None:
        return None
    return str(container), exited


class ContainerdExits:
    """Follows the containerds at `sockets`: container id -> when its init process exited."""

    def __init__(self, sockets: Sequence[str]) -> None:
        self._sockets = list(sockets)
        self._exits: dict[str, int] = {}
        self._lock = threading.Lock()
        self._followers: list[tuple[subprocess.Popen[str], threading.Thread]] = []
        self._closed = threading.Event()
        self._keeper: threading.Thread | None = None

    def start(self) -> ContainerdExits:
        spawned = threading.Event()
        self._keeper = threading.Thread(
            target=self._keep, args=(spawned,), name="containerd-exits-keeper", daemon=True
        )
        self._keeper.start()
        spawned.wait(timeout=STOP_TIMEOUT_S)
        return self

    def _keep(self, spawned: threading.Event) -> None:
        """Fork the followers, then live (their parent-death signal is tied to this thread)."""
        for socket in self._sockets:
            try:
                process = subprocess.Popen(
                    with_parent_death_signal(["ctr", "--address", socket, "events"]),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
            except OSError:
                continue  # no ctr: dies keep the API's stamps, as on a cluster not run here
            reader = threading.Thread(
                target=self._read, args=(process,), name="containerd-exits", daemon=True
            )
            reader.start()
            self._followers.append((process, reader))
        spawned.set()
        self._closed.wait()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            seen = parse_exit(line)
            if seen is not None:
                with self._lock:
                    self._exits[seen[0]] = seen[1]

    def exited_ns(self, container_id: str) -> int | None:
        with self._lock:
            return self._exits.get(container_id)

    def close(self) -> None:
        followers, self._followers = self._followers, []
        for process, reader in followers:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_TIMEOUT_S)
            if process.poll() is None:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
            reader.join(timeout=STOP_TIMEOUT_S)
        self._closed.set()
        if self._keeper is not None:
            self._keeper.join(timeout=STOP_TIMEOUT_S)
