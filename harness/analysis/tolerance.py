"""How many failures a window may hold and still be "at the baseline rate".

Failures at a baseline rate `p` arrive by chance: a window of `n` observations holds a
Binomial(n, p) number of them. A window is at the baseline rate when its failures do not exceed
the `confidence` quantile of that distribution: the smallest k with P(X <= k) >= confidence
(k = 0 when p = 0, so a baseline without failures allows none). With confidence 0.99, a window
that truly runs at the baseline rate is called above it once in a hundred at most.

Exact, without scipy: the binomial pmf is summed in log space over k = mean +- 12 standard
deviations (the mass outside is below 1e-30), with log-factorials from one cumulative table;
each distinct window size is computed once.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
_SPREAD = 12.0


def allowed_failures(counts: npt.ArrayLike, rate: float, confidence: float) -> IntArray:
    """Per window size in `counts`, the most failures still at the baseline `rate`."""
    sizes = np.asarray(counts, dtype=np.int64)
    if sizes.size == 0 or rate <= 0.0:
        return np.zeros(sizes.shape, dtype=np.int64)
    if rate >= 1.0:
        return sizes.copy()
    unique, inverse = np.unique(sizes, return_inverse=True)
    log_factorial = _log_factorials(int(unique[-1]))
    quantiles = np.fromiter(
        (_quantile(int(n), rate, confidence, log_factorial) for n in unique),
        dtype=np.int64,
        count=unique.size,
    )
    allowed: IntArray = quantiles[inverse].reshape(sizes.shape)
    return allowed


def allowed_one(count: int, rate: float, confidence: float) -> int:
    """`allowed_failures` of a single window size."""
    return int(allowed_failures(np.array([count]), rate, confidence)[0])


def _log_factorials(n_max: int) -> npt.NDArray[np.float64]:
    steps = np.log(np.arange(1, n_max + 1, dtype=np.float64))
    table: npt.NDArray[np.float64] = np.concatenate(([0.0], np.cumsum(steps)))
    return table


def _quantile(n: int, p: float, confidence: float, log_factorial: npt.NDArray[np.float64]) -> int:
    if n == 0:
        return 0
    mean, sd = n * p, math.sqrt(n * p * (1.0 - p))
    low = max(0, math.floor(mean - _SPREAD * sd - _SPREAD))
    high = min(n, math.ceil(mean + _SPREAD * sd + _SPREAD))
    k = np.arange(low, high + 1, dtype=np.int64)
    log_pmf = (
        log_factorial[n]
        - log_factorial[k]
        - log_factorial[n - k]
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    cdf = np.cumsum(np.exp(log_pmf))
    index = int(np.searchsorted(cdf, confidence - 1e-12, side="left"))
    return int(k[min(index, k.size - 1)])


class Tolerance:
    """`allowed_failures` at one rate, remembering the window sizes already computed."""

    def __init__(self, rate: float, confidence: float) -> None:
        self.rate = rate
        self.confidence = confidence
        self._known: dict[int, int] = {}

    def __call__(self, counts: npt.ArrayLike) -> IntArray:
        sizes = np.asarray(counts, dtype=np.int64)
        if self.rate <= 0.0 or sizes.size == 0:
            return np.zeros(sizes.shape, dtype=np.int64)
        unique, inverse = np.unique(sizes, return_inverse=True)
        missing = [int(n) for n in unique if int(n) not in self._known]
        if missing:
            values = allowed_failures(np.asarray(missing), self.rate, self.confidence)
            self._known.update(zip(missing, (int(v) for v in values), strict=True))
        table = np.fromiter((self._known[int(n)] for n in unique), np.int64, unique.size)
        allowed: IntArray = table[inverse].reshape(sizes.shape)
        return allowed

    def one(self, count: int) -> int:
        return int(self(np.array([count]))[0])
