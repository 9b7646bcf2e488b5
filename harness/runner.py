"""One run, end to end: deploy, observe, load, inject and revert faults, tear down, analyse.

Everything the run starts is stopped in `finally`: outstanding faults are reverted from the
undo log, Locust processes are stopped by their PIDs, and every labelled object is removed,
on success, on error, on Ctrl-C and on SIGTERM. A run ends `completed`, `aborted` (SIGINT or
SIGTERM: signal, instant and phase in the manifest's `abort`) or `failed` (`error`, `failure`).

Signals: SIGINT and SIGTERM are caught from the first line of `run()`; the first stops the run
where it is, later ones during cleanup are noted, not obeyed, so a revert is never cut short.
Short critical sections (the Podman service, Locust with its pid file, a lease, an undo-log
line) hold a signal until done, so nothing is started without being recorded.

The engine: `EngineWatch` asks the target's engine for a sign of life every 2 s; an engine
silent for `RunOptions.engine_silence_s`, or an event stream that ended while the engine is
gone or restarted, fails the run; a stream the engine ended on its own while it runs on is
taken over from its last event (`events_resumed`). Cleanup then gets a bounded time.

When a fault happened: each injection and revert gets a fresh `ActionClock`; the instant the
fault marks for its action is the event's time (t0), else the instant before `apply` /
`revert`; `fault_inject` carries `apply_s`, `fault_revert` `active_s`. The long form:
docs/RUNS.md, The runner.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import secrets
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any

from faults.base import (
    RELAYED,
    ActionClock,
    AnyFault,
    FaultContext,
    RevertRecord,
    apply_fault,
    plan_fault,
    revert_fault,
)
from harness import __version__
from harness.agent.fleet import AgentFleet
from harness.agent.instants import VIA as INSTANTS_VIA
from harness.agent.instants import AgentInstants, TakesInstants
from harness.agent.prober import AgentProber, choose_probes
from harness.agent.relay import AgentRelay
from harness.agent.start import AGENT_READY_TIMEOUT_S, open_fleet
from harness.errors import HarnessError, LoadError, ScenarioError, TargetError
from harness.hostsys import on_stop_signals, process_start_ticks
from harness.journal import Journal, revert_outstanding
from harness.lease import Lease, end_lease, start_lease
from harness.load import (
    WORKER_CONNECT_WAIT_S,
    LoadPath,
    LoadPlan,
    LoadRun,
    advertised_host,
    connection_policy,
    locust_version,
    read_worker_events,
    read_workers,
)
from harness.load_nodes import NodeEntry, lab_master_bind, lab_netns, lab_worker_places
from harness.load_pods import PodWorkers, cluster_ip_url
from harness.load_pods import lab_master_bind as kube_lab_master_bind
from harness.observe import EngineWatch, EventRecorder, Prober, write_observations
from harness.preflight import late_fault_warnings, preflight, preflight_machine
from harness.prometheus.exporter import MetricsExporter
from harness.prometheus.run import evaluate_after_run, start_exporter
from harness.resources import ResourceSampler
from harness.results import (
    ABORTED,
    COMPLETED,
    FAILED,
    RUNNING,
    EventLog,
    RunDir,
    write_json,
    write_pid_file,
    write_text_atomic,
)
from harness.results.manifest import (
    AgentBlock,
    AnalysisBlock,
    LoadBlock,
    LoadWorker,
    Manifest,
    ProbesBlock,
    SloBlock,
)
from harness.scenario import DEMO_LOCUSTFILE, ScenarioBase, resolved_yaml
from harness.selection import select_instances
from harness.targets import make_target
from harness.targets.base import Instance, Target
from harness.timeline import Action, Occurrence, actions, ordered
from harness.worker_image import load_worker_image_into_lab

HEALTH_TIMEOUT_S = 90.0
ENGINE_SILENCE_S = 15.0  # an engine that has not answered for this long is lost
ENGINE_SILENCE_ENV = "CHAOS_HARNESS_ENGINE_SILENCE_S"
ENGINE_WATCH_INTERVAL_S = 2.0
CLEANUP_WITHOUT_ENGINE_S = 20.0  # per step that needs a lost engine, then left to cleanup
MAX_STREAM_RESUMES = 20  # an event stream that keeps ending is a lost engine
SERVICE_ENDPOINT = "service"  # the endpoint name of load sent through a balancing service
LATE_INJECTION_SHIFT_S = 1.0  # a revert waits for its late injection at most this long
FIRST_REQUEST_WAIT_S = 60.0  # Locust's start (imports, spawning) to its first request, at most


def _env_seconds(name: str, default: float = ENGINE_SILENCE_S) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; the run stops and cleans up (exit code 128 + signal)."""

    def __init__(self, signum: int, at_ns: int | None = None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.at_ns = at_ns if at_ns is not None else time.time_ns()


class RunAborted(HarnessError):
    """A signal stopped the run before its directory existed: nothing was deployed."""

    def __init__(self, signum: int) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"aborted by {name} before anything was deployed; nothing to clean up")
        self.exit_code = 128 + signum
        self.signum = signum


class EngineLost(TargetError):
    """The engine stopped answering, or restarted, in the middle of the run."""


@dataclass(frozen=True)
class RunOptions:
    out_dir: Path = Path("results")
    seed: int | None = None
    health_timeout_s: float = HEALTH_TIMEOUT_S
    labels: Mapping[str, str] = field(default_factory=dict)  # e.g. variant=before, for compare
    # how long the engine may go without answering before the run fails (a busy engine on a
    # loaded machine can take seconds): $CHAOS_HARNESS_ENGINE_SILENCE_S, default 15 s
    engine_silence_s: float = field(default_factory=lambda: _env_seconds(ENGINE_SILENCE_ENV))


@dataclass
class Progress:
    """What the progress display shows; the runner updates it, the CLI renders it."""

    phase: str = "starting"
    elapsed_s: float = 0.0
    total_s: float = 0.0
    requests: int = 0
    failures: int = 0
    notes: list[str] = field(default_factory=list)
    # per load worker (name -> requests, failures), for a display that asks for them
    workers: dict[str, tuple[int, int]] = field(default_factory=dict)


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    status: str  # completed | aborted | failed (harness.results)
    error: str | None
    signum: int | None = None


def make_run_id(name: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{name}-{stamp}-{secrets.token_hex(2)}"


class SignalGate:
    """SIGINT and SIGTERM as `Interrupted`, raised where the run is, with three modes:
    open (raise at once), deferred (inside a critical section: raise when it ends) and held
    (cleanup: note the signal, never raise). Installed by `installed()`; outside it, the
    sections are no-ops."""

    def __init__(self) -> None:
        self.pending: Interrupted | None = None
        self.first: Interrupted | None = None
        self.ignored: list[str] = []
        self._defer_depth = 0
        self._held = False
        self._installed = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[SignalGate]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals reach the main thread only: nothing to install
            return
        with on_stop_signals(self._handler):
            self._installed = True
            try:
                yield self
            finally:
                self._installed = False

    def _handler(self, signum: int, _frame: FrameType | None) -> None:
        arrived = Interrupted(signum)
        if self._held or self.first is not None:
            self.ignored.append(signal.Signals(signum).name)
            print(
                f"{signal.Signals(signum).name} noted: cleaning up first (SIGKILL would leave "
                "the rest to the leases and `harness cleanup`)",
                file=sys.stderr,
                flush=True,
            )
            return
        self.first = arrived
        if self._defer_depth:
            self.pending = arrived
            return
        raise arrived

    @contextlib.contextmanager
    def deferred(self, release: bool = True) -> Iterator[None]:
        """A critical section: a signal arriving inside is raised when it ends (or, with
        release=False, at the next `release_pending()`)."""
        self._defer_depth += 1
        try:
            yield
        finally:
            self._defer_depth -= 1
        if release:
            self.release_pending()

    def release_pending(self) -> None:
        """Raise a signal held by a critical section that has ended."""
        if not self._defer_depth and self.pending is not None and not self._held:
            pending, self.pending = self.pending, None
            raise pending

    def hold(self) -> None:
        """From now on signals are noted only (cleanup must run to its end)."""
        self._held = True
        self.pending = None


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into Interrupted, so every `finally` runs."""
    with SignalGate().installed():
        yield


def _versions(target: Target) -> dict[str, str]:
    return {
        "harness": __version__,
        "python": platform.python_version(),
        "locust": locust_version(),
        "docker_sdk": version("docker"),
        "pandas": version("pandas"),
        **{k: str(v) for k, v in target.engine_info().items()},
    }


class Runner:
    """Runs one scenario; `run()` never leaves anything behind."""

    def __init__(
        self,
        scenario: ScenarioBase,
        options: RunOptions,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.scenario = scenario
        self.options = options
        self.seed = options.seed if options.seed is not None else scenario.seed
        if self.seed is None:
            self.seed = secrets.randbelow(2**31)
        self.run_id = make_run_id(scenario.name)
        self.dir = RunDir(options.out_dir / self.run_id)
        self.progress = Progress(total_s=scenario.load.duration)
        self._on_progress = on_progress or (lambda _p: None)
        self._manifest = self._planned_manifest()
        self._leases: dict[str, Lease] = {}
        self._records: dict[str, RevertRecord] = {}
        self._injected_ns: dict[str, int] = {}
        self._gate = SignalGate()
        self._load: LoadRun | None = None
        self._worker_events_seen = 0
        self._entry: NodeEntry | None = None
        self._pods: PodWorkers | None = None
        self._pods_image = ""
        self._entry_trouble = ""  # the last failure to copy the service to the nodes
        self._prober: Prober | AgentProber | None = None
        self._resources: ResourceSampler | None = None
        self._recorder: EventRecorder | None = None
        self._watch: EngineWatch | None = None
        self._engine_lost = False
        self._target: Target | None = None
        self._events: EventLog | None = None
        self._engine_identity: str | None = None
        self._stream_resumes = 0
        self._metrics: MetricsExporter | None = None
        self._fleet: AgentFleet | None = None
        self._relay: AgentRelay | None = None

    # --- the run -------------------------------------------------------------------------

    def run(self) -> RunOutcome:
        with self._gate.installed():
            try:
                planned = preflight(self.scenario)
                preflight_machine(self.scenario)
            except Interrupted as exc:
                raise RunAborted(exc.signum) from None
            for warning in late_fault_warnings(self.scenario):
                self._warn(warning)
            with self._gate.deferred(release=False):  # a run directory is a whole one
                self.dir.create()
                write_text_atomic(self.dir.scenario, resolved_yaml(self.scenario))
                self._start_manifest()
                events = EventLog(self.dir.events)
            return self._run_in_dir(planned, events)

    def _run_in_dir(
        self, planned: Sequence[tuple[Occurrence, AnyFault]], events: EventLog
    ) -> RunOutcome:
        journal = Journal(self.dir.journal)
        target: Target | None = None
        status, error, signum = COMPLETED, None, None
        try:
            try:
                self._gate.release_pending()
                self._metrics = start_exporter(
                    self.scenario, self.dir.path, self.run_id, lambda: self.progress.phase
                )
                self._manifest.metrics_url = self._metrics.url if self._metrics else None
                self._report("connecting")
                with self._gate.deferred():  # a Podman run's API service starts here
                    target = make_target(self.run_id, self.scenario.target)
                self._describe_target(target)
                self._run_with(target, events, journal, planned)
            except Interrupted as exc:
                status, signum = ABORTED, exc.signum
                error = f"aborted by {exc} during {self.progress.phase}"
                self._manifest.abort = {
                    "signal": str(exc),
                    "at_ns": exc.at_ns,
                    "phase": self.progress.phase,
                    "by": "the harness (it reverted and tore down what the run made)",
                }
            except HarnessError as exc:
                status, error = FAILED, str(exc)
                self._failure(error)
            except Exception as exc:  # a bug: the run still ends cleaned up and recorded
                status, error = FAILED, f"unexpected {type(exc).__name__}: {exc}"
                self._failure(error, traceback.format_exc())
            finally:
                self._gate.hold()
                self._cleanup(target, events, journal)
                if self._metrics is not None:
                    self._metrics.stop()
        finally:
            events.close()
            self._finish_manifest(status, error)
        if status == COMPLETED:  # the checks read from Prometheus, once every sample is in
            self._attempt(
                "read slo.prometheus", lambda: evaluate_after_run(self.scenario, self.dir.path)
            )
        return RunOutcome(self.dir.path, status, error, signum)

    def _describe_target(self, target: Target) -> None:
        self._manifest.target = target.kind
        self._manifest.load.load_balancing = target.load_balancing()
        self._manifest.versions.update(_versions(target))
        self._write_manifest()

    def _failure(self, reason: str, trace: str | None = None) -> None:
        failure: dict[str, Any] = {
            "at_ns": time.time_ns(),
            "phase": self.progress.phase,
            "engine_lost": self._engine_lost,
        }
        self._manifest.failure = failure
        if trace is not None:
            log = self.dir.logs / "harness-error.log"
            with contextlib.suppress(OSError):
                log.write_text(f"{reason}\n\n{trace}")
            failure["traceback"] = str(log)

    def _run_with(
        self,
        target: Target,
        events: EventLog,
        journal: Journal,
        planned: Sequence[tuple[Occurrence, AnyFault]],
    ) -> None:
        self._report("deploying")
        self._target, self._events = target, events
        self._engine_identity = _engine_identity(target)
        self._watch_engine(target)
        since_ns = time.time_ns()
        self._recorder = EventRecorder(_subscribe(target, since_ns), events, since_ns).start()
        events.harness(time.time_ns(), "run_start", run_id=self.run_id)
        # the agents first: a permission they lack stops the run before the workload is up
        self._start_agents(target, [fault for _, fault in planned])
        target.deploy(self.scenario.workload)
        self._check_engine()
        self._report("waiting for healthy replicas")
        instances = target.wait_healthy(self.options.health_timeout_s)
        self._check_engine()
        # a target may only know its engine once deployed (a lab brought up for the run)
        self._manifest.versions.update({k: str(v) for k, v in target.engine_info().items()})
        self._write_manifest()
        events.harness(time.time_ns(), "deployed", instances=[i.name for i in instances])
        if self.scenario.probes.enabled:
            self._prober = self._start_prober(instances)
        # the instances' CPU and memory from their cgroups (nothing for a remote engine)
        self._resources = ResourceSampler(instances, self.dir.path).start()
        host, path = self._load_address(target)  # Locust's --host: the workload as a whole
        routing = self.scenario.load.routing
        self._manifest.load.host, self._manifest.load.path = host, path
        nodes = self.scenario.load.placement == "nodes" and self.scenario.load.host is None
        if nodes and self.scenario.target.kind == "kubernetes":
            # the Service at its ClusterIP, through each node's own kube-proxy
            host = self._manifest.load.host = cluster_ip_url(target)
            self._manifest.load.path = (
                f"nodes: {self.scenario.load.workers} Locust worker(s) in the lab's node "
                f"namespaces, each sending to the Service's ClusterIP {host} through its "
                "node's own kube-proxy; their master on this host"
            )
        elif nodes:  # the same service, from the Swarm lab's nodes
            self._entry = NodeEntry(self.run_id, lab_netns())
            host = self._manifest.load.host = self._entry.open()
        if self.scenario.load.placement == "pods":  # from inside the cluster, at its ClusterIP
            host, self._manifest.load.path = self._prepare_pods(target)
            self._manifest.load.host = host
        # service: users reach a service, and what the orchestrator does to route around a
        # failure is part of its recovery, so faults are measured on that stream
        endpoints = (
            [(SERVICE_ENDPOINT, host)]
            if routing == "service"
            else [(i.name, i.url) for i in instances]
        )
        self._start_load(self._load_plan(endpoints, host))
        load_start_ns = self._await_first_request()
        events.harness(load_start_ns, "load_start")
        self._manifest.load.started_at_ns = load_start_ns
        self._manifest.load.endpoints = [name for name, _ in endpoints]
        self._write_manifest()
        context = self._fault_context(target)
        faults = {o.fault_id: fault for o, fault in planned}
        occurrences = [o for o, _ in planned]
        self._follow_timeline(context, events, journal, faults, occurrences, load_start_ns)
        self._report("stopping load")
        load = self._running_load()
        load.wait(timeout=self.scenario.load.duration + 30)
        load.check()
        self._record_worker_events(events)
        events.harness(time.time_ns(), "load_stop")

    def _start_load(self, plan: LoadPlan) -> None:
        with self._gate.deferred():  # never a Locust process without its pid file
            self._load = LoadRun(plan, parent_death_signal=True)
            try:
                self._load.start()
            finally:
                write_pid_file(self.dir.load_pids, self._load.pids)
        if self._pods is not None:
            load = self.scenario.load
            locustfile = None if load.locustfile == DEMO_LOCUSTFILE else Path(load.locustfile)
            # the address the pods dial: the lab bridge's, or load.master's as others see it
            master = (advertised_host(plan.master_bind), self._load.master_port)
            self._pods.open(load.workers, self._pods_image, locustfile, master)
        master_spec = self.scenario.load.master
        if master_spec is not None and master_spec.expect_workers:
            self._call_for_workers(plan, master_spec.expect_workers, self._load.master_port)

    def _prepare_pods(self, target: Target) -> tuple[str, str]:
        """placement pods: the worker image on the lab's nodes, and the Service's ClusterIP
        (the load's address from inside the cluster) with the load's path in one sentence."""
        self._pods = PodWorkers.on(target)
        image = self.scenario.load.image
        if image is None:
            self._report("loading the load workers' image into the lab")
            image = load_worker_image_into_lab()
        self._pods_image = image
        url = self._pods.cluster_ip_url()
        workers = self.scenario.load.workers
        return url, (
            f"pods: {workers} Locust worker(s) as pods of the run ({image}), each sending to "
            f"the Service's ClusterIP {url} through kube-proxy on its own node, as clients in "
            "the cluster do; their master on this host"
        )

    def _call_for_workers(self, plan: LoadPlan, count: int, port: int) -> None:
        """Say on stderr how to start the workers the master waits for (other machines')."""
        address = f"{advertised_host(plan.master_bind)}:{port}"
        message = (
            f"the load waits {plan.workers_wait_s:g} s for {count} worker(s): "
            f"on each machine run  harness worker --master {address}"
        )
        self.progress.notes.append(message)
        print(message, file=sys.stderr, flush=True)

    def _record_worker_events(self, events: EventLog) -> None:
        """Workers the master saw connect, go missing, heal, leave or end incomplete: on the
        timeline as harness events `load_worker_<event>` (a lost worker's load is missing)."""
        load = self._load
        if load is None or not load.plan.distributed:
            return
        new = read_worker_events(load.plan.record_dir, skip=self._worker_events_seen)
        self._worker_events_seen += len(new)
        for event in new:
            attributes = {k: v for k, v in event.items() if k not in ("time_ns", "event")}
            events.harness(int(event["time_ns"]), f"load_worker_{event['event']}", **attributes)
            if event["event"] in ("missing", "gone", "incomplete"):
                self._warn(f"load worker {event['worker']} {event['event']}")

    def _sync_entry(self) -> None:
        """Node load follows replaced tasks as the host's does; a failure is said once."""
        if self._entry is None:
            return
        try:
            self._entry.sync()
        except HarnessError as exc:
            if str(exc) != self._entry_trouble:
                self._warn(f"copying the service to the lab's nodes failed: {exc}")
            self._entry_trouble = str(exc)
        else:
            self._entry_trouble = ""

    def _await_first_request(self) -> int:
        """The load's start: the first request Locust sent (its record), so the warm-up, the
        phases and the faults' offsets count from real load, not from Locust's spawn (its
        imports take seconds on a busy machine). Without any request within
        FIRST_REQUEST_WAIT_S, the spawn instant, with a warning."""
        self._report("starting load")
        load = self._running_load()
        # a distributed master starts its users once its workers connected
        wait_s = FIRST_REQUEST_WAIT_S + (load.plan.workers_wait_s if load.plan.distributed else 0)
        first_ns = load.wait_first_request(wait_s)
        try:
            load.check()  # Locust died before sending anything: its log says why
        except LoadError as exc:
            if self._pods is None:
                raise
            raise LoadError(f"{exc}\nthe worker pods: {self._pods.describe()}") from exc
        if first_ns is not None:
            return first_ns
        spawned_ns = load.started_at_ns or time.time_ns()
        self._warn(
            f"no request was recorded within {FIRST_REQUEST_WAIT_S:g} s of Locust's start: "
            "the load's start is the instant Locust was started"
        )
        return spawned_ns

    def _running_load(self) -> LoadRun:
        if self._load is None:
            raise HarnessError("the load was not started")
        return self._load

    def _watch_engine(self, target: Target) -> None:
        self._watch = EngineWatch(target.engine_answers, ENGINE_WATCH_INTERVAL_S).start()

    def _check_engine(self) -> None:
        """Raise EngineLost when the engine went silent, or its event stream ended because it
        went away or restarted; a stream the engine ended for its own reasons while it still
        runs (Podman 4.3 does) is taken over by a new subscription from its last event."""
        recorder, watch = self._recorder, self._watch
        if recorder is not None and recorder.ended_ns is not None:
            self._after_stream_end(recorder)
        silent = watch.silent_for_s() if watch is not None else 0.0
        if silent >= self.options.engine_silence_s:
            self._engine_lost = True
            raise EngineLost(
                f"the engine has not answered for {silent:.0f} s (a ping every "
                f"{ENGINE_WATCH_INTERVAL_S:g} s): it stopped answering in the middle of the run. "
                "What could be reverted without it was; once the engine answers again, run "
                "`harness cleanup` for the rest"
            )

    def _after_stream_end(self, ended: EventRecorder) -> None:
        """The event stream ended: once the engine answers, subscribe again (or fail if it is
        another process: a restart); while it does not, wait, up to the silence limit (a
        restarting engine is silent for a moment before it answers as another process)."""
        if self._target is not None and self._target.engine_answers():
            self._recorder = self._resubscribe(ended)
            return
        ended_ns = ended.ended_ns or time.time_ns()
        silent_s = (time.time_ns() - ended_ns) / 1e9
        if silent_s >= self.options.engine_silence_s:
            self._engine_lost = True
            raise EngineLost(
                f"the engine's event stream ended at {_clock(ended_ns)} and the engine has not "
                f"answered since ({silent_s:.0f} s): it stopped or went away; the run's data "
                "until then is kept. Once the engine answers again, run `harness cleanup` for "
                "anything left"
            )

    def _resubscribe(self, ended: EventRecorder) -> EventRecorder:
        """A new recorder from where `ended` stopped, or EngineLost when the engine is not the
        same process any more (a restart)."""
        target, events = self._target, self._events
        at = _clock(ended.ended_ns or time.time_ns())
        if target is None or events is None:
            self._engine_lost = True
            raise EngineLost(f"the engine's event stream ended at {at}")
        identity = _engine_identity(target)
        if identity != self._engine_identity:
            self._engine_lost = True
            raise EngineLost(
                f"the engine restarted at {at} (its process was {self._engine_identity}, now "
                f"{identity}): what it did to the run's replicas is not the fault's; the run's "
                "data until then is kept. Run `harness cleanup` for anything left"
            )
        self._stream_resumes += 1
        if self._stream_resumes > MAX_STREAM_RESUMES:
            self._engine_lost = True
            raise EngineLost(f"the engine's event stream ended {self._stream_resumes} times")
        ended.stop(grace_s=0)
        since_ns = ended.resume_ns()
        recorder = EventRecorder(_subscribe(target, since_ns), events, since_ns).start()
        events.harness(
            time.time_ns(), "events_resumed", ended_at_ns=ended.ended_ns, since_ns=since_ns
        )
        return recorder

    def _follow_timeline(
        self,
        ctx: FaultContext,
        events: EventLog,
        journal: Journal,
        faults: dict[str, AnyFault],
        occurrences: Sequence[Occurrence],
        load_start_ns: int,
    ) -> None:
        # faults' offsets count from the first request, which came a moment ago
        started = time.monotonic() - max(0.0, (time.time_ns() - load_start_ns) / 1e9)
        pending = actions(occurrences)
        end_s = self.scenario.load.duration
        load = self._running_load()
        while True:
            elapsed = time.monotonic() - started
            self._check_engine()
            while pending and pending[0].at_s <= elapsed:
                action = pending.pop(0)
                self._act(ctx, events, journal, faults, action)
                pending = self._revert_after_its_action(pending, action, load_start_ns)
            self._tick(elapsed, occurrences)
            self._record_worker_events(events)
            self._sync_entry()
            self._refresh_resources(ctx.target)
            if elapsed >= end_s or not load.running():
                return
            next_at = min(pending[0].at_s if pending else end_s, end_s)
            time.sleep(max(0.0, min(0.25, next_at - (time.monotonic() - started))))

    def _revert_after_its_action(
        self, pending: list[Action], done: Action, load_start_ns: int
    ) -> list[Action]:
        """`pending` with `done`'s revert moved as late as its injection acted after the
        planned instant (an agent's exec takes a moment), so a fault is in place for its whole
        duration; at most LATE_INJECTION_SHIFT_S, well within the leases' grace."""
        injected_ns = self._injected_ns.get(done.occurrence.fault_id)
        if done.verb != "inject" or injected_ns is None:
            return pending
        late_s = (injected_ns - load_start_ns) / 1e9 - done.at_s
        shift_s = min(max(0.0, late_s), LATE_INJECTION_SHIFT_S)
        if shift_s == 0.0:
            return pending
        moved = [
            replace(a, at_s=a.at_s + shift_s)
            if a.verb == "revert" and a.occurrence.fault_id == done.occurrence.fault_id
            else a
            for a in pending
        ]
        return ordered(moved)

    def _refresh_resources(self, target: Target) -> None:
        """New PIDs for the resource sampler after a read failed (a restart), on this thread:
        the engine's clients are not shared with the sampler's."""
        sampler = self._resources
        if sampler is not None and sampler.wants_instances:
            with contextlib.suppress(HarnessError, OSError):  # a busy engine: the gap goes on
                sampler.update(target.instances())

    def _act(
        self,
        ctx: FaultContext,
        events: EventLog,
        journal: Journal,
        faults: dict[str, AnyFault],
        action: Action,
    ) -> None:
        occurrence = action.occurrence
        fault = faults[occurrence.fault_id]
        if action.verb == "inject":
            self._inject(ctx, events, journal, fault, occurrence)
        elif occurrence.fault_id in self._records:
            self._revert(ctx, events, journal, fault, self._records.pop(occurrence.fault_id))

    def _inject(
        self, ctx: FaultContext, events: EventLog, journal: Journal, fault: AnyFault, o: Occurrence
    ) -> None:
        chosen = select_instances(ctx.target.instances(), o.entry.select, self.run_id, ctx.rng)
        lease_s = None if o.revert_at_s is None else o.revert_at_s - o.at_s
        record = plan_fault(fault, ctx, o.fault_id, chosen, lease_s)
        deadline = None if lease_s is None else time.time_ns() + int(lease_s * 1e9)
        with self._gate.deferred():  # the undo line and its lease, or neither
            journal.planned(record, deadline)
            self._records[o.fault_id] = record
            # a relayed fault's lease is its agent's, on the node
            if deadline is not None and RELAYED not in record.data:
                self._leases[o.fault_id] = start_lease(self.dir.path, o.fault_id, deadline)
        own = replace(ctx, clock=ActionClock())
        before_ns = time.time_ns()
        apply_fault(fault, own, record)
        after_ns = time.time_ns()
        journal.applied(o.fault_id)
        injected_ns = action_instant(own.clock, before_ns)
        self._injected_ns[o.fault_id] = injected_ns
        events.harness(
            injected_ns,
            "fault_inject",
            fault_id=o.fault_id,
            entry=o.entry_id,
            occurrence=o.repeat,
            kind=fault.kind,
            name=o.label,
            targets=list(record.targets),
            mode=fault.mode,
            mechanism=record.mechanism if self._relay is None else self._relay.mechanism(record),
            restart_policy_applies=fault.restart_policy(ctx.target),
            heals_during_fault=fault.heals_during_fault(ctx.target),
            has_duration=fault.has_duration,
            # the comparison window's length: the same on every run, whatever the revert took
            planned_duration_s=(
                None if o.revert_at_s is None else round(o.revert_at_s - o.at_s, 6)
            ),
            action_marked=own.clock.first_ns is not None,
            apply_s=round((after_ns - before_ns) / 1e9, 6),
        )
        if not fault.has_duration:
            journal.reverted(o.fault_id)  # a one-off event leaves nothing to undo
            self._records.pop(o.fault_id)

    def _revert(
        self,
        ctx: FaultContext,
        events: EventLog,
        journal: Journal,
        fault: AnyFault,
        record: RevertRecord,
    ) -> None:
        own = replace(ctx, clock=ActionClock())
        before_ns = time.time_ns()
        revert_fault(fault.revert, own, record)
        journal.reverted(record.fault_id)
        self._revert_event(events, record, action_instant(own.clock, before_ns))
        if record.fault_id in self._leases:
            end_lease(self._leases.pop(record.fault_id))

    def _revert_event(
        self, events: EventLog, record: RevertRecord, reverted_ns: int, **extra: object
    ) -> None:
        """fault_revert with the measured time the fault was on (from its injection's action)."""
        injected_ns = self._injected_ns.get(record.fault_id)
        active_s = None if injected_ns is None else round((reverted_ns - injected_ns) / 1e9, 6)
        events.harness(
            reverted_ns,
            "fault_revert",
            fault_id=record.fault_id,
            kind=record.kind,
            active_s=active_s,
            **extra,
        )

    # --- cleanup -------------------------------------------------------------------------

    def _cleanup(self, target: Target | None, events: EventLog, journal: Journal) -> None:
        """Undo and stop everything; each step runs even if an earlier one failed.

        With the engine lost, the steps that need it (reverts, teardown) get a bounded time
        each; what they could not do stays in the undo log for the leases and
        `harness cleanup`."""
        self._report("cleaning up")
        if self._watch is not None:
            self._watch.stop()
        if target is not None:
            self._engine_step("revert faults", lambda: self._revert_all(target, events, journal))
        self._end_leases(journal)
        self._stop_agents()
        if self._load is not None:
            self._attempt("stop load", self._load.stop)
            self._manifest.load.ended_at_ns = time.time_ns()
            self._attempt("read load workers", self._read_load_workers)
        if self._entry is not None:
            self._attempt("close the nodes' entry", self._entry.close)
        if self._pods is not None:
            self._attempt("remove the load's worker pods", self._pods.close)
        if self._prober is not None:
            self._attempt("stop probes", self._prober.stop)
        if self._resources is not None:
            self._attempt("stop resource sampling", self._resources.stop)
        if self._recorder is not None:
            self._attempt("stop event recorder", self._recorder.stop)
        if target is not None:
            self._report("tearing down")
            self._engine_step("teardown", target.teardown)
        self._attempt("write data", lambda: write_observations(self.dir))

    def _read_load_workers(self) -> None:
        if self._load is not None:
            rows = read_workers(self._load.plan.record_dir)
            self._manifest.load.workers_seen = [LoadWorker.model_validate(r) for r in rows]

    def _fault_context(self, target: Target) -> FaultContext:
        rng = random.Random(self.seed)
        return FaultContext(target, self.run_id, self.dir.path, rng, relay=self._relay)

    def _start_agents(self, target: Target, faults: Sequence[AnyFault]) -> None:
        """The fault agents, where host-side faults must go through them (harness.agent)."""
        with self._gate.deferred():  # agents deployed are agents the cleanup knows of
            self._fleet = open_fleet(target, self.scenario.target, self.run_id, faults)
        if self._fleet is None:
            return
        self._report("starting the fault agents")
        self._fleet.wait_ready(AGENT_READY_TIMEOUT_S)
        self._relay = AgentRelay(self.run_id, self.seed or 0, self._fleet.channels())
        if isinstance(target, TakesInstants):  # containers' starts and exits as nodes saw them
            instants = AgentInstants(self._relay)
            target.take_instants(instants.started_at, instants.exited_at, INSTANTS_VIA)
        self._manifest.agents = AgentBlock(
            where=self._fleet.describe(), nodes=sorted(self._fleet.channels())
        )
        self._write_manifest()

    def _start_prober(self, instances: Sequence[Instance]) -> Prober | AgentProber:
        """The probes from here or from the agents (probes.via; auto: by trying)."""
        probes = self.scenario.probes
        choice = choose_probes(probes.via, instances, probes.path, self._relay is not None)
        print(f"probes: from the {choice.via} ({choice.reason})", file=sys.stderr)
        self._manifest.probes = ProbesBlock(
            asked=choice.asked, via=choice.via, reason=choice.reason
        )
        self._write_manifest()
        log = self.dir.probes_log
        if choice.via == "agent" and self._relay is not None:
            prober = AgentProber(
                self._relay,
                instances,
                probes.path,
                probes.interval,
                probes.timeout,
                log,
                self._warn,
            )
            self._manifest.probes.nodes = prober.nodes
            return prober.start()
        return Prober(instances, probes.path, probes.interval, probes.timeout, log).start()

    def _stop_agents(self) -> None:
        if isinstance(self._prober, AgentProber):  # its last reads need the agents
            self._attempt("stop probes", self._prober.stop)
        if self._relay is not None and self._manifest.agents is not None:
            relay, block = self._relay, self._manifest.agents
            self._attempt(
                "read the agents' clocks", lambda: block.clocks.update(relay.clock_report())
            )
        if self._fleet is not None:
            self._attempt("remove the fault agents", self._fleet.remove)

    def _revert_all(self, target: Target, events: EventLog, journal: Journal) -> None:
        ctx = self._fault_context(target)
        for record, failure in revert_outstanding(journal, ctx):
            if failure is not None:
                self._warn(f"revert of {record.fault_id} failed: {failure}")
                continue
            self._revert_event(events, record, time.time_ns(), by="cleanup")

    def _end_leases(self, journal: Journal) -> None:
        """End the reapers of reverted faults; a fault still in place keeps its reaper, which
        tries again at the deadline (the engine may be back by then)."""
        outstanding = {o.record.fault_id for o in journal.outstanding()}
        for fault_id, lease in list(self._leases.items()):
            if fault_id in outstanding:
                self._warn(f"{fault_id} is still in place: its reaper stays (pid {lease.pid})")
                continue
            end_lease(self._leases.pop(fault_id))

    def _engine_step(self, what: str, step: Callable[[], object]) -> None:
        if not self._engine_lost:
            self._attempt(what, step)
            return
        done = threading.Event()

        def bounded() -> None:
            try:
                self._attempt(what, step)
            finally:
                done.set()

        threading.Thread(target=bounded, name=f"cleanup-{what}", daemon=True).start()
        if not done.wait(CLEANUP_WITHOUT_ENGINE_S):
            self._warn(
                f"{what} did not finish within {CLEANUP_WITHOUT_ENGINE_S:g} s (the engine does "
                "not answer): left to `harness cleanup`"
            )

    def _attempt(self, what: str, step: Callable[[], object]) -> None:
        try:
            step()
        except Exception as exc:  # cleanup must go on; the failure is recorded
            self._warn(f"{what} failed: {exc}")

    def _warn(self, message: str) -> None:
        self.progress.notes.append(message)
        print(f"warning: {message}", file=sys.stderr)

    # --- manifest and progress -----------------------------------------------------------

    def _load_address(self, target: Target) -> tuple[str, str]:
        """Where the load goes (Locust's --host) and its path in one sentence: the user's
        `load.host` (a cluster whose service address only its members reach), else the
        target's service address."""
        user_host = self.scenario.load.host
        if user_host is None:
            return target.service_url(), target.load_path(self.scenario.load.routing)
        return user_host, (
            f"service: every request to {user_host} (load.host: an Ingress, a LoadBalancer or "
            "a NodePort the user gave); the harness does not see past it, so how it spreads "
            "over the replicas and routes around a failure is part of what is measured"
        )

    def _load_plan(self, endpoints: list[tuple[str, str]], host: str | None) -> LoadPlan:
        load = self.scenario.load
        locustfile = None if load.locustfile == DEMO_LOCUSTFILE else Path(load.locustfile)
        return LoadPlan(
            users=load.users,
            spawn_rate=load.spawn_rate,
            duration_s=load.duration,
            endpoints=endpoints,
            record_dir=self.dir.load_dir,
            workers=0 if load.placement == "pods" else load.workers,
            external_workers=(load.master.expect_workers if load.master else 0)
            + (load.workers if load.placement == "pods" else 0),
            master_bind=self._master_bind(),
            master_port=load.master.port if load.master else 0,
            workers_wait_s=load.master.wait if load.master else WORKER_CONNECT_WAIT_S,
            places=(
                lab_worker_places(load.workers, self.scenario.target.kind)
                if load.placement == "nodes"
                else ()
            ),
            locustfile=locustfile,
            paths=[LoadPath(p.path, p.name, p.weight) for p in load.paths],
            wait_s=load.wait,
            timeout_s=load.timeout,
            seed=self.seed,
            host=host,
            rate_per_s=load.rate,
            connections=load.connections,
            attribution_header=load.attribution_header_for(self.scenario.workload.image),
        )

    def _master_bind(self) -> str:
        """Where the master listens: the scenario's; for node workers the lab bridge's host
        address; else loopback."""
        load = self.scenario.load
        if load.master is not None:
            return load.master.host
        if load.placement == "pods":
            return kube_lab_master_bind()
        if load.placement == "nodes":
            return lab_master_bind(self.scenario.target.kind)
        return "127.0.0.1"

    def _planned_manifest(self) -> Manifest:
        """The manifest before the run starts: what the scenario asked for."""
        load = self.scenario.load
        analysis = self.scenario.analysis
        pid = os.getpid()
        return Manifest(
            run_id=self.run_id,
            scenario=self.scenario.name,
            target=self.scenario.target.kind,
            seed=self.seed,
            labels=dict(self.options.labels),
            status=RUNNING,
            pid=pid,
            pid_start_ticks=process_start_ticks(pid),
            host=socket.gethostname(),
            platform=platform.platform(),
            argv=list(sys.argv),
            load=LoadBlock(
                users=load.users,
                spawn_rate=load.spawn_rate,
                duration_s=load.duration,
                workers=load.workers,
                placement=load.placement,
                master=load.master.bind if load.master else None,
                external_workers=load.master.expect_workers if load.master else 0,
                locustfile=load.locustfile,
                mode="open" if load.open_loop else "closed",
                rate_per_s=load.rate,
                timeout_s=load.timeout,
                routing=load.routing,
                # the bundled locustfile's policy; a locustfile of the user's has its own
                connections=load.connections
                if load.locustfile == DEMO_LOCUSTFILE
                else "the locustfile's own",
                connection_policy=connection_policy(load.connections)
                if load.locustfile == DEMO_LOCUSTFILE
                else None,
                attribution_header=load.attribution_header_for(self.scenario.workload.image),
            ),
            analysis=AnalysisBlock(
                stable_for_s=analysis.stable_for,
                detection_horizon_s=analysis.detection_horizon,
                warmup_s=analysis.warmup_s(load),
                baseline_max_error_rate=analysis.baseline_max_error_rate,
                confidence=analysis.confidence,
                window_s=analysis.window,
            ),
            slo=SloBlock.model_validate(self.scenario.slo.model_dump(mode="json")),
        )

    def _start_manifest(self) -> None:
        self._manifest.started_at_ns = time.time_ns()
        self._write_manifest()

    def _finish_manifest(self, status: str, error: str | None) -> None:
        if self._gate.ignored:
            self._manifest.signals_during_cleanup = list(self._gate.ignored)
        self._manifest.status, self._manifest.error = status, error
        self._manifest.ended_at_ns = time.time_ns()
        self._write_manifest()

    def _write_manifest(self) -> None:
        write_json(self.dir.manifest, self._manifest.model_dump(mode="json"))

    def _tick(self, elapsed: float, occurrences: Sequence[Occurrence]) -> None:
        active = [o.fault_id for o in occurrences if o.fault_id in self._records]
        if active:
            phase = "fault " + ", ".join(active)
        elif occurrences and elapsed < occurrences[0].at_s:
            phase = "baseline"
        elif occurrences:
            phase = "after fault" if elapsed >= max(o.at_s for o in occurrences) else "between"
        else:
            phase = "load"
        progress = self._running_load().poll_progress()
        self.progress.phase = phase
        self.progress.elapsed_s = elapsed
        self.progress.requests = progress.requests
        self.progress.failures = progress.failures
        workers = self._running_load().progress_by_worker()
        self.progress.workers = {k: (v.requests, v.failures) for k, v in workers.items()}
        self._on_progress(self.progress)

    def _report(self, phase: str) -> None:
        self.progress.phase = phase
        self._on_progress(self.progress)


def _engine_identity(target: Target) -> str | None:
    """The engine's process ("<pid>:<start ticks>"), where the target can tell (a restart
    changes it); None where it cannot."""
    try:
        return target.engine_identity()
    except Exception:  # an engine that cannot say is not told apart
        return None


def _subscribe(target: Target, since_ns: int, timeout_s: float = 30.0) -> Any:
    """target.events(since_ns), asked on a thread of its own: an engine that does not answer
    the subscription within `timeout_s` is lost (a stream's first answer has no timeout of its
    own in the Docker SDK)."""
    result: list[Any] = []
    failure: list[BaseException] = []

    def subscribe() -> None:
        try:
            result.append(target.events(since_ns))
        except BaseException as exc:  # handed to the caller
            failure.append(exc)

    thread = threading.Thread(target=subscribe, name="engine-subscribe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if failure:
        raise failure[0]
    if not result:
        raise EngineLost(
            f"the engine did not answer the subscription to its events within {timeout_s:g} s"
        )
    return result[0]


def _clock(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 1e9, UTC).strftime("%H:%M:%S.%f")[:-3] + " UTC"


def action_instant(clock: ActionClock, before_ns: int) -> int:
    """The instant the fault marked as its action, else the instant before its apply/revert."""
    return before_ns if clock.first_ns is None else clock.first_ns


def check_scenario_path(path: Path) -> None:
    if not path.exists():
        raise ScenarioError([f"{path}: no such scenario file"])
