"""A Podman API service for one run: started, found again by run id, and stopped by its PID.

Podman has no daemon: `podman system service --time=0 unix:///PATH` serves the Docker API (and
libpod's) for as long as it runs, over the host's one container storage. The Podman target
starts one for its run when the scenario names no `engine`, in a session of its own (a Ctrl-C
on the harness's terminal must not take it down before the run's teardown has used it), and
stops it at teardown by the PID it started (and that PID's start time, so a recycled PID is
never signalled).

Files, in $CHAOS_HARNESS_PODMAN_DIR (default /run/chaos-harness/podman), per run id:
    <run_id>.sock   the API socket
    <run_id>.json   the service's record: PID, start time, socket, owner (the harness process)
    <run_id>.log    the service's output
    <run_id>.conf   its containers.conf, when the sandbox needs one (below)
A harness SIGKILLed mid-run leaves its service running: the lease reaper reverts faults
through it, and `harness cleanup` stops it once its owner is dead (`leftover_services`).

RLIMITs (verified here): as root, Podman 4.3 raises RLIMIT_NOFILE and RLIMIT_NPROC of every
container to 1048576, and on these machines the sandbox refuses that ("error setting rlimit
type 7: operation not permitted"); passing ulimits per container does not help (any setrlimit
of those is refused). A containers.conf with `default_ulimits = []` makes Podman leave them as
inherited. `needs_ulimit_override()` tries the raise with `prlimit` first and writes the file
only where it fails. CONTAINERS_CONF is exclusive in Podman 4.3: where it is used, settings in
/etc/containers/containers.conf do not reach the run's service.

The OCI runtime is chosen by trying (`harness.engines.podman_runtime`: crun refuses a hybrid
cgroup layout where runc works) and passed as `--runtime`; a container keeps the runtime it
was created with, so Podman's own restarts use it too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import docker
import docker.errors

from harness import commands
from harness.engines import podman_runtime
from harness.errors import CapabilityError, CommandError, TargetError
from harness.hostsys import kill_recorded, process_start_ticks
from harness.waiting import wait_until

DEFAULT_STATE_DIR = Path("/run/chaos-harness/podman")
# Every Podman process takes the store's lock as it starts: beside other Podman services at work
# (runs side by side, a cleanup's sweeper) on a loaded machine, 30 s was not always enough.
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
PODMAN_MAX_RLIMIT = 1048576  # what Podman 4.3 sets NOFILE and NPROC to for a root container
ULIMIT_OVERRIDE = "[containers]\ndefault_ulimits = []\n"


def state_dir() -> Path:
    return Path(os.environ.get("CHAOS_HARNESS_PODMAN_DIR") or DEFAULT_STATE_DIR)


def podman_binary() -> str:
    path = shutil.which("podman")
    if path is None:
        raise CapabilityError("podman is not installed: apt-get install -y podman")
    return path


@dataclass(frozen=True)
class PodmanService:
    """One `podman system service` started by this project, as recorded on disk."""

    run_id: str
    pid: int
    start_ticks: int | None
    socket: str  # unix:///...
    owner: str  # "<pid>:<start ticks>" of the harness process the service serves
    log: str
    conf: str | None  # the containers.conf it reads, or None (the host's own)
    started_at_ns: int
    runtime: str | None = None  # the OCI runtime it runs containers with (None: older record)
    runtime_reason: str | None = None

    @property
    def alive(self) -> bool:
        return self.start_ticks is not None and process_start_ticks(self.pid) == self.start_ticks

    def client(self, timeout_s: int = 60) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.socket, timeout=timeout_s)


def _paths(run_id: str) -> dict[str, Path]:
    base = state_dir() / run_id
    return {ext: base.with_suffix(f".{ext}") for ext in ("sock", "json", "log", "conf")}


def recorded(run_id: str) -> PodmanService | None:
    """The service recorded for `run_id` (alive or not), or None."""
    try:
        raw = json.loads(_paths(run_id)["json"].read_text())
        return PodmanService(**raw)
    except (OSError, ValueError, TypeError):
        return None


def recorded_services() -> list[PodmanService]:
    directory = state_dir()
    paths = sorted(directory.glob("*.json")) if directory.is_dir() else []
    found = [recorded(p.stem) for p in paths]
    return [s for s in found if s is not None]


def needs_ulimit_override() -> bool:
    """Whether raising NOFILE to Podman's value is refused here (then containers.conf is needed)."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return True  # cannot tell: the override is harmless
    limit = f"{PODMAN_MAX_RLIMIT}:{PODMAN_MAX_RLIMIT}"
    try:
        done = commands.run(
            [prlimit, f"--nofile={limit}", f"--nproc={limit}", "true"], check=False, timeout_s=10
        )
    except CommandError:
        return True  # cannot tell: the override is harmless
    return not done.ok


def answers(socket: str, timeout_s: float = 2.0) -> bool:
    try:
        client = docker.DockerClient(base_url=socket, timeout=int(max(1, timeout_s)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (docker.errors.DockerException, OSError):
        return False


def start(run_id: str, owner: str, timeout_s: float = START_TIMEOUT_S) -> PodmanService:
    """Start a service for `run_id`, record it, wait until it answers; fail with its log."""
    binary = podman_binary()
    paths = _paths(run_id)
    state_dir().mkdir(parents=True, exist_ok=True)
    paths["sock"].unlink(missing_ok=True)
    env = dict(os.environ)
    conf = None
    if needs_ulimit_override():
        paths["conf"].write_text(ULIMIT_OVERRIDE)
        conf = str(paths["conf"])
        env["CONTAINERS_CONF"] = conf
    runtime = podman_runtime.choose(binary, state_dir(), conf)
    socket = f"unix://{paths['sock']}"
    with paths["log"].open("ab") as log:
        process = subprocess.Popen(
            [binary, "--runtime", runtime.path, "system", "service", "--time=0", socket],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,  # a Ctrl-C of the harness must not reach it before teardown
        )
    service = PodmanService(
        run_id=run_id,
        pid=process.pid,
        start_ticks=process_start_ticks(process.pid),
        socket=socket,
        owner=owner,
        log=str(paths["log"]),
        conf=conf,
        started_at_ns=time.time_ns(),
        runtime=runtime.name,
        runtime_reason=runtime.reason,
    )
    _write(service)
    exited_or_answers = wait_until(
        lambda: process.poll() is not None or answers(socket), timeout_s, interval_s=0.05
    )
    if exited_or_answers and process.poll() is None:
        return service
    tail = _tail(paths["log"])
    stop(service)
    raise TargetError(
        f"the Podman API service for run {run_id} did not answer within {timeout_s:g} s: {tail}"
    )


def _write(service: PodmanService) -> None:
    path = _paths(service.run_id)["json"]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(service), indent=2) + "\n")
    tmp.replace(path)


def _tail(log: Path, lines: int = 5) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(service: PodmanService, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Stop the service (only if its PID is still the recorded process); remove its files.

    True when a live service was stopped. The containers it started live on (conmon keeps
    them): their removal is the target's job, before this.
    """
    stopped = kill_recorded(service.pid, service.start_ticks, signal.SIGTERM)

    def gone() -> bool:
        _reap(service.pid)
        return not service.alive

    if stopped:
        wait_until(gone, timeout_s, interval_s=0.05)
    if service.alive:
        kill_recorded(service.pid, service.start_ticks, signal.SIGKILL)
        time.sleep(0.1)
    _reap(service.pid)
    for path in _paths(service.run_id).values():
        path.unlink(missing_ok=True)
    return stopped


def _reap(pid: int) -> None:
    """Collect the exit status when the service is this process's child (no zombie left)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def graph_root() -> Path | None:
    """Podman's storage root on the host (its graphRoot), without a service; None if unknown."""
    binary = shutil.which("podman")
    if binary is None:
        return None
    try:
        done = commands.run(
            [binary, "info", "--format", "{{.Store.GraphRoot}}"], check=False, timeout_s=30
        )
    except CommandError:
        return None
    root = done.stdout.strip()
    return Path(root) if done.ok and root else None
