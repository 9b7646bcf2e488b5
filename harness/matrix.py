"""`harness matrix`: every scenario on every target, N times, interleaved; then one report.

    results/matrix-<time>-<hex>/
        matrix.json       the ledger: the plan and how each run ended (rewritten after each)
        <run-id>/         one run directory per run
        comparison.json   rankings and comparisons (harness.analysis.matrix)
        report.html       the report (harness.analysis.matrix_report), figures/ beside it

Order (a decision): repetition by repetition; within one, scenario by scenario, every target
once, the targets' order rotated by one each repetition (docker, podman, swarm; then podman,
swarm, docker...), and the scenarios' order too. Machine drift (a build heating the CPU, a
cache warming up) then spreads over every target and scenario instead of favouring the one
that always runs first or last. Two scenarios on one target make a before/after experiment
run alternately: `harness matrix before.yaml after.yaml --targets swarm --repeat 5`.

Seeds: repetition r runs with seed base + r - 1 on every target (base: --seed, else the
scenario's seed, else random), so within a repetition every target gets the same random
choices (the same replica killed by a `count: 1` selection) and repetitions differ.

Every (scenario, target) pair is checked before anything runs (the scenario is valid for
the target, this machine can inject its faults): a matrix that cannot finish is refused up
front, with every problem at once.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from harness.analysis.matrix import LEDGER_FILE, Matrix, load_matrix
from harness.campaign import (
    AfterRun,
    CampaignOutcome,
    Cell,
    CellResult,
    ProgressCallback,
    base_seed,
    run_campaign,
)
from harness.errors import CapabilityError, HarnessError, ScenarioError
from harness.preflight import preflight
from harness.results import write_json
from harness.scenario import TARGET_KINDS, ScenarioBase, with_target
from harness.trials import analyse_and_report

T = TypeVar("T")


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
        f"--targets: unknown target {t!r}; allowed: {', '.join(TARGET_KINDS)}"
        for t in names
        if t not in TARGET_KINDS
    ]
    if not names:
        problems.append("--targets: name at least one target, e.g. --targets docker,swarm")
    if len(set(names)) != len(names):
        problems.append(f"--targets: a target is named twice in {text!r}")
    if problems:
        raise ScenarioError(problems)
    return names


def check_matrix(scenarios: Sequence[tuple[str, ScenarioBase]], targets: Sequence[str]) -> None:
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
        raise CapabilityError("the matrix cannot run here:\n  " + "\n  ".join(missing))


def plan_matrix(
    scenarios: Sequence[tuple[str, ScenarioBase]],
    targets: Sequence[str],
    repeat: int,
    root: Path,
    seed: int | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[Cell]:
    """The runs in the order they will run (module docstring)."""
    seeds = {source: base_seed(seed, scenario) for source, scenario in scenarios}
    cells: list[Cell] = []
    for repetition in range(1, repeat + 1):
        order = _rotated(targets, repetition - 1)
        for source, scenario in _rotated(scenarios, repetition - 1):
            for target in order:
                cells.append(
                    Cell(
                        index=len(cells) + 1,
                        scenario=with_target(scenario, target),
                        scenario_file=source,
                        target=target,
                        repetition=repetition,
                        seed=seeds[source] + repetition - 1,
                        labels={
                            **(labels or {}),
                            "matrix": root.name,
                            "repetition": str(repetition),
                        },
                        out_dir=root,
                    )
                )
    return cells


def _rotated(items: Sequence[T], shift: int) -> list[T]:
    shift %= max(len(items), 1)
    return [*items[shift:], *items[:shift]]


def matrix_root(out_dir: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return out_dir / f"matrix-{stamp}-{secrets.token_hex(2)}"


def write_ledger(
    root: Path,
    targets: Sequence[str],
    repeat: int,
    cells: Sequence[Cell],
    results: Sequence[CellResult],
    interrupted: bool = False,
) -> None:
    ended = {r.cell.index: r for r in results}
    runs = []
    for cell in cells:
        result = ended.get(cell.index)
        if result is not None:
            runs.append(result.to_dict(root))
            continue
        runs.append(
            {
                "index": cell.index,
                "scenario": cell.scenario.name,
                "scenario_file": cell.scenario_file,
                "target": cell.target,
                "repetition": cell.repetition,
                "seed": cell.seed,
                "outcome": "pending",
                "run_dir": None,
            }
        )
    write_json(
        root / LEDGER_FILE,
        {
            "kind": "matrix",
            "targets": list(targets),
            "repeat": repeat,
            "interrupted": interrupted,
            "runs": runs,
        },
    )


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

    check_matrix(scenarios, targets)
    root = matrix_root(out_dir)
    root.mkdir(parents=True)
    cells = plan_matrix(scenarios, targets, repeat, root, seed, labels)
    outcome = run_campaign(
        cells,
        lambda results, interrupted: write_ledger(
            root, targets, repeat, cells, results, interrupted
        ),
        after_run or analyse_and_report,
        on_progress,
    )
    matrix = load_matrix(root)
    report = write_matrix_report(matrix)
    return MatrixResult(root, matrix, outcome, report)
