"""Trials: one scenario run N times, each on a fresh deployment, under one parent directory.

    results/<scenario>-trials-<time>-<hex>/
        trials.json      the ledger: what was planned, how each trial ended (rewritten after each)
        <run-id>/        one run directory per trial, with its summary.json and report.html
        aggregate.json   the trials summed up (harness.analysis.aggregate)
        report.html      the trials report (harness.analysis.trials_report)

Seeds: trial i runs with seed base + i - 1, base being --seed, else the scenario's seed, else a
random one: reproducible, yet each trial draws its own random choices (which replica a
`count: 1` selection hits, Locust's arrival jitter), so the trials sample what varies.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness.analysis.aggregate import (
    LEDGER_FILE,
    TrialsAggregate,
    load_trials,
    write_aggregate,
)
from harness.campaign import (
    AfterRun,
    CampaignOutcome,
    Cell,
    CellResult,
    ProgressCallback,
    base_seed,
    run_campaign,
)
from harness.results import write_json
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


def trials_root(out_dir: Path, scenario: ScenarioBase) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return out_dir / f"{scenario.name}-trials-{stamp}-{secrets.token_hex(2)}"


def plan_trials(
    scenario: ScenarioBase,
    scenario_file: str,
    repeat: int,
    root: Path,
    seed: int | None,
    labels: Mapping[str, str],
) -> list[Cell]:
    """One cell per trial, in order, each with its own seed (module docstring)."""
    first = base_seed(seed, scenario)
    return [
        Cell(
            index=i,
            scenario=scenario,
            scenario_file=scenario_file,
            target=scenario.target.kind,
            repetition=i,
            seed=first + i - 1,
            labels={**labels, "trials": root.name, "trial": str(i)},
            out_dir=root,
        )
        for i in range(1, repeat + 1)
    ]


def write_ledger(
    root: Path,
    scenario: ScenarioBase,
    scenario_file: str,
    cells: Sequence[Cell],
    results: Sequence[CellResult],
    interrupted: bool = False,
) -> None:
    """trials.json: the plan and every trial's end so far (atomic: a crash leaves a whole file)."""
    ended = {r.cell.index: r for r in results}
    trials = []
    for cell in cells:
        result = ended.get(cell.index)
        entry: dict[str, object] = {
            "index": cell.index,
            "seed": cell.seed,
            "outcome": "pending",
            "run_dir": None,
        }
        if result is not None:
            entry = {**entry, **result.to_dict(root)}
        trials.append(entry)
    write_json(
        root / LEDGER_FILE,
        {
            "kind": "trials",
            "scenario": scenario.name,
            "scenario_file": scenario_file,
            "target": scenario.target.kind,
            "planned": len(cells),
            "interrupted": interrupted,
            "trials": trials,
        },
    )


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

    root = trials_root(out_dir, scenario)
    root.mkdir(parents=True)
    cells = plan_trials(scenario, scenario_file, repeat, root, seed, labels or {})
    outcome = run_campaign(
        cells,
        lambda results, interrupted: write_ledger(
            root, scenario, scenario_file, cells, results, interrupted
        ),
        after_run or analyse_and_report,
        on_progress,
    )
    aggregate = load_trials(root)
    write_aggregate(aggregate)
    report = write_trials_report(aggregate)
    return TrialsResult(root, aggregate, outcome, report)


def analyse_and_report(run_dir: Path) -> str | None:
    """summary.json and report.html of one run; its status, or None when it cannot be analysed."""
    from harness.analysis.report import analyze_and_report
    from harness.errors import HarnessError

    try:
        summary, _report = analyze_and_report(run_dir)
    except HarnessError:
        return None
    status = summary.get("status")
    return None if status is None else str(status)
