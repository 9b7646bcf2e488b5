"""The matrix's findings in plain sentences (HTML, Markdown and the terminal share them).

`headline(ranking)`: who recovered fastest and by how much ("podman recovered fastest from f1
container_kill: median 0.52 s; then docker at 1.31 s (+0.79 s, 2.5× as long)...").
`step_sentence(step)`: how sure that order is, in words a newcomer reads without a statistics
course: how many pairings of runs the faster won, the interval of the difference, the test's
p when it can be run, and what to do when the runs are too few to call it.
"""

from __future__ import annotations

from harness.analysis.compare import MIN_RUNS_FOR_TEST, GroupFault
from harness.analysis.matrix import Ranking, Step
from harness.analysis.stats import ALPHA


def _median(group: GroupFault) -> float | None:
    return group.stat("ttr_s").median


def headline(ranking: Ranking) -> str:
    """Who recovered fastest, then the others with their gap to the leader."""
    fault = ranking.fault.key
    if not ranking.order:
        return f"{fault}: no target holds this fault"
    first = ranking.group(ranking.order[0])
    lead = _median(first)
    if lead is None:
        why = "; ".join(
            f"{g.group}: {g.describe_impact() or 'never recovered'}"
            for g in (ranking.group(t) for t in ranking.order)
        )
        return f"{fault}: no target has a time to recover to rank ({why})"
    n = first.stat("ttr_s").n
    runs = f"over {n} run{'s' * (n != 1)}"
    if first.stat("ttr_s").median_is_lower_bound:  # censored runs: it may truly be slower
        lead_text = (
            f"{first.group} ranks first on {fault} with a median of at least {lead:.2f} s "
            f"{runs} (a lower bound: censored runs, so the order is not established)"
        )
    else:
        lead_text = f"{first.group} recovered fastest from {fault}: median {lead:.2f} s {runs}"
    parts = [lead_text]
    for target in ranking.order[1:]:
        parts.append(_then(ranking.group(target), lead))
    return "; ".join(parts) + "."


def _then(group: GroupFault, lead: float) -> str:
    median = _median(group)
    if median is None:
        if group.unrecovered:
            return f"{group.group} never recovered in {len(group.unrecovered)} of {group.runs} runs"
        return f"{group.group} has no time to recover ({group.describe_impact()})"
    gap = median - lead
    ratio = f", {median / lead:.1f}× as long" if lead > 0 and median / lead >= 1.05 else ""
    bound = "at least " if group.stat("ttr_s").median_is_lower_bound else ""
    text = f"then {group.group} at {bound}{median:.2f} s (+{gap:.2f} s{ratio})"
    if group.unrecovered:
        text += f", and it never recovered in {len(group.unrecovered)} of {group.runs} runs"
    return text


def step_sentence(step: Step) -> str:
    """How sure `step.faster` is ahead of `step.slower` (module docstring)."""
    verdict = step.verdict
    a, b = step.faster, step.slower
    if verdict.basis == "unrecovered":
        return verdict.sentence
    if verdict.basis in ("no_impact", "missing"):
        return verdict.sentence
    counts = verdict.n
    wins = step.wins.describe(a, b, "recovered faster")
    parts = [wins]
    if verdict.interval is not None:
        parts.append(verdict.interval.describe(" s", 2))
    if verdict.p_value is not None and verdict.smallest_p is not None:
        if verdict.significant:
            parts.append(f"significant (p={verdict.p_value:.3g})")
        else:
            note = f"not significant (p={verdict.p_value:.3g})"
            if verdict.smallest_p >= ALPHA:
                note += (
                    f": with these {counts[0]} and {counts[1]} recovery times (ties included) "
                    f"no order can reach p < {ALPHA:g} (the smallest possible is "
                    f"{verdict.smallest_p:.2g}); add repetitions to call it"
                )
            else:
                note += f": {a} and {b} could not be told apart"
            parts.append(note)
    else:
        parts.append(
            f"too few recovery times to test ({counts[0]} and {counts[1]}): no order can be "
            f"called significant below {MIN_RUNS_FOR_TEST} per target (3 against 3 gives "
            f"p = 0.1 at best, never < {ALPHA:g}); repeat {MIN_RUNS_FOR_TEST} times or more "
            "to call it"
        )
    censored = [
        f"{g.group}: {g.describe_censored()}" for g in verdict.pair if g.describe_censored()
    ]
    if censored:
        parts.append("; ".join(censored) + ", compared as at least that")
    return f"{a} vs {b}: " + "; ".join(parts) + "."


def what_users_saw(group: GroupFault) -> str:
    """'412 failed requests, 93.1 % availability (medians)'."""
    failed = group.stat("failed_requests").median
    availability = group.stat("availability").median
    parts = []
    if failed is not None:
        parts.append(f"{failed:.0f} failed requests")
    if availability is not None:
        parts.append(f"{availability * 100:.1f} % availability")
    return ", ".join(parts) + " (medians)" if parts else "—"
