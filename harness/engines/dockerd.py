"""The host's Docker Engine: used as it is when one answers, else installed and started here.

`harness engine up` (run by `make setup`) does, in order:
1. ping the engine at $DOCKER_HOST or /var/run/docker.sock; if it answers, it is the user's
   (or an earlier `up`'s) engine and is used unchanged: never restarted, reconfigured or stopped;
2. install Debian's `docker.io` when `dockerd` is missing (its containerd and runc come along);
3. choose the storage driver by trying it: an overlay mount is made in a scratch directory on
   the data root's own filesystem; overlay2 when that works (ext4 here), else fuse-overlayfs
   when installed, else vfs. The flag is passed on the command line, so /etc/docker/daemon.json
   is neither read for that nor written;
4. start `dockerd` in a session of its own (there is no systemd), its output in the log file,
   and wait until it answers (bounded), or stop it again and fail with the log's tail.

What was started is recorded in $CHAOS_HARNESS_ENGINE_DIR (default
/var/lib/chaos-harness/engine/state.json: PID, start time, storage driver and why, log path), so
`harness engine stop` stops only a daemon this project started, by its recorded PID.

Not copied from earlier machines: their `"mtu": 1400` matched eth0's MTU; every packet the
harness sends stays on loopback and on bridges it made, so the default 1500 is used.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import docker
import docker.errors

from harness import commands
from harness.errors import CapabilityError, CommandError, TargetError
from harness.hostsys import kill_recorded, process_start_ticks
from harness.waiting import wait_until

DEFAULT_STATE_DIR = Path("/var/lib/chaos-harness/engine")
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
DATA_ROOT = Path("/var/lib/docker")
START_TIMEOUT_S = 60.0


def state_dir() -> Path:
    return Path(os.environ.get("CHAOS_HARNESS_ENGINE_DIR") or DEFAULT_STATE_DIR)


@dataclass(frozen=True)
class StartedEngine:
    """A dockerd this project started: enough to find it again and to explain its settings."""

    pid: int
    start_ticks: int | None
    socket: str
    storage_driver: str
    storage_reason: str
    log: str
    started_at_ns: int


@dataclass(frozen=True)
class EngineStatus:
    answers: bool
    address: str
    version: str
    started_here: StartedEngine | None


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def answers(address: str, timeout_s: float = 3.0) -> str | None:
    """The engine's version if the engine at `address` answers a ping, else None."""
    try:
        client = docker.DockerClient(base_url=address, timeout=int(max(1, timeout_s)))
        try:
            client.ping()
            return str(client.version().get("Version", "unknown"))
        finally:
            client.close()
    except (docker.errors.DockerException, OSError):
        return None


def read_state() -> StartedEngine | None:
    try:
        raw = json.loads((state_dir() / "state.json").read_text())
        return StartedEngine(**raw)
    except (OSError, ValueError, TypeError):
        return None


def _write_state(engine: StartedEngine) -> None:
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "state.json.tmp"
    tmp.write_text(json.dumps(asdict(engine), indent=2) + "\n")
    tmp.replace(directory / "state.json")


def status() -> EngineStatus:
    address = engine_address()
    version = answers(address)
    started = read_state()
    alive = started is not None and process_start_ticks(started.pid) == started.start_ticks
    return EngineStatus(version is not None, address, version or "", started if alive else None)


# --- choosing the storage driver by trying it --------------------------------------------------


def overlay_works(directory: Path) -> str | None:
    """None when an overlay mount works on `directory`'s filesystem, else why it did not."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".overlay-probe-", dir=directory) as tmp:
        root = Path(tmp)
        for part in ("lower", "upper", "work", "merged"):
            (root / part).mkdir()
        (root / "lower" / "file").write_text("lower")
        options = f"lowerdir={root / 'lower'},upperdir={root / 'upper'},workdir={root / 'work'}"
        try:
            mount = commands.run(
                ["mount", "-t", "overlay", "overlay", "-o", options, str(root / "merged")],
                timeout_s=30,
                check=False,
            )
        except CommandError as exc:
            return str(exc)
        if not mount.ok:
            return mount.stderr.strip() or f"mount exited {mount.returncode}"
        try:
            (root / "merged" / "file").write_text("upper")  # a copy-up, as a container write
            copied = (root / "upper" / "file").read_text() == "upper"
        finally:
            with contextlib.suppress(CommandError):
                commands.run(["umount", str(root / "merged")], timeout_s=30, check=False)
        return None if copied else "a write through the overlay did not reach the upper dir"


def choose_storage_driver(data_root: Path = DATA_ROOT) -> tuple[str, str]:
    """(driver, why): overlay2 where an overlay mount works on the data root's filesystem."""
    forced = os.environ.get("CHAOS_HARNESS_STORAGE_DRIVER")
    if forced:
        return forced, "forced by $CHAOS_HARNESS_STORAGE_DRIVER"
    problem = overlay_works(data_root.parent / "chaos-harness" / "probe")
    if problem is None:
        return "overlay2", f"an overlay mount worked on the filesystem of {data_root.parent}"
    if shutil.which("fuse-overlayfs"):
        return "fuse-overlayfs", f"overlay mount failed ({problem}); fuse-overlayfs is installed"
    return "vfs", f"overlay mount failed ({problem}); vfs copies every layer (slow, but works)"


# --- installing and starting -------------------------------------------------------------------


def install_docker_io() -> None:
    """Debian's docker.io (dockerd, containerd, runc), installed without starting services."""
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("dockerd is not installed: installing Debian's docker.io", flush=True)
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "docker.io"]):
        try:
            commands.run([*sudo, *args], env=env, timeout_s=1800)
        except CommandError as exc:
            raise CapabilityError(f"cannot install docker.io: {exc}") from exc


def _log_tail(log: Path, lines: int = 25) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_dockerd(timeout_s: float = START_TIMEOUT_S) -> StartedEngine:
    """Start dockerd on the default socket and wait until it answers; raise with its log."""
    if os.geteuid() != 0:
        raise CapabilityError("starting the Docker engine needs root: run make setup as root")
    driver, why = choose_storage_driver()
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "dockerd.log"
    argv = ["dockerd", "--host", DEFAULT_SOCKET, "--storage-driver", driver]
    with log.open("ab") as out:
        out.write(f"\n--- {time.strftime('%F %T')} {' '.join(argv)}\n".encode())
        out.flush()
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    engine = StartedEngine(
        pid=process.pid,
        start_ticks=process_start_ticks(process.pid),
        socket=DEFAULT_SOCKET,
        storage_driver=driver,
        storage_reason=why,
        log=str(log),
        started_at_ns=time.time_ns(),
    )
    _write_state(engine)
    exited_or_answers = wait_until(
        lambda: process.poll() is not None or answers(DEFAULT_SOCKET, timeout_s=2.0) is not None,
        timeout_s,
        interval_s=0.25,
    )
    if exited_or_answers and process.poll() is None:
        return engine
    stop_started(engine)
    raise TargetError(
        f"dockerd did not answer within {timeout_s:g} s (log: {log}); its last lines:\n"
        + _log_tail(log)
    )


def ensure_engine() -> str:
    """Make sure an engine answers; a sentence saying which engine and how it was found."""
    address = engine_address()
    version = answers(address)
    if version is not None:
        started = status().started_here
        origin = f"started by this project, log {started.log}" if started else "used as it is"
        return f"Docker engine {version} answers at {address} ({origin})"
    if address != DEFAULT_SOCKET:
        raise TargetError(
            f"no Docker engine answers at DOCKER_HOST={address}; start it, or unset DOCKER_HOST "
            "to let the project start its own engine on the default socket"
        )
    if shutil.which("dockerd") is None:
        install_docker_io()
    began = time.monotonic()
    engine = start_dockerd()
    version = answers(DEFAULT_SOCKET) or "unknown"
    return (
        f"started Docker engine {version} (pid {engine.pid}, storage driver "
        f"{engine.storage_driver}: {engine.storage_reason}) in {time.monotonic() - began:.1f} s; "
        f"log: {engine.log}"
    )


def stop_started(engine: StartedEngine | None = None, timeout_s: float = 30.0) -> str:
    """Stop the dockerd this project started (by its recorded PID and start time only)."""
    engine = engine or read_state()
    if engine is None or not kill_recorded(engine.pid, engine.start_ticks, signal.SIGTERM):
        return "no engine started by this project is running; nothing stopped"

    def gone() -> bool:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(engine.pid, os.WNOHANG)  # our child: collect it, or it stays a zombie
        return process_start_ticks(engine.pid) != engine.start_ticks

    if not wait_until(gone, timeout_s, interval_s=0.2):
        kill_recorded(engine.pid, engine.start_ticks, signal.SIGKILL)
    return f"stopped dockerd {engine.pid}"
