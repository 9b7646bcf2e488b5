"""`harness cleanup`: undo what dead or interrupted runs left behind; safe to run twice.

A run whose harness process is still alive is left alone, so cleanup cannot pull the rug
from under a run in progress.

Everything follows the run's own engine: a dead run's target is rebuilt from the run
directory's `scenario.yaml` (kind, engine, lab: the resolved target the run used), attached
to (never deployed), and its outstanding faults reverted through it. Then every engine that
runs may have used is swept through its target's `remove_orphans` hook: the host's Docker
engine (the Docker and Swarm targets), Podman's store (through a short-lived API service; the
services dead Podman runs left running are stopped), and any other engine a dead run named.
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
from harness.errors import HarnessError
from harness.hostsys import kill_recorded
from harness.journal import Journal, revert_outstanding
from harness.results import RunDir, read_pid_file
from harness.scenario import LAB_FIELDS, TARGET_FIELDS, TargetSpec
from harness.targets import target_class
from harness.targets.base import Target

HOST_ENGINE = TargetSpec(kind="swarm")  # the host's Docker engine, Swarm's objects included


def _manifest(run: RunDir) -> dict[str, object]:
    try:
        data = json.loads(run.manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_is_active(run: RunDir) -> bool:
    manifest = _manifest(run)
    return manifest.get("status") == "running" and _alive(manifest.get("pid"))


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
        kept = {k: v for k, v in raw.items() if k in TARGET_FIELDS[kind] and v is not None}
        if isinstance(kept.get("lab"), dict):
            lab_fields = LAB_FIELDS.get(kind, frozenset())
            kept["lab"] = {
                k: v for k, v in kept["lab"].items() if k in lab_fields and v is not None
            }
        return TargetSpec.model_validate({**kept, "kind": kind})
    except (OSError, yaml.YAMLError, AttributeError, KeyError, ValidationError):
        return TargetSpec.model_validate({"kind": str(_manifest(run).get("target", "docker"))})


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


def engines_to_sweep(dead: Iterable[TargetSpec]) -> list[TargetSpec]:
    """The host's Docker engine (as Swarm: services, then Docker's objects), Podman's store,
    and every other engine a dead run named; each once."""
    specs = [HOST_ENGINE, TargetSpec(kind="podman")]
    seen = {_engine_key(s) for s in specs}
    for spec in dead:
        if spec.kind == "docker" and spec.engine is None:
            continue  # the host's engine: swept as Swarm above
        key = _engine_key(spec)
        if key not in seen:
            seen.add(key)
            specs.append(TargetSpec.model_validate(spec.model_dump(exclude_unset=True)))
    return specs


def _engine_key(spec: TargetSpec) -> tuple[str, str | None, str | None, str | None]:
    return (spec.kind, spec.engine, spec.kubeconfig, spec.context)


def _describe(spec: TargetSpec) -> str:
    where = spec.engine or spec.kubeconfig or "default engine"
    return f"{spec.kind} ({where})"


def cleanup_all(results: Path) -> Iterator[str]:
    """Revert outstanding faults of dead runs, then remove their labelled objects."""
    active: set[str] = set()
    dead: list[TargetSpec] = []
    runs = sorted(p for p in results.iterdir() if p.is_dir()) if results.is_dir() else []
    for path in runs:
        run = RunDir(path)
        if run_is_active(run):
            active.add(run.run_id)
            yield f"{run.run_id}: still running, left alone"
            continue
        yield from revert_dead_run(run)
        yield from stop_dead_run_processes(run)
        dead.append(run_target_spec(run))
    for spec in engines_to_sweep(dead):
        try:
            yield from target_class(spec.kind).remove_orphans(spec, active)
        except (HarnessError, ImportError) as exc:
            if spec == HOST_ENGINE:
                raise  # the host's engine must answer (make setup starts it)
            yield f"cannot clean up {_describe(spec)}: {exc}"
    yield "cleanup done"
