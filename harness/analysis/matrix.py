"""A matrix directory read back: every scenario's runs compared across targets, and ranked.

`load_matrix(root)` reads the ledger (`matrix.json`, or a trials directory's `trials.json`)
and each run's summary, and returns a `Matrix`: per scenario, a `Comparison` by target
(harness.analysis.compare) of the runs that completed with a healthy baseline, and per fault
a `Ranking`: fewest unrecovered runs first, then the lowest median ttr_s; per pair of
neighbours (and the leader against every other) the difference of the medians with its
interval, the exact permutation test when each target has 4 recovery times or more, and how
many pairings of runs the faster won (a censored run counts as "at least x s");
`rank_shares` (a bootstrap of the ranking) and `tied_with_next` (the gap to the next target is
not significant or untested). Runs that failed, were interrupted, or had a broken baseline are
listed (`excluded`), never compared. The long form: docs/METRICS.md, Matrices.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from harness.analysis.compare import (
    Comparison,
    FaultComparison,
    GroupFault,
    PairVerdict,
    RunInput,
    compare_runs,
    judge,
    read_labels,
    read_run_summary,
)
from harness.analysis.stats import Superiority, rank_shares, superiority
from harness.errors import AnalysisError
from harness.ledger import MATRIX_LEDGER, Ledger, LedgerEntry, read_ledger
from harness.results import COMPLETED, FAILED
from harness.results.summary import Summary

LEDGER_FILE, RESULT_FILE = MATRIX_LEDGER, "comparison.json"
INCLUDED = ("passed", "slo_violated")


@dataclass(frozen=True)
class CampaignRun:
    """One planned run of a campaign (a matrix, or trials: a matrix of one) and how it ended."""

    index: int
    scenario: str
    target: str
    repetition: int
    run_dir: Path | None
    status: str  # summary status, or error / interrupted / not_run / analysis_failed
    reason: str | None
    summary: Summary | None

    @property
    def included(self) -> bool:
        return self.status in INCLUDED and self.summary is not None

    @property
    def run_id(self) -> str | None:
        return None if self.run_dir is None else self.run_dir.name

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "scenario": self.scenario,
            "target": self.target,
            "repetition": self.repetition,
            "run_dir": None if self.run_dir is None else self.run_dir.name,
            "status": self.status,
            "included": self.included,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Step:
    """One target against the next in a ranking (or the leader against another)."""

    faster: str
    slower: str
    verdict: PairVerdict
    wins: Superiority

    @property
    def told_apart(self) -> bool:
        """Significant, or decided by unrecovered runs."""
        return self.verdict.decisive_loss

    def to_dict(self) -> dict[str, object]:
        return {
            "faster": self.faster,
            "slower": self.slower,
            "told_apart": self.told_apart,
            "wins": self.wins.to_dict(),
            **self.verdict.to_dict(),
        }


@dataclass(frozen=True)
class Ranking:
    """The targets on one fault of one scenario, best first, with the uncertainty."""

    scenario: str
    fault: FaultComparison
    order: tuple[str, ...]
    steps: tuple[Step, ...]  # order[i] against order[i + 1]
    versus_leader: tuple[Step, ...]  # order[0] against each other
    shares: Mapping[str, list[float]]

    def group(self, target: str) -> GroupFault:
        return self.fault.group(target)

    def to_dict(self) -> dict[str, object]:
        return {
            "scenario": self.scenario,
            "fault": self.fault.key,
            "order": list(self.order),
            "steps": [s.to_dict() for s in self.steps],
            "versus_leader": [s.to_dict() for s in self.versus_leader],
            "rank_shares": {k: list(v) for k, v in self.shares.items()},
            "targets": {g.group: g.to_dict() for g in self.fault.groups if g.runs},
        }


@dataclass(frozen=True)
class ScenarioMatrix:
    scenario: str
    comparison: Comparison
    rankings: tuple[Ranking, ...]


@dataclass(frozen=True)
class Matrix:
    root: Path
    targets: tuple[str, ...]
    repeat: int
    interrupted: bool
    runs: tuple[CampaignRun, ...]
    scenarios: tuple[ScenarioMatrix, ...]

    @property
    def excluded(self) -> tuple[CampaignRun, ...]:
        return tuple(r for r in self.runs if not r.included)

    @property
    def done(self) -> int:
        return sum(r.status != "not_run" for r in self.runs)

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": "matrix",
            "targets": list(self.targets),
            "repeat": self.repeat,
            "interrupted": self.interrupted,
            "planned": len(self.runs),
            "done": self.done,
            "runs": [r.to_dict() for r in self.runs],
            "scenarios": [
                {
                    "scenario": s.scenario,
                    "rankings": [r.to_dict() for r in s.rankings],
                    "comparison": s.comparison.to_dict(),
                }
                for s in self.scenarios
            ],
        }


def is_matrix_dir(path: Path) -> bool:
    return (Path(path) / LEDGER_FILE).is_file()


def load_matrix(root: Path) -> Matrix:
    """Read a campaign directory (module docstring); AnalysisError without its ledger. A trials
    directory reads as the matrix of one target it is."""
    root = Path(root)
    ledger, runs = read_runs(root)
    names = list(dict.fromkeys(r.scenario for r in runs))
    scenarios = tuple(
        _scenario(name, [r for r in runs if r.scenario == name], ledger.targets) for name in names
    )
    return Matrix(
        root=root,
        targets=tuple(ledger.targets),
        repeat=ledger.repeat,
        interrupted=ledger.interrupted,
        runs=runs,
        scenarios=tuple(s for s in scenarios if s is not None),
    )


def read_runs(root: Path) -> tuple[Ledger, tuple[CampaignRun, ...]]:
    """A campaign directory's ledger and every run it planned, with its summary when it has one."""
    ledger = read_ledger(root)
    return ledger, tuple(campaign_run(root, entry) for entry in ledger.runs)


def campaign_run(root: Path, entry: LedgerEntry) -> CampaignRun:
    """One ledger entry with its summary read (the status it holds), or why there is none."""
    path = None if entry.run_dir is None else root / entry.run_dir
    made = partial(
        CampaignRun,
        index=entry.index,
        scenario=str(entry.scenario),
        target=str(entry.target),
        repetition=entry.repetition,
        run_dir=path,
    )
    if entry.outcome != COMPLETED or path is None:
        status = entry.outcome if entry.outcome != COMPLETED else FAILED
        return made(status=status, reason=entry.error, summary=None)
    try:
        summary = read_run_summary(path)
    except AnalysisError as exc:
        return made(status="analysis_failed", reason=str(exc), summary=None)
    return made(
        status=summary.status, reason=summary.status_reason or summary.error, summary=summary
    )


def _scenario(
    name: str, runs: Sequence[CampaignRun], targets: Sequence[str]
) -> ScenarioMatrix | None:
    included = [r for r in runs if r.included]
    if not included:
        return None
    order = {t: i for i, t in enumerate(targets)}
    included.sort(key=lambda r: (order.get(r.target, len(order)), r.repetition))
    inputs = [_input(r) for r in included if r.run_dir is not None]
    comparison = compare_runs(inputs, "target")
    rankings = tuple(rank(name, fault) for fault in comparison.faults)
    return ScenarioMatrix(name, comparison, rankings)


def _input(run: CampaignRun) -> RunInput:
    assert run.run_dir is not None
    assert run.summary is not None
    run_id = run.summary.run_id or run.run_dir.name
    return RunInput(run.run_dir, run_id, run.target, run.summary, read_labels(run.run_dir))


def rank(scenario: str, fault: FaultComparison) -> Ranking:
    """The ranking of the targets holding `fault` (module docstring)."""
    order = fault.ranking
    steps = tuple(_step(fault, a, b) for a, b in itertools.pairwise(order))
    leader = tuple(_step(fault, order[0], other) for other in order[1:]) if order else ()
    shares = rank_shares({t: _ttr_or_never(fault.group(t)) for t in order})
    return Ranking(scenario, fault, order, steps, leader, shares)


def _ttr_or_never(group: GroupFault) -> list[float]:
    """Each run's time to recover, inf for a run that never recovered (no-impact runs left out);
    a censored run at its lower bound (the resampled order favours it, if anything)."""
    times = list(group.ttr_values)
    return times + [math.inf] * len(group.unrecovered)


def _step(fault: FaultComparison, faster: str, slower: str) -> Step:
    a, b = fault.group(faster), fault.group(slower)
    verdict = judge(fault.key, a, b)
    wins = superiority(a.ttr_values, b.ttr_values, a.ttr_censored, b.ttr_censored)
    return Step(faster, slower, verdict, wins)


def write_matrix_json(matrix: Matrix) -> Path:
    path = matrix.root / RESULT_FILE
    text = json.dumps(matrix.to_dict(), indent=2, allow_nan=False, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path
