"""Trials: one scenario run N times on its target, each on a fresh deployment.

Trials are a matrix of one scenario on one target (harness.matrix plans, checks and runs
them, with their ledger trials.json); what is theirs is the summing up: aggregate.json
(harness.analysis.aggregate) and the trials report (harness.analysis.trials_report).

Seeds: trial i runs with seed base + i - 1, base being --seed, else the scenario's seed, else a
random one: reproducible, yet each trial draws its own random choices (which replica a
`count: 1` selection hits, Locust's arrival jitter), so the trials sample what varies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.analysis.aggregate import TrialsAggregate, load_trials, write_aggregate
from harness.campaign import AfterRun, CampaignOutcome, Cell, ProgressCallback
from harness.matrix import Plan, plan_cells, run_plan
from harness.scenario import ScenarioBase


@dataclass(frozen=True)
class TrialsResult:
    root: Path
    aggregate: TrialsAggregate
    outcome: CampaignOutcome
    report: Path | None

    @property
    def signum(self) -> int | None:
        return self.outcome.signum


def trials_plan(
    scenario: ScenarioBase,
    scenario_file: str,
    repeat: int,
    seed: int | None = None,
    labels: Mapping[str, str] | None = None,
) -> Plan:
    """The matrix of `scenario` on its own target, `repeat` times."""
    target = scenario.target.kind
    return Plan("trials", [(scenario_file, scenario)], [target], repeat, seed, labels or {})


def plan_trials(
    scenario: ScenarioBase,
    scenario_file: str,
    repeat: int,
    root: Path,
    seed: int | None,
    labels: Mapping[str, str],
) -> list[Cell]:
    """One cell per trial, in order, each with its own seed (module docstring)."""
    return plan_cells(trials_plan(scenario, scenario_file, repeat, seed, labels), root)


def run_trials(
    scenario: ScenarioBase,
    scenario_file: str,
    repeat: int,
    out_dir: Path,
    seed: int | None = None,
    labels: Mapping[str, str] | None = None,
    on_progress: ProgressCallback | None = None,
    after_run: AfterRun | None = None,
) -> TrialsResult:
    """Run the trials, then write aggregate.json and report.html beside them."""
    from harness.analysis.trials_report import write_trials_report

    plan = trials_plan(scenario, scenario_file, repeat, seed, labels)
    root, outcome = run_plan(plan, out_dir, on_progress, after_run)
    aggregate = load_trials(root)
    write_aggregate(aggregate)
    report = write_trials_report(aggregate)
    return TrialsResult(root, aggregate, outcome, report)
