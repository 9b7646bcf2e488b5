"""What `harness run` prints about each fault: a censored recovery is a lower bound, never
"NOT recovered"; a replica's own requests are named only when the view is that replica's.
And the exit codes of a run, a trials set and a matrix, as the README's table gives them."""

from __future__ import annotations

import signal
from pathlib import Path

from harness.campaign import CampaignOutcome, Cell, CellResult
from harness.matrix import plan_matrix
from harness.results.summary import Summary
from harness.scenario import parse_scenario
from harness.verdict import matrix_exit_code, run_exit_code, trials_exit_code, verdict_lines

BASE = {"id": "f1", "kind": "container_kill", "targets": ["web-1"], "impact": "visible"}


def _summary(**fields: object) -> Summary:
    return Summary.model_validate({"run_id": "r", **fields})


def _first(fault: dict[str, object]) -> str:
    return verdict_lines(_summary(faults=[fault], status="passed"))[0]


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
    lines = verdict_lines(_summary(warnings=[gap], status="passed"))
    assert f"warning: {gap}" in lines


# -- exit codes (the README's table) ---------------------------------------------------------


def test_a_runs_exit_code_follows_its_verdict() -> None:
    assert run_exit_code("completed", None, _summary(status="passed")) == 0
    assert run_exit_code("completed", None, _summary(status="slo_violated")) == 1
    broken = _summary(status="baseline_broken")  # no experiment
    assert run_exit_code("completed", None, broken) == 1
    assert run_exit_code("completed", None, None) == 3  # it ran, but could not be analysed
    assert run_exit_code("failed", None, _summary(status="passed")) == 3
    assert run_exit_code("aborted", signal.SIGINT, None) == 130
    assert run_exit_code("aborted", signal.SIGTERM, _summary(status="passed")) == 143


def test_a_trials_sets_exit_code_follows_its_aggregate() -> None:
    assert [trials_exit_code(s, None) for s in ("passed", "slo_violated", "failed")] == [0, 1, 3]
    assert trials_exit_code("aborted", signal.SIGINT) == 130


def test_a_matrix_is_no_gate_but_a_run_that_failed_to_run_is_an_error(tmp_path: Path) -> None:
    scenario = parse_scenario("name: s\n")
    first, second = plan_matrix([("s.yaml", scenario)], ["docker"], 2, tmp_path)

    def outcome(*ends: tuple[Cell, str, str | None], signum: int | None = None) -> int:
        results = tuple(CellResult(c, o, None, None, s, 1.0) for c, o, s in ends)
        return matrix_exit_code(CampaignOutcome(results, signum is not None, signum))

    assert outcome((first, "completed", "slo_violated"), (second, "completed", "passed")) == 0
    assert outcome((first, "completed", "passed"), (second, "failed", None)) == 3
    interrupted = outcome((first, "completed", "passed"), (second, "not_run", None), signum=15)
    assert interrupted == 143
