"""`harness cleanup`: undo what dead or interrupted runs left behind; safe to run twice.

A run whose harness process is still alive is left alone, so cleanup cannot pull the rug
from under a run in progress.
"""

from __future__ import annotations

import json
import os
import random
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors

from faults.base import FaultContext
from harness.errors import HarnessError
from harness.hostsys import kill_recorded
from harness.journal import Journal, revert_outstanding
from harness.results import RunDir, read_pid_file
from harness.scenario import TargetSpec
from harness.targets import make_target
from harness.targets.base import OWNER_LABEL, RUN_LABEL, owner_alive
from harness.targets.docker import connect, remove_labelled
from harness.targets.swarm import leave_orphaned_swarm, remove_swarm_leftovers


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


def revert_dead_run(run: RunDir) -> Iterator[str]:
    """Revert every fault of `run` that its undo log says is still in place."""
    journal = Journal(run.journal)
    if not journal.outstanding():
        return
    manifest = _manifest(run)
    kind = str(manifest.get("target", "docker"))
    target = make_target(run.run_id, TargetSpec.model_validate({"kind": kind}))
    ctx = FaultContext(target, run.run_id, run.path, random.Random(0))
    for record, failure in revert_outstanding(journal, ctx):
        outcome = f"revert failed: {failure}" if failure else "reverted"
        yield f"{run.run_id}: {record.fault_id} ({record.kind}) {outcome}"


def stop_dead_run_processes(run: RunDir) -> Iterator[str]:
    """Stop the load processes a dead run started, if they are still the same processes."""
    for pid, start in read_pid_file(run.load_pids):
        if kill_recorded(pid, start, signal.SIGTERM):
            yield f"{run.run_id}: stopped load process {pid}"


def cleanup_all(results: Path) -> Iterator[str]:
    """Revert outstanding faults of dead runs, then remove their labelled objects."""
    active: set[str] = set()
    runs = sorted(p for p in results.iterdir() if p.is_dir()) if results.is_dir() else []
    for path in runs:
        run = RunDir(path)
        if run_is_active(run):
            active.add(run.run_id)
            yield f"{run.run_id}: still running, left alone"
            continue
        yield from revert_dead_run(run)
        yield from stop_dead_run_processes(run)
    client = connect(None)
    for run_id in sorted(_orphaned_run_ids(client) - active):
        for removed in [*remove_swarm_leftovers(client, run_id), *remove_labelled(client, run_id)]:
            yield f"{run_id}: removed {removed}"
    yield from leave_orphaned_swarm(client)
    yield "cleanup done"


def _services(client: docker.DockerClient) -> list[Any]:
    """The labelled Swarm services (none when the engine is not a swarm manager)."""
    try:
        return list(client.services.list(filters={"label": RUN_LABEL}))
    except docker.errors.APIError:
        return []


def _orphaned_run_ids(client: docker.DockerClient) -> set[str]:
    """Run ids of labelled objects whose owning harness process is gone."""
    live: set[str] = set()
    seen: set[str] = set()
    try:
        objects = [
            *client.containers.list(all=True, filters={"label": RUN_LABEL}),
            *client.networks.list(filters={"label": RUN_LABEL}),
            *client.volumes.list(filters={"label": RUN_LABEL}),
        ]
    except docker.errors.APIError as exc:
        raise HarnessError(f"cannot list labelled objects: {exc}") from exc
    objects += _services(client)
    for obj in objects:
        attrs = obj.attrs
        labels = (
            attrs.get("Labels")
            or attrs.get("Config", {}).get("Labels")
            or attrs.get("Spec", {}).get("Labels")
            or {}
        )
        run_id = labels.get(RUN_LABEL)
        if run_id:
            seen.add(run_id)
            if owner_alive(labels.get(OWNER_LABEL)):
                live.add(run_id)
    return seen - live
