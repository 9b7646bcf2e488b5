"""The run's /metrics, fed by files as a run writes them (request logs, events.jsonl), read
over HTTP as Prometheus reads it: counts per endpoint and live phase, a fault's gauge from its
injection to its revert, a one-off fault's for its horizon, the run's step."""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from harness.load import free_port
from harness.prometheus.exporter import HOLD_S, POLL_S, MetricsExporter


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(url, timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _event(path: Path, action: str, at_ns: int, **attributes: object) -> None:
    record = {"time_ns": at_ns, "source": "harness", "action": action, "attributes": attributes}
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def _request(path: Path, ok: bool, start_ns: int, endpoint: str, latency_ms: float) -> None:
    with path.open("a") as handle:
        handle.write(f"{int(ok)}\t{start_ns}\t{latency_ms}\t/\t{endpoint}\t\t\n")


def test_the_exporter_serves_what_the_run_wrote(tmp_path: Path) -> None:
    (tmp_path / "load").mkdir()
    log, events = tmp_path / "load" / "requests-0.tsv", tmp_path / "events.jsonl"
    log.write_text("#chaos-harness-requests v2 worker=0\n")
    phase = ["baseline"]
    exporter = MetricsExporter(
        "127.0.0.1", free_port(), tmp_path, ("run-1", "s"), lambda: phase[0], one_off_s=3.0
    ).start()
    try:
        t0 = time.time_ns()
        _request(log, True, t0 - 2_000_000_000, "web-1", 5.0)  # before any fault
        _event(events, "fault_inject", t0, fault_id="f1", kind="container_stop", has_duration=True)
        phase[0] = "fault f1"
        _request(log, False, t0 + 1000, "web-1", 2000.0)  # during f1
        _request(log, True, t0 + 2000, "web-2", 50.0)
        time.sleep(POLL_S * 3)
        seen = _samples(exporter.url)
        gauge = ("chaos_fault_active", (("fault_id", "f1"), ("kind", "container_stop")))
        assert seen[gauge] == 1
        assert seen[("chaos_run_phase", (("phase", "fault f1"),))] == 1
        assert ("chaos_run_phase", (("phase", "baseline"),)) not in seen
        # requests wait HOLD_S before they are counted: none yet
        assert not [k for k in seen if k[0] == "chaos_requests_total"]

        time.sleep(HOLD_S)
        seen = _samples(exporter.url)
        assert seen[("chaos_requests_total", (("endpoint", "web-1"), ("phase", "baseline")))] == 1
        assert seen[("chaos_requests_total", (("endpoint", "web-1"), ("phase", "fault")))] == 1
        failed = ("chaos_request_failures_total", (("endpoint", "web-1"), ("phase", "fault")))
        assert seen[failed] == 1
        ok = ("chaos_request_failures_total", (("endpoint", "web-1"), ("phase", "baseline")))
        assert seen[ok] == 0  # a series from the first request, not absent
        slow = ("chaos_request_latency_seconds_bucket", (("endpoint", "web-1"), ("le", "1.0"),
                ("phase", "fault")))  # fmt: skip
        assert seen[slow] == 0  # the 2 s request is above the 1 s bucket
        assert seen[("chaos_run_info", (("run_id", "run-1"), ("scenario", "s")))] == 1

        reverted = time.time_ns()
        _event(events, "fault_revert", reverted, fault_id="f1", kind="container_stop")
        _event(events, "fault_inject", reverted, fault_id="f2", kind="container_kill")
        phase[0] = "after fault"
        _request(log, True, reverted + 5000, "web-1", 3.0)
        time.sleep(POLL_S * 3)
        seen = _samples(exporter.url)
        assert gauge not in seen  # removed at the revert
        one_off = ("chaos_fault_active", (("fault_id", "f2"), ("kind", "container_kill")))
        assert seen[one_off] == 1
        time.sleep(3.0 - POLL_S * 3 + POLL_S * 2)
        assert one_off not in _samples(exporter.url)  # after its horizon (one_off_s)
    finally:
        exporter.stop(linger_s=0)
    # stop counted what was still held, then closed the port
    try:
        requests.get(exporter.url, timeout=1)
        answered = True
    except requests.ConnectionError:
        answered = False
    assert not answered
