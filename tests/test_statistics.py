"""What the comparison statistics may claim: counts of the values compared, the smallest p the
values allow, no test or bootstrap below the sizes that can carry one, censored runs as
"at least x", and percentiles from enough requests.

Expected numbers are computed here by hand or by enumerating every split of the values, never
by the code under test.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from harness.analysis.compare import (
    FaultComparison,
    FaultSample,
    GroupFault,
    RunInput,
    compare_runs,
    fault_samples,
    judge,
    load_runs,
)
from harness.analysis.compare_report import render_compare_html
from harness.analysis.matrix import rank
from harness.analysis.matrix_words import headline
from harness.analysis.phases import latency_stats
from harness.analysis.stats import min_count_for, smallest_p_value
from tests.synthetic_run import Req, write_run


def group(name: str, ttrs: Sequence[float | None], no_impact: int = 0) -> GroupFault:
    """Recovered runs with these ttrs, then `no_impact` runs where the fault was not seen."""
    samples = [
        FaultSample(f"{name}-{i}", t is not None, None, {"ttr_s": t}) for i, t in enumerate(ttrs)
    ]
    samples += [
        FaultSample(f"{name}-x{i}", False, None, {"ttr_s": None}, "none") for i in range(no_impact)
    ]
    return GroupFault(name, tuple(samples))


def brute_force_smallest_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Enumerate every split of the pooled values: the share of splits whose rank sum is as far
    from its mean as the farthest one (two-sided), ties sharing their mean rank."""
    pooled = sorted([*a, *b])
    rank = {v: (pooled.index(v) + 1 + len(pooled) - pooled[::-1].index(v)) / 2 for v in pooled}
    ranks = [rank[v] for v in [*a, *b]]
    mean = len(a) * (len(ranks) + 1) / 2
    deviations = [
        abs(sum(ranks[i] for i in split) - mean)
        for split in itertools.combinations(range(len(ranks)), len(a))
    ]
    far = max(deviations)
    return sum(d >= far - 1e-9 for d in deviations) / len(deviations)


# -- counts ----------------------------------------------------------------------------------


def test_n_counts_the_recovery_times_compared_not_the_runs() -> None:
    # 5 runs each, but only 2 and 3 of them had a visible impact and recovered: 2 vs 3 values
    a = group("a", [1.0, 1.1], no_impact=3)
    b = group("b", [5.0, 5.1, 5.2], no_impact=2)
    pair = judge("f1 container_kill", a, b)

    assert pair.n == (2, 3)
    assert pair.basis == "too_few_runs" and pair.p_value is None  # 2 < 4 values
    assert "n=2 vs 3" in pair.sentence and "n=5 vs 5" not in pair.sentence
    assert pair.to_dict()["n"] == {"a": 2, "b": 3}


# -- the smallest p and how many runs can reach p < 0.05 -------------------------------------


def test_smallest_p_counts_ties() -> None:
    # pooled 1,1,1,2,2,2,2,2: the 1s share rank 2, the 2s rank 6; a's rank sum is 18 on
    # average; the farthest: a = three 1s and one 2 (12, C(5,1) = 5 ways) or four 2s (24,
    # C(5,4) = 5 ways): p >= 10 / C(8,4) = 10/70 = 0.143, not the 2/70 of untied values
    a, b = [1.0, 1.0, 1.0, 2.0], [2.0, 2.0, 2.0, 2.0]
    assert brute_force_smallest_p(a, b) == pytest.approx(10 / 70)
    assert smallest_p_value(a, b) == pytest.approx(10 / 70)
    assert smallest_p_value([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]) == pytest.approx(2 / 70)

    pair = judge("f1 x", group("a", a), group("b", b))
    assert pair.p_value == pytest.approx(10 / 70) and pair.significant is False
    assert "the smallest possible is 0.143" in pair.sentence


def test_four_runs_each_are_the_fewest_that_can_reach_significance() -> None:
    # separated groups: the most extreme split of all; 3 vs 3: 2/C(6,3) = 0.1 >= 0.05
    assert brute_force_smallest_p([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(0.1)
    three = judge("f1 x", group("a", [1.0, 1.1, 1.2]), group("b", [5.0, 5.1, 5.2]))
    assert three.p_value is None and three.significant is None and not three.decisive_loss

    # 4 vs 4: 2/C(8,4) = 2/70 = 0.029 < 0.05
    four = judge("f1 x", group("a", [1.0, 1.1, 1.2, 1.3]), group("b", [5.0, 5.1, 5.2, 5.3]))
    assert four.p_value == pytest.approx(2 / 70)
    assert four.significant is True and four.decisive_loss and four.winner == "a"


# -- intervals -------------------------------------------------------------------------------


def exclusion_rate(n: int, experiments: int, seed: int) -> tuple[float, float]:
    """No-difference experiments (both groups from one normal distribution): how often the
    reported interval of the difference excluded 0, and the most it may (1 - its confidence)."""
    rng = np.random.default_rng(seed)
    excluded, allowed = 0, 1.0
    for i in range(experiments):
        a = [float(x) for x in rng.normal(10.0, 1.0, n)]
        b = [float(x) for x in rng.normal(10.0, 1.0, n)]
        interval = judge("f1 x", group(f"a{i}", a), group(f"b{i}", b)).interval
        assert interval is not None
        excluded += interval.low > 0 or interval.high < 0
        allowed = min(allowed, 1.0 - interval.confidence)
    return excluded / experiments, allowed


@pytest.mark.parametrize("n", [3, 5])
def test_the_interval_excludes_no_difference_no_more_often_than_it_claims(n: int) -> None:
    # at 3 vs 3 a percentile bootstrap claiming 95 % excluded 0 in ~10 % of such experiments
    rate, allowed = exclusion_rate(n, 300, seed=n)
    assert rate <= allowed


def test_below_five_values_the_interval_is_the_ranges_with_their_real_confidence() -> None:
    pair = judge("f1 x", group("a", [1.0, 1.2, 1.4]), group("b", [2.0, 2.5, 3.0]))
    assert pair.interval is not None and pair.interval.method == "range"
    assert pair.ci95_s is None
    # [2.0 - 1.4, 3.0 - 1.0]; each range of 3 holds its median with 1 - 2/2^3 = 0.75
    assert (pair.interval.low, pair.interval.high) == pytest.approx((0.6, 2.0))
    assert pair.interval.confidence == pytest.approx(0.75 * 0.75)
    assert "with at least 56% confidence" in pair.sentence


# -- censored runs ---------------------------------------------------------------------------


def summary_run(run_id: str, fault: dict[str, object]) -> RunInput:
    summary = {"run_id": run_id, "faults": [{"id": "f1", "kind": "container_kill", **fault}]}
    return RunInput(Path(run_id), run_id, "g", summary, {})


def recovered(ttr: float) -> dict[str, object]:
    return {"impact": "visible", "recovered": True, "ttr_s": ttr}


CENSORED = {
    "impact": "visible",
    "recovered": None,
    "ttr_s": None,
    "censored": True,
    "ttr_at_least_s": 2.0,
    "reason": "the data ended before the recovery could be confirmed",
}


def from_summaries(name: str, faults: Sequence[dict[str, object]]) -> GroupFault:
    runs = [summary_run(f"{name}-{i}", f) for i, f in enumerate(faults)]
    return GroupFault(name, tuple(fault_samples(r)[("f1", "container_kill")] for r in runs))


def test_a_censored_run_is_at_least_x_never_a_decisive_unrecovered_loss() -> None:
    a = from_summaries("a", [recovered(t) for t in (1.0, 1.1, 1.2, 1.3)])
    b = from_summaries("b", [*(recovered(t) for t in (5.0, 5.1, 5.2)), CENSORED])
    pair = judge("f1 container_kill", a, b)

    assert b.unrecovered == () and b.censored == ("b-3",)
    assert pair.basis == "permutation" and pair.n == (4, 4)
    # Gehan scores (surely above - surely below): a 1.0..1.3 -> -7, -5, -3, -1; b 5.0, 5.1,
    # 5.2 -> 2, 4, 6; ">= 2.0" is surely above the four a's only -> 4. a's sum -16 is the
    # lowest of the C(8,4) = 70 splits, 16 the highest: p = 2/70
    assert pair.p_value == pytest.approx(2 / 70)
    assert pair.winner == "a" and pair.decisive_loss
    assert "recovered in at least 2.000 s" in pair.sentence
    assert "never recovered" not in pair.sentence


def test_a_lower_median_that_is_only_a_lower_bound_names_no_winner() -> None:
    # b: 0.5, 0.6 and two ">= 2.0": sorted 0.5, 0.6, 2.0, 2.0 -> median 1.3, but the censored
    # values may lie anywhere above 2.0, so b's median is at least 1.3; a's is 1.5
    a = from_summaries("a", [recovered(t) for t in (1.4, 1.5, 1.5, 1.6)])
    b = from_summaries("b", [recovered(0.5), recovered(0.6), CENSORED, CENSORED])
    pair = judge("f1 container_kill", a, b)

    assert b.stat("ttr_s").median == pytest.approx(1.3) and b.stat("ttr_s").median_is_lower_bound
    assert pair.winner is None and not pair.decisive_loss
    assert "only a lower bound" in pair.sentence
    assert math.isclose(pair.difference_s or 0.0, 1.5 - 1.3)


# -- latency percentiles ---------------------------------------------------------------------


def latency_run(run_dir: Path, latency_ms: float, count: int, step_s: float = 0.01) -> Path:
    """A run without faults (all baseline): `count` successful requests of `latency_ms`."""
    requests = [Req(i * step_s, latency_ms) for i in range(count)]
    write_run(run_dir, requests, load_s=(0.0, count * step_s))
    return run_dir


def test_latency_percentiles_are_pooled_over_every_runs_requests(tmp_path: Path) -> None:
    dirs = [
        latency_run(tmp_path / "r1", 5.0, 600),
        latency_run(tmp_path / "r2", 5.0, 600),
        latency_run(tmp_path / "r3", 2000.0, 600),
    ]
    comparison = compare_runs(load_runs(dirs, "target"), "target")
    (group,) = comparison.groups

    # per run, p99 of 600 equal latencies is that latency: 5, 5, 2000 -> median 5 ms
    per_run = comparison.phases[group.name]["baseline"]["p99_ms"]
    assert sorted(per_run.values) == pytest.approx([5.0, 5.0, 2000.0])
    assert per_run.median == pytest.approx(5.0)
    # pooled: 1200 requests of 5 ms and 600 of 2000 ms, sorted; p99 at index 0.99 x 1799 =
    # 1781 (> 1199, among the 2000s), p50 at 899.5 (among the 5s)
    pooled = comparison.pooled[group.name]["baseline"].percentiles
    assert pooled["p99_ms"].value == pytest.approx(2000.0) and pooled["p99_ms"].n == 1800
    assert pooled["p50_ms"].value == pytest.approx(5.0)
    html = render_compare_html(comparison, [])
    assert "2000.0 ms (1800 requests of 3 runs)" in html


def test_a_percentile_needs_one_value_beyond_it_rounded_up() -> None:
    # one value beyond the q-th percentile: n * (1 - q/100) >= 1, so n >= 1 / (1 - q/100),
    # rounded up: p50 1/0.5 = 2, p95 1/0.05 = 20, p97 1/0.03 = 33.3 -> 34 (rounding gave 33,
    # where 33 * 0.03 = 0.99 values lie beyond), p99 1/0.01 = 100, p99.9 1/0.001 = 1000
    expected = {50: 2, 95: 20, 97: 34, 99: 100, 99.9: 1000}
    assert {q: min_count_for(q) for q in expected} == expected


def test_a_runs_summary_and_a_comparison_need_the_same_counts() -> None:
    # the summary's percentiles appear at 2 (p50), 20 (p95) and 100 (p99) requests, as above
    def known(n: int) -> set[str]:
        stats = latency_stats(np.arange(1.0, n + 1.0))
        assert stats is not None
        return {name for name in ("p50", "p95", "p99") if getattr(stats, name) is not None}

    assert [known(n) for n in (1, 2, 19, 20, 99, 100)] == [
        set(),
        {"p50"},
        {"p50"},
        {"p50", "p95"},
        {"p50", "p95"},
        {"p50", "p95", "p99"},
    ]
    stats = latency_stats(np.arange(1.0, 20.0))
    assert stats is not None
    assert stats.null_reasons()["p95"] == "p95 needs at least 20 successful requests, 19 here"


def test_a_percentile_of_too_few_requests_is_none_with_the_reason(tmp_path: Path) -> None:
    # 2 requests: a p99 "of" them is their maximum; p99 needs one beyond it: 1 / 0.01 = 100,
    # p95 1 / 0.05 = 20, p50 1 / 0.5 = 2 (so p50 is the mean of 7 and 7)
    comparison = compare_runs(
        load_runs([latency_run(tmp_path / "r", 7.0, 2, 0.5)], "target"), "target"
    )
    (group,) = comparison.groups
    assert comparison.phases[group.name]["baseline"]["p99_ms"].n == 0
    p99 = comparison.pooled[group.name]["baseline"].percentiles["p99_ms"]
    assert p99.value is None and p99.n == 2
    assert p99.reason == "p99 needs at least 100 successful requests, 2 here"
    p95 = comparison.pooled[group.name]["baseline"].percentiles["p95_ms"]
    assert p95.value is None and p95.reason == "p95 needs at least 20 successful requests, 2 here"
    p50 = comparison.pooled[group.name]["baseline"].percentiles["p50_ms"]
    assert p50.value == pytest.approx(7.0)


def test_lost_requests_are_read_from_the_fixed_comparison_window() -> None:
    # the analysis puts intended - successful over [t0, t0 + window] in the fault's `window`
    faults = [{**recovered(1.0), "window": {"lost_requests": n}} for n in (12, 30, 15)]
    lost = from_summaries("a", faults).stat("lost_requests")
    assert lost.values == (12.0, 30.0, 15.0) and lost.median == 15.0


def test_a_ranking_led_by_a_lower_bound_says_the_order_is_not_established() -> None:
    # docker: 0.5 and two ">= 2.0": sorted 0.5, 2.0, 2.0, median 2.0 but only at least that
    # (the censored runs may lie anywhere above); swarm: 5.0, 5.1, 5.2, median 5.1
    docker = from_summaries("docker", [recovered(0.5), CENSORED, CENSORED])
    swarm = from_summaries("swarm", [recovered(t) for t in (5.0, 5.1, 5.2)])
    pair = judge("f1 container_kill", docker, swarm)
    fault = FaultComparison("f1", "container_kill", (docker, swarm), (pair,))
    text = headline(rank("s", fault))

    assert pair.winner is None
    assert text.startswith("docker ranks first on f1 container_kill with a median of at least")
    assert "the order is not established" in text
    assert "recovered fastest" not in text
