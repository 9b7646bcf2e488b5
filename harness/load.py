"""Load: Locust run as separate processes; their request logs become `requests.parquet`.

The harness never imports locust (importing it monkey-patches the process with gevent, which
would reach the Docker and Kubernetes clients). It runs ``python -m locust`` from the same
interpreter, headless, with the user's locustfile (or the bundled default) and
harness/locust/recorder.py loaded side by side; the recorder appends every request to a
per-process file in the plan's record directory (LoadRun: start() on enter, stop() on exit).

Where the load goes: ``--host`` is the target's service address (`LoadPlan.host`), which Locust
lets win over a user class's ``host``, so any locustfile loads the target unchanged; the
bundled one spreads requests over `endpoints` itself when routing is per_instance. Connections,
closed or open loop (`rate_per_s`) and the source ports are the bundled locustfile's policy
(harness/locust/).

Processes: ``workers == 0`` runs one local Locust process; ``workers == N`` a master plus N
workers, each where its `WorkerPlace` says (here, or a lab node's namespace: harness.load_nodes);
`external_workers` more are waited for (`harness worker --master HOST:PORT` on other machines).
Workers ship their records to the master through Locust's messages, so the master's record
directory holds them all (harness/locust/chaos_shipping.py). Each process starts in its own
session, so a Ctrl-C reaches only the harness, which stops them by PID (SIGTERM, then
SIGKILL). Logs and Locust's own totals (``locust-stats.json``) go to the record directory,
where the processes run (no stray locust.conf); inherited ``LOCUST_*`` variables are dropped.
The long form, with an example: docs/LOAD.md, Load and Workers beyond the harness's host.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

import pandas as pd

from harness.errors import LoadError
from harness.hostsys import with_parent_death_signal

LOCUST_DIR: Final = Path(__file__).resolve().parent / "locust"
DEFAULT_LOCUSTFILE: Final = LOCUST_DIR / "default_locustfile.py"
RECORDER: Final = LOCUST_DIR / "recorder.py"
RECORD_GLOB: Final = "requests-*.tsv"
USER_ERRORS_GLOB: Final = "user-errors-*.tsv"
STATS_PREFIX: Final = "locust-stats"
WORKERS_FILE: Final = "workers.json"  # written by the master (harness/locust/chaos_shipping.py)
WORKER_EVENTS_FILE: Final = "worker-events.jsonl"
REQUEST_COLUMNS: Final = (
    *("start_ns", "latency_ms", "ok", "name", "error", "endpoint", "worker", "served_by"),
    "worker_name",
)
_FILE_COLUMNS: Final = ("ok", "start_ns", "latency_ms", "name", "endpoint", "error", "served_by")
_HEADER_PREFIX: Final = b"#chaos-harness-requests v"
_HEADER_TOKEN: Final = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP header name
WORKER_CONNECT_WAIT_S: Final = 30
CONNECTIONS: Final = ("keep_alive", "per_request")
# the recorder writes a process's first request at once, then every 0.5 s (its flush)
FIRST_REQUEST_SETTLE_S: Final = 0.6


@dataclass(frozen=True)
class LoadPath:
    """One request path of the default locustfile; `name` groups Locust's stats (default: path)."""

    path: str = "/"
    name: str | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class WorkerPlace:
    """Where one worker the harness starts runs: its name, and the command that puts it there
    (e.g. nsenter into a lab node's network namespace; empty: here)."""

    name: str
    prefix: tuple[str, ...] = ()
    master_host: str | None = None  # the master's address from there (default: from here)


@dataclass(frozen=True)
class LoadPlan:
    """Everything one load run needs. `duration_s` is rounded up to whole seconds (Locust's -t)."""

    users: int
    spawn_rate: float
    duration_s: float
    endpoints: Sequence[tuple[str, str]]
    record_dir: Path
    workers: int = 0
    locustfile: Path | None = None
    paths: Sequence[LoadPath] = (LoadPath(),)
    wait_s: float = 0.0
    timeout_s: float = 2.0
    seed: int | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    host: str | None = None  # Locust's --host: the target's service address
    rate_per_s: float | None = None  # open loop: total arrivals per second (bundled locustfile)
    connections: str = "keep_alive"  # or per_request (bundled locustfile)
    attribution_header: str | None = None  # the response header naming the replica
    # workers started outside the harness (`harness worker --master HOST:PORT`), waited for
    external_workers: int = 0
    master_bind: str = "127.0.0.1"  # where the master listens for its workers
    master_port: int = 0  # 0: a free port
    workers_wait_s: float = WORKER_CONNECT_WAIT_S  # for every worker to connect, at most
    places: Sequence[WorkerPlace] = ()  # one per worker (default: here, named worker-<i>)

    def __post_init__(self) -> None:
        problems = _plan_problems(self)
        if problems:
            raise LoadError("invalid load plan: " + "; ".join(problems))

    @property
    def run_time_s(self) -> int:
        """The run time handed to Locust: `duration_s` rounded up to whole seconds."""
        return max(1, math.ceil(self.duration_s))

    @property
    def distributed(self) -> bool:
        """A master and its workers (else one local process)."""
        return self.workers + self.external_workers > 0

    @property
    def expected_workers(self) -> int:
        return self.workers + self.external_workers

    def place(self, index: int) -> WorkerPlace:
        """Where worker `index` runs (here by default)."""
        return self.places[index] if self.places else WorkerPlace(f"worker-{index}")

    @property
    def locustfile_path(self) -> Path:
        return self.locustfile if self.locustfile is not None else DEFAULT_LOCUSTFILE


def _plan_problems(plan: LoadPlan) -> list[str]:
    checks = [
        (plan.users >= 1, f"users must be >= 1, got {plan.users!r}"),
        (plan.spawn_rate > 0, f"spawn_rate must be > 0, got {plan.spawn_rate!r}"),
        (plan.duration_s > 0, f"duration_s must be > 0, got {plan.duration_s!r}"),
        (plan.workers >= 0, f"workers must be >= 0, got {plan.workers!r}"),
        (plan.external_workers >= 0, f"external_workers must be >= 0: {plan.external_workers}"),
        (0 <= plan.master_port <= 65535, f"master_port out of range: {plan.master_port!r}"),
        (plan.workers_wait_s > 0, f"workers_wait_s must be > 0: {plan.workers_wait_s!r}"),
        (not plan.places or len(plan.places) == plan.workers, "one place per worker"),
        (plan.wait_s >= 0, f"wait_s must be >= 0, got {plan.wait_s!r}"),
        (plan.timeout_s > 0, f"timeout_s must be > 0, got {plan.timeout_s!r}"),
        (len(plan.paths) > 0, "paths must not be empty"),
        (plan.rate_per_s is None or plan.rate_per_s > 0, f"rate must be > 0: {plan.rate_per_s!r}"),
        (plan.connections in CONNECTIONS, f"connections must be one of {CONNECTIONS}"),
        (
            plan.attribution_header is None or bool(_HEADER_TOKEN.match(plan.attribution_header)),
            f"attribution_header must be a header name, got {plan.attribution_header!r}",
        ),
        (len(plan.endpoints) > 0 or plan.locustfile is not None, "endpoints must not be empty"),
    ]
    problems = [message for ok, message in checks if not ok]
    locustfile = str(plan.locustfile_path)
    if "," in locustfile or not locustfile.endswith(".py"):
        problems.append(f"locustfile must be a .py path without commas, got {locustfile!r}")
    return problems


@dataclass(frozen=True)
class LoadProgress:
    """Requests recorded so far (flushed by the Locust processes every ~0.5 s)."""

    requests: int
    failures: int


@dataclass(frozen=True)
class _Proc:
    role: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]


@dataclass
class _FileCursor:
    offset: int = 0
    requests: int = 0
    failures: int = 0


def connection_policy(connections: str) -> str:
    """The bundled locustfile's connection policy in one sentence, for the manifest and the
    report (`connections`: keep_alive or per_request)."""
    reuse = (
        "one connection per user while the server keeps it open, a fresh one after any error"
        if connections == "keep_alive"
        else "a new connection for every request"
    )
    return (
        f"{connections}: {reuse}; every new connection from the least recently used source "
        "port of the load's range, never from one whose connection timed out (a node's "
        "conntrack keeps such a connection's NAT decision, and one host would otherwise reuse "
        "the port within seconds: harness/locust/source_ports.py)"
    )


def locust_version() -> str:
    """The installed Locust's version, read from package metadata (locust is not imported)."""
    try:
        return metadata.version("locust")
    except metadata.PackageNotFoundError as exc:
        raise LoadError("locust is not installed in this environment") from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def plan_env(plan: LoadPlan, base: Mapping[str, str]) -> dict[str, str]:
    """The environment of every Locust process of `plan`."""
    env = {k: v for k, v in base.items() if not k.startswith("LOCUST_")}
    endpoints = [{"name": name, "url": url} for name, url in plan.endpoints]
    paths = [{"path": p.path, "name": p.name or p.path, "weight": p.weight} for p in plan.paths]
    env.update(
        CHAOS_HARNESS_ENDPOINTS=json.dumps(endpoints),
        CHAOS_HARNESS_PATHS=json.dumps(paths),
        CHAOS_HARNESS_WAIT=repr(float(plan.wait_s)),
        CHAOS_HARNESS_TIMEOUT_S=repr(float(plan.timeout_s)),
        CHAOS_HARNESS_RECORD_DIR=str(plan.record_dir.resolve()),
        CHAOS_HARNESS_SEED=str(plan.seed if plan.seed is not None else 0),
        CHAOS_HARNESS_RATE=repr(float(plan.rate_per_s or 0.0)),
        CHAOS_HARNESS_USERS=str(plan.users),
        CHAOS_HARNESS_CONNECTIONS=plan.connections,
        CHAOS_HARNESS_PROCESSES=str(max(1, plan.expected_workers)),
        CHAOS_HARNESS_ATTRIBUTION_HEADER=plan.attribution_header or "",
        PYTHONUNBUFFERED="1",
    )
    env.update(plan.extra_env)
    return env


def role_env(plan: LoadPlan, env: Mapping[str, str], role: str) -> dict[str, str]:
    """A process's environment: a worker is named by its place (the `worker_name` of its
    records) unless the plan's extra_env names it."""
    env = dict(env)
    if role.startswith("worker-"):
        env.setdefault("CHAOS_HARNESS_WORKER_NAME", plan.place(int(role[len("worker-") :])).name)
    return env


def locust_commands(plan: LoadPlan, python: str, port: int) -> list[tuple[str, list[str]]]:
    """(role, argv) of every process of `plan` the harness starts: "local", or "master" and
    "worker-<i>" (external workers start themselves: `worker_command`)."""
    record_dir = plan.record_dir.resolve()
    files = f"{plan.locustfile_path.resolve()},{RECORDER}"
    base = [python, "-m", "locust", "-f", files, "--exit-code-on-error", "0"]
    if plan.host:
        base += ["--host", plan.host]
    run = [
        *("--headless", "--only-summary"),
        *("--users", str(plan.users), "--spawn-rate", repr(float(plan.spawn_rate))),
        *("--run-time", f"{plan.run_time_s}s", "--json-file", str(record_dir / STATS_PREFIX)),
    ]
    if not plan.distributed:
        return [("local", [*base, *run])]
    master = [
        *base,
        *run,
        *("--master", "--expect-workers", str(plan.expected_workers)),
        *("--expect-workers-max-wait", f"{plan.workers_wait_s:g}"),
        *("--master-bind-host", plan.master_bind, "--master-bind-port", str(port)),
    ]
    workers = []
    for i in range(plan.workers):
        place = plan.place(i)
        dial = place.master_host or dial_host(plan.master_bind)
        workers.append(
            (f"worker-{i}", [*place.prefix, *worker_command(python, dial, port, plan.locustfile)])
        )
    return [("master", master), *workers]


def worker_command(
    python: str, master_host: str, master_port: int, locustfile: Path | None = None
) -> list[str]:
    """One Locust worker of a harness master, with the bundled recorder (which ships its
    records to the master) and the bundled locustfile unless another is given."""
    path = (locustfile or DEFAULT_LOCUSTFILE).resolve()
    return [
        *(python, "-m", "locust", "-f", f"{path},{RECORDER}", "--exit-code-on-error", "0"),
        *("--worker", "--master-host", master_host, "--master-port", str(master_port)),
    ]


def dial_host(bind: str) -> str:
    """The address a worker on this host dials to reach a master bound to `bind`."""
    return "127.0.0.1" if bind in ("0.0.0.0", "*", "") else bind


def advertised_host(bind: str) -> str:
    """The address to give other machines' workers: `bind`, or for a wildcard bind this
    host's first non-loopback IPv4 address (its name when it has none)."""
    if bind not in ("0.0.0.0", "*", ""):
        return bind
    name = socket.gethostname()
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return name
    addresses = [str(info[4][0]) for info in infos]
    return next((a for a in addresses if not a.startswith("127.")), name)


class LoadRun:
    """The Locust processes of one plan. A context manager: start on enter, always stop on exit.

    `started_at_ns` is taken just before the first process is spawned, `ended_at_ns` when the
    last one is seen to have exited (wall clock, nanoseconds).
    """

    def __init__(
        self,
        plan: LoadPlan,
        *,
        python: str | None = None,
        grace_s: float = 10.0,
        parent_death_signal: bool = False,
    ) -> None:
        self.plan = plan
        self.python = python or sys.executable
        self.grace_s = grace_s
        # True: each process gets SIGTERM from the kernel when this one dies (a SIGKILLed
        # harness), through util-linux's setpriv, so no load outlives its run
        self.parent_death_signal = parent_death_signal
        self.started_at_ns: int | None = None
        self.ended_at_ns: int | None = None
        self._procs: list[_Proc] = []
        self._signalled: set[int] = set()
        self._cursors: dict[Path, _FileCursor] = {}
        self.master_port = 0  # the master's, once started (distributed plans)

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> LoadRun:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc_type is None:
            self.check()

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(p.popen.pid for p in self._procs)

    def start(self) -> None:
        """Spawn the Locust processes; returns at once (the run starts when workers connect)."""
        if self._procs:
            raise LoadError("load run already started")
        record_dir = self.plan.record_dir
        _prepare_record_dir(record_dir)
        if not self.plan.locustfile_path.is_file():
            raise LoadError(f"locustfile not found: {str(self.plan.locustfile_path)!r}")
        env = plan_env(self.plan, os.environ)
        port = self.plan.master_port or (
            free_port(self.plan.master_bind) if self.plan.distributed else 0
        )
        self.master_port = port
        self.started_at_ns = time.time_ns()
        try:
            for role, argv in locust_commands(self.plan, self.python, port):
                if self.parent_death_signal:
                    argv = with_parent_death_signal(argv)
                self._procs.append(_spawn(role, argv, role_env(self.plan, env, role), record_dir))
        except LoadError:
            self.stop()
            raise

    def running(self) -> bool:
        """True while any Locust process is alive."""
        alive = any(p.popen.poll() is None for p in self._procs)
        if not alive and self._procs and self.ended_at_ns is None:
            self.ended_at_ns = time.time_ns()
        return alive

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every process to exit; True if they did, False on timeout.

        Raises LoadError if a process exited non-zero on its own (Locust exits 0 even when
        requests failed: it runs with --exit-code-on-error 0).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        for proc in self._procs:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                proc.popen.wait(remaining)
            except subprocess.TimeoutExpired:
                return False
        self.running()
        self.check()
        return True

    def check(self) -> None:
        """Raise LoadError if a process exited non-zero without being signalled by `stop`.

        A worker that had joined its master and died later is a worker lost, not a failed
        run: the master's events say when, and its missing load is the run's shortfall."""
        joined: set[str] | None = None
        for proc in self._procs:
            code = proc.popen.poll()
            if code is None or code == 0 or proc.popen.pid in self._signalled:
                continue
            if proc.role.startswith("worker-"):
                if joined is None:
                    joined = {str(w["name"]) for w in read_workers(self.plan.record_dir)}
                if self.plan.place(int(proc.role[len("worker-") :])).name in joined:
                    continue
            raise LoadError(
                f"locust {proc.role} (pid {proc.popen.pid}) exited with code {code}; "
                f"log {str(proc.log_path)!r} ends:\n{_tail(proc.log_path)}"
            )

    def stop(self) -> None:
        """Stop every process this run started, by PID: SIGTERM, then SIGKILL after the grace.

        The master (or local process) goes first: it tells its workers to quit, so their last
        records are flushed. Never raises for a process that is already gone.
        """
        if not self._procs:
            return
        head, workers = self._procs[:1], self._procs[1:]
        self._terminate(head)
        self._wait_all(self._procs, self.grace_s)
        self._terminate(workers)
        self._wait_all(workers, self.grace_s)
        for proc in self._procs:
            if proc.popen.poll() is None:
                self._signal(proc, signal.SIGKILL)
        self._wait_all(self._procs, 5.0)
        for proc in self._procs:
            proc.log.close()
        self.running()

    def _terminate(self, procs: list[_Proc]) -> None:
        for proc in procs:
            if proc.popen.poll() is None:
                self._signal(proc, signal.SIGTERM)

    def _signal(self, proc: _Proc, signum: signal.Signals) -> None:
        self._signalled.add(proc.popen.pid)
        with contextlib.suppress(ProcessLookupError):
            proc.popen.send_signal(signum)

    @staticmethod
    def _wait_all(procs: list[_Proc], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                continue

    # -- observation -----------------------------------------------------------------------

    def poll_progress(self) -> LoadProgress:
        """Requests and failures recorded so far; reads only what was appended since last call."""
        for path in sorted(self.plan.record_dir.glob(RECORD_GLOB)):
            cursor = self._cursors.setdefault(path, _FileCursor())
            _advance(path, cursor)
        cursors = self._cursors.values()
        return LoadProgress(sum(c.requests for c in cursors), sum(c.failures for c in cursors))

    def progress_by_worker(self) -> dict[str, LoadProgress]:
        """What `poll_progress` last counted, per record file's worker (`requests-<name>.tsv`:
        the worker's name; a local process's pid)."""
        return {
            path.name.removeprefix("requests-").removesuffix(".tsv"): LoadProgress(
                c.requests, c.failures
            )
            for path, c in sorted(self._cursors.items())
        }

    def wait_first_request(self, timeout_s: float, poll_s: float = 0.02) -> int | None:
        """The start of the first request sent (wall clock, ns); None if none is recorded
        within `timeout_s` or every process exited first.

        Records come in completion order, so once the first one is seen this waits one more
        flush of every process (FIRST_REQUEST_SETTLE_S) for a request that started earlier but
        completed later (the first connections are slow), then takes the earliest start."""
        deadline = time.monotonic() + timeout_s
        while first_request_ns(self.plan.record_dir) is None:
            if not self.running() or time.monotonic() >= deadline:
                return None
            time.sleep(poll_s)
        time.sleep(FIRST_REQUEST_SETTLE_S)
        return first_request_ns(self.plan.record_dir)

    def user_errors(self) -> dict[str, int]:
        """Exceptions raised by the locustfile's own code (message -> count), once it quit.

        Locust exits 0 even then (--exit-code-on-error 0 cannot tell them from failed requests),
        so the caller decides: a run whose users crashed measured nothing.
        """
        return read_user_errors(self.plan.record_dir)

    def locust_totals(self) -> LoadProgress | None:
        """Locust's own final totals (from --json-file), or None before the run has ended."""
        path = self.plan.record_dir / f"{STATS_PREFIX}.json"
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LoadError(f"cannot read locust stats {str(path)!r}: {exc}") from exc
        return LoadProgress(
            sum(int(e["num_requests"]) for e in entries),
            sum(int(e["num_failures"]) for e in entries),
        )


def read_user_errors(record_dir: Path) -> dict[str, int]:
    """Exceptions raised by user code in the Locust processes (message -> count), all merged."""
    counts: dict[str, int] = {}
    try:
        for path in sorted(record_dir.glob(USER_ERRORS_GLOB)):
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                count, _, message = line.partition("\t")
                if count.isdigit():
                    counts[message] = counts.get(message, 0) + int(count)
    except OSError as exc:
        raise LoadError(f"cannot read user errors in {str(record_dir)!r}: {exc}") from exc
    return counts


def read_workers(record_dir: Path) -> list[dict[str, Any]]:
    """Each distributed worker as its master saw it (workers.json: name, index, host, clock
    offset and round trip, requests, lost batches, complete); [] without workers."""
    path = record_dir / WORKERS_FILE
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise LoadError(f"cannot read {str(path)!r}: {exc}") from exc
    return [dict(row) for row in rows]


def read_worker_events(record_dir: Path, skip: int = 0) -> list[dict[str, Any]]:
    """The master's worker events (worker-events.jsonl: connected, missing, healed, gone,
    incomplete), from the `skip`-th complete line on."""
    try:
        data = (record_dir / WORKER_EVENTS_FILE).read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise LoadError(f"cannot read worker events in {str(record_dir)!r}: {exc}") from exc
    lines = data[: data.rfind(b"\n") + 1].splitlines()[skip:]
    try:
        return [dict(json.loads(line)) for line in lines]
    except ValueError as exc:
        raise LoadError(f"malformed worker event in {str(record_dir)!r}: {exc}") from exc


def first_request_ns(record_dir: Path) -> int | None:
    """The earliest start among the requests recorded so far (every complete line of every
    process's log), or None before any."""
    earliest = None
    for path in sorted(record_dir.glob(RECORD_GLOB)):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LoadError(f"cannot read request log {str(path)!r}: {exc}") from exc
        for line in data[: data.rfind(b"\n") + 1].splitlines()[1:]:  # past the header
            fields = line.split(b"\t", 2)
            if len(fields) == 3 and fields[1].isdigit():
                start = int(fields[1])
                earliest = start if earliest is None else min(earliest, start)
    return earliest


def _prepare_record_dir(record_dir: Path) -> None:
    try:
        record_dir.mkdir(parents=True, exist_ok=True)
        globs = (RECORD_GLOB, USER_ERRORS_GLOB, WORKERS_FILE, WORKER_EVENTS_FILE)
        stale = [p.name for g in globs for p in record_dir.glob(g)]
    except OSError as exc:
        raise LoadError(f"cannot create record dir {str(record_dir)!r}: {exc}") from exc
    if stale:
        raise LoadError(f"record dir {str(record_dir)!r} already holds request logs: {stale[:3]}")


def _spawn(role: str, argv: list[str], env: Mapping[str, str], record_dir: Path) -> _Proc:
    log_path = record_dir / f"locust-{role}.log"
    try:
        log = log_path.open("wb")
    except OSError as exc:
        raise LoadError(f"cannot open locust log {str(log_path)!r}: {exc}") from exc
    try:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=record_dir,
            start_new_session=True,
        )
    except OSError as exc:
        log.close()
        raise LoadError(f"cannot start locust {role}: {exc}") from exc
    return _Proc(role, popen, log_path, log)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"<unreadable: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _advance(path: Path, cursor: _FileCursor) -> None:
    """Count the complete lines appended to `path` since `cursor`, and their failures."""
    try:
        with path.open("rb") as handle:
            handle.seek(cursor.offset)
            chunk = handle.read()
    except OSError as exc:
        raise LoadError(f"cannot read request log {str(path)!r}: {exc}") from exc
    end = chunk.rfind(b"\n") + 1
    if end == 0:
        return
    body = chunk[:end]
    cursor.offset += end
    if body.startswith(_HEADER_PREFIX):
        body = body[body.index(b"\n") + 1 :]
    cursor.requests += body.count(b"\n")
    cursor.failures += body.count(b"\n0\t") + body.startswith(b"0\t")


# -- collection ---------------------------------------------------------------------------


def collect_requests(record_dir: Path) -> pd.DataFrame:
    """Every recorded request of a run, with the columns of requests.parquet, by start_ns."""
    try:
        paths = sorted(record_dir.glob(RECORD_GLOB))
    except OSError as exc:
        raise LoadError(f"cannot list record dir {str(record_dir)!r}: {exc}") from exc
    frames = [_read_record_file(path) for path in paths]
    frames = [f for f in frames if len(f)]
    if not frames:
        return _typed(_empty_file_frame(), (0, None))
    requests = pd.concat(frames, ignore_index=True)
    return requests.sort_values("start_ns", kind="stable", ignore_index=True)


def _read_record_file(path: Path) -> pd.DataFrame:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read request log {str(path)!r}: {exc}") from exc
    data = data[: data.rfind(b"\n") + 1]  # a line cut short by a kill is dropped
    if not data:
        return _typed(_empty_file_frame(), (0, None))  # killed before its header was written
    header, _, body = data.partition(b"\n")
    if not header.startswith(_HEADER_PREFIX):
        raise LoadError(f"not a request log (bad header): {str(path)!r}")
    worker = (_header_worker(header, path), _header_name(header))
    if not body:
        return _typed(_empty_file_frame(), worker)
    # v1 files (before served_by) have one column less
    columns = _FILE_COLUMNS[:-1] if header.startswith(_HEADER_PREFIX + b"1 ") else _FILE_COLUMNS
    try:
        frame = pd.read_csv(
            io.BytesIO(body),
            sep="\t",
            header=None,
            names=list(columns),
            quoting=csv.QUOTE_NONE,
            keep_default_na=False,
            na_values=[],
            dtype={"ok": "int8", "start_ns": "int64", "latency_ms": "float64"}
            | {"name": str, "endpoint": str, "error": str, "served_by": str},
            encoding="utf-8",
            encoding_errors="replace",
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise LoadError(f"malformed request log {str(path)!r}: {exc}") from exc
    return _typed(frame, worker)


def _header_name(header: bytes) -> str | None:
    """The worker's name (v3 headers); None in older files."""
    for token in header.split():
        if token.startswith(b"name="):
            return token[len(b"name=") :].decode("utf-8", "replace")
    return None


def _header_worker(header: bytes, path: Path) -> int:
    for token in header.split():
        if token.startswith(b"worker="):
            try:
                return int(token[len(b"worker=") :])
            except ValueError:
                break
    raise LoadError(f"request log header names no worker: {str(path)!r}")


def _empty_file_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=str) for c in _FILE_COLUMNS})


def _typed(frame: pd.DataFrame, worker: tuple[int, str | None]) -> pd.DataFrame:
    """The file's columns in requests.parquet order and dtypes; empty error or served_by ->
    null; `worker` is the file's (index, name)."""
    error = frame["error"].astype(str)
    served = (frame["served_by"] if "served_by" in frame else frame["error"].iloc[0:0]).astype(str)
    served = served.reindex(frame.index, fill_value="")
    return pd.DataFrame(
        {
            "start_ns": frame["start_ns"].astype("int64"),
            "latency_ms": frame["latency_ms"].astype("float64"),
            "ok": frame["ok"].astype("int8").astype("bool"),
            "name": frame["name"].astype(str),
            "error": error.where(error != ""),
            "endpoint": frame["endpoint"].astype(str),
            "worker": pd.Series(worker[0], index=frame.index, dtype="int64"),
            "served_by": served.where(served != ""),
            "worker_name": pd.Series(worker[1], index=frame.index, dtype="object"),
        }
    )


def write_requests_parquet(requests: pd.DataFrame, path: Path) -> None:
    """Write `requests` (as from `collect_requests`) to `path` atomically."""
    missing = [c for c in REQUEST_COLUMNS if c not in requests.columns]
    if missing:
        raise LoadError(f"requests frame lacks columns {missing}")
    tmp = path.with_name(path.name + ".tmp")
    try:
        requests.loc[:, list(REQUEST_COLUMNS)].to_parquet(tmp, engine="pyarrow", index=False)
        tmp.replace(path)
    except (OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise LoadError(f"cannot write {str(path)!r}: {exc}") from exc
