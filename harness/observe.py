"""Observers that run through the whole run: the engine's events and an HTTP prober."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd

from harness.results import EventLog
from harness.targets.base import EventStream, Instance


class EventRecorder:
    """Copies the engine's event stream into events.jsonl on a background thread."""

    def __init__(self, stream: EventStream, log: EventLog) -> None:
        self._stream = stream
        self._log = log
        self._thread = threading.Thread(target=self._run, name="engine-events", daemon=True)

    def start(self) -> EventRecorder:
        self._thread.start()
        return self

    def _run(self) -> None:
        for event in self._stream:
            self._log.engine(event)

    def stop(self, grace_s: float = 1.0) -> None:
        time.sleep(grace_s)  # let the engine deliver events of the last instants
        self._stream.close()
        self._thread.join(timeout=5)


@dataclass(frozen=True)
class ProbeResult:
    start_ns: int
    latency_ms: float
    ok: bool
    instance: str
    error: str | None


def probe_once(url: str, timeout_s: float) -> tuple[bool, str | None]:
    """One GET on a fresh connection: (ok, error kind)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)
    try:
        connection.request("GET", parts.path or "/")
        status = connection.getresponse().status
        return (200 <= status < 400), (None if status < 400 else f"HTTP {status}")
    except TimeoutError:
        return False, "timeout"
    except OSError as exc:
        return False, type(exc).__name__
    except http.client.HTTPException as exc:
        return False, type(exc).__name__
    finally:
        connection.close()


class Prober:
    """Probes every instance at a fixed interval, independent of the load, one thread each."""

    def __init__(
        self, instances: Sequence[Instance], path: str, interval_s: float, timeout_s: float
    ):
        self._targets = [(i.name, f"{i.url}{path}") for i in instances]
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._stop = threading.Event()
        self._results: list[ProbeResult] = []
        self._lock = threading.Lock()
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
            with self._lock:
                self._results.append(ProbeResult(start_ns, latency_ms, ok, name, error))
            next_at += self._interval_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - self._interval_s)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self._timeout_s + 1)

    def frame(self) -> pd.DataFrame:
        with self._lock:
            rows = list(self._results)
        return pd.DataFrame(
            {
                "start_ns": pd.Series([r.start_ns for r in rows], dtype="int64"),
                "latency_ms": pd.Series([r.latency_ms for r in rows], dtype="float64"),
                "ok": pd.Series([r.ok for r in rows], dtype="bool"),
                "instance": pd.Series([r.instance for r in rows], dtype="string"),
                "error": pd.Series([r.error for r in rows], dtype="string"),
            }
        ).sort_values("start_ns", ignore_index=True)

    def write(self, path: Path) -> None:
        self.frame().to_parquet(path, index=False)
