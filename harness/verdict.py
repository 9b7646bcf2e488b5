"""What a finished run, trials set or matrix tells its user: the lines printed, the exit code.

The command line prints these lines and exits with these codes; deciding them is library work,
so a CI wrapper or a test gets the same answer without the CLI.

Exit codes: 0 every SLO met; 1 an SLO violated (a check without data counts, unless the
scenario allows it) or a broken baseline (not an experiment); 2 invalid input; 3 a target or
harness error; 128 + the signal's number when SIGINT/SIGTERM stopped it. Trials: 0 every trial
met its SLOs, 1 a trial violated one (or had a broken baseline), 3 a trial failed to run. A
matrix is a comparison, not a gate: 0 when every run ran, 3 when one failed to run. A
comparison is a gate only when asked: 1 when --fail-if-slower's group is decisively slower, or
--fail-on-regression finds a metric worse beyond its threshold.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from harness.results import ABORTED, COMPLETED, FAILED
from harness.results.summary import ClusterView, FaultGroup, FaultSummary, SloCheck, Summary

if TYPE_CHECKING:
    from harness.analysis.aggregate import TrialsAggregate
    from harness.analysis.compare import Comparison
    from harness.analysis.matrix import Matrix
    from harness.analysis.thresholds import Check
    from harness.campaign import CampaignOutcome

EXIT_OK, EXIT_SLO, EXIT_INPUT, EXIT_ERROR = 0, 1, 2, 3
EXIT_BY_STATUS = {"passed": EXIT_OK, "slo_violated": EXIT_SLO, "baseline_broken": EXIT_SLO}


def signal_exit_code(signum: int) -> int:
    """The shell's convention for a process a signal stopped: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + signum


def run_exit_code(status: str, signum: int | None, summary: Summary | None) -> int:
    """One run: from the runner's status (completed, aborted, failed) and its summary."""
    if status == ABORTED and signum is not None:
        return signal_exit_code(signum)
    if status != COMPLETED or summary is None:
        return EXIT_ERROR
    return EXIT_BY_STATUS.get(summary.status, EXIT_ERROR)


def trials_exit_code(aggregate_status: str, signum: int | None) -> int:
    """A trials set, from its aggregate's status (harness.analysis.aggregate)."""
    if aggregate_status == ABORTED and signum is not None:
        return signal_exit_code(signum)
    return {"passed": EXIT_OK, "slo_violated": EXIT_SLO}.get(aggregate_status, EXIT_ERROR)


def matrix_exit_code(outcome: CampaignOutcome) -> int:
    """A matrix: whether every run ran (its SLO verdicts are in the report, not the code)."""
    if outcome.interrupted and outcome.signum is not None:
        return signal_exit_code(outcome.signum)
    return EXIT_ERROR if any(r.outcome == FAILED for r in outcome.results) else EXIT_OK


# -- one run ----------------------------------------------------------------------------------


def verdict_lines(summary: Summary) -> list[str]:
    """What `harness run` prints about a run: faults, SLO checks, and the verdict last."""
    lines: list[str] = []
    for fault in summary.faults:
        lines += _fault_lines(fault)
    lines += [_group_line(group) for group in summary.fault_groups]
    lines += [f"warning: {warning}" for warning in summary.warnings]
    for check in summary.slo.checks:
        line = f"  slo {_check_text(check)} -> {check.verdict}"
        if check.verdict != "pass" and check.reason:
            line += f": {check.reason}"
        lines.append(line)
    lines.append(final_line(summary))
    return lines


def _check_text(check: SloCheck) -> str:
    """`ttr_s[f1]: 0.481 (limit 15)`; a check with no limit (recovered[f1]) shows no limit."""
    value = check.value
    shown = f"{value:.3f}" if isinstance(value, float) else str(value)
    text = f"{check.name}: {shown}"
    if check.limit is None:
        return text
    return f"{text} ({'min' if check.bound == 'min' else 'limit'} {check.limit})"


def _outcome(fault: FaultSummary) -> str:
    if fault.impact == "none":
        outcome = "no visible impact"
    elif fault.impact == "unmeasured":
        outcome = "not measured"
    elif _finite(fault.ttr_s) is not None:
        outcome = f"recovered in {fault.ttr_s:.3f} s"
    elif fault.censored:
        outcome = f"recovered in at least {fault.ttr_at_least_s} s (the data ended first)"
    else:
        outcome = "NOT recovered"
    if fault.impact_kind in ("latency", "both"):
        outcome += f" ({fault.impact_kind} impact)"
    return outcome


def _counts(fault: FaultSummary) -> str:
    own = fault.view_counts
    counts = f"all users: {fault.failed_requests} of {fault.requests_in_window}"
    if own is not None and fault.view == "instance":
        counts = f"its own requests: {own.failed_requests} of {own.requests} failed; {counts}"
    return counts


def _fault_lines(fault: FaultSummary) -> list[str]:
    head = f"{fault.id} {fault.kind} on {', '.join(fault.targets)}"
    lines = [f"{head}: {_outcome(fault)}; {_counts(fault)} failed in its window"]
    if fault.observed:
        lines.append(f"  measured on {fault.observed}")
    if fault.reason:
        lines.append(f"  why: {fault.reason}")
    if fault.overlapped_with:
        shared = fault.shared_observations_with
        note = f"; shares its observations with {', '.join(shared)}" if shared else ""
        lines.append(f"  overlapped with {', '.join(fault.overlapped_with)}{note}")
    if fault.cluster is not None:
        steps = _cluster_steps(fault.cluster) or ["no cluster events"]
        lines.append("  orchestrator: " + ", ".join(steps))
    return lines


def _cluster_steps(cluster: ClusterView) -> list[str]:
    steps = []
    for value, label in (
        (cluster.to_node_down_s, "node down"),
        (cluster.to_degraded_s, "degraded"),
        (cluster.to_full_strength_s, "full strength"),
    ):
        seconds = _finite(value)
        if seconds is not None:
            steps.append(f"{label} +{seconds:.3f} s")
    return steps


def _group_line(group: FaultGroup) -> str:
    ttr = group.ttr_s
    parts = [f"{len(group.occurrences)} occurrences"]
    if ttr.n:
        parts.append(f"ttr median {ttr.median} s, max {ttr.max} s (n={ttr.n})")
    if group.no_impact:
        parts.append(f"{group.no_impact} without visible impact")
    if group.unrecovered:
        parts.append(f"never recovered: {', '.join(group.unrecovered)}")
    return f"{group.id} {group.kind} (all occurrences): " + ", ".join(parts)


def _finite(value: float | None) -> float | None:
    """A finite number, or None (NaN and infinities are no measurement)."""
    return value if value is not None and math.isfinite(value) else None


def final_line(summary: Summary) -> str:
    """The verdict: 'SLOs met', or '<what>: <why>' (the CLI colours what comes before ': ')."""
    status, reason = summary.status, summary.status_reason
    if status == "passed":
        return "SLOs met"
    if status == "baseline_broken":
        return f"not an experiment: {reason}"
    if status == "slo_violated":
        return f"SLO violated: {reason}"
    return f"run {status}: no SLO verdict (the run did not complete)"


# -- trials and the matrix ------------------------------------------------------------------


def trials_lines(aggregate: TrialsAggregate) -> list[str]:
    """A sentence per fault over the trials, then each trial left out and why."""
    from harness.analysis.trials_report import fault_sentences

    lines = fault_sentences(aggregate)
    lines += [
        f"trial {trial.index}: {trial.status}: {trial.reason or ''} (left out)"
        for trial in aggregate.trials
        if not trial.included
    ]
    return lines


def trials_final_line(aggregate: TrialsAggregate) -> str:
    return f"trials {aggregate.status}: {len(aggregate.included)} of {aggregate.planned} summed up"


def matrix_lines(matrix: Matrix) -> list[str]:
    """The headline of every ranking, then each run left out and why."""
    from harness.analysis.matrix_words import headline

    lines = [f"{s.scenario}: {headline(r)}" for s in matrix.scenarios for r in s.rankings]
    lines += [
        f"left out: run {r.index} {r.scenario} on {r.target}: {r.status}"
        + (f" ({r.reason})" if r.reason else "")
        for r in matrix.excluded
    ]
    return lines


def compare_gates(
    comparison: Comparison,
    checks: list[Check],
    fail_if_slower: str | None,
    fail_on_regression: bool,
) -> tuple[int, list[str]]:
    """The exit code of `harness compare` and the lines that say why."""
    code, lines = EXIT_OK, []
    if fail_if_slower is not None:
        losses = comparison.losses(fail_if_slower)
        lines += [f"--fail-if-slower {fail_if_slower}: {loss}" for loss in losses]
        code = EXIT_SLO if losses else code
    if fail_on_regression:
        regressions = [c for c in checks if c.regression]
        lines += [f"--fail-on-regression: {c.sentence}" for c in regressions]
        if not regressions:
            lines.append("--fail-on-regression: no metric is worse beyond its threshold")
        code = EXIT_SLO if regressions else code
    return code, lines
