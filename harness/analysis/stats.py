"""Statistics over a handful of runs: distributions, intervals, tests, rankings.

Runs are few (3 to 10 is typical: a run takes half a minute), so every method here is exact or
distribution-free where it can be, and says what it can and cannot tell:

- `median_interval`: the 95 % interval of a median from order statistics (the binomial
  argument: each run falls below the true median with probability 1/2). It assumes nothing
  about the shape of the distribution. With 5 runs or fewer no pair of order statistics
  reaches 95 % (5 runs: [min, max] covers 93.8 %); the interval is then [min, max] with its
  true coverage, and `reaches` is false, which reports say in words.
- `permutation_p_value`: two-sided permutation test of the rank sum (Mann-Whitney U), exact
  over every split of the runs when they split in at most PERMUTATIONS ways.
- `bootstrap_ci`: percentile bootstrap 95 % interval of the difference of two medians.
- `superiority`: the share of (a, b) run pairs in which a's value is lower (ties count 1/2):
  "docker recovered faster in 9 of 9 pairings of runs" reads plainly and needs no test.
- `rank_shares`: how often each group ranks 1st, 2nd... when every group's runs are resampled
  (a bootstrap of the ranking). With few runs it understates the uncertainty; reports say so.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

ALPHA = 0.05
LEVEL = 0.95
PERMUTATIONS = 10_000
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


def permutation_p_value(a: Sequence[float], b: Sequence[float], seed: int = SEED) -> float:
    """Two-sided p of the rank sum of `a` (Mann-Whitney U) under relabelling of the runs.

    Exact over every split when there are at most PERMUTATIONS; else PERMUTATIONS random
    splits (seeded), with p = (hits + 1) / (PERMUTATIONS + 1). Ranks make one outlying run
    weigh no more than any other."""
    ranks = midranks(np.asarray([*a, *b], dtype=np.float64))
    n_a, total = len(a), ranks.size
    expected = n_a * (total + 1) / 2.0
    observed = abs(float(ranks[:n_a].sum()) - expected) - 1e-9
    if math.comb(total, n_a) <= PERMUTATIONS:
        splits = np.array(list(itertools.combinations(range(total), n_a)), dtype=np.intp)
        sums = ranks[splits].sum(axis=1)
        return float(np.mean(np.abs(sums - expected) >= observed))
    rng = np.random.default_rng(seed)
    shuffled = rng.permuted(np.tile(ranks, (PERMUTATIONS, 1)), axis=1)
    hits = int(np.sum(np.abs(shuffled[:, :n_a].sum(axis=1) - expected) >= observed))
    return (hits + 1) / (PERMUTATIONS + 1)


def smallest_p_value(n_a: int, n_b: int) -> float:
    """The smallest p the exact two-sided test can give with these sizes (2 / splits)."""
    return min(1.0, 2 / math.comb(n_a + n_b, n_a))


def bootstrap_ci(a: Sequence[float], b: Sequence[float], seed: int = SEED) -> tuple[float, float]:
    """Percentile bootstrap 95 % CI of median(b) - median(a), each group resampled apart."""
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


def superiority(a: Sequence[float], b: Sequence[float]) -> Superiority:
    """The Mann-Whitney U of `a` being lower than `b`, as wins over pairings."""
    xa = np.asarray(a, dtype=np.float64)[:, None]
    xb = np.asarray(b, dtype=np.float64)[None, :]
    wins = float(np.sum(xa < xb) + 0.5 * np.sum(xa == xb))
    return Superiority(wins, int(xa.size * xb.size))


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
