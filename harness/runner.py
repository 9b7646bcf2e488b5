"""One run, end to end: deploy, observe, load, inject and revert faults, tear down, analyse.

Everything the run starts is stopped in `finally`: outstanding faults are reverted from the
undo log, Locust processes are stopped by their PIDs, and every labelled object is removed,
on success, on error, on Ctrl-C and on SIGTERM.

When a fault happened: each injection and each revert gets a fresh `ActionClock`; the fault
marks the instant of its action (the signal sent, the rule inserted) after its preparation, and
that instant is the event's time (t0), falling back to the instant before `apply` / `revert`
for a fault that never marks. The events carry measured durations: `apply_s` (how long the
fault's own work took) on `fault_inject`, `active_s` (revert action - injection action) on
`fault_revert`.
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
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any

from faults.base import ActionClock, Fault, FaultContext, RevertRecord
from harness import __version__
from harness.errors import HarnessError, ScenarioError
from harness.journal import Journal, revert_outstanding
from harness.lease import Lease, end_lease, start_lease
from harness.load import (
    LoadPath,
    LoadPlan,
    LoadRun,
    collect_requests,
    locust_version,
    write_requests_parquet,
)
from harness.observe import EventRecorder, Prober
from harness.preflight import preflight
from harness.results import EventLog, RunDir, write_json, write_pid_file
from harness.scenario import DEMO_LOCUSTFILE, ScenarioBase, resolved_yaml
from harness.selection import select_instances
from harness.targets import make_target
from harness.targets.base import Target
from harness.timeline import Action, Occurrence, actions

HEALTH_TIMEOUT_S = 90.0


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; the run stops and cleans up (exit code 128 + signal)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass(frozen=True)
class RunOptions:
    out_dir: Path = Path("results")
    seed: int | None = None
    health_timeout_s: float = HEALTH_TIMEOUT_S
    labels: Mapping[str, str] = field(default_factory=dict)  # e.g. variant=before, for compare


@dataclass
class Progress:
    """What the progress display shows; the runner updates it, the CLI renders it."""

    phase: str = "starting"
    elapsed_s: float = 0.0
    total_s: float = 0.0
    requests: int = 0
    failures: int = 0
    notes: list[str] = field(default_factory=list)


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    status: str  # completed | interrupted | error
    error: str | None
    signum: int | None = None


def make_run_id(name: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{name}-{stamp}-{secrets.token_hex(2)}"


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into Interrupted, so every `finally` runs."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


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
        self._manifest: dict[str, Any] = {}
        self._leases: dict[str, Lease] = {}
        self._records: dict[str, RevertRecord] = {}
        self._injected_ns: dict[str, int] = {}

    # --- the run -------------------------------------------------------------------------

    def run(self) -> RunOutcome:
        planned = preflight(self.scenario)
        self.dir.create()
        self.dir.scenario.write_text(resolved_yaml(self.scenario))
        target = make_target(self.run_id, self.scenario.target)
        events = EventLog(self.dir.events)
        journal = Journal(self.dir.journal)
        try:
            self._start_manifest(target)
        except BaseException:
            # a target can hold something from its construction on (a Podman API service)
            self._attempt("teardown", target.teardown)
            events.close()
            raise
        status, error, signum = "completed", None, None
        with signals_raise():
            try:
                self._run_with(target, events, journal, planned)
            except Interrupted as exc:
                status, error, signum = "interrupted", f"interrupted by {exc}", exc.signum
            except HarnessError as exc:
                status, error = "error", str(exc)
            finally:
                self._cleanup(target, events, journal)
        events.close()
        self._finish_manifest(status, error)
        return RunOutcome(self.dir.path, status, error, signum)

    def _run_with(
        self,
        target: Target,
        events: EventLog,
        journal: Journal,
        planned: Sequence[tuple[Occurrence, Fault]],
    ) -> None:
        self._report("deploying")
        self._recorder = EventRecorder(target.events(time.time_ns()), events).start()
        events.harness(time.time_ns(), "run_start", run_id=self.run_id)
        target.deploy(self.scenario.workload)
        instances = target.wait_healthy(self.options.health_timeout_s)
        # a target may only know its engine once deployed (a lab brought up for the run)
        self._manifest["versions"].update({k: str(v) for k, v in target.engine_info().items()})
        write_json(self.dir.manifest, self._manifest)
        events.harness(time.time_ns(), "deployed", instances=[i.name for i in instances])
        probes = self.scenario.probes
        if probes.enabled:
            self._prober = Prober(instances, probes.path, probes.interval, probes.timeout).start()
        host = target.service_url()  # Locust's --host: the workload as a whole
        self._manifest["load"]["host"] = host
        self._load = LoadRun(self._load_plan([(i.name, i.url) for i in instances], host))
        self._load.start()
        write_pid_file(self.dir.load_pids, self._load.pids)
        load_start_ns = time.time_ns()
        events.harness(load_start_ns, "load_start")
        self._manifest["load"]["started_at_ns"] = load_start_ns
        self._manifest["load"]["endpoints"] = [i.name for i in instances]
        context = FaultContext(target, self.run_id, self.dir.path, random.Random(self.seed))
        faults = {o.fault_id: fault for o, fault in planned}
        self._follow_timeline(context, events, journal, faults, [o for o, _ in planned])
        self._load.wait(timeout=self.scenario.load.duration + 30)
        self._load.check()
        events.harness(time.time_ns(), "load_stop")

    def _follow_timeline(
        self,
        ctx: FaultContext,
        events: EventLog,
        journal: Journal,
        faults: dict[str, Fault],
        occurrences: Sequence[Occurrence],
    ) -> None:
        started = time.monotonic()
        pending = actions(occurrences)
        end_s = self.scenario.load.duration
        while True:
            elapsed = time.monotonic() - started
            while pending and pending[0].at_s <= elapsed:
                self._act(ctx, events, journal, faults, pending.pop(0))
            self._tick(elapsed, occurrences)
            if elapsed >= end_s or not self._load.running():
                return
            next_at = min(pending[0].at_s if pending else end_s, end_s)
            time.sleep(max(0.0, min(0.25, next_at - (time.monotonic() - started))))

    def _act(
        self,
        ctx: FaultContext,
        events: EventLog,
        journal: Journal,
        faults: dict[str, Fault],
        action: Action,
    ) -> None:
        occurrence = action.occurrence
        fault = faults[occurrence.fault_id]
        if action.verb == "inject":
            self._inject(ctx, events, journal, fault, occurrence)
        elif occurrence.fault_id in self._records:
            self._revert(ctx, events, journal, fault, self._records.pop(occurrence.fault_id))

    def _inject(
        self, ctx: FaultContext, events: EventLog, journal: Journal, fault: Fault, o: Occurrence
    ) -> None:
        chosen = select_instances(ctx.target.instances(), o.entry.select, self.run_id, ctx.rng)
        record = fault.plan(ctx, o.fault_id, chosen)
        deadline = None
        if o.revert_at_s is not None:
            deadline = time.time_ns() + int((o.revert_at_s - o.at_s) * 1e9)
        journal.planned(record, deadline)
        self._records[o.fault_id] = record
        if deadline is not None:
            self._leases[o.fault_id] = start_lease(self.dir.path, o.fault_id, deadline)
        own = replace(ctx, clock=ActionClock())
        before_ns = time.time_ns()
        fault.apply(own, record)
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
            mechanism=record.mechanism,
            restart_policy_applies=fault.restart_policy(ctx.target),
            heals_during_fault=fault.heals_during_fault(ctx.target),
            has_duration=fault.has_duration,
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
        fault: Fault,
        record: RevertRecord,
    ) -> None:
        own = replace(ctx, clock=ActionClock())
        before_ns = time.time_ns()
        fault.revert(own, record)
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

    def _cleanup(self, target: Target, events: EventLog, journal: Journal) -> None:
        """Undo and stop everything; each step runs even if an earlier one failed."""
        ctx = FaultContext(target, self.run_id, self.dir.path, random.Random(self.seed))
        for record, failure in revert_outstanding(journal, ctx):
            if failure is not None:
                self._warn(f"revert of {record.fault_id} failed: {failure}")
                continue
            self._revert_event(events, record, time.time_ns(), by="cleanup")
        for lease in self._leases.values():
            end_lease(lease)
        load = getattr(self, "_load", None)
        if load is not None:
            self._attempt("stop load", load.stop)
            self._manifest["load"]["ended_at_ns"] = time.time_ns()
        prober = getattr(self, "_prober", None)
        if prober is not None:
            self._attempt("stop probes", prober.stop)
        recorder = getattr(self, "_recorder", None)
        if recorder is not None:
            self._attempt("stop event recorder", recorder.stop)
        self._report("tearing down")
        self._attempt("teardown", target.teardown)
        self._attempt("write data", self._write_data)

    def _attempt(self, what: str, step: Callable[[], object]) -> None:
        try:
            step()
        except Exception as exc:  # cleanup must go on; the failure is recorded
            self._warn(f"{what} failed: {exc}")

    def _warn(self, message: str) -> None:
        self.progress.notes.append(message)
        print(f"warning: {message}", file=sys.stderr)

    def _write_data(self) -> None:
        write_requests_parquet(collect_requests(self.dir.load_dir), self.dir.requests)
        prober = getattr(self, "_prober", None)
        if prober is not None:
            prober.write(self.dir.probes)
        else:
            Prober([], "/", 1.0, 1.0).write(self.dir.probes)

    # --- manifest and progress -----------------------------------------------------------

    def _load_plan(self, endpoints: list[tuple[str, str]], host: str | None) -> LoadPlan:
        load = self.scenario.load
        locustfile = None if load.locustfile == DEMO_LOCUSTFILE else Path(load.locustfile)
        return LoadPlan(
            users=load.users,
            spawn_rate=load.spawn_rate,
            duration_s=load.duration,
            endpoints=endpoints,
            record_dir=self.dir.load_dir,
            workers=load.workers,
            locustfile=locustfile,
            paths=[LoadPath(p.path, p.name, p.weight) for p in load.paths],
            wait_s=load.wait,
            timeout_s=load.timeout,
            seed=self.seed,
            host=host,
            rate_per_s=load.rate,
        )

    def _start_manifest(self, target: Target) -> None:
        load = self.scenario.load
        analysis = self.scenario.analysis
        self._manifest = {
            "run_id": self.run_id,
            "scenario": self.scenario.name,
            "target": target.kind,
            "seed": self.seed,
            "labels": dict(self.options.labels),
            "status": "running",
            "error": None,
            "started_at_ns": time.time_ns(),
            "ended_at_ns": None,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "platform": platform.platform(),
            "argv": sys.argv,
            "versions": _versions(target),
            "load": {
                "users": load.users,
                "spawn_rate": load.spawn_rate,
                "duration_s": load.duration,
                "workers": load.workers,
                "locustfile": load.locustfile,
                "mode": "open" if load.open_loop else "closed",
                "rate_per_s": load.rate,
                "timeout_s": load.timeout,
                # the bundled locustfile names each request's replica; another locustfile
                # goes through the service address, so its requests' replica is unknown
                "routing": "per_instance" if load.locustfile == DEMO_LOCUSTFILE else "service",
                "host": None,
                "endpoints": [],
                "load_balancing": target.load_balancing(),
                "started_at_ns": None,
                "ended_at_ns": None,
            },
            "analysis": {
                "stable_for_s": analysis.stable_for,
                "detection_horizon_s": analysis.detection_horizon,
                "warmup_s": analysis.warmup_s(load),
                "baseline_max_error_rate": analysis.baseline_max_error_rate,
                "confidence": analysis.confidence,
            },
            "slo": self.scenario.slo.model_dump(mode="json"),
        }
        write_json(self.dir.manifest, self._manifest)

    def _finish_manifest(self, status: str, error: str | None) -> None:
        self._manifest.update(status=status, error=error, ended_at_ns=time.time_ns())
        write_json(self.dir.manifest, self._manifest)

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
        progress = self._load.poll_progress()
        self.progress.phase = phase
        self.progress.elapsed_s = elapsed
        self.progress.requests = progress.requests
        self.progress.failures = progress.failures
        self._on_progress(self.progress)

    def _report(self, phase: str) -> None:
        self.progress.phase = phase
        self._on_progress(self.progress)


def action_instant(clock: ActionClock, before_ns: int) -> int:
    """The instant the fault marked as its action, else the instant before its apply/revert."""
    return before_ns if clock.first_ns is None else clock.first_ns


def check_scenario_path(path: Path) -> None:
    if not path.exists():
        raise ScenarioError([f"{path}: no such scenario file"])
