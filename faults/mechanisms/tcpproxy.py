"""The latency proxy: a tiny TCP proxy that delays what the server sends, and its launcher.

Run inside an instance's network namespace (the latency fault's fallback where the kernel has
no sch_netem, as Litmus runs toxiproxy):

    nsenter --net=/proc/PID/ns/net python -m faults.mechanisms.tcpproxy --listen-port 0 \\
        --upstream 127.0.0.1:8080 --delay-ms 200 [--jitter-ms 20] --tag TAG

It accepts connections (an iptables REDIRECT in the namespace sends the service's port to it),
opens one upstream connection per client connection, passes the client's bytes through at
once and holds every chunk the server sends for `delay` (+- `jitter`, order kept) before
passing it on: a delay line, so each response (each request, also on keep-alive connections)
arrives `delay` later while throughput stays the same. Binding port 0 picks a free port; the
proxy prints `ready PORT` on stdout once it listens. On SIGTERM it stops accepting, lets open
connections finish for `--grace-s`, and exits.

The host side (`start_proxy`, `find_proxies`, `stop_proxies`) finds proxies again by the tag
in their command line, so a revert needs only the revert record, even after a crash; a PID is
pinned with a pidfd and its start time checked before it is signalled, so a recycled PID is
never hit. Standard library only: it starts in a fresh interpreter in someone else's netns.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import select
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import FaultError

MODULE = "faults.mechanisms.tcpproxy"
CHUNK = 65536
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 4.0

# --- the proxy (runs in the instance's namespace) -----------------------------------------


@dataclass(frozen=True)
class ProxyOptions:
    listen_port: int
    upstream_host: str
    upstream_port: int
    delay_s: float
    jitter_s: float
    grace_s: float


class DelayLine:
    """When each chunk may leave: `delay` (+- jitter) after it arrived, never before the last."""

    def __init__(self, delay_s: float, jitter_s: float, rng: random.Random) -> None:
        self._delay_s = delay_s
        self._jitter_s = jitter_s
        self._rng = rng
        self._last_due = 0.0

    def due(self, arrived: float) -> float:
        jitter = self._rng.uniform(-self._jitter_s, self._jitter_s) if self._jitter_s else 0.0
        self._last_due = max(self._last_due, arrived + max(0.0, self._delay_s + jitter))
        return self._last_due


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Client to server, undelayed; the client's half-close is passed on."""
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


async def _copy_delayed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: DelayLine
) -> None:
    """Server to client through the delay line; the server's close is delayed too."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def fill() -> None:
        while True:
            data = await reader.read(CHUNK)
            await queue.put((line.due(loop.time()), data))
            if not data:
                return

    filling = asyncio.create_task(fill())
    try:
        while True:
            due, data = await queue.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            if not data:
                return
            writer.write(data)
            await writer.drain()
    finally:
        filling.cancel()
        await asyncio.gather(filling, return_exceptions=True)


async def _relay(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    options: ProxyOptions,
    rng: random.Random,
) -> None:
    try:
        upstream = await asyncio.open_connection(options.upstream_host, options.upstream_port)
    except OSError as exc:
        print(f"upstream {options.upstream_host}:{options.upstream_port}: {exc}", file=sys.stderr)
        client_writer.close()
        return
    up_reader, up_writer = upstream
    line = DelayLine(options.delay_s, options.jitter_s, rng)
    tasks = {
        asyncio.create_task(_copy(client_reader, up_writer)),
        asyncio.create_task(_copy_delayed(up_reader, client_writer, line)),
    }
    try:
        # both directions done, or one failed (a reset): then the other is pointless
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in (client_writer, up_writer):
            writer.close()


async def serve(options: ProxyOptions, announce: bool = True) -> None:
    """Proxy until SIGTERM or SIGINT, then let open connections finish for `grace_s`."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    rng = random.Random()
    connections: set[asyncio.Task[None]] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            await _relay(reader, writer, options, rng)
        finally:
            connections.discard(task)

    server = await asyncio.start_server(
        on_connect, host="0.0.0.0", port=options.listen_port, backlog=1024, reuse_address=True
    )
    if announce:
        _announce(server.sockets[0].getsockname()[1])
    await stop.wait()
    server.close()
    if connections:
        await asyncio.wait(set(connections), timeout=options.grace_s)
    for task in list(connections):
        task.cancel()


def _announce(port: int) -> None:
    """Say `ready PORT` once, then detach stdout (the launcher stops reading it)."""
    print(f"ready {port}", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _options(argv: Sequence[str]) -> ProxyOptions:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__)
    parser.add_argument("--listen-port", type=int, default=0, help="0: any free port")
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the real service")
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--grace-s", type=float, default=1.0)
    parser.add_argument("--tag", default="", help="how the launcher finds this proxy again")
    parser.add_argument("--instance", default="", help="for people reading `ps`")
    args = parser.parse_args(list(argv))
    host, _, port = str(args.upstream).rpartition(":")
    return ProxyOptions(
        listen_port=args.listen_port,
        upstream_host=host or "127.0.0.1",
        upstream_port=int(port),
        delay_s=args.delay_ms / 1000,
        jitter_s=args.jitter_ms / 1000,
        grace_s=args.grace_s,
    )


def main(argv: Sequence[str]) -> int:
    asyncio.run(serve(_options(argv)))
    return 0


# --- the host side: start in a namespace, find again, stop ---------------------------------


@dataclass(frozen=True)
class ProxyProcess:
    pid: int
    start_ticks: int  # /proc/PID/stat field 22: tells a recycled PID apart
    port: int = 0


def start_proxy(
    netns_path: str,
    upstream_port: int,
    delay_ms: float,
    jitter_ms: float,
    tag: str,
    instance: str,
    log_path: Path,
) -> ProxyProcess:
    """Start a proxy in the network namespace at `netns_path`; return once it listens."""
    nsenter = shutil.which("nsenter")
    if nsenter is None:
        raise FaultError("'nsenter' is not installed: apt-get install -y util-linux")
    argv = [
        *(nsenter, f"--net={netns_path}", sys.executable, "-m", MODULE, "--listen-port", "0"),
        *("--upstream", f"127.0.0.1:{upstream_port}", "--delay-ms", f"{delay_ms:g}"),
        *("--jitter-ms", f"{jitter_ms:g}", "--tag", tag, "--instance", instance),
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid, ready_fd = _spawn(argv, log_path)
    try:
        port = _await_ready(ready_fd, pid, log_path)
    finally:
        os.close(ready_fd)
    return ProxyProcess(pid, _start_ticks(pid) or 0, port)


def _spawn(argv: Sequence[str], log_path: Path) -> tuple[int, int]:
    """posix_spawn in its own session (no Popen object whose finaliser would warn or reap)."""
    read_fd, write_fd = os.pipe()
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    root = str(Path(__file__).resolve().parents[2])
    # importable from a source checkout as well as from an installed package
    paths = [root, *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    try:
        pid = os.posix_spawn(
            argv[0],
            list(argv),
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, write_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
                (os.POSIX_SPAWN_CLOSE, read_fd),
            ],
            setsid=True,
        )
    except OSError as exc:
        os.close(read_fd)
        raise FaultError(f"cannot start the latency proxy: {exc}") from exc
    finally:
        os.close(write_fd)
        os.close(log_fd)
    return pid, read_fd


def _await_ready(ready_fd: int, pid: int, log_path: Path) -> int:
    deadline = time.monotonic() + READY_TIMEOUT_S
    output = b""
    while b"\n" not in output and time.monotonic() < deadline:
        readable, _, _ = select.select([ready_fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(ready_fd, 256) if readable else b""
        if readable and not chunk:
            break  # it exited before it was ready
        output += chunk
    words = output.decode(errors="replace").split()
    if words[:1] == ["ready"] and len(words) > 1 and words[1].isdigit():
        return int(words[1])
    _stop_pid(pid, _start_ticks(pid))
    log = log_path.read_text(errors="replace").strip().splitlines()[-3:]
    raise FaultError(f"the latency proxy did not start: {' / '.join(log) or 'no output'}")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces: split after its closing parenthesis
    return raw[raw.rfind(")") + 2 :].split()


def _start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 of the whole line


def is_running(pid: int) -> bool:
    """True while the process exists and is not a zombie (exited, not yet reaped)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _is_proxy_of(argv: Sequence[str], tag: str) -> bool:
    if MODULE not in argv or "--tag" not in argv:
        return False
    index = list(argv).index("--tag")
    return index + 1 < len(argv) and argv[index + 1] == tag


def find_proxies(tag: str) -> list[ProxyProcess]:
    """Every running proxy started with `tag` (any instance of the fault)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _is_proxy_of(_cmdline(int(entry.name)), tag):
            ticks = _start_ticks(int(entry.name))
            if ticks is not None and is_running(int(entry.name)):
                found.append(ProxyProcess(int(entry.name), ticks))
    return found


def stop_proxies(tag: str) -> int:
    """SIGTERM (then SIGKILL) every proxy of `tag`; how many there were. Safe to run twice."""
    proxies = find_proxies(tag)
    for proxy in proxies:
        _stop_pid(proxy.pid, proxy.start_ticks)
    left = [p.pid for p in find_proxies(tag)]
    if left:
        raise FaultError(f"latency proxies {left} of {tag} did not stop")
    return len(proxies)


def _stop_pid(pid: int, start_ticks: int | None) -> None:
    """Stop `pid` only if it is still the process that started at `start_ticks`."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if start_ticks is None or _start_ticks(pid) != start_ticks:
            return  # the PID was recycled: not ours to signal
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        if not select.select([pidfd], [], [], STOP_TIMEOUT_S)[0]:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            select.select([pidfd], [], [], STOP_TIMEOUT_S)
    except ProcessLookupError:
        pass  # it exited on its own meanwhile
    finally:
        os.close(pidfd)
    # reap it when we are its parent; otherwise its parent (or init) does
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
