"""The run's own metrics on /metrics (prometheus-client), while the run lasts.

Fed by what the run already writes, read a second time by a thread every POLL_S: Locust's
request logs (load/requests-*.tsv, the lines appended since the last read) and the events
(events.jsonl: fault_inject, fault_revert). Nothing in the load or the faults calls it.

- `chaos_requests_total`, `chaos_request_failures_total` {endpoint, phase}: requests completed;
- `chaos_request_latency_seconds` {endpoint, phase}: a histogram of their latencies;
- `chaos_fault_active` {fault_id, kind}: 1 from a fault's injection to its revert (a one-off
  fault, which has no revert: for `one_off_s` after it, the detection horizon), then removed;
- `chaos_run_phase` {phase}: 1 for the runner's current step (deploying, baseline, fault f1,
  after fault, cleaning up...), the others removed; `chaos_run_info` {run_id, scenario}.

A request's `phase` is the live one, by its start: `baseline` before the first injection,
`fault` while a fault is active, `after` otherwise. A fault's event is written once its action
is done (its `apply_s` after the instant it records), so a request is counted HOLD_S after it
was read: by then the events that place it are in (the counters lag that much, plus a poll,
behind a request's completion). The
analysis' phases (with `recovery`, found from the evidence) are known only after the run;
these are what a dashboard can show while it runs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from harness.errors import PrometheusError

POLL_S: Final = 0.5
HOLD_S: Final = 3.0
LINGER_S: Final = 2.0  # two scrapes at `harness prometheus up`'s 1 s interval
REQUEST_GLOB: Final = "requests-*.tsv"
LATENCY_BUCKETS_S: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5)


@dataclass
class _Tail:
    """The complete lines appended to a file since the last read."""

    path: Path
    offset: int = 0

    def lines(self) -> list[bytes]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        return chunk[:end].splitlines()


@dataclass
class _Faults:
    """Fault intervals seen in the events so far: id -> (kind, start_ns, end_ns or None)."""

    one_off_ns: int
    spans: dict[str, tuple[str, int, int | None]] = field(default_factory=dict)

    def phase_at(self, at_ns: int) -> str:
        if not self.spans or at_ns < min(s for _, s, _ in self.spans.values()):
            return "baseline"
        for _, start, end in self.spans.values():
            if start <= at_ns and (end is None or at_ns < end):
                return "fault"
        return "after"


class MetricsExporter:
    """Serves /metrics on host:port for one run; `start()`, then `stop()` (idempotent)."""

    def __init__(
        self,
        host: str,
        port: int,
        run_dir: Path,
        identity: tuple[str, str],
        phase: Callable[[], str],
        one_off_s: float = 5.0,
    ) -> None:
        self.host, self.port = host, port
        self._load_dir, self._phase = run_dir / "load", phase
        self._events = _Tail(run_dir / "events.jsonl")
        self._tails: dict[Path, _Tail] = {}
        self._held: list[tuple[float, bytes]] = []  # (read at, monotonic; the request's line)
        self._faults = _Faults(int(one_off_s * 1e9))
        self._registry = CollectorRegistry()
        self._define(identity)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-exporter", daemon=True)
        self._server: WSGIServer | None = None
        self._shown_phase: str | None = None
        self._shown_faults: set[tuple[str, str]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def _define(self, identity: tuple[str, str]) -> None:
        labels = ("endpoint", "phase")
        reg = self._registry
        self.requests = Counter("chaos_requests", "Requests completed", labels, registry=reg)
        self.failures = Counter("chaos_request_failures", "Requests failed", labels, registry=reg)
        self.latency = Histogram(
            "chaos_request_latency_seconds",
            "Latency of completed requests",
            labels,
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.fault = Gauge("chaos_fault_active", "1 while a fault is active", ("fault_id", "kind"))
        reg.register(self.fault)
        self.run_phase = Gauge("chaos_run_phase", "1 for the run's current step", ("phase",))
        reg.register(self.run_phase)
        info = Gauge("chaos_run_info", "The run", ("run_id", "scenario"), registry=reg)
        info.labels(*identity).set(1)

    def start(self) -> MetricsExporter:
        """Bind the port (PrometheusError when it is taken) and start reading."""
        try:
            server, _thread = start_http_server(self.port, self.host, registry=self._registry)
        except OSError as exc:
            raise PrometheusError(
                f"cannot serve the run's metrics on {self.host}:{self.port} ({exc.strerror}): "
                "free the port or choose another observe.metrics.port"
            ) from exc
        self._server = server
        self._thread.start()
        return self

    def stop(self, linger_s: float = LINGER_S) -> None:
        """A last read, served for `linger_s` more (the scrapes that fetch the last counts),
        then the server closes."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.poll(flush=True)
        time.sleep(linger_s)
        server = self._server
        if server is not None:
            server.shutdown()
            server.server_close()

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            self.poll()

    def poll(self, flush: bool = False) -> None:
        """Read what was appended since the last poll; count the requests read HOLD_S ago
        (every one when `flush`: the run's events are all written)."""
        now = time.monotonic()
        for path in sorted(self._load_dir.glob(REQUEST_GLOB)):
            tail = self._tails.setdefault(path, _Tail(path))
            self._held += [(now, line) for line in tail.lines()]
        self._read_events()
        self._show_faults()
        ready = len(self._held) if flush else sum(at <= now - HOLD_S for at, _ in self._held)
        for _, line in self._held[:ready]:
            self._count(line)
        del self._held[:ready]
        self._show_phase()

    def _read_events(self) -> None:
        for line in self._events.lines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            action, attrs = event.get("action"), event.get("attributes") or {}
            fault_id, at_ns = attrs.get("fault_id"), event.get("time_ns")
            if not isinstance(fault_id, str) or not isinstance(at_ns, int):
                continue
            if action == "fault_inject":
                end = None if attrs.get("has_duration") else at_ns + self._faults.one_off_ns
                self._faults.spans[fault_id] = (str(attrs.get("kind")), at_ns, end)
            elif action == "fault_revert" and fault_id in self._faults.spans:
                kind, start, _ = self._faults.spans[fault_id]
                self._faults.spans[fault_id] = (kind, start, at_ns)

    def _show_faults(self) -> None:
        now_ns = time.time_ns()
        active = {
            (fid, kind)
            for fid, (kind, _, end) in self._faults.spans.items()
            if end is None or end > now_ns
        }
        for gone in self._shown_faults - active:
            self.fault.remove(*gone)
        for fid, kind in active:
            self.fault.labels(fid, kind).set(1)
        self._shown_faults = active

    def _count(self, line: bytes) -> None:
        # ok, start_ns, latency_ms, name, endpoint, ... (harness.load's request log)
        fields = line.split(b"\t", 5)
        if len(fields) < 5 or line.startswith(b"#"):
            return
        try:
            ok, start_ns, latency_ms = fields[0] == b"1", int(fields[1]), float(fields[2])
        except ValueError:
            return
        labels = (fields[4].decode(errors="replace"), self._faults.phase_at(start_ns))
        self.requests.labels(*labels).inc()
        failures = self.failures.labels(*labels)  # a series from the first request: 0, not absent
        if not ok:
            failures.inc()
        self.latency.labels(*labels).observe(latency_ms / 1000)

    def _show_phase(self) -> None:
        phase = self._phase()
        if phase == self._shown_phase:
            return
        if self._shown_phase is not None:
            self.run_phase.remove(self._shown_phase)
        self.run_phase.labels(phase).set(1)
        self._shown_phase = phase
