"""`harness cleanup`: undo what dead or interrupted runs left behind; safe to run twice.

A run whose harness process is still alive (its PID and that PID's start time) is left alone,
so cleanup cannot pull the rug from under a run in progress.

Everything follows the run's own engine: a dead run's target is rebuilt from the run
directory's `scenario.yaml` (kind, engine, lab: the resolved target the run used), attached
to (never deployed), and its outstanding faults reverted through it. Then every engine that
runs may have used is swept through its target's `remove_orphans` hook: the host's Docker
engine (the Docker and Swarm targets), Podman's store (through a short-lived API service; the
services dead Podman runs left running are stopped), the labs that are up (the Swarm lab's
manager and every node's own engine; the Kubernetes lab's API server), and any other engine a
dead run named. Last, the labs themselves: one whose builder died half-way (`harness lab up`
killed), or one built for a run whose harness is gone and that no live run uses, is taken down.

A dead run's directory is finished as its harness would have: a log line torn by the kill is
cut off, `requests.parquet` and `probes.parquet` are built from the logs the run appended as it
went, and the manifest says `aborted`, with the harness's last sign of life and the phase it
was in (the signal is unknown: a SIGKILL or a crash gives no word), so `harness report` can
still build a report from it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml
from pydantic import ValidationError

from faults.base import FaultContext
from harness import hostnet
from harness.agent.start import remove_orphan_agents
from harness.errors import HarnessError
from harness.hostsys import kill_recorded, process_start_ticks
from harness.journal import Journal, revert_outstanding
from harness.observe import write_observations
from harness.prometheus.server import stale_state as prometheus_stale_state
from harness.results import (
    ABORTED,
    RUNNING,
    RunDir,
    read_json_lines,
    read_pid_file,
    repair_torn_tail,
    write_json,
)
from harness.specs import TargetSpec
from harness.targets import target_class, target_kind, target_spec
from harness.targets.base import Target


def host_engine() -> TargetSpec:
    """The host's Docker engine, as Swarm: Swarm's objects included."""
    return target_spec("swarm")


def _manifest(run: RunDir) -> dict[str, object]:
    try:
        data = json.loads(run.manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: object, start_ticks: object = None) -> bool:
    """Whether `pid` is a live process other than this one (the same one, when its start
    time was recorded: a recycled PID is not the run's harness)."""
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    if isinstance(start_ticks, int):
        return process_start_ticks(pid) == start_ticks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_is_active(run: RunDir) -> bool:
    manifest = _manifest(run)
    alive = _alive(manifest.get("pid"), manifest.get("pid_start_ticks"))
    return manifest.get("status") == RUNNING and alive


def run_target_spec(run: RunDir) -> TargetSpec:
    """The target the run used, from its resolved scenario.yaml (else the manifest's kind).

    The resolved file holds every field with its default (a Docker run's unused `swarm`
    settings too): only the fields of the run's kind are kept, and unset ones dropped."""
    try:
        scenario = yaml.safe_load(run.scenario.read_text()) or {}
        raw = scenario.get("target") or {}
        if isinstance(raw, str):
            raw = {"kind": raw}
        kind = str(raw.get("kind", "docker"))
        model = target_kind(kind).spec
        kept = {k: v for k, v in raw.items() if k in model.model_fields and v is not None}
        if isinstance(kept.get("lab"), dict):
            kept["lab"] = {
                k: v for k, v in kept["lab"].items() if k in model.lab_fields and v is not None
            }
        return model.model_validate({**kept, "kind": kind})
    except (OSError, yaml.YAMLError, AttributeError, KeyError, ValidationError, HarnessError):
        return target_spec(str(_manifest(run).get("target", "docker")))


@contextlib.contextmanager
def attached_target(run: RunDir) -> Iterator[Target]:
    """The run's target, attached to its engine for as long as the block runs."""
    spec = run_target_spec(run)
    target = target_class(spec.kind).attach(run.run_id, spec)
    try:
        yield target
    finally:
        target.release()


def revert_dead_run(run: RunDir) -> Iterator[str]:
    """Revert every fault of `run` that its undo log says is still in place."""
    journal = Journal(run.journal)
    if not journal.outstanding():
        return
    try:
        with attached_target(run) as target:
            ctx = FaultContext(target, run.run_id, run.path, random.Random(0))
            for record, failure in revert_outstanding(journal, ctx):
                outcome = f"revert failed: {failure}" if failure else "reverted"
                yield f"{run.run_id}: {record.fault_id} ({record.kind}) {outcome}"
    except HarnessError as exc:
        yield f"{run.run_id}: cannot reach its target to revert its faults: {exc}"


def stop_dead_run_processes(run: RunDir) -> Iterator[str]:
    """Stop the load processes a dead run started, if they are still the same processes."""
    for pid, start in read_pid_file(run.load_pids):
        if kill_recorded(pid, start, signal.SIGTERM):
            yield f"{run.run_id}: stopped load process {pid}"


# --- the dead run's directory -------------------------------------------------------------


def finish_dead_run(run: RunDir) -> Iterator[str]:
    """Finish the directory of a run whose harness died while it said `running`: cut torn log
    lines, build the data files from the logs, mark the manifest `aborted`."""
    manifest = _manifest(run)
    if manifest.get("status") != RUNNING:
        return
    for log in (run.events, run.journal):
        if repair_torn_tail(log):
            yield f"{run.run_id}: cut a line of {log.name} torn by the kill"
    try:
        write_observations(run)
    except (HarnessError, OSError, ValueError) as exc:
        yield f"{run.run_id}: cannot build its data files: {exc}"
    last_ns = last_sign_of_life_ns(run)
    phase = phase_at_death(run)
    pid = manifest.get("pid")
    manifest.update(
        status=ABORTED,
        error=(
            f"the harness (pid {pid}) died during {phase} without a word (SIGKILL, a crash or "
            "a power loss); found dead by `harness cleanup`, which reverted and removed what "
            "the run left"
        ),
        ended_at_ns=last_ns,
        abort={
            "signal": None,
            "at_ns": last_ns,
            "at_is": "the harness's last sign of life (its last probe, event or manifest write)",
            "phase": phase,
            "by": "harness cleanup",
        },
    )
    write_json(run.manifest, manifest)
    yield f"{run.run_id}: marked aborted (the harness died during {phase})"


def last_sign_of_life_ns(run: RunDir) -> int | None:
    """The last instant the run's harness was seen at work: its probe log and manifest are
    written by the harness alone (the lease reapers write events and the undo log)."""
    instants = []
    for path in (run.probes_log, run.manifest):
        with contextlib.suppress(OSError):
            instants.append(path.stat().st_mtime_ns)
    own = [
        int(e["time_ns"])
        for e in read_json_lines(run.events)
        if e.get("source") == "harness"
        and isinstance(e.get("time_ns"), int)
        and (e.get("attributes") or {}).get("by") != "lease"
    ]
    return max([*instants, *own], default=None)


def phase_at_death(run: RunDir) -> str:
    """The phase the harness was in, from the last of its own events."""
    phase = "starting"
    active: list[str] = []
    for event in read_json_lines(run.events):
        if event.get("source") != "harness":
            continue
        action, attributes = event.get("action"), event.get("attributes") or {}
        fault_id = str(attributes.get("fault_id", ""))
        if attributes.get("by") == "lease":
            continue
        if action == "run_start":
            phase = "deploying"
        elif action == "deployed":
            phase = "starting the load"
        elif action == "load_start":
            phase = "the load"
        elif action == "fault_inject" and attributes.get("has_duration"):
            active.append(fault_id)
        elif action == "fault_revert" and fault_id in active:
            active.remove(fault_id)
        elif action == "load_stop":
            phase = "the end of the run"
    return f"fault {', '.join(active)}" if active and phase == "the load" else phase


# --- engines and labs ---------------------------------------------------------------------


def engines_to_sweep(dead: Iterable[TargetSpec]) -> list[TargetSpec]:
    """The host's Docker engine (as Swarm: services, then Docker's objects), Podman's store,
    the labs that are up, and every other engine a dead run named; each once."""
    specs = [host_engine(), target_spec("podman"), *labs_up()]
    seen = {_engine_key(s) for s in specs}
    for spec in dead:
        if spec.kind == "docker" and spec.where() == "default engine":
            continue  # the host's engine: swept as Swarm above
        key = _engine_key(spec)
        if key not in seen:
            seen.add(key)
            specs.append(spec.model_validate(spec.model_dump(exclude_unset=True)))
    return specs


def labs_up() -> list[TargetSpec]:
    """A target spec per lab whose state says it is up (a lab kind says how to reach it)."""
    from harness.labs import lab_kinds

    found = []
    for kind in lab_kinds().values():
        with contextlib.suppress(HarnessError):
            spec = kind.lab_commands().target_if_up()
            if spec is not None:
                found.append(spec)
    return found


def _engine_key(spec: TargetSpec) -> tuple[str, str]:
    return (spec.kind, spec.where())


def _describe(spec: TargetSpec) -> str:
    return f"{spec.kind} ({spec.where()})"


def take_down_orphaned_labs() -> Iterator[str]:
    """Labs whose builder died half-way, or built for a run whose harness is gone and that
    no live run uses: taken down from their state files."""
    from harness.labs import lab_kinds

    for name, kind in lab_kinds().items():
        with contextlib.suppress(HarnessError):
            removed = kind.lab_commands().take_down_if_orphaned()
            if removed is not None:
                yield f"took down the {name} lab its dead builder left ({len(removed)} removed)"


# --- all of it ------------------------------------------------------------------------------


def cleanup_all(results: Path) -> Iterator[str]:
    """Revert outstanding faults of dead runs, finish their directories, remove their
    labelled objects on every engine and lab, then take down orphaned labs."""
    active: set[str] = set()
    dead: list[TargetSpec] = []
    dead_ids: set[str] = set()
    runs = sorted(p for p in results.iterdir() if p.is_dir()) if results.is_dir() else []
    for path in runs:
        run = RunDir(path)
        if run_is_active(run):
            active.add(run.run_id)
            yield f"{run.run_id}: still running, left alone"
            continue
        yield from revert_dead_run(run)
        yield from stop_dead_run_processes(run)
        yield from finish_dead_run(run)
        dead.append(run_target_spec(run))
        dead_ids.add(run.run_id)
    # the host's nat chains of dead runs, whichever target made them, engine or not
    yield from hostnet.remove_orphaned_chains(active, dead_ids)
    for spec in engines_to_sweep(dead):
        try:
            # the agents first, gracefully: each reverts what it holds before it goes
            yield from remove_orphan_agents(spec, active)
            yield from target_class(spec.kind).remove_orphans(spec, active)
        except (HarnessError, ImportError) as exc:
            if spec == host_engine():
                raise  # the host's engine must answer (make setup starts it)
            yield f"cannot clean up {_describe(spec)}: {exc}"
    yield from take_down_orphaned_labs()
    yield from prometheus_stale_state()  # a running one is `harness prometheus down`'s
    yield "cleanup done"
