"""What `harness run` prints about each fault: a censored recovery is a lower bound, never
"NOT recovered"; a replica's own requests are named only when the view is that replica's."""

from __future__ import annotations

from harness.verdict import verdict_lines

BASE = {"id": "f1", "kind": "container_kill", "targets": ["web-1"], "impact": "visible"}


def _first(fault: dict[str, object]) -> str:
    return verdict_lines({"faults": [fault], "status": "passed"})[0]


def test_a_censored_recovery_is_at_least_its_bound() -> None:
    line = _first({**BASE, "ttr_s": None, "censored": True, "ttr_at_least_s": 3.2})
    assert "recovered in at least 3.2 s" in line and "NOT recovered" not in line


def test_an_unrecovered_fault_says_so() -> None:
    assert "NOT recovered" in _first({**BASE, "ttr_s": None, "censored": False})


def test_the_replicas_own_requests_only_on_its_own_view() -> None:
    counts = {"failed_requests": 4, "requests": 9}
    own = {**BASE, "ttr_s": 1.0, "view_counts": counts, "failed_requests": 4}
    assert "its own requests: 4 of 9" in _first({**own, "view": "instance"})
    assert "its own requests" not in _first({**own, "view": "service"})


def test_a_latency_impact_is_named() -> None:
    assert "(latency impact)" in _first({**BASE, "ttr_s": 2.0, "impact_kind": "latency"})


def test_a_warning_is_printed_even_on_a_passed_run() -> None:
    gap = "the orchestrator's view of pods had a gap of 12.0 s"
    lines = verdict_lines({"faults": [], "warnings": [gap], "status": "passed"})
    assert f"warning: {gap}" in lines
