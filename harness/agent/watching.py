"""Container start and exit instants as the agent's node saw them.

The API stamps a container's start and end to the second, and the kubelet notices an end up to
a second late. The agent reads them on the node, runtime-neutral: the start is the start time
of the container's init process (/proc, 10 ms ticks); the exit is the instant a pidfd on that
process becomes readable (the kernel's word that it exited), seen by `serve`, which holds one
pidfd for each container it is asked to watch.

Files, under STATE_DIR/runs/<run id>/instants/: `watch`, the container ids to watch (one a
line, appended by `instants` calls with `watch`); `seen.tsv`, what `serve` saw (`start`, `exit`
or `gone` lines: see `_line`). A call that asks to watch waits until `serve` has taken every
id up (a pidfd held, or the container gone), so a kill after the reply is seen. Standard library
only, beside the protocol's models.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.agent.protocol import ContainerInstants, InstantsRequest, Reply
from harness.targets.kubernetes.host import ContainerPids, process_start_ns

WATCH = "watch"
SEEN = "seen.tsv"
POLL_MS = 100  # how long serve's poll waits before it looks for new ids
FIND_FOR_NS = 5_000_000_000  # an id not found this long after it was asked for is `gone`
TAKEN_WITHIN_S = 3.0  # how long a watch call waits for serve to take its ids up


def instants_dir(state_dir: Path, run_id: str) -> Path:
    return state_dir / "runs" / run_id / "instants"


def _line(*fields: object) -> str:
    return "\t".join(str(f) for f in fields) + "\n"


@dataclass
class Seen:
    """What serve saw of one container, on the agent's clock."""

    started_ns: int | None = None
    exited_ns: int | None = None
    taken: bool = False  # serve took the id up (a pidfd held, or it is gone)
    watching: bool = False


def read_seen(directory: Path) -> dict[str, Seen]:
    """container id -> what serve saw of it (`start cid pid started_ns`, `exit cid exited_ns`,
    `gone cid`); a line cut short or unknown is skipped."""
    seen: dict[str, Seen] = {}
    try:
        text = (directory / SEEN).read_text()
    except FileNotFoundError:
        return seen
    for raw in text.splitlines(keepends=True):
        fields = raw.rstrip("\n").split("\t")
        if not raw.endswith("\n") or len(fields) < 2:
            continue
        entry = seen.setdefault(fields[1], Seen())
        with contextlib.suppress(ValueError, IndexError):
            if fields[0] == "start":
                entry.started_ns, entry.taken, entry.watching = int(fields[3]), True, True
            elif fields[0] == "exit":
                entry.exited_ns, entry.watching = int(fields[2]), False
            elif fields[0] == "gone":
                entry.taken = True
    return seen


# --- serve's side ------------------------------------------------------------------------------


@dataclass
class _Watched:
    seen_file: Path
    container_id: str


@dataclass
class Watcher:
    """serve's thread: takes up the ids of every run's `watch` file, holds a pidfd for each
    container's init process, and appends its exit instant to the run's `seen.tsv`."""

    state_dir: Path
    _pids: ContainerPids = field(default_factory=ContainerPids)
    _poll: select.poll = field(default_factory=select.poll)
    _fds: dict[int, _Watched] = field(default_factory=dict)
    _taken: set[tuple[Path, str]] = field(default_factory=set)
    _asked_ns: dict[tuple[Path, str], int] = field(default_factory=dict)

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self._take_up()
                ready = self._poll.poll(POLL_MS)
                now = time.time_ns()  # first: the instant the kernel said so, near enough
                for fd, _events in ready:
                    self._exited(fd, now)
        finally:
            for fd in list(self._fds):
                os.close(fd)
            self._fds.clear()

    def _take_up(self) -> None:
        for watch in sorted(self.state_dir.glob(f"runs/*/instants/{WATCH}")):
            for container_id in watch.read_text().split():
                key = (watch.parent, container_id)
                if key not in self._taken:
                    self._take(key)

    def _take(self, key: tuple[Path, str]) -> None:
        directory, container_id = key
        asked = self._asked_ns.setdefault(key, time.time_ns())
        pid = self._pids.pid_of(container_id)
        fd = _pidfd(pid) if pid else None
        started = process_start_ns(pid) if fd is not None else None
        if fd is not None and started is not None and self._pids.pid_of(container_id) == pid:
            self._fds[fd] = _Watched(directory / SEEN, container_id)
            self._poll.register(fd, select.POLLIN)
            _append(directory / SEEN, _line("start", container_id, pid, started))
        elif fd is not None:  # it ended while we looked, or the PID is another's now
            os.close(fd)
            fd = None
        if fd is not None or time.time_ns() - asked > FIND_FOR_NS:
            self._taken.add(key)
            if fd is None:
                _append(directory / SEEN, _line("gone", container_id))

    def _exited(self, fd: int, now_ns: int) -> None:
        watched = self._fds.pop(fd, None)
        self._poll.unregister(fd)
        os.close(fd)
        if watched is not None:
            _append(watched.seen_file, _line("exit", watched.container_id, now_ns))


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except OSError:  # gone already
        return None


def _append(path: Path, text: str) -> None:
    """One whole line, appended at once (readers skip a line without its newline)."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


# --- the call ----------------------------------------------------------------------------------


def _ask_to_watch(directory: Path, container_ids: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / WATCH).open("a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # two calls at once: each id once
        handle.seek(0)
        known = set(handle.read().split())
        fresh = [cid for cid in dict.fromkeys(container_ids) if cid not in known]
        handle.write("".join(f"{cid}\n" for cid in fresh))


def _wait_taken(directory: Path, container_ids: list[str]) -> dict[str, Seen]:
    deadline = time.monotonic() + TAKEN_WITHIN_S
    while True:
        seen = read_seen(directory)
        if all(seen.get(c, Seen()).taken for c in container_ids) or time.monotonic() > deadline:
            return seen
        time.sleep(0.02)


def instants(request: InstantsRequest, state_dir: Path, node: str) -> Reply:
    """Each container's start and exit as this node saw them (None: not seen here); with
    `watch`, serve takes the ids up first (waited for, TAKEN_WITHIN_S at most)."""
    directory = instants_dir(state_dir, request.run_id)
    pids = ContainerPids()
    # only the containers of this node: serve looks for an id it cannot find for seconds
    here = [cid for cid in request.container_ids if request.watch and pids.pid_of(cid)]
    if here:
        _ask_to_watch(directory, here)
        seen = _wait_taken(directory, here)
    else:
        seen = read_seen(directory)
    found = []
    for container_id in request.container_ids:
        entry = seen.get(container_id, Seen())
        started = entry.started_ns
        if started is None:  # not watched (yet): its process, if it runs on this node
            started = pids.started_ns(container_id)
        found.append(
            ContainerInstants(
                container_id=container_id,
                started_ns=started,
                exited_ns=entry.exited_ns,
                watching=entry.watching,
            )
        )
    return Reply(ok=True, node=node, time_ns=time.time_ns(), instants=found)
