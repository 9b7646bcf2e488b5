"""stress-ng processes that live inside a target's cgroups, and how to stop them safely.

Joining before forking: a process moved into a cgroup after it forked leaves behind the
children it already has, and stress-ng forks its workers at once. So a shell joins first and
then becomes stress-ng: `sh -c 'echo $$ > <cgroup>/cgroup.procs; ...; exec stress-ng ...'`.
Every worker is then born inside the target's cgroups: its CPU quota and memory limit apply,
and the engine's stats (and OOM events) count it as the container's own load.

Stopping only what is ours: the process is started in its own session, so it leads a process
group that holds every worker. Its PID and start time (field 22 of /proc/<pid>/stat) go to a
pid file that the revert record names, and the leader carries a marker in its environment
(the workers retitle themselves and lose theirs). A stop signals the group only when the
leader's start time or marker still match, so a recycled PID is never signalled.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shlex
import shutil
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from faults.base import FaultContext, JsonValue, Mechanism, RevertRecord
from harness import cgroups, hostsys
from harness.errors import FaultError
from harness.hostsys import cgroup_dir
from harness.targets.base import Instance
from harness.waiting import wait_until

MARKER_ENV = "CHAOS_HARNESS_STRESS"
STRESS_NG = "stress-ng"
START_TIMEOUT_S = 3.0
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class StressSpec:
    """One stress-ng process for one instance, fully described before it starts."""

    instance: str
    marker: str  # "<run_id>/<fault_id>/<instance>", in the leader's environment
    cgroups: tuple[str, ...]  # the cgroup directories it joins before exec
    args: tuple[str, ...]  # stress-ng's arguments
    pidfile: str
    log: str

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "instance": self.instance,
            "marker": self.marker,
            "cgroups": list(self.cgroups),
            "args": list(self.args),
            "pidfile": self.pidfile,
            "log": self.log,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, JsonValue]) -> StressSpec:
        return cls(
            instance=str(raw["instance"]),
            marker=str(raw["marker"]),
            cgroups=tuple(str(c) for c in raw.get("cgroups", ())),
            args=tuple(str(a) for a in raw.get("args", ())),
            pidfile=str(raw["pidfile"]),
            log=str(raw["log"]),
        )


# --- the faults' side: one stress-ng per instance, described in the revert record -------------

MECHANISM = "stress-ng in the target's cgroup"


def stress_record(
    ctx: FaultContext,
    fault_id: str,
    kind: str,
    instances: Sequence[Instance],
    args_for: Callable[[Instance], Sequence[str]],
) -> RevertRecord:
    """The record of a stress fault: one spec per instance, with its cgroups and pid file."""
    specs = []
    for instance in instances:
        if not instance.running:
            raise FaultError(f"cannot stress {instance.name}: it is not running")
        stem = ctx.run_dir / "stress" / f"{fault_id}-{instance.name}"
        specs.append(
            StressSpec(
                instance=instance.name,
                marker=f"{ctx.run_id}/{fault_id}/{instance.name}",
                cgroups=target_cgroups(instance.pid),
                args=tuple(args_for(instance)),
                pidfile=str(stem.with_suffix(".pid")),
                log=str(stem.with_suffix(".log")),
            ).to_json()
        )
    return RevertRecord(
        fault_id=fault_id,
        kind=kind,
        targets=tuple(i.name for i in instances),
        mechanism=MECHANISM,
        data={"processes": specs},
    )


def record_specs(record: RevertRecord) -> list[StressSpec]:
    return [StressSpec.from_json(raw) for raw in record.data.get("processes", [])]


def start_all(record: RevertRecord) -> None:
    for spec in record_specs(record):
        start(spec)


def stop_all(record: RevertRecord) -> None:
    """Stop every process of the record; every one is tried even when one fails."""
    failures = []
    for spec in record_specs(record):
        try:
            stop(spec)
        except FaultError as exc:
            failures.append(str(exc))
    if failures:
        raise FaultError("; ".join(failures))


# --- what this machine offers ------------------------------------------------------------------


def stress_mechanism(controller: str) -> Mechanism:
    """'stress-ng in the target's cgroup': available iff stress-ng and `controller` are here."""
    name = MECHANISM
    if shutil.which(STRESS_NG) is None:
        return Mechanism(name, False, "stress-ng is not installed: apt-get install -y stress-ng")
    layout = cgroups.layout()
    hierarchy = layout.holding(controller)
    if hierarchy is None:
        return Mechanism(
            name, False, f"no cgroup hierarchy holds {controller} ({layout.describe()})"
        )
    if not os.access(hierarchy.mount_point, os.R_OK | os.W_OK):
        return Mechanism(name, False, f"{hierarchy.mount_point} is not writable (needs root)")
    where = f"{controller} on cgroup v{hierarchy.version} at {hierarchy.mount_point}"
    return Mechanism(name, True, f"{layout.describe()}, {where}")


# --- the target's cgroups ----------------------------------------------------------------------


def target_cgroups(pid: int) -> tuple[str, ...]:
    """Every cgroup directory of `pid`, in every hierarchy mounted here (v1 controllers, named
    ones, cgroup2 in a hybrid layout too): a joining process must be where the target is in
    each, or a limit held by the one it missed (hybrid here: hugetlb on cgroup2) misses it."""
    layout = cgroups.layout()
    dirs = [d for d in cgroups.directories(layout, cgroups.memberships(pid)) if _joinable(d)]
    if not dirs:
        raise FaultError(f"PID {pid} is in no cgroup the harness can join ({layout.describe()})")
    return tuple(str(d) for d in dirs)


def _joinable(directory: Path) -> bool:
    return (directory / "cgroup.procs").exists()


def memory_limit(pid: int) -> int | None:
    """The memory limit of `pid`'s cgroup in bytes, or None when it has none."""
    directory, version = _memory_cgroup(pid)
    path = directory / ("memory.max" if version == 2 else "memory.limit_in_bytes")
    try:
        raw = path.read_text().strip()
    except OSError as exc:
        raise FaultError(f"cannot read the memory limit at {path}: {exc.strerror}") from exc
    if raw == "max":
        return None
    limit = int(raw)
    # v1 writes "no limit" as the largest page-aligned long; anything past 2^62 is unlimited.
    return None if limit >= 2**62 else limit


def memory_usage(pid: int) -> int:
    """The bytes charged to `pid`'s memory cgroup now (page cache included)."""
    return hostsys.memory_usage(pid)


def _memory_cgroup(pid: int) -> tuple[Path, int]:
    """The directory of `pid`'s memory cgroup and the version of the hierarchy holding it."""
    hierarchy = cgroups.layout().holding("memory")
    return cgroup_dir(pid, "memory"), hierarchy.version if hierarchy else 1


# --- starting ----------------------------------------------------------------------------------


def join_script(cgroups: Sequence[str]) -> str:
    """The shell that joins every cgroup, then becomes the command given as its arguments."""
    joins = "; ".join(f"echo $$ > {shlex.quote(str(Path(d) / 'cgroup.procs'))}" for d in cgroups)
    return f'set -e; cd /; {joins}; exec "$@"'


def start(spec: StressSpec) -> int:
    """Start stress-ng inside the spec's cgroups; its PID once it runs there (FaultError if not).

    posix_spawn, not Popen: the process must outlive this call and is stopped by PID from the
    record, so there is no Popen object to keep; `stop` collects its exit status.
    """
    binary = shutil.which(STRESS_NG)
    if binary is None:
        raise FaultError("stress-ng is not installed: apt-get install -y stress-ng")
    Path(spec.pidfile).parent.mkdir(parents=True, exist_ok=True)
    try:
        pid = os.posix_spawnp(
            "sh",
            ["sh", "-c", join_script(spec.cgroups), "sh", binary, *spec.args],
            {**os.environ, MARKER_ENV: spec.marker},
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, spec.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,  # its own process group: one signal stops every worker
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),  # Python ignores these; stress-ng not
        )
    except OSError as exc:
        raise FaultError(f"cannot start stress-ng for {spec.instance}: {exc}") from exc
    # The pid file goes down first: a failed start below is then still found and stopped.
    _write_pidfile(spec, pid)
    _wait_until_exec(spec, pid, binary)
    return pid


def _write_pidfile(spec: StressSpec, pid: int) -> None:
    started = start_ticks(pid)
    tmp = Path(spec.pidfile).with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": pid, "start_ticks": started}))
    tmp.replace(spec.pidfile)


def _wait_until_exec(spec: StressSpec, pid: int, binary: str) -> None:
    """Wait until the shell has joined the cgroups and become stress-ng."""

    def became_stress_ng() -> bool:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            raise FaultError(
                f"stress-ng for {spec.instance} exited at once"
                f" (exit {os.waitstatus_to_exitcode(status)}): {_tail(spec.log)}"
            )
        return _runs_binary(pid, binary)

    wait_until(
        became_stress_ng,
        START_TIMEOUT_S,
        interval_s=0.01,
        failure=f"stress-ng for {spec.instance} did not start in {START_TIMEOUT_S:g} s",
        error=FaultError,
    )


def _tail(path: str, lines: int = 3) -> str:
    try:
        return " | ".join(Path(path).read_text().strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- stopping ----------------------------------------------------------------------------------


def stop(spec: StressSpec) -> list[int]:
    """Kill the spec's process group if it is still ours; the PIDs that were found. Idempotent."""
    binary = shutil.which(STRESS_NG)
    groups = _our_groups(spec)
    found = sorted(pid for pid in _processes() if _belongs(pid, groups, spec.marker, binary))
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    for pid in found:  # stragglers outside the group (none expected), by marker
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    _reap(groups)
    _wait_gone(found)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(spec.pidfile)
    return found


def _our_groups(spec: StressSpec) -> set[int]:
    """Process groups led (or once led) by this spec's stress-ng, proven by start time or marker."""
    groups = set()
    recorded = _read_pidfile(spec.pidfile)
    if recorded is not None:
        pid, ticks = recorded
        now = start_ticks(pid)
        # A live PID with another start time is a recycled one: not ours. A gone leader may
        # leave workers in its group; its PID cannot be reused while that group exists.
        if now is None or now == ticks:
            groups.add(pid)
    for pid in _processes():
        if _has_marker(pid, spec.marker):
            groups.add(_pgrp(pid) or pid)
    return groups


def _belongs(pid: int, groups: set[int], marker: str, binary: str | None) -> bool:
    if _has_marker(pid, marker):
        return True
    return _pgrp(pid) in groups and binary is not None and _runs_binary(pid, binary)


def _reap(groups: set[int]) -> None:
    """Collect the exit status of a leader that is this process's child (no zombie left)."""
    for pid in groups:
        wait_until(functools.partial(_collected, pid), STOP_TIMEOUT_S, interval_s=0.01)


def _collected(pid: int) -> bool:
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # not our child, or already collected
    return done != 0


def _wait_gone(pids: Sequence[int]) -> None:
    wait_until(
        lambda: not any(_alive(p) for p in pids),
        STOP_TIMEOUT_S,
        interval_s=0.02,
        failure=lambda: f"stress-ng processes {[p for p in pids if _alive(p)]} survived SIGKILL",
        error=FaultError,
    )


def leftovers(marker_prefix: str) -> list[int]:
    """Live stress processes whose leader's marker starts with `marker_prefix` (e.g. a run id),
    with every member of their process groups."""
    binary = shutil.which(STRESS_NG)
    groups = {_pgrp(p) or p for p in _processes() if _marker_startswith(p, marker_prefix)}
    return sorted(
        p
        for p in _processes()
        if _marker_startswith(p, marker_prefix)
        or (_pgrp(p) in groups and binary is not None and _runs_binary(p, binary))
    )


def stress_in_cgroup(cgroup: str) -> list[int]:
    """The host's stress-ng processes inside `cgroup` (for checks that nothing is left)."""
    binary = shutil.which(STRESS_NG)
    try:
        pids = [int(p) for p in (Path(cgroup) / "cgroup.procs").read_text().split()]
    except OSError:
        return []  # the cgroup is gone, and everything in it
    return [p for p in pids if binary is not None and _runs_binary(p, binary)]


# --- /proc -------------------------------------------------------------------------------------


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat.rpartition(")")[2].split()
    return int(fields[19])  # field 22 of the whole line


def _pgrp(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[2])  # field 5 of the whole line


def _processes() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def _has_marker(pid: int, marker: str) -> bool:
    return _environ_value(pid) == marker


def _marker_startswith(pid: int, prefix: str) -> bool:
    value = _environ_value(pid)
    return value is not None and value.startswith(prefix)


def _environ_value(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    key = MARKER_ENV.encode() + b"="
    for item in raw.split(b"\0"):
        if item.startswith(key):
            return item[len(key) :].decode(errors="replace")
    return None


def _runs_binary(pid: int, binary: str) -> bool:
    """True when `pid` runs the host's own `binary` (same file, not a namesake in an image)."""
    try:
        return os.path.samefile(f"/proc/{pid}/exe", binary)
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _read_pidfile(path: str) -> tuple[int, int | None] | None:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    ticks = raw.get("start_ticks")
    return int(raw["pid"]), (int(ticks) if ticks is not None else None)
