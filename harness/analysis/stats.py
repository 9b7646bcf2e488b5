"""Statistics over a handful of runs: distributions, intervals, tests, rankings.

Runs are few (a run takes half a minute), so every method here is exact or distribution-free
where it can be, and says what it can and cannot tell: `median_interval` (order statistics),
`permutation_p_value` (Gehan's scores, exact; `smallest_p_value`, `MIN_VALUES_FOR_TEST`),
`difference_interval` (percentile bootstrap from `MIN_VALUES_FOR_BOOTSTRAP` values),
`superiority` (the share of pairs of runs), `rank_shares` (a bootstrap of a ranking) and
`percentile` (only from `min_count_for` values). tests/test_stats_oracle.py checks each against
brute force.

What each can tell, with its limits: docs/METRICS.md, "Comparing runs".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt

ALPHA = 0.05
LEVEL = 0.95
BOOTSTRAP = 10_000
SEED = 20_240_601

FloatArray = npt.NDArray[np.float64]


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


@dataclass(frozen=True)
class MedianInterval:
    """[low, high] holds the true median with probability `coverage` (exact, any shape)."""

    low: float
    high: float
    coverage: float

    @property
    def reaches(self) -> bool:
        """Whether the interval reaches the 95 % asked for (it cannot with 5 runs or fewer)."""
        return self.coverage >= LEVEL - 1e-12

    def to_dict(self) -> dict[str, object]:
        return {
            "low": _round(self.low),
            "high": _round(self.high),
            "coverage": round(self.coverage, 4),
            "reaches_95": self.reaches,
        }


def _binomial_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    total: int = sum(math.comb(n, i) for i in range(k + 1))
    return total / float(2**n)


def median_interval(values: Sequence[float]) -> MedianInterval | None:
    """The narrowest symmetric order-statistic interval of the median with coverage >= 95 %,
    else [min, max] with the coverage it has (see the module docstring); None without values."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return None
    best = (1, 1.0 - 2 * _binomial_cdf_half(0, n))  # [x(1), x(n)]
    for j in range(2, n // 2 + 1):
        coverage = 1.0 - 2 * _binomial_cdf_half(j - 1, n)
        if coverage < LEVEL:
            break
        best = (j, coverage)
    j, coverage = best
    return MedianInterval(ordered[j - 1], ordered[n - j], max(0.0, coverage))


def quartiles(values: Sequence[float]) -> tuple[float, float] | None:
    """The first and third quartiles (linear interpolation), None without values."""
    if not values:
        return None
    q1, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 75])
    return float(q1), float(q3)


def midranks(values: FloatArray) -> FloatArray:
    """1-based ranks, ties sharing the mean of their ranks."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts).astype(np.float64)
    ranks: FloatArray = (upper - (counts - 1) / 2.0)[inverse]
    return ranks


def _surely_below(x: float, x_censored: bool, y: float, y_censored: bool) -> bool:
    """Whether a true value x is known to be below y (a censored value is only ">= itself"):
    an uncensored x below y, or equal to a censored y (Gehan's convention)."""
    return not x_censored and (x < y or (x == y and y_censored))


def gehan_scores(values: Sequence[float], censored: Sequence[bool] = ()) -> list[int]:
    """Per value: how many others it is surely above, minus how many it is surely below
    (Gehan's generalized Wilcoxon score). Without censoring it is 2 x midrank - (n + 1), so a
    test of these scores is the rank-sum (Mann-Whitney) test."""
    flags = list(censored) or [False] * len(values)
    pairs = list(zip(values, flags, strict=True))
    return [
        sum(_surely_below(*other, *this) for other in pairs)
        - sum(_surely_below(*this, *other) for other in pairs)
        for this in pairs
    ]


def _split_sums(scores: Sequence[int], size: int) -> dict[int, int]:
    """How many ways `size` of the scores can be drawn to give each total (exact counting, so
    the permutation test needs no sampling whatever the number of splits)."""
    ways: list[dict[int, int]] = [{0: 1}] + [{} for _ in range(size)]
    for score in scores:
        for taken in range(size, 0, -1):
            row = ways[taken]
            for total, count in ways[taken - 1].items():
                row[total + score] = row.get(total + score, 0) + count
    return ways[size]


@dataclass(frozen=True)
class _Null:
    """The exact null distribution of a's score sum: |n x sum - n_a x total| per split."""

    deviations: dict[int, int]  # deviation -> number of splits
    observed: int
    splits: int

    def p_value(self) -> float:
        hits = sum(c for d, c in self.deviations.items() if d >= self.observed)
        return hits / self.splits

    def smallest(self) -> float:
        return self.deviations[max(self.deviations)] / self.splits


def _null(
    a: Sequence[float], b: Sequence[float], a_censored: Sequence[bool], b_censored: Sequence[bool]
) -> _Null:
    flags = [*(a_censored or [False] * len(a)), *(b_censored or [False] * len(b))]
    scores = gehan_scores([*a, *b], flags)
    n, n_a, total = len(scores), len(a), sum(scores)
    deviations: dict[int, int] = {}
    for split_sum, count in _split_sums(scores, n_a).items():
        deviation = abs(n * split_sum - n_a * total)  # integers: no rounding at the edge
        deviations[deviation] = deviations.get(deviation, 0) + count
    observed = abs(n * sum(scores[:n_a]) - n_a * total)
    return _Null(deviations, observed, math.comb(n, n_a))


def permutation_p_value(
    a: Sequence[float],
    b: Sequence[float],
    a_censored: Sequence[bool] = (),
    b_censored: Sequence[bool] = (),
) -> float:
    """Two-sided p of a's score sum under relabelling of the values (exact, every split).

    Scores are Gehan's (`gehan_scores`): the rank-sum (Mann-Whitney U) test without censoring;
    a censored value counts as ">= itself". Ranks make one outlying run weigh no more than any
    other."""
    return _null(a, b, a_censored, b_censored).p_value()


def smallest_p_value(
    a: Sequence[float],
    b: Sequence[float],
    a_censored: Sequence[bool] = (),
    b_censored: Sequence[bool] = (),
) -> float:
    """The smallest p the exact test can give for these values, ties and censoring included
    (the share of splits as extreme as the most extreme one)."""
    return _null(a, b, a_censored, b_censored).smallest()


def min_values_per_group(alpha: float = ALPHA) -> int:
    """The fewest values per group (two equal groups, no ties) at which the two-sided exact test
    can reach p < alpha: its smallest p is 2 / C(2n, n) (0.1 at 3 vs 3, 0.029 at 4 vs 4)."""
    n = 1
    while 2 / math.comb(2 * n, n) >= alpha:
        n += 1
    return n


MIN_VALUES_FOR_TEST = min_values_per_group()
# a percentile bootstrap below this many values per group excludes a zero difference far more
# often than its 5 % (10 % at 3 vs 3, measured: tests/test_statistics.py)
MIN_VALUES_FOR_BOOTSTRAP = 5


@dataclass(frozen=True)
class DifferenceInterval:
    """Where median(b) - median(a) lies, and with what confidence.

    method "bootstrap": percentile bootstrap at 95 % (5 values per group or more); "range":
    [min(b) - max(a), max(b) - min(a)], which holds the difference whenever each group's range
    holds its true median: `confidence` is at least (1 - 2^(1-n_a)) (1 - 2^(1-n_b))."""

    low: float
    high: float
    confidence: float
    method: str

    def describe(self, unit: str = " s", digits: int = 3) -> str:
        span = f"{self.low:.{digits}f} to {self.high:.{digits}f}{unit}"
        if self.method == "bootstrap":
            return f"95 % bootstrap interval of the difference {span}"
        return (
            f"the ranges put the difference at {span} with at least {self.confidence:.0%} "
            f"confidence (too few runs for a 95 % interval: {MIN_VALUES_FOR_BOOTSTRAP} per "
            "group needed)"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "low": _round(self.low),
            "high": _round(self.high),
            "confidence": round(self.confidence, 4),
            "method": self.method,
        }


def range_confidence(n: int) -> float:
    """How often [min, max] of n values holds their true median: 1 - 2 x 0.5^n."""
    return max(0.0, 1.0 - 2.0 * 0.5**n)


def difference_interval(a: Sequence[float], b: Sequence[float]) -> DifferenceInterval | None:
    """The interval of median(b) - median(a) (see DifferenceInterval); None below 2 values in
    a group (a single value has no spread to speak of)."""
    if len(a) < 2 or len(b) < 2:
        return None
    if min(len(a), len(b)) >= MIN_VALUES_FOR_BOOTSTRAP:
        low, high = bootstrap_ci(a, b)
        return DifferenceInterval(low, high, LEVEL, "bootstrap")
    confidence = range_confidence(len(a)) * range_confidence(len(b))
    return DifferenceInterval(min(b) - max(a), max(b) - min(a), confidence, "range")


def bootstrap_ci(a: Sequence[float], b: Sequence[float], seed: int = SEED) -> tuple[float, float]:
    """Percentile bootstrap 95 % CI of median(b) - median(a), each group resampled apart
    (use `difference_interval`, which refuses it below MIN_VALUES_FOR_BOOTSTRAP)."""
    rng = np.random.default_rng(seed)
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    med_a = np.median(xa[rng.integers(0, xa.size, (BOOTSTRAP, xa.size))], axis=1)
    med_b = np.median(xb[rng.integers(0, xb.size, (BOOTSTRAP, xb.size))], axis=1)
    low, high = np.percentile(med_b - med_a, [2.5, 97.5])
    return float(low), float(high)


@dataclass(frozen=True)
class Superiority:
    """How often a run of `a` beat (was lower than) a run of `b`, over every pairing."""

    wins: float  # ties count 1/2
    pairs: int

    @property
    def share(self) -> float:
        return self.wins / self.pairs if self.pairs else 0.5

    def describe(self, a: str, b: str, verb: str = "was lower") -> str:
        wins = f"{self.wins:g}"
        return f"{a} {verb} in {wins} of {self.pairs} pairings of a {a} run with a {b} run"

    def to_dict(self) -> dict[str, object]:
        return {"wins": self.wins, "pairs": self.pairs, "share": round(self.share, 4)}


def superiority(
    a: Sequence[float],
    b: Sequence[float],
    a_censored: Sequence[bool] = (),
    b_censored: Sequence[bool] = (),
) -> Superiority:
    """The Mann-Whitney U of `a` being lower than `b`, as wins over pairings: a pairing is won
    when a's value is surely lower, half won when neither is surely lower (a tie, or a censored
    value that may lie either side)."""
    flags_a = list(a_censored) or [False] * len(a)
    flags_b = list(b_censored) or [False] * len(b)
    wins = 0.0
    for x, x_cens in zip(a, flags_a, strict=True):
        for y, y_cens in zip(b, flags_b, strict=True):
            if _surely_below(x, x_cens, y, y_cens):
                wins += 1.0
            elif not _surely_below(y, y_cens, x, x_cens):
                wins += 0.5
    return Superiority(wins, len(a) * len(b))


def rank_shares(
    groups: Mapping[str, Sequence[float]], seed: int = SEED, resamples: int = 2_000
) -> dict[str, list[float]]:
    """Per group, the share of bootstrap resamples in which it ranks 1st, 2nd, ...

    A value of `math.inf` is a run that never recovered. In each resample the groups are
    ordered as the rankings are: the fewest never-recovered runs first, then the lowest median
    of the others; groups tied on both share their places. Groups without values get none."""
    names = [g for g, values in groups.items() if len(values) > 0]
    if not names:
        return {}
    rng = np.random.default_rng(seed)
    keys = np.empty((resamples, len(names), 2), dtype=np.float64)
    for column, name in enumerate(names):
        values = np.asarray(groups[name], dtype=np.float64)
        picks = values[rng.integers(0, values.size, (resamples, values.size))]
        never = np.isinf(picks)
        keys[:, column, 0] = never.mean(axis=1)
        finite = np.where(never, np.nan, picks)
        medians = np.full(resamples, np.inf)
        has = ~never.all(axis=1)
        medians[has] = np.nanmedian(finite[has], axis=1)
        keys[:, column, 1] = medians
    shares = np.zeros((len(names), len(names)), dtype=np.float64)
    for row in keys:
        _add_positions(shares, row)
    shares /= resamples
    return {name: [round(float(x), 4) for x in shares[i]] for i, name in enumerate(names)}


def _add_positions(shares: FloatArray, keys: FloatArray) -> None:
    """Add one resample's ranking (keys: per group, never-recovered share and median) to
    `shares`; a tie of k groups gives each 1/k of its places."""
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    ordered = [tuple(keys[i]) for i in order]
    first = 0
    while first < order.size:
        last = first
        while last + 1 < order.size and ordered[last + 1] == ordered[first]:
            last += 1
        for member in order[first : last + 1]:
            shares[member, first : last + 1] += 1.0 / (last - first + 1)
        first = last + 1


MIN_BEYOND = 1  # values a percentile needs beyond it: a p99 of 2 requests is their maximum


@dataclass(frozen=True)
class Percentile:
    """A percentile of `n` values, or None with the reason when they are too few."""

    q: float
    value: float | None
    n: int
    reason: str | None


def min_count_for(q: float) -> int:
    """The fewest values for the q-th percentile: MIN_BEYOND of them beyond it (p50: 2,
    p95: 20, p99: 100), rounded up; a run's summary (harness.analysis.phases) and a comparison
    both use it. q is read as the decimal it was written as: float arithmetic made p99.992
    need 12,501 values."""
    if not 0 <= q < 100:
        raise ValueError(f"a percentile is between 0 and 100 (excluded), not {q}")
    beyond = 1 - Fraction(str(q)) / 100  # str: the shortest decimal that is this float
    return math.ceil(MIN_BEYOND / beyond)


def percentile(values: Sequence[float] | FloatArray, q: float) -> Percentile:
    """The q-th percentile (linear interpolation) when there are enough values (min_count_for),
    else value None and the reason."""
    n, needed = len(values), min_count_for(q)
    if n < needed:
        why = f"p{q:g} needs at least {needed} successful requests, {n} here"
        return Percentile(q, None, n, why)
    return Percentile(q, float(np.percentile(np.asarray(values, dtype=np.float64), q)), n, None)
