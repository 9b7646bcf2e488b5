"""Compare runs side by side: group them, match their faults, say which group recovered faster.

    load_runs(run_dirs, by, label) -> [RunInput]      every problem at once (ScenarioError, 2)
    compare_runs(runs)             -> Comparison      groups, faults, phases, verdicts
    Comparison.to_dict()           -> compare.json    strict JSON: null, never NaN

Runs measured differently are refused before anything is compared (harness.analysis.comparable).
Runs are grouped by their summary's `target` or `scenario`, or by a manifest label; groups keep
the order in which their first run was given. Faults are matched across runs by id and kind.
Per fault and group: the median (min-max) over runs of each metric, the runs without a ttr
(never recovered, no visible impact) counted apart, never as 0. A pair of groups gets a verdict:
unrecovered shares first, then the lower median ttr, tested (harness.analysis.stats) only with
enough values per group (`MIN_RUNS_FOR_TEST`).

The decisions and why: docs/METRICS.md, "Comparing runs".
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from harness.analysis.comparable import Measurement, measurement
from harness.analysis.phases import PHASE_NAMES
from harness.analysis.pooled import QUANTILES, PooledPhase, pooled_latency
from harness.analysis.response import ACTIONS, Action, action_words
from harness.analysis.stats import (
    ALPHA,
    BOOTSTRAP,
    MIN_VALUES_FOR_BOOTSTRAP,
    MIN_VALUES_FOR_TEST,
    SEED,
    DifferenceInterval,
    MedianInterval,
    bootstrap_ci,
    difference_interval,
    median_interval,
    midranks,
    min_count_for,
    permutation_p_value,
    quartiles,
    smallest_p_value,
)
from harness.errors import AnalysisError, ScenarioError
from harness.ledger import ledger_path, read_ledger
from harness.results import COMPLETED
from harness.results.manifest import load_manifest
from harness.results.summary import (
    SUMMARY_FILE,
    FaultSummary,
    PhaseSummary,
    Response,
    Summary,
    as_summary,
    load_summary,
)

__all__ = [
    "ALPHA",
    "BOOTSTRAP",
    "MIN_VALUES_FOR_BOOTSTRAP",
    "SEED",
    "Comparison",
    "FaultSample",
    "GroupFault",
    "RunInput",
    "Stat",
    "bootstrap_ci",
    "compare_runs",
    "judge",
    "load_runs",
    "midranks",
    "permutation_p_value",
    "smallest_p_value",
]

GROUP_BY = ("target", "scenario", "label")
MIN_RUNS_FOR_TEST = MIN_VALUES_FOR_TEST  # values per group, not runs
FAULT_METRICS = ("ttr_s", "ttd_s", "failed_requests", "availability", "lost_requests")
# read from the fault's fixed comparison window (summary `window`), not its top level
WINDOW_METRICS = ("lost_requests",)
ORCHESTRATOR_METRICS = ("kill_to_die_s", "die_to_start_s", "start_to_healthy_s")
# the cluster's own view (Swarm, Kubernetes), from the injection; and when the orchestrator's
# response (a restart in place or a replacement) happened, from the injection
CLUSTER_METRICS = ("to_degraded_s", "to_replacement_running_s", "to_full_strength_s")
RESPONSE_METRIC = "response_s"
PHASE_METRICS = ("p50_ms", "p95_ms", "p99_ms", "error_rate", "throughput_rps")

FloatArray = npt.NDArray[np.float64]


# -- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInput:
    """One run directory, its summary and labels, and the group it falls in. A summary given
    as decoded summary.json is read as the model (`as_summary`)."""

    run_dir: Path
    run_id: str
    group: str
    summary: Summary | Mapping[str, object]
    labels: Mapping[str, str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "summary", as_summary(self.summary))

    @property
    def measured(self) -> Summary:
        """The run's summary, as the model."""
        return as_summary(self.summary)


@dataclass(frozen=True)
class Group:
    """Runs sharing a value of the grouping key, in the order they were given."""

    name: str
    runs: tuple[RunInput, ...]


def load_runs(run_dirs: Sequence[Path], by: str, label: str | None = None) -> list[RunInput]:
    """Read each run's summary (computing it when absent) and group key.

    Raises ScenarioError listing every problem: no run, unknown `by`, a missing directory,
    a directory without summary.json nor the data to compute it, a run without the label."""
    problems = _argument_problems(run_dirs, by, label)
    if problems:
        raise ScenarioError(problems)
    runs: list[RunInput] = []
    seen: dict[Path, Path] = {}
    for run_dir in run_dirs:
        resolved = Path(run_dir).resolve()
        if resolved in seen:
            problems.append(f"{run_dir}: given twice (as {seen[resolved]} too)")
            continue
        seen[resolved] = Path(run_dir)
        try:
            runs.append(_load_one(Path(run_dir), by, label))
        except (AnalysisError, ScenarioError) as exc:
            problems.append(f"{run_dir}: {exc}")
    if problems:
        raise ScenarioError(problems)
    return runs


def expand_run_dirs(paths: Sequence[Path]) -> list[Path]:
    """Run directories, with a trials or matrix directory replaced by its runs that completed
    with a healthy baseline (listed in its ledger: trials.json or matrix.json)."""
    expanded: list[Path] = []
    for path in paths:
        if ledger_path(Path(path)) is None:
            expanded.append(Path(path))
            continue
        for entry in read_ledger(Path(path)).runs:
            run_dir = None if entry.run_dir is None else Path(path) / entry.run_dir
            if entry.outcome == COMPLETED and run_dir is not None and _healthy(run_dir):
                expanded.append(run_dir)
    return expanded


def _healthy(run_dir: Path) -> bool:
    """A run that completed with a healthy baseline (its summary computed when missing)."""
    try:
        return read_run_summary(run_dir).measured
    except AnalysisError:
        return False


def _argument_problems(run_dirs: Sequence[Path], by: str, label: str | None) -> list[str]:
    problems = []
    if not run_dirs:
        problems.append("no run directory given: name at least one (two groups to compare)")
    if by not in GROUP_BY:
        problems.append(f"unknown --by {by!r}: use one of {', '.join(GROUP_BY)}")
    elif by == "label" and not label:
        problems.append("--by label needs --label KEY (a key of the manifest's labels)")
    return problems


def _load_one(run_dir: Path, by: str, label: str | None) -> RunInput:
    if not run_dir.is_dir():
        raise AnalysisError("not a directory")
    summary = read_run_summary(run_dir)
    labels = read_labels(run_dir)
    if by == "label":
        assert label is not None
        if label not in labels:
            known = ", ".join(f"{k}={v}" for k, v in labels.items()) or "none"
            raise AnalysisError(f"no label {label!r} in manifest.json (labels: {known})")
        group = labels[label]
    else:
        group = summary.target if by == "target" else summary.scenario
    return RunInput(run_dir, summary.run_id or run_dir.name, group, summary, labels)


def read_run_summary(run_dir: Path) -> Summary:
    """summary.json of the run (any version), or the analysis of its data when there is none
    (written too)."""
    path = run_dir / SUMMARY_FILE
    if not path.is_file():
        from harness.analysis import summarize, write_summary
        from harness.analysis.data import load_run

        try:
            summary = summarize(load_run(run_dir))
        except AnalysisError as exc:
            raise AnalysisError(f"no {SUMMARY_FILE}, and cannot compute it: {exc}") from exc
        write_summary(run_dir, summary)
        return summary
    return load_summary(path)


def read_labels(run_dir: Path) -> dict[str, str]:
    """The manifest's "labels" object (empty when there is no manifest or no labels)."""
    try:
        return load_manifest(run_dir).labels
    except AnalysisError:
        return {}


def group_runs(runs: Sequence[RunInput]) -> tuple[Group, ...]:
    """Groups in the order their first run appears."""
    order: dict[str, list[RunInput]] = {}
    for run in runs:
        order.setdefault(run.group, []).append(run)
    return tuple(Group(name, tuple(members)) for name, members in order.items())


# -- typed access to summaries ---------------------------------------------------------------


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


# -- statistics over runs --------------------------------------------------------------------


@dataclass(frozen=True)
class Stat:
    """One metric over the runs of a group: the measured values (runs without one left out).

    `censored[i]` marks values[i] as a lower bound (a recovery the data ended before confirming);
    empty when none is."""

    values: tuple[float, ...]
    censored: tuple[bool, ...] = ()

    @property
    def flags(self) -> tuple[bool, ...]:
        """Per value, whether it is censored (">= value")."""
        return self.censored or (False,) * len(self.values)

    @property
    def censored_count(self) -> int:
        return sum(self.flags)

    @property
    def median_is_lower_bound(self) -> bool:
        """Whether a censored value is one the median is computed from, or below them: its
        true value may be higher, so the median is only known to be at least this."""
        if not self.values:
            return False
        upper_middle = sorted(self.values)[len(self.values) // 2]
        return any(c and v <= upper_middle for v, c in zip(self.values, self.flags, strict=True))

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def median(self) -> float | None:
        return float(np.median(self.values)) if self.values else None

    @property
    def min(self) -> float | None:
        return min(self.values) if self.values else None

    @property
    def max(self) -> float | None:
        return max(self.values) if self.values else None

    @property
    def quartiles(self) -> tuple[float, float] | None:
        """(q1, q3): the spread of the middle half of the runs."""
        return quartiles(self.values)

    @property
    def interval(self) -> MedianInterval | None:
        """The 95 % interval of the median (harness.analysis.stats.median_interval)."""
        return median_interval(self.values)

    def to_dict(self) -> dict[str, object]:
        spread = self.quartiles
        interval = self.interval
        return {
            "n": self.n,
            "median": _round(self.median, 6),
            "min": _round(self.min, 6),
            "max": _round(self.max, 6),
            "q1": None if spread is None else _round(spread[0], 6),
            "q3": None if spread is None else _round(spread[1], 6),
            "median_ci95": None if interval is None else interval.to_dict(),
            "values": [_round(v, 6) for v in self.values],
            "censored": self.censored_count,
            "median_is_lower_bound": self.median_is_lower_bound,
        }


def stat(values: Sequence[float | None]) -> Stat:
    """A Stat of the values that were measured (None and non-finite values are left out)."""
    return Stat(tuple(v for v in values if v is not None and math.isfinite(v)))


@dataclass(frozen=True)
class FaultSample:
    """One fault as one run measured it."""

    run_id: str
    recovered: bool
    reason: str | None
    values: Mapping[str, float | None]
    impact: str = "visible"  # visible | none | unmeasured (harness.analysis.metrics)
    response: str | None = None  # what the orchestrator did, in words (analysis.response)
    censored_at_s: float | None = None  # the data ended first: recovered in at least this

    @property
    def censored(self) -> bool:
        return self.impact == "visible" and not self.recovered and self.censored_at_s is not None

    @property
    def unrecovered(self) -> bool:
        return self.impact == "visible" and not self.recovered and not self.censored


def fault_samples(run: RunInput) -> dict[tuple[str, str], FaultSample]:
    """The run's faults keyed by (id, kind)."""
    return {(f.id, f.kind): _sample(run.run_id, f) for f in run.measured.faults}


def _sample(run_id: str, fault: FaultSummary) -> FaultSample:
    values: dict[str, float | None] = {
        m: _number(getattr(fault.window, m, None) if m in WINDOW_METRICS else getattr(fault, m))
        for m in FAULT_METRICS
    }
    for metric in ORCHESTRATOR_METRICS:
        values[metric] = stat([getattr(o, metric) for o in fault.orchestrator]).median
    values.update({m: getattr(fault.cluster, m, None) for m in CLUSTER_METRICS})
    values[RESPONSE_METRIC] = _response_s(fault.response)
    impact = fault.impact
    recovered = impact == "visible" and fault.recovered is True and values["ttr_s"] is not None
    return FaultSample(
        run_id,
        recovered,
        fault.reason,
        values,
        impact,
        _response_words(fault.response),
        fault.ttr_at_least_s if fault.censored else None,
    )


def _number(value: object) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _response_s(response: Response | None) -> float | None:
    """When the orchestrator's repair of the last of the fault's instances happened."""
    times = [] if response is None else [i.after_s for i in response.instances]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _response_words(response: Response | None) -> str | None:
    """'restarted the same container in place' (without the time, so runs can be counted)."""
    if response is None:
        return None
    if response.action not in ACTIONS:
        return response.action
    return action_words(cast(Action, response.action), response.unit)


@dataclass(frozen=True)
class GroupFault:
    """One fault across the runs of one group (no samples: the group's runs lack the fault)."""

    group: str
    samples: tuple[FaultSample, ...]

    @property
    def runs(self) -> int:
        return len(self.samples)

    @property
    def unrecovered(self) -> tuple[str, ...]:
        """Run ids in which the fault had a visible impact and never recovered."""
        return tuple(s.run_id for s in self.samples if s.unrecovered)

    @property
    def no_impact(self) -> tuple[str, ...]:
        """Run ids in which the fault had no visible impact (no ttr: nothing to recover from)."""
        return tuple(s.run_id for s in self.samples if s.impact == "none")

    @property
    def unmeasured(self) -> tuple[str, ...]:
        return tuple(s.run_id for s in self.samples if s.impact == "unmeasured")

    @property
    def censored(self) -> tuple[str, ...]:
        """Run ids whose data ended before the recovery was confirmed: at least x s."""
        return tuple(s.run_id for s in self.samples if s.censored)

    @property
    def recovered_runs(self) -> int:
        return sum(s.recovered for s in self.samples)

    def describe_censored(self) -> str:
        """ "1 of 4 recovered in at least 12.300 s (the data ended first)" (empty without)."""
        bounds = [s.censored_at_s for s in self.samples if s.censored and s.censored_at_s]
        if not bounds:
            return ""
        at_least = ", ".join(f"{b:.3f}" for b in sorted(bounds))
        return (
            f"{len(bounds)} of {self.runs} recovered in at least {at_least} s "
            "(the data ended before the recovery was confirmed)"
        )

    def describe_impact(self) -> str:
        """ "2 of 5 had no visible impact, 1 of 5 was not measured" (empty when all had one)."""
        parts = []
        if self.no_impact:
            parts.append(f"{len(self.no_impact)} of {self.runs} had no visible impact")
        if self.unmeasured:
            parts.append(f"{len(self.unmeasured)} of {self.runs} could not be measured")
        return ", ".join(parts)

    @property
    def unrecovered_share(self) -> float:
        return len(self.unrecovered) / self.runs if self.runs else 0.0

    @property
    def ttr_values(self) -> tuple[float, ...]:
        """The ttr values compared: recovered runs', and censored runs' lower bounds."""
        return self.stat("ttr_s").values

    @property
    def ttr_censored(self) -> tuple[bool, ...]:
        return self.stat("ttr_s").flags

    def stat(self, metric: str) -> Stat:
        if metric == "ttr_s":  # recovered runs, and censored ones as ">= x"
            return self._ttr_stat()
        return stat([s.values.get(metric) for s in self.samples])

    def _ttr_stat(self) -> Stat:
        pairs = [
            (s.values["ttr_s"], False) if s.recovered else (s.censored_at_s, True)
            for s in self.samples
            if s.recovered or s.censored
        ]
        kept = [(v, c) for v, c in pairs if v is not None and math.isfinite(v)]
        censored = tuple(c for _, c in kept)
        return Stat(tuple(v for v, _ in kept), censored if any(censored) else ())

    @property
    def responses(self) -> dict[str, int]:
        """What the orchestrator did, in words, and in how many runs (most frequent first)."""
        counts: dict[str, int] = {}
        for sample in self.samples:
            words = sample.response or "not recorded"
            counts[words] = counts.get(words, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: -item[1]))

    def describe_responses(self) -> str:
        """'restarted the same container in place (3 of 3)'."""
        return "; ".join(f"{words} ({n} of {self.runs})" for words, n in self.responses.items())

    def to_dict(self) -> dict[str, object]:
        metrics = (*FAULT_METRICS, *ORCHESTRATOR_METRICS, *CLUSTER_METRICS, RESPONSE_METRIC)
        return {
            "runs": self.runs,
            "responses": self.responses,
            "recovered_runs": self.recovered_runs,
            "censored_runs": list(self.censored),
            "unrecovered_runs": list(self.unrecovered),
            "unrecovered_reasons": [s.reason for s in self.samples if s.unrecovered],
            "no_impact_runs": list(self.no_impact),
            "unmeasured_runs": list(self.unmeasured),
            **{metric: self.stat(metric).to_dict() for metric in metrics},
        }


# -- tests -----------------------------------------------------------------------------------


# -- verdicts --------------------------------------------------------------------------------


BASES = ("permutation", "too_few_runs", "single_runs", "unrecovered", "no_impact", "missing")


@dataclass(frozen=True)
class PairVerdict:
    """Two groups on one fault. `first` is the winner when there is one (`winner` set).

    basis: permutation (tested), too_few_runs / single_runs (not tested), unrecovered (decided
    by unrecovered runs), no_impact (a group has no recovered run with a visible impact: no
    ttr to compare), missing (a group lacks the fault)."""

    fault: str
    first: GroupFault
    second: GroupFault
    winner: str | None
    basis: str
    difference_s: float | None = None
    ratio: float | None = None
    p_value: float | None = None
    interval: DifferenceInterval | None = None
    smallest_p: float | None = None  # the smallest p these values could give
    sentence: str = ""

    @property
    def n(self) -> tuple[int, int]:
        """The ttr values compared in each group (recovered and censored runs)."""
        return self.first.stat("ttr_s").n, self.second.stat("ttr_s").n

    @property
    def ci95_s(self) -> tuple[float, float] | None:
        """The 95 % interval of the difference, when there is one (a bootstrap from 5 values)."""
        if self.interval is None or self.interval.method != "bootstrap":
            return None
        return self.interval.low, self.interval.high

    @property
    def loser(self) -> str | None:
        return None if self.winner is None else self.second.group

    @property
    def significant(self) -> bool | None:
        """True/False when tested; None when untested (too few runs, or decided otherwise)."""
        return None if self.p_value is None else self.p_value < ALPHA

    @property
    def decisive_loss(self) -> bool:
        """The loser is significantly slower, or failed to recover where the winner did."""
        if self.winner is None:
            return False
        return self.basis == "unrecovered" or self.significant is True

    def to_dict(self) -> dict[str, object]:
        return {
            "groups": [self.first.group, self.second.group],
            "faster": self.winner,
            "slower": self.loser,
            "basis": self.basis,
            "median_ttr_s": {g.group: _round(g.stat("ttr_s").median) for g in self.pair},
            "n": {g.group: g.stat("ttr_s").n for g in self.pair},
            "runs": {g.group: g.runs for g in self.pair},
            "censored": {g.group: len(g.censored) for g in self.pair},
            "difference_s": _round(self.difference_s),
            "ratio": _round(self.ratio),
            "p_value": _round(self.p_value, 4),
            "smallest_p": _round(self.smallest_p, 4),
            "ci95_s": None if self.ci95_s is None else [_round(x) for x in self.ci95_s],
            "difference_interval": None if self.interval is None else self.interval.to_dict(),
            "significant": self.significant,
            "sentence": self.sentence,
        }

    @property
    def pair(self) -> tuple[GroupFault, GroupFault]:
        return self.first, self.second


def judge(fault: str, a: GroupFault, b: GroupFault) -> PairVerdict:
    """The verdict of groups `a` and `b` on `fault` (see the module docstring)."""
    if not a.runs or not b.runs:
        present = a if a.runs else b
        return PairVerdict(
            fault,
            a,
            b,
            None,
            "missing",
            sentence=f"{fault}: only in {present.group}; "
            f"{(b if a.runs else a).group} has no run with this fault, nothing to compare.",
        )
    if a.unrecovered or b.unrecovered:
        return _judge_unrecovered(fault, a, b)
    med_a, med_b = a.stat("ttr_s").median, b.stat("ttr_s").median
    if med_a is None or med_b is None:
        return _judge_without_ttr(fault, a, b)
    if med_b < med_a:
        a, b, med_a, med_b = b, a, med_b, med_a
    # a lower median that is only a lower bound may truly be the higher one
    winner = None if med_a == med_b or a.stat("ttr_s").median_is_lower_bound else a.group
    ttr_a, ttr_b = a.stat("ttr_s"), b.stat("ttr_s")
    p_value = smallest = None
    if ttr_a.n >= MIN_RUNS_FOR_TEST and ttr_b.n >= MIN_RUNS_FOR_TEST:
        basis = "permutation"
        p_value = permutation_p_value(ttr_a.values, ttr_b.values, ttr_a.flags, ttr_b.flags)
        smallest = smallest_p_value(ttr_a.values, ttr_b.values, ttr_a.flags, ttr_b.flags)
    else:
        basis = "single_runs" if ttr_a.n == 1 and ttr_b.n == 1 else "too_few_runs"
    censored = ttr_a.censored_count or ttr_b.censored_count
    verdict = PairVerdict(
        fault,
        a,
        b,
        winner,
        basis,
        difference_s=med_b - med_a,
        ratio=med_b / med_a if med_a > 0 else None,
        p_value=p_value,
        interval=None if censored else difference_interval(ttr_a.values, ttr_b.values),
        smallest_p=smallest,
    )
    return _with_sentence(verdict)


def _judge_without_ttr(fault: str, a: GroupFault, b: GroupFault) -> PairVerdict:
    missing = [g for g in (a, b) if g.stat("ttr_s").median is None]
    why = "; ".join(f"{g.group}: {g.describe_impact() or 'no recovery time'}" for g in missing)
    sentence = f"{fault}: no recovery time to compare ({why}); a fault without visible impact is "
    sentence += "not a 0 s recovery."
    return PairVerdict(fault, a, b, None, "no_impact", sentence=sentence)


def _judge_unrecovered(fault: str, a: GroupFault, b: GroupFault) -> PairVerdict:
    if b.unrecovered_share < a.unrecovered_share:
        a, b = b, a
    lost = f"{len(b.unrecovered)} of {b.runs} runs" if b.runs > 1 else "its only run"
    if a.unrecovered_share == b.unrecovered_share:
        sentence = (
            f"{fault}: no winner: neither group recovered in every run ({a.group}: "
            f"{len(a.unrecovered)} of {a.runs} unrecovered, {b.group}: {lost} unrecovered)."
        )
        return PairVerdict(fault, a, b, None, "unrecovered", sentence=sentence)
    if a.unrecovered:
        how = f"{len(a.unrecovered)} of {a.runs} unrecovered"
    else:
        median = a.stat("ttr_s").median
        assert median is not None
        how = (
            f"recovered in all {a.runs} runs, median ttr {median:.3f} s"
            if a.runs > 1
            else f"recovered in {median:.3f} s"
        )
    beat = "did better than" if a.unrecovered else "recovered faster than"
    sentence = (
        f"{fault}: {a.group} {beat} {b.group}: {b.group} never recovered in "
        f"{lost} ({a.group}: {how}); an unrecovered fault loses, whatever the medians say."
    )
    return PairVerdict(fault, a, b, a.group, "unrecovered", sentence=sentence)


def _with_sentence(v: PairVerdict) -> PairVerdict:
    a, b = v.first, v.second
    med_a, med_b = a.stat("ttr_s").median, b.stat("ttr_s").median
    assert med_a is not None and med_b is not None and v.difference_s is not None
    counts = f"n={v.n[0]} vs {v.n[1]}"
    if v.winner is None and med_a != med_b:
        head = (
            f"{v.fault}: no winner: {a.group}'s median ttr {med_a:.3f} s is only a lower bound "
            f"({a.describe_censored()}), {b.group}'s {med_b:.3f} s"
        )
    elif v.winner is None:
        head = (
            f"{v.fault}: {a.group} and {b.group} recovered equally fast (median ttr {med_a:.3f} s)"
        )
    else:
        ratio = f"{v.ratio:.2f}× as long" if v.ratio is not None else "longer, from 0 s"
        head = (
            f"{v.fault}: {a.group} recovered faster than {b.group} by {v.difference_s:.3f} s: "
            f"median ttr {med_a:.3f} s vs {med_b:.3f} s ({b.group} took {ratio})"
        )
    impact = "; ".join(f"{g.group}: {g.describe_impact()}" for g in (a, b) if g.describe_impact())
    tail = f" ({impact}: not counted as 0 s)" if impact else ""
    censored = "; ".join(
        f"{g.group}: {g.describe_censored()}" for g in (a, b) if g.describe_censored()
    )
    if censored:
        tail += f" ({censored}: compared as at least that, never as unrecovered)"
    return replace(v, sentence=f"{head}; {_significance(v, counts)}{tail}.")


def _significance(v: PairVerdict, counts: str) -> str:
    interval = "" if v.interval is None else f"; {v.interval.describe()}"
    if v.basis == "single_runs":
        return f"from single runs ({counts}): one run each cannot be called significant"
    if v.basis == "too_few_runs":
        return (
            f"too few recovery times to test ({counts}; {MIN_RUNS_FOR_TEST} per group are the "
            f"fewest that can reach p < {ALPHA:g}): not called significant{interval}"
        )
    assert v.p_value is not None and v.smallest_p is not None
    word = "significant" if v.significant else "not significant"
    text = f"{word} (p={v.p_value:.3g}, {counts}{interval})"
    if not v.significant and v.smallest_p >= ALPHA:
        text += (
            f"; with these values (ties included) no split can give p < {ALPHA:g} "
            f"(the smallest possible is {v.smallest_p:.3g}): add runs"
        )
    return text


# -- the comparison --------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultComparison:
    """One fault (id, kind) across every group."""

    fault_id: str
    kind: str
    groups: tuple[GroupFault, ...]
    pairs: tuple[PairVerdict, ...]

    @property
    def key(self) -> str:
        return f"{self.fault_id} {self.kind}"

    @property
    def ranking(self) -> tuple[str, ...]:
        """Groups holding the fault, best first: fewest unrecovered, then lowest median ttr."""
        present = [g for g in self.groups if g.runs]

        def rank(g: GroupFault) -> tuple[float, float]:
            median = g.stat("ttr_s").median
            return (g.unrecovered_share, math.inf if median is None else median)

        return tuple(g.group for g in sorted(present, key=rank))

    @property
    def headline(self) -> tuple[PairVerdict, ...]:
        """The pairs that involve the best group (all pairs when there are two groups)."""
        if not self.ranking:
            return ()
        best = self.ranking[0]
        return tuple(p for p in self.pairs if best in (p.first.group, p.second.group))

    def group(self, name: str) -> GroupFault:
        return next(g for g in self.groups if g.group == name)

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "id": self.fault_id,
            "kind": self.kind,
            "ranking": list(self.ranking),
            "groups": {g.group: g.to_dict() for g in self.groups},
            "comparisons": [p.to_dict() for p in self.pairs],
        }


@dataclass(frozen=True)
class Comparison:
    """Everything compare.json and compare.html hold."""

    by: str
    label: str | None
    groups: tuple[Group, ...]
    faults: tuple[FaultComparison, ...]
    phases: Mapping[str, Mapping[str, Mapping[str, Stat]]] = field(default_factory=dict)
    # per group and phase: latency percentiles over every run's requests (harness.analysis.pooled)
    pooled: Mapping[str, Mapping[str, PooledPhase]] = field(default_factory=dict)
    measurement: Measurement | None = None  # how every run was measured (the same)

    def sentences(self) -> list[str]:
        """The verdicts, one sentence per fault and pair with the best group."""
        if len(self.groups) < 2:
            name = self.groups[0].name if self.groups else "none"
            return [
                f"only one group ({name}, by {self.by}): nothing to compare; "
                "give runs of two groups or group them differently with --by"
            ]
        if not self.faults:
            return ["no fault in any run: nothing to compare on recovery"]
        return [p.sentence for f in self.faults for p in f.headline]

    def losses(self, group: str) -> list[str]:
        """Why `group` is decisively slower (significantly, or unrecovered) on some fault."""
        return [
            p.sentence for f in self.faults for p in f.pairs if p.loser == group and p.decisive_loss
        ]

    def to_dict(self) -> dict[str, object]:
        return {
            "by": self.by,
            "label": self.label,
            "measurement": None if self.measurement is None else self.measurement.to_dict(),
            "method": {
                "statistic": "difference of median ttr_s (slower - faster)",
                "test": "two-sided exact permutation test of Gehan's scores of ttr_s (the rank "
                "sum, Mann-Whitney U, without censoring; a censored run counts as >= its bound)",
                "n": "ttr values compared per group (recovered and censored runs)",
                "interval": "percentile bootstrap 95 % from `min_values_for_bootstrap` values per "
                "group, else the difference of the ranges with its real confidence",
                "bootstrap_resamples": BOOTSTRAP,
                "seed": SEED,
                "alpha": ALPHA,
                "min_runs_for_test": MIN_RUNS_FOR_TEST,
                "min_values_for_bootstrap": MIN_VALUES_FOR_BOOTSTRAP,
            },
            "groups": [_group_dict(g) for g in self.groups],
            "verdicts": self.sentences(),
            "faults": [f.to_dict() for f in self.faults],
            "phases": {
                group: {
                    phase: {m: s.to_dict() for m, s in metrics.items()}
                    for phase, metrics in phases.items()
                }
                for group, phases in self.phases.items()
            },
            "pooled_latency_ms": {
                group: {phase: p.to_dict() for phase, p in phases.items()}
                for group, phases in self.pooled.items()
            },
        }


def _group_dict(group: Group) -> dict[str, object]:
    runs = [
        {
            "run_id": r.run_id,
            "run_dir": str(r.run_dir),
            "scenario": r.measured.scenario,
            "target": r.measured.target,
            "status": r.measured.status,
            "labels": dict(r.labels),
        }
        for r in group.runs
    ]
    return {"name": group.name, "runs": runs}


def compare_runs(runs: Sequence[RunInput], by: str, label: str | None = None) -> Comparison:
    """Group the runs, match their faults and judge every pair of groups on every fault.

    Raises ScenarioError when the runs were not measured the same way (comparable.py)."""
    measured = measurement([(r.run_id, r.measured) for r in runs])
    groups = group_runs(runs)
    samples = [[fault_samples(r) for r in g.runs] for g in groups]  # run ids may repeat
    keys: dict[tuple[str, str], None] = {}
    for run in runs:
        keys.update(dict.fromkeys(fault_samples(run)))
    faults = []
    for key in keys:
        per_group = tuple(
            GroupFault(g.name, tuple(s[key] for s in group_samples if key in s))
            for g, group_samples in zip(groups, samples, strict=True)
        )
        name = f"{key[0]} {key[1]}"
        pairs = tuple(judge(name, a, b) for a, b in itertools.combinations(per_group, 2))
        faults.append(FaultComparison(key[0], key[1], per_group, pairs))
    pooled = {
        g.name: pooled_latency([(r.run_id, r.run_dir, r.measured) for r in g.runs]) for g in groups
    }
    return Comparison(by, label, groups, tuple(faults), phase_stats(groups), pooled, measured)


def phase_stats(groups: Sequence[Group]) -> dict[str, dict[str, dict[str, Stat]]]:
    """Per group, phase and metric: the Stat over the group's runs."""
    result: dict[str, dict[str, dict[str, Stat]]] = {}
    for group in groups:
        phases = [r.measured.phases for r in group.runs]
        result[group.name] = {
            name: {
                metric: stat([_phase_value(p.get(name), metric) for p in phases])
                for metric in PHASE_METRICS
            }
            for name in PHASE_NAMES
        }
    return result


def _phase_value(phase: PhaseSummary | None, metric: str) -> float | None:
    """The run's value of a phase metric; a latency percentile of fewer requests than it needs
    (stats.min_count_for: a p99 of 2 requests is their maximum) is left out."""
    if phase is None:
        return None
    if metric in QUANTILES:
        latency = phase.latency_ms
        if latency is None:
            return None
        if latency.successful < min_count_for(QUANTILES[metric]):  # the requests it is over
            return None
        return _number(getattr(latency, metric.removesuffix("_ms")))
    return _number(getattr(phase, metric))


def write_comparison_json(
    comparison: Comparison, path: Path, extra: Mapping[str, object] | None = None
) -> Path:
    """compare.json: strict JSON (NaN refused; unmeasured values are null); `extra` keys are
    added at the top level (the regression checks)."""
    data = {**comparison.to_dict(), **(extra or {})}
    text = json.dumps(data, indent=2, allow_nan=False, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path
