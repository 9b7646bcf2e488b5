"""Every function of harness/analysis/stats.py and pooled.py against an oracle written here,
on many small random inputs with ties and censored values: permutation p by enumerating every
relabelling, Gehan scores by all pairs, percentiles by sorting, coverages by enumerating which
side of the median each run falls, bootstrap figures against their exact distribution over
every resample. The oracles use exact fractions and share no code with the module.
"""

from __future__ import annotations

import itertools
import math
import statistics
import tempfile
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.analysis import pooled, stats
from harness.results.summary import as_summary

FEW = settings(max_examples=300, deadline=None)
SLOW = settings(max_examples=25, deadline=None)

# a handful of integers, so ties are frequent
small_values = st.lists(st.integers(0, 5).map(float), min_size=1, max_size=5)
wide_values = st.lists(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=40
)


@st.composite
def censored_group(draw: st.DrawFn, max_size: int = 5) -> tuple[list[float], list[bool]]:
    values = draw(st.lists(st.integers(0, 4).map(float), min_size=1, max_size=max_size))
    flags = draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values)))
    return values, flags


# --- oracles ----------------------------------------------------------------------------------


def gehan_u(x: float, x_censored: bool, y: float, y_censored: bool) -> int:
    """+1 when x's true value is known to exceed y's, -1 when known to be below, else 0. A
    censored value is "at least itself"; one censored at an exact value's level counts as above
    it (Gehan's convention: the run was still unrecovered at that time)."""
    if x_censored and y_censored:
        return 0
    if x_censored:
        return 1 if x >= y else 0
    if y_censored:
        return -1 if y >= x else 0
    return (x > y) - (x < y)


def relabellings(
    a: Sequence[float], b: Sequence[float], a_cens: Sequence[bool], b_cens: Sequence[bool]
) -> tuple[int, list[int]]:
    """Gehan's W (sum of U over a-b pairs) of the observed labels, and of every relabelling."""
    pooled_values = list(zip([*a, *b], [*a_cens, *b_cens], strict=True))
    everyone = range(len(pooled_values))

    def w(chosen: set[int]) -> int:
        return sum(
            gehan_u(*pooled_values[i], *pooled_values[j])
            for i in chosen
            for j in everyone
            if j not in chosen
        )

    every = [w(set(c)) for c in itertools.combinations(everyone, len(a))]
    return w(set(range(len(a)))), every


def oracle_p(
    a: Sequence[float], b: Sequence[float], a_cens: Sequence[bool], b_cens: Sequence[bool]
) -> tuple[Fraction, Fraction]:
    """Two-sided exact p and the smallest p any labelling could give. W's null mean is 0 (U is
    antisymmetric), so "as extreme" is |W| >= |W observed|."""
    observed, every = relabellings(a, b, a_cens, b_cens)
    p = Fraction(sum(abs(w) >= abs(observed) for w in every), len(every))
    farthest = max(abs(w) for w in every)
    return p, Fraction(sum(abs(w) == farthest for w in every), len(every))


def sides(n: int) -> list[int]:
    """For each of the 2^n equally likely ways n runs fall below (1) or above (0) the true
    median: how many fall below."""
    return [sum(p) for p in itertools.product((0, 1), repeat=n)]


def order_interval_coverage(n: int, j: int) -> Fraction:
    """P([x(j), x(n+1-j)] holds the median) = P(at least j runs below it and j above it)."""
    below = sides(n)
    return Fraction(sum(k >= j and n - k >= j for k in below), len(below))


def oracle_quantile(values: Sequence[float], q: Fraction) -> Fraction:
    """The q-th percentile by sorting, interpolating linearly between neighbours."""
    ordered = sorted(Fraction(v) for v in values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def close(x: float | None, exact: Fraction | float, scale: float = 1.0) -> bool:
    return x is not None and abs(Fraction(x) - Fraction(exact)) <= Fraction(1, 10**9) * scale


# --- ranks and scores -------------------------------------------------------------------------


@FEW
@given(small_values)
def test_midranks_count_the_values_below_and_half_the_ties(values: list[float]) -> None:
    ranks = stats.midranks(np.asarray(values, dtype=np.float64))
    for v, rank in zip(values, ranks, strict=True):
        below, equal = sum(x < v for x in values), sum(x == v for x in values)
        assert rank == below + Fraction(equal + 1, 2)


@FEW
@given(censored_group(max_size=8))
def test_gehan_scores_are_sums_over_all_pairs(group: tuple[list[float], list[bool]]) -> None:
    values, flags = group
    expected = [
        sum(gehan_u(x, xc, y, yc) for y, yc in zip(values, flags, strict=True))
        for x, xc in zip(values, flags, strict=True)
    ]
    assert stats.gehan_scores(values, flags) == expected
    uncensored = [sum((x > y) - (x < y) for y in values) for x in values]
    assert stats.gehan_scores(values) == uncensored


# --- the exact test ---------------------------------------------------------------------------


@FEW
@given(censored_group(), censored_group())
def test_permutation_p_enumerates_every_relabelling(
    a: tuple[list[float], list[bool]], b: tuple[list[float], list[bool]]
) -> None:
    p, smallest = oracle_p(a[0], b[0], a[1], b[1])
    assert close(stats.permutation_p_value(a[0], b[0], a[1], b[1]), p)
    assert close(stats.smallest_p_value(a[0], b[0], a[1], b[1]), smallest)


@FEW
@given(small_values, small_values)
def test_without_censoring_the_flags_may_be_left_out(a: list[float], b: list[float]) -> None:
    p, smallest = oracle_p(a, b, [False] * len(a), [False] * len(b))
    assert close(stats.permutation_p_value(a, b), p)
    assert close(stats.smallest_p_value(a, b), smallest)


@pytest.mark.parametrize("alpha", [0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.001])
def test_min_values_per_group_is_the_first_size_whose_best_split_is_significant(
    alpha: float,
) -> None:
    n = 1
    while oracle_p(range(n), range(n, 2 * n), [False] * n, [False] * n)[0] >= Fraction(str(alpha)):
        n += 1
    assert stats.min_values_per_group(alpha) == n
    assert stats.min_values_per_group(stats.ALPHA) == stats.MIN_VALUES_FOR_TEST


@FEW
@given(censored_group(max_size=6), censored_group(max_size=6))
def test_superiority_counts_pairings_won_and_half_the_undecided(
    a: tuple[list[float], list[bool]], b: tuple[list[float], list[bool]]
) -> None:
    us = [gehan_u(x, xc, y, yc) for x, xc in zip(*a, strict=True) for y, yc in zip(*b, strict=True)]
    result = stats.superiority(a[0], b[0], a[1], b[1])
    assert result.pairs == len(a[0]) * len(b[0])
    assert result.wins == us.count(-1) + Fraction(us.count(0), 2)
    assert close(result.share, Fraction(result.wins) / result.pairs)


@FEW
@given(small_values, small_values)
def test_superiority_without_censoring_is_mann_whitney_u(a: list[float], b: list[float]) -> None:
    u = sum(1 if x < y else Fraction(1, 2) if x == y else 0 for x in a for y in b)
    assert stats.superiority(a, b).wins == u


def test_superiority_of_nothing_is_even() -> None:
    assert stats.superiority([], [1.0]).share == 0.5


# --- intervals --------------------------------------------------------------------------------


@FEW
@given(st.lists(st.integers(0, 6).map(float), min_size=1, max_size=12))
def test_median_interval_is_the_narrowest_order_interval_reaching_95(values: list[float]) -> None:
    n, ordered = len(values), sorted(values)
    reaching = [
        j for j in range(1, n // 2 + 1) if order_interval_coverage(n, j) >= Fraction(95, 100)
    ]
    j = max(reaching, default=1)
    interval = stats.median_interval(values)
    assert interval is not None
    assert (interval.low, interval.high) == (ordered[j - 1], ordered[n - j])
    assert close(interval.coverage, order_interval_coverage(n, j))
    assert interval.reaches == bool(reaching)
    assert interval.to_dict()["reaches_95"] == bool(reaching)


def test_median_interval_of_nothing_is_none() -> None:
    assert stats.median_interval([]) is None


@pytest.mark.parametrize("n", range(1, 14))
def test_range_confidence_is_the_share_of_sides_not_all_alike(n: int) -> None:
    below = sides(n)
    expected = Fraction(sum(0 < k < n for k in below), len(below))
    assert close(stats.range_confidence(n), expected)


def resampled_medians(values: Sequence[float]) -> Counter[Fraction]:
    """The median of every equally likely resample (with replacement) of `values`."""
    n = len(values)
    return Counter(
        Fraction(statistics.median(values[i] for i in picks))
        for picks in itertools.product(range(n), repeat=n)
    )


def exact_quantile(distribution: Counter[Fraction], p: Fraction) -> Fraction:
    """The smallest value whose cumulative probability reaches p."""
    total, seen = sum(distribution.values()), 0
    for value in sorted(distribution):
        seen += distribution[value]
        if Fraction(seen, total) >= p:
            return value
    raise AssertionError("unreachable")


@SLOW
@given(
    st.lists(st.integers(0, 20).map(float), min_size=5, max_size=6),
    st.lists(st.integers(0, 20).map(float), min_size=5, max_size=6),
)
def test_bootstrap_interval_brackets_the_exact_bootstrap_quantiles(
    a: list[float], b: list[float]
) -> None:
    """10,000 resamples put the 2.5 % point within 1 % of the exact one (over 6 standard
    errors); the exact distribution enumerates every resample of each group."""
    med_a, med_b = resampled_medians(a), resampled_medians(b)
    difference: Counter[Fraction] = Counter()
    for (x, cx), (y, cy) in itertools.product(med_a.items(), med_b.items()):
        difference[y - x] += cx * cy
    low, high = stats.bootstrap_ci(a, b)
    assert exact_quantile(difference, Fraction(15, 1000)) <= low
    assert low <= exact_quantile(difference, Fraction(35, 1000))
    assert exact_quantile(difference, Fraction(965, 1000)) <= high
    assert high <= exact_quantile(difference, Fraction(985, 1000))
    interval = stats.difference_interval(a, b)
    assert interval is not None and interval.method == "bootstrap"
    assert (interval.low, interval.high, interval.confidence) == (low, high, 0.95)


@FEW
@given(st.lists(st.integers(0, 5).map(float), max_size=4), small_values)
def test_difference_interval_below_five_values_is_the_ranges(
    few: list[float], other: list[float]
) -> None:
    """One group below five values (either one) gives the ranges; one below two, nothing."""
    for a, b in ((few, other), (other, few)):
        check_range_interval(a, b)


def check_range_interval(a: list[float], b: list[float]) -> None:
    interval = stats.difference_interval(a, b)
    if min(len(a), len(b)) < 2:
        assert interval is None
        return
    assert interval is not None and interval.method == "range"
    assert (interval.low, interval.high) == (min(b) - max(a), max(b) - min(a))

    def holds(n: int) -> Fraction:
        return Fraction(sum(0 < k < n for k in sides(n)), 2**n)

    assert close(interval.confidence, holds(len(a)) * holds(len(b)))


# --- percentiles ------------------------------------------------------------------------------


@FEW
@given(wide_values)
def test_quartiles_are_the_sorted_values_interpolated(values: list[float]) -> None:
    found = stats.quartiles(values)
    assert found is not None
    scale = max(1.0, *(abs(v) for v in values))
    assert close(found[0], oracle_quantile(values, Fraction(25)), scale)
    assert close(found[1], oracle_quantile(values, Fraction(75)), scale)
    assert stats.quartiles([]) is None


def needed_for(q: Fraction) -> int:
    """The fewest values that put at least one value's worth of them beyond the q-th
    percentile: the smallest n with n (100 - q) / 100 >= 1."""
    return math.ceil(100 / (100 - q))  # exact: q is a Fraction


def test_min_count_for_every_percentile_to_three_decimals() -> None:
    wrong = [
        k / 1000
        for k in range(100_000)
        if stats.min_count_for(k / 1000) != needed_for(Fraction(k, 1000))
    ]
    assert wrong == []
    for beyond_the_range in (100.0, 100.5, -1.0):
        with pytest.raises(ValueError, match="between 0 and 100"):
            stats.min_count_for(beyond_the_range)


@FEW
@given(st.integers(1, 9_900), st.lists(st.integers(0, 50).map(float), max_size=120))
def test_percentile_sorts_enough_values_and_refuses_too_few(
    hundredths: int, values: list[float]
) -> None:
    q = Fraction(hundredths, 100)
    found = stats.percentile(values, hundredths / 100)
    assert found.n == len(values)
    if len(values) < needed_for(q):
        assert found.value is None and found.reason is not None
        assert str(needed_for(q)) in found.reason
    else:
        assert found.reason is None and close(found.value, oracle_quantile(values, q), 50)


# --- rank shares ------------------------------------------------------------------------------


def exact_rank_shares(groups: dict[str, list[float]]) -> dict[str, list[Fraction]]:
    """Over every combination of every group's resamples: each group's share of each place,
    ordered by the share of never-recovered (inf) runs, then the median of the others; groups
    tied on both split the places they cover."""
    names = [g for g, v in groups.items() if v]
    resamples = [
        [
            [groups[g][i] for i in picks]
            for picks in itertools.product(range(len(groups[g])), repeat=len(groups[g]))
        ]
        for g in names
    ]
    places = {g: [Fraction(0)] * len(names) for g in names}
    combos = list(itertools.product(*resamples))
    for combo in combos:
        keys = {}
        for g, sample in zip(names, combo, strict=True):
            finite = [v for v in sample if not math.isinf(v)]
            keys[g] = (
                Fraction(len(sample) - len(finite), len(sample)),
                Fraction(statistics.median(finite)) if finite else math.inf,
            )
        for g in names:
            ahead = sum(keys[o] < keys[g] for o in names)
            tied = sum(keys[o] == keys[g] for o in names)
            for place in range(ahead, ahead + tied):
                places[g][place] += Fraction(1, tied)
    return {g: [share / len(combos) for share in places[g]] for g in names}


@SLOW
@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c"]),
        st.lists(st.sampled_from([0.0, 1.0, 2.0, math.inf]), max_size=3),
        min_size=1,
    )
)
def test_rank_shares_approach_the_exact_bootstrap_ranking(groups: dict[str, list[float]]) -> None:
    """2,000 resamples: a share's standard error is at most 0.011; 0.06 is over 5 of them."""
    found = stats.rank_shares(groups)
    exact = exact_rank_shares(groups)
    assert found.keys() == exact.keys()
    for g, shares in exact.items():
        assert all(abs(f - float(e)) <= 0.06 for f, e in zip(found[g], shares, strict=True)), g


# --- pooled percentiles -----------------------------------------------------------------------


# starts and edges on a few nanoseconds, so requests start on edges often
requests = st.lists(
    st.tuples(st.integers(0, 60), st.integers(1, 40).map(float), st.booleans()), max_size=80
)
intervals = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 30)).map(lambda s: (s[0], s[0] + s[1])),
    max_size=3,
)


@SLOW
@given(
    st.lists(st.one_of(st.none(), requests), min_size=1, max_size=4),
    st.fixed_dictionaries({name: intervals for name in ("baseline", "fault", "recovery", "after")}),
)
def test_pooled_latency_pools_every_runs_requests_in_the_phase(
    runs: list[list[tuple[int, float, bool]] | None], phases: dict[str, list[tuple[int, int]]]
) -> None:
    """A run given None has no requests file. A request counts once however many of the
    phase's [start, end) intervals hold its start."""
    summary = {
        **{"run_id": "r", "scenario": "s", "status": "passed", "target": "docker"},
        "phases": {name: {"intervals": [list(i) for i in spans]} for name, spans in phases.items()},
    }
    with tempfile.TemporaryDirectory() as tmp:
        inputs = []
        for index, rows in enumerate(runs):
            run_dir = Path(tmp) / f"run-{index}"
            run_dir.mkdir()
            if rows is not None:
                frame = pd.DataFrame(rows, columns=["start_ns", "latency_ms", "ok"])
                frame = frame.astype({"start_ns": "int64", "latency_ms": "float64", "ok": "bool"})
                frame.to_parquet(run_dir / pooled.REQUESTS_FILE)
            inputs.append((f"run-{index}", run_dir, as_summary(summary)))
        found = pooled.pooled_latency(inputs)
    unread = tuple(f"run-{i}" for i, rows in enumerate(runs) if rows is None)
    for name, spans in phases.items():
        latencies = [
            latency
            for rows in runs
            if rows is not None
            for start, latency, ok in rows
            if ok and any(low <= start < high for low, high in spans)
        ]
        phase = found[name]
        assert phase.unread == unread and phase.runs == len(runs) - len(unread)
        for metric, q in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99)):
            result = phase.percentiles[metric]
            assert result.n == len(latencies)
            if len(latencies) < needed_for(Fraction(q)):
                assert result.value is None
            else:
                assert close(result.value, oracle_quantile(latencies, Fraction(q)), 40)
