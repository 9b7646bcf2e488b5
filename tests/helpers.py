"""Small helpers shared by the engine tests."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import docker
import docker.errors

from harness import waiting
from harness.engines import podman
from harness.hostnet import run_jumps
from harness.hostsys import cgroup_dir, cgroup_version
from harness.targets.base import RUN_LABEL, EngineEvent, Target


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Poll `predicate` every 50 ms; True as soon as it holds, False after `timeout_s`."""
    return waiting.wait_until(predicate, timeout_s, interval_s=0.05)


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

    def close(
        self,
        grace_s: float = 0.5,
        until: Callable[[list[EngineEvent]], bool] | None = None,
        timeout_s: float = 30.0,
    ) -> list[EngineEvent]:
        """Stop reading; the events in time order. With `until`, once the events read so far
        satisfy it (the caller's assertions then say what was missing after `timeout_s`);
        without, after a grace of `grace_s` for late events."""
        if until is None:
            time.sleep(grace_s)
        else:
            wait_until(lambda: until(list(self.events)), timeout_s)
        self._stream.close()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "close() did not end the event stream"
        return sorted(self.events, key=lambda e: e.time_ns)


def swarm_state(client: docker.DockerClient) -> str:
    return str((client.info().get("Swarm") or {}).get("LocalNodeState"))


def swarm_as_before(client: docker.DockerClient, before: str) -> bool:
    """The engine's swarm state is back as it was, unless another run (a test beside this one
    on the shared engine) still has services on the swarm: then the last run out leaves it."""
    if swarm_state(client) == before:
        return True
    try:
        return bool(client.services.list())
    except docker.errors.APIError:
        return False


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


# --- what a client sees -----------------------------------------------------------------------


def fetch(url: str, connect_timeout_s: float = 0.5, read_timeout_s: float = 2.0) -> bool:
    """One GET on a fresh connection: True when it answered 2xx/3xx in time.

    A dropped SYN is retried by the kernel after 1 s, so a connect timeout under 1 s turns
    it into a failure, while a lost packet later on is recovered within the read timeout.
    """
    return fetch_body(url, connect_timeout_s, read_timeout_s) is not None


def fetch_body(
    url: str, connect_timeout_s: float = 0.5, read_timeout_s: float = 2.0
) -> bytes | None:
    """The body of one GET on a fresh connection, or None when it failed or was not 2xx/3xx."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, connect_timeout_s)
    try:
        connection.connect()
        assert connection.sock is not None
        connection.sock.settimeout(read_timeout_s)
        connection.request("GET", path or "/")
        response = connection.getresponse()
        body = response.read()
        return body if 200 <= response.status < 400 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def timed_fetch_ms(url: str) -> float:
    started = time.perf_counter()
    assert fetch(url, read_timeout_s=5.0)
    return (time.perf_counter() - started) * 1000


def median_ms(url: str, count: int = 40) -> float:
    return statistics.median(timed_fetch_ms(url) for _ in range(count))


def failure_rate(url: str, count: int, connect_timeout_s: float = 0.3, **kw: float) -> float:
    """The share of `count` fresh requests that failed, 8 at a time.

    Not more at a time: busybox httpd listens with a backlog of 9, and SYNs beyond it are
    dropped by the kernel, which would look like loss.
    """
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: fetch(url, connect_timeout_s, **kw), range(count)))
    return results.count(False) / count


def download_mbit_s(url: str) -> float:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        started = time.perf_counter()
        connection.request("GET", parts.path)
        size = len(connection.getresponse().read())
        return size * 8 / (time.perf_counter() - started) / 1e6
    finally:
        connection.close()


# --- what the kernel says about a container's cgroup ------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time charged to the cgroup of `pid` so far."""
    if cgroup_version() == 2:
        stat = (cgroup_dir(pid, "") / "cpu.stat").read_text().split()
        return int(stat[stat.index("usage_usec") + 1]) / 1e6
    return int((cgroup_dir(pid, "cpuacct") / "cpuacct.usage").read_text()) / 1e9


def cpu_share(pid: int, seconds: float) -> float:
    """Cores used by the cgroup of `pid` over the next `seconds`."""
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)  # the sample's interval: the measurement itself
    return (cpu_seconds(pid) - before) / (time.monotonic() - started)


def throttled_periods(pid: int) -> int:
    """How many CFS periods the cgroup of `pid` was throttled in: its CPU limit biting."""
    directory = cgroup_dir(pid, "") if cgroup_version() == 2 else cgroup_dir(pid, "cpu")
    stat = (directory / "cpu.stat").read_text().split()
    return int(stat[stat.index("nr_throttled") + 1])


def frozen(pid: int) -> bool:
    """Whether the kernel's freezer holds the cgroup of `pid`."""
    if cgroup_version() == 2:
        return (cgroup_dir(pid, "") / "cgroup.freeze").read_text().strip() == "1"
    return (cgroup_dir(pid, "freezer") / "freezer.state").read_text().strip() == "FROZEN"


# --- an engine that stops answering -------------------------------------------------------------


class EngineProxy:
    """A unix-socket proxy in front of the Docker engine that a test can cut.

    `stall()`: every connection, open or new, stops carrying bytes (the engine "stops
    answering": calls hang until their timeout); `resume()` lets bytes flow again. `close()`:
    every connection is closed and new ones are refused, as when the engine goes away or
    restarts; `reopen()` listens again. Never touches the engine itself."""

    def __init__(self, path: str, upstream: str = "/var/run/docker.sock") -> None:
        self.path = path
        self.upstream = upstream
        self.url = f"unix://{path}"
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._listen()

    def _listen(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(64)
        self._listener = listener
        self._closed.clear()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._closed.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(0.2)
        while not self._closed.is_set():
            if not self._flowing.wait(0.2):
                continue
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            while not self._flowing.is_set() and not self._closed.is_set():
                time.sleep(0.05)  # hold what was read while stalled
            try:
                sink.sendall(data)
            except OSError:
                break
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def drop_connections(self) -> None:
        """Close every open connection but keep listening: what an engine that ends its
        streams for its own reasons does (Podman 4.3)."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def reopen(self) -> None:
        self._flowing.set()
        self._listen()


def serve_engine_proxy(path: str) -> None:
    """Run an EngineProxy in this process until it is killed (a separate process stands for
    an engine daemon: killing it and starting another is a restart)."""
    EngineProxy(path)
    threading.Event().wait()


if __name__ == "__main__":
    import sys

    serve_engine_proxy(sys.argv[1])


REPO = Path(__file__).resolve().parent.parent


def harness_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """`python -m harness ARGS` from the repository, as a user runs it; never raises on exit."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        cwd=REPO,
        env=None if env is None else dict(env),
    )


class Sampler:
    """Something a test reads by itself every `interval_s` while a run goes, on a thread of
    its own: a context manager; subclasses say what one reading is (`sample`)."""

    interval_s = 0.5
    join_timeout_s = 30.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(self.join_timeout_s)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        raise NotImplementedError


def host_pid_of(container_id: str) -> int:
    """The host PID of a container's init process, read from /proc by the test itself (for
    runs whose harness may not read this host): the member of the container's cgroup that is
    PID 1 in its own PID namespace; 0 when none runs here."""
    if len(container_id) < 12:
        return 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if container_id not in (entry / "cgroup").read_text():
                continue
            status = (entry / "status").read_text()
        except OSError:
            continue
        nspid = next(
            (line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), []
        )
        if nspid and nspid[-1] == "1":
            return int(entry.name)
    return 0
