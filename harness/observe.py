"""Observers that run through the whole run: the engine's events, the engine's liveness and
an HTTP prober.

Nothing here may hang the run when the engine stops answering: the event stream is read on a
thread of its own (a stream that ends before the run closed it means the engine restarted or
went away: `EventRecorder.ended_ns`), and `EngineWatch` asks the engine for a sign of life
every few seconds on another thread, so the runner learns of a silent engine from a timestamp
instead of blocking on it.

Probes are appended to a log as they complete (`probes.tsv` in the run directory, its format
in harness.results.probes), so a run whose harness was killed keeps them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import pandas as pd

from harness.http_probe import probe_once
from harness.load import collect_requests, write_requests_parquet
from harness.results import EventLog, RunDir
from harness.results.probes import (
    PROBE_LOG_HEADER,
    ProbeResult,
    probe_frame,
    probe_line,
    read_probe_log,
    write_probes_parquet,
)
from harness.targets.base import EventStream, Instance


class EventRecorder:
    """Copies the engine's event stream into events.jsonl on a background thread.

    `ended_ns` is set when the stream ended before `stop()` closed it: the engine closed it
    (a restart, a stop, or its own reasons: Podman 4.3 ends a stream now and then), which the
    runner then looks into. `resume_ns()` is where a new subscription takes over (just after
    the last event recorded), so nothing is recorded twice and nothing the engine kept is
    lost."""

    def __init__(self, stream: EventStream, log: EventLog, since_ns: int = 0) -> None:
        self._stream = stream
        self._log = log
        self._closing = threading.Event()
        self.ended_ns: int | None = None
        self.last_event_ns: int | None = None
        self.since_ns = since_ns
        self._thread = threading.Thread(target=self._run, name="engine-events", daemon=True)

    def start(self) -> EventRecorder:
        self._thread.start()
        return self

    def resume_ns(self) -> int:
        return self.since_ns if self.last_event_ns is None else self.last_event_ns + 1

    def _run(self) -> None:
        try:
            for event in self._stream:
                self._log.engine(event)
                self.last_event_ns = max(self.last_event_ns or 0, event.time_ns)
        finally:
            if not self._closing.is_set():
                self.ended_ns = time.time_ns()

    def stop(self, grace_s: float = 1.0) -> None:
        if self.ended_ns is None:
            time.sleep(grace_s)  # let the engine deliver events of the last instants
        self._closing.set()
        with contextlib.suppress(Exception):  # a stream whose engine is gone may fail to close
            self._stream.close()
        self._thread.join(timeout=5)


class EngineWatch:
    """Asks the engine for a sign of life every `interval_s` on a thread of its own.

    `silent_since_ns()` is the instant of the first unanswered question after the last answer
    (None while the engine answers); each question is bounded by the check's own timeout, and
    the thread never blocks the caller."""

    def __init__(self, answers: Callable[[], bool], interval_s: float = 2.0) -> None:
        self._answers = answers
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._last_ok_ns = time.time_ns()
        self._asking_since_ns: int | None = None
        self._silent_since_ns: int | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="engine-watch", daemon=True)

    def start(self) -> EngineWatch:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            asked_ns = time.time_ns()
            with self._lock:
                self._asking_since_ns = asked_ns
            try:
                ok = bool(self._answers())
            except Exception:  # any failure to answer is silence
                ok = False
            with self._lock:
                self._asking_since_ns = None
                if ok:
                    self._last_ok_ns, self._silent_since_ns = time.time_ns(), None
                elif self._silent_since_ns is None:
                    self._silent_since_ns = asked_ns
            self._stop.wait(self._interval_s)

    def silent_for_s(self) -> float:
        """Seconds since the engine last answered, when a question since has gone unanswered
        (failed, or still waiting); 0 while it answers."""
        with self._lock:
            since = self._silent_since_ns or self._asking_since_ns
            if since is None or since < self._last_ok_ns:
                return 0.0
            return (time.time_ns() - self._last_ok_ns) / 1e9

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=0.5)  # a question stuck on a silent engine is left behind


class ProbeLog:
    """The probes of a run as they complete: kept in memory, and appended to the probe log
    (one line a write, when there is a log) so a killed harness keeps them. Thread-safe."""

    def __init__(self, log: Path | None) -> None:
        self._results: list[ProbeResult] = []
        self._lock = threading.Lock()
        self._log: IO[str] | None = None
        if log is not None:
            self._log = log.open("a", buffering=1, encoding="utf-8")
            if self._log.tell() == 0:
                self._log.write(PROBE_LOG_HEADER)

    def add(self, results: Sequence[ProbeResult]) -> None:
        with self._lock:
            self._results.extend(results)
            if self._log is not None and not self._log.closed:
                self._log.write("".join(probe_line(r) for r in results))

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()

    def frame(self) -> pd.DataFrame:
        with self._lock:
            rows = list(self._results)
        return probe_frame(rows)


class Prober:
    """Probes every instance at a fixed interval, independent of the load, one thread each.

    With `log`, every result is also appended to that file as it completes (one line a
    write), so the probes survive a harness that is killed."""

    def __init__(
        self,
        instances: Sequence[Instance],
        path: str,
        interval_s: float,
        timeout_s: float,
        log: Path | None = None,
    ):
        self._targets = [(i.name, f"{i.url}{path}") for i in instances]
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._stop = threading.Event()
        self._log = ProbeLog(log)
        self._threads = [
            threading.Thread(target=self._run, args=target, name=f"probe-{target[0]}", daemon=True)
            for target in self._targets
        ]

    def start(self) -> Prober:
        for thread in self._threads:
            thread.start()
        return self

    def _run(self, name: str, url: str) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            start_ns = time.time_ns()
            started = time.perf_counter()
            ok, error = probe_once(url, self._timeout_s)
            latency_ms = (time.perf_counter() - started) * 1000
            self._log.add([ProbeResult(start_ns, latency_ms, ok, name, error)])
            next_at += self._interval_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - self._interval_s)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self._timeout_s + 1)
        self._log.close()

    def frame(self) -> pd.DataFrame:
        return self._log.frame()

    def write(self, path: Path) -> None:
        write_probes_parquet(self.frame(), path)


def write_observations(run: RunDir) -> None:
    """requests.parquet and probes.parquet from the logs the run appended as it went (Locust's
    request logs, the probe log): at the end of a run, or by `harness cleanup` for a run
    whose harness died. Each file is written atomically."""
    write_requests_parquet(collect_requests(run.load_dir), run.requests)
    write_probes_parquet(read_probe_log(run.probes_log), run.probes)
