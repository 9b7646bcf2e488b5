"""Trials of one scenario on one target, summed up: `aggregate.json` of a trials directory.

A trials directory (written by harness.trials) holds one run directory per trial and
`trials.json`, the ledger of what was planned and how each trial ended. The aggregate lists
every planned trial (`trials[]`, with its status and whether it is `included`); only trials
that completed with a healthy baseline (passed or slo_violated) are included: the others are
listed, never averaged in.

Over the included trials: per fault occurrence and kind (`faults[]`) the impact counts, the
orchestrator's responses and, per metric, n, median, min, max, quartiles, values and
`median_ci95` (order statistics: its `coverage` says what it really holds); ttr_s is over the
recovered trials only, ttd_s over those with a visible impact (no impact is counted apart,
never as a 0 s recovery). Per phase the same statistics (a trial's percentile from too few
requests is left out), `pooled_latency_ms` over every included request, `slo` counts per
check, and the `status` of the whole. Every field: docs/METRICS.md, Trials.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.analysis.compare import (
    Comparison,
    GroupFault,
    RunInput,
    compare_runs,
    read_labels,
)
from harness.analysis.matrix import CampaignRun, read_runs
from harness.results import ABORTED, FAILED
from harness.results.summary import Summary

AGGREGATE_FILE = "aggregate.json"


Trial = CampaignRun  # one planned trial and how it ended (a matrix run of the one target)


@dataclass(frozen=True)
class TrialsAggregate:
    """Everything aggregate.json holds; `comparison` is the included trials as one group."""

    root: Path
    scenario: str
    target: str
    planned: int
    interrupted: bool
    trials: tuple[Trial, ...]
    comparison: Comparison | None

    @property
    def included(self) -> tuple[Trial, ...]:
        return tuple(t for t in self.trials if t.included)

    @property
    def status(self) -> str:
        if self.interrupted:
            return ABORTED
        statuses = {t.status for t in self.trials}
        if statuses - {"passed", "slo_violated", "baseline_broken"}:
            return FAILED
        return "slo_violated" if statuses - {"passed"} else "passed"

    def to_dict(self) -> dict[str, object]:
        faults, phases, pooled = [], {}, {}
        if self.comparison is not None:
            group = self.comparison.groups[0].name
            faults = [
                {"id": f.fault_id, "kind": f.kind, **_fault_dict(f.group(group))}
                for f in self.comparison.faults
            ]
            phases = {
                phase: {m: s.to_dict() for m, s in metrics.items()}
                for phase, metrics in self.comparison.phases[group].items()
            }
            pooled = {
                phase: p.to_dict() for phase, p in self.comparison.pooled.get(group, {}).items()
            }
        return {
            "kind": "trials",
            "scenario": self.scenario,
            "target": self.target,
            "status": self.status,
            "planned": self.planned,
            "ran": sum(t.status != "not_run" for t in self.trials),
            "included": len(self.included),
            "trials": [_trial_dict(t, self.root) for t in self.trials],
            "faults": faults,
            "phases": phases,
            "pooled_latency_ms": pooled,
            "slo": slo_tally(t.summary for t in self.included if t.summary is not None),
        }


def _trial_dict(trial: Trial, root: Path) -> dict[str, object]:
    where = None
    if trial.run_dir is not None:
        inside = trial.run_dir.is_relative_to(root)
        where = str(trial.run_dir.relative_to(root) if inside else trial.run_dir)
    return {
        "index": trial.index,
        "run_id": trial.run_id,
        "run_dir": where,
        "status": trial.status,
        "included": trial.included,
        "reason": trial.reason,
    }


def _fault_dict(group: GroupFault) -> dict[str, object]:
    data = group.to_dict()
    metrics = {k: v for k, v in data.items() if isinstance(v, dict) and "median" in v}
    return {
        "trials": group.runs,
        "visible_impact": group.runs - len(group.no_impact) - len(group.unmeasured),
        "no_impact": len(group.no_impact),
        "unmeasured": len(group.unmeasured),
        "recovered": sum(s.recovered for s in group.samples),
        "unrecovered": list(group.unrecovered),
        "censored": list(group.censored),
        "censored_note": group.describe_censored() or None,
        "unrecovered_reasons": data["unrecovered_reasons"],
        "impact_note": group.describe_impact() or None,
        "responses": group.responses,
        "metrics": metrics,
    }


def slo_tally(summaries: Iterable[Summary]) -> dict[str, dict[str, int]]:
    """Per SLO check name: how many trials passed, failed, had no data."""
    tally: dict[str, dict[str, int]] = {}
    for summary in summaries:
        for check in summary.slo.checks:
            counts = tally.setdefault(check.name, {"pass": 0, "fail": 0, "no_data": 0})
            counts[check.verdict] = counts.get(check.verdict, 0) + 1
    return tally


# -- the ledger ------------------------------------------------------------------------------


def load_trials(root: Path) -> TrialsAggregate:
    """Read the ledger and every trial's summary (computing it when the run has none)."""
    root = Path(root)
    ledger, trials = read_runs(root)
    included = [t for t in trials if t.included]
    comparison = None
    if included:
        runs = [_run_input(t, "trials") for t in included]
        comparison = compare_runs(runs, "scenario")
    return TrialsAggregate(
        root=root,
        scenario=str(ledger.scenario),
        target=str(ledger.target),
        planned=ledger.planned or len(trials),
        interrupted=ledger.interrupted,
        trials=trials,
        comparison=comparison,
    )


def _run_input(trial: Trial, group: str) -> RunInput:
    assert trial.run_dir is not None and trial.run_id is not None and trial.summary is not None
    return RunInput(trial.run_dir, trial.run_id, group, trial.summary, read_labels(trial.run_dir))


def write_aggregate(aggregate: TrialsAggregate) -> Path:
    """aggregate.json: strict JSON (NaN refused)."""
    path = aggregate.root / AGGREGATE_FILE
    text = json.dumps(aggregate.to_dict(), indent=2, allow_nan=False, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path
