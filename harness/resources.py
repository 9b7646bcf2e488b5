"""The CPU and memory of the workload's instances during a run, from the kernel's accounting.

A thread reads each instance's cgroup files (harness.hostsys.UsageFiles: what cAdvisor and
`docker stats` read) every interval and appends one line per instance to resources.tsv as it
goes, so the samples survive a harness that is killed; `stop` turns the log into
resources.parquet (time_ns, instance, cpu_seconds cumulative, memory_bytes). Every instance of
one round shares its time_ns, so rounds sum across instances.

Instances change PID on restart and may be replaced: the files found for an instance are kept
until a read fails; then `wants_instances` turns true (at most every `refresh_s`) and the
runner, on its own thread (the engine's clients are not shared across threads), lists the
instances and hands them to `update`. A read that fails is a gap, never a zero. A target
whose instances have no host PID (a remote engine) gives no sample: the parquet file is then
empty and the summary says nothing was sampled.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Final

import pandas as pd

from harness.errors import HarnessError
from harness.hostsys import UsageFiles, usage_files
from harness.targets.base import Instance

RESOURCES_LOG: Final = "resources.tsv"
RESOURCES_FILE: Final = "resources.parquet"
HEADER: Final = "time_ns\tinstance\tcpu_seconds\tmemory_bytes\n"
COLUMNS: Final = {
    "time_ns": "int64",
    "instance": "string",
    "cpu_seconds": "float64",
    "memory_bytes": "int64",
}
DEFAULT_INTERVAL_S: Final = 1.0
REFRESH_S: Final = 5.0


class ResourceSampler:
    """Samples the instances' cgroups every `interval_s` into `run_dir`/resources.tsv."""

    def __init__(
        self,
        instances: Sequence[Instance],
        run_dir: Path,
        interval_s: float = DEFAULT_INTERVAL_S,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self._files: dict[str, UsageFiles | None] = {}
        self._lock = threading.Lock()  # the log is closed by `stop` while a round may write
        self._remember(instances)
        self._on_host = any(files is not None for files in self._files.values())
        self._refresh_s = refresh_s
        self._refreshed_at = time.monotonic()
        self._stale = False
        self._interval_s = interval_s
        self._log_path = run_dir / RESOURCES_LOG
        self._out = run_dir / RESOURCES_FILE
        self._log: IO[str] = self._log_path.open("a", buffering=1, encoding="utf-8")
        if self._log.tell() == 0:
            self._log.write(HEADER)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resources", daemon=True)

    @property
    def on_host(self) -> bool:
        """Some instance's cgroup files were found at the start (not a remote engine)."""
        return self._on_host

    def start(self) -> ResourceSampler:
        """Start sampling; nothing when no instance is on this host (the file stays empty)."""
        if self._on_host:
            self._thread.start()
        return self

    def stop(self) -> None:
        """End the sampling and write resources.parquet from the log."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval_s + 30)
        with self._lock:
            self._log.close()
        write_resources_parquet(read_resources_log(self._log_path), self._out)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.sample_once()
            next_at += self._interval_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - self._interval_s)

    def sample_once(self) -> None:
        """One round: a line per instance whose files could be read."""
        now_ns = time.time_ns()
        with self._lock:
            files = dict(self._files)
        for name, found in files.items():
            try:
                if found is None:
                    raise OSError("no cgroup files")
                cpu, memory = found.cpu_seconds(), found.memory_bytes()
            except (OSError, ValueError, KeyError):
                self._stale = True
                continue
            with self._lock:
                if not self._log.closed:
                    self._log.write(f"{now_ns}\t{name}\t{cpu:.9f}\t{memory}\n")

    @property
    def wants_instances(self) -> bool:
        """A read failed and the instances were not asked for in the last `refresh_s`."""
        return self._stale and time.monotonic() - self._refreshed_at >= self._refresh_s

    def update(self, instances: Sequence[Instance]) -> None:
        """The instances as they are now (new PIDs, replacements): their files from now on."""
        self._refreshed_at, self._stale = time.monotonic(), False
        self._remember(instances)

    def _remember(self, instances: Sequence[Instance]) -> None:
        found = {instance.name: _files_of(instance) for instance in instances}
        with self._lock:
            self._files.update(found)


def _files_of(instance: Instance) -> UsageFiles | None:
    """The instance's accounting files; None off this host (no PID) or when it is gone."""
    if instance.pid <= 0:
        return None
    try:
        return usage_files(instance.pid)
    except (HarnessError, OSError):
        return None


def read_resources_log(path: Path) -> pd.DataFrame:
    """The samples of a resources.tsv (a torn last line is dropped); empty when absent."""
    rows: list[tuple[int, str, float, int]] = []
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text(encoding="utf-8").splitlines()[1:]:
            parts = line.split("\t")
            if len(parts) != 4:
                continue
            with contextlib.suppress(ValueError):
                rows.append((int(parts[0]), parts[1], float(parts[2]), int(parts[3])))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.astype(COLUMNS)


def write_resources_parquet(frame: pd.DataFrame, out: Path) -> Path:
    """Write the samples atomically (a temporary file, then a rename)."""
    tmp = out.with_suffix(".parquet.tmp")
    frame.astype(COLUMNS).to_parquet(tmp, index=False)
    tmp.replace(out)
    return out
