"""Campaigns: every scenario on every target, N times, interleaved, under one directory.

`harness matrix` is the general case; trials (`run --repeat N`, harness.trials) are a matrix of
one scenario on one target. Both go through this module: the plan, the check before anything
runs, the ledger (matrix.json / trials.json, rewritten after each run), the loop
(harness.campaign); only the summing up differs.

Order (a decision): repetition by repetition; within one, scenario by scenario, every target
once, the targets' and the scenarios' order rotated by one each repetition, so machine drift
spreads over every target and scenario instead of favouring the one that always runs first.

Seeds: repetition r runs with seed base + r - 1 on every target (base: --seed, else the
scenario's seed, else random), so within a repetition every target gets the same random
choices and repetitions differ.

Every (scenario, target) pair is checked before anything runs: a campaign that cannot finish
is refused up front, with every problem at once. The directory layout: docs/RUNS.md, Campaigns.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from harness.analysis.matrix import Matrix, load_matrix
from harness.campaign import (
    AfterRun,
    CampaignOutcome,
    Cell,
    CellResult,
    ProgressCallback,
    analyse_and_report,
    base_seed,
    run_campaign,
)
from harness.errors import CapabilityError, HarnessError, ScenarioError
from harness.ledger import PENDING, CampaignKind, Ledger, LedgerEntry, write_ledger
from harness.preflight import preflight
from harness.scenario import ScenarioBase, with_target
from harness.targets import target_kinds

T = TypeVar("T")
NUMBER_LABEL: dict[str, str] = {"matrix": "repetition", "trials": "trial"}  # a run's label


@dataclass(frozen=True)
class Plan:
    """What a campaign runs: each scenario (its file, its model) on each target, N times."""

    kind: CampaignKind
    scenarios: Sequence[tuple[str, ScenarioBase]]
    targets: Sequence[str]
    repeat: int
    seed: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def directory_name(self) -> str:
        """matrix-<time>-<hex>, or <scenario>-trials-<time>-<hex> for trials."""
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        prefix = "matrix" if self.kind == "matrix" else f"{self.scenarios[0][1].name}-trials"
        return f"{prefix}-{stamp}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class MatrixResult:
    root: Path
    matrix: Matrix
    outcome: CampaignOutcome
    report: Path


def parse_targets(text: str) -> list[str]:
    """'docker,swarm' -> ['docker', 'swarm']; unknown or repeated names are invalid input."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    problems = [
        f"--targets: unknown target {t!r}; allowed: {', '.join(target_kinds())}"
        for t in names
        if t not in target_kinds()
    ]
    if not names:
        problems.append("--targets: name at least one target, e.g. --targets docker,swarm")
    if len(set(names)) != len(names):
        problems.append(f"--targets: a target is named twice in {text!r}")
    if problems:
        raise ScenarioError(problems)
    return names


def check_matrix(
    scenarios: Sequence[tuple[str, ScenarioBase]], targets: Sequence[str], kind: str = "matrix"
) -> None:
    """Preflight every (scenario, target) pair; raise with every problem at once."""
    invalid, missing = [], []
    for source, scenario in scenarios:
        for target in targets:
            try:
                preflight(with_target(scenario, target))
            except ScenarioError as exc:
                invalid += [f"{source} on {target}: {p}" for p in exc.problems]
            except HarnessError as exc:
                missing.append(f"{source} on {target}: {exc}")
    if invalid:
        raise ScenarioError(invalid)
    if missing:
        raise CapabilityError(f"the {kind} cannot run here:\n  " + "\n  ".join(missing))


def plan_cells(plan: Plan, root: Path) -> list[Cell]:
    """The runs in the order they will run (module docstring)."""
    seeds = {source: base_seed(plan.seed, scenario) for source, scenario in plan.scenarios}
    cells: list[Cell] = []
    for repetition in range(1, plan.repeat + 1):
        labels = {**plan.labels, plan.kind: root.name, NUMBER_LABEL[plan.kind]: str(repetition)}
        for source, scenario in _rotated(plan.scenarios, repetition - 1):
            for target in _rotated(plan.targets, repetition - 1):
                cells.append(
                    Cell(
                        index=len(cells) + 1,
                        scenario=with_target(scenario, target),
                        scenario_file=source,
                        target=target,
                        repetition=repetition,
                        seed=seeds[source] + repetition - 1,
                        labels=labels,
                        out_dir=root,
                    )
                )
    return cells


def plan_matrix(
    scenarios: Sequence[tuple[str, ScenarioBase]],
    targets: Sequence[str],
    repeat: int,
    root: Path,
    seed: int | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[Cell]:
    return plan_cells(Plan("matrix", scenarios, targets, repeat, seed, labels or {}), root)


def _rotated(items: Sequence[T], shift: int) -> list[T]:
    shift %= max(len(items), 1)
    return [*items[shift:], *items[:shift]]


def ledger_of(
    plan: Plan,
    root: Path,
    cells: Sequence[Cell],
    results: Sequence[CellResult],
    interrupted: bool = False,
) -> Ledger:
    """The ledger of the campaign so far: every planned run, pending until it ended."""
    ended = {r.cell.index: r for r in results}
    single = plan.scenarios[0] if plan.kind == "trials" else None
    return Ledger(
        kind=plan.kind,
        scenario=None if single is None else single[1].name,
        scenario_file=None if single is None else single[0],
        target=None if single is None else plan.targets[0],
        targets=list(plan.targets),
        repeat=plan.repeat,
        planned=len(cells),
        interrupted=interrupted,
        runs=[_entry(cell, ended.get(cell.index), root) for cell in cells],
    )


def _entry(cell: Cell, result: CellResult | None, root: Path) -> LedgerEntry:
    entry = LedgerEntry(
        index=cell.index,
        scenario=cell.scenario.name,
        scenario_file=cell.scenario_file,
        target=cell.target,
        repetition=cell.repetition,
        seed=cell.seed,
        outcome=PENDING,
    )
    if result is None:
        return entry
    where = None
    if result.run_dir is not None:
        inside = result.run_dir.is_relative_to(root)
        where = str(result.run_dir.relative_to(root) if inside else result.run_dir)
    return entry.model_copy(
        update={
            "outcome": result.outcome,
            "status": result.status,
            "run_dir": where,
            "error": result.error,
            "duration_s": round(result.duration_s, 1),
        }
    )


def run_plan(
    plan: Plan,
    out_dir: Path,
    on_progress: ProgressCallback | None = None,
    after_run: AfterRun | None = None,
) -> tuple[Path, CampaignOutcome]:
    """Check every pair, make the campaign's directory, run every cell with its ledger kept;
    the directory and how the campaign ended."""
    check_matrix(plan.scenarios, plan.targets, plan.kind)
    root = out_dir / plan.directory_name()
    root.mkdir(parents=True)
    cells = plan_cells(plan, root)
    outcome = run_campaign(
        cells,
        lambda results, interrupted: write_ledger(
            root, ledger_of(plan, root, cells, results, interrupted)
        ),
        after_run or analyse_and_report,
        on_progress,
    )
    return root, outcome


def run_matrix(
    scenarios: Sequence[tuple[str, ScenarioBase]],
    targets: Sequence[str],
    repeat: int,
    out_dir: Path,
    seed: int | None = None,
    labels: Mapping[str, str] | None = None,
    on_progress: ProgressCallback | None = None,
    after_run: AfterRun | None = None,
) -> MatrixResult:
    """Check, run every cell, then write comparison.json and report.html."""
    from harness.analysis.matrix_report import write_matrix_report

    plan = Plan("matrix", scenarios, targets, repeat, seed, labels or {})
    root, outcome = run_plan(plan, out_dir, on_progress, after_run)
    matrix = load_matrix(root)
    report = write_matrix_report(matrix)
    return MatrixResult(root, matrix, outcome, report)
