"""The stability tolerance against brute force, and intended vs achieved load per phase."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from harness.analysis import analyze_run
from harness.analysis.tolerance import Tolerance, allowed_failures
from tests.synthetic_run import Req, inject, revert, write_run


def brute_quantile(n: int, p: float, confidence: float) -> int:
    """The smallest k with P(Binomial(n, p) <= k) >= confidence, summed term by term."""
    total = 0.0
    for k in range(n + 1):
        total += math.comb(n, k) * p**k * (1 - p) ** (n - k)
        if total >= confidence - 1e-12:
            return k
    return n


@pytest.mark.parametrize(
    ("n", "p"),
    [(0, 0.1), (1, 0.5), (9, 0.1), (20, 0.04), (20, 3 / 90), (200, 0.01), (700, 0.3), (999, 0.002)],
)
def test_the_tolerance_is_the_binomial_quantile(n: int, p: float) -> None:
    assert allowed_failures([n], p, 0.99)[0] == brute_quantile(n, p, 0.99)
    assert allowed_failures([n], p, 0.9)[0] == brute_quantile(n, p, 0.9)


def test_no_baseline_failure_allows_none_and_sizes_are_remembered() -> None:
    assert list(allowed_failures([0, 5, 10_000], 0.0, 0.99)) == [0, 0, 0]
    tolerance = Tolerance(0.05, 0.99)
    expected = [brute_quantile(20, 0.05, 0.99)] * 2 + [brute_quantile(400, 0.05, 0.99)]
    assert list(tolerance([20, 20, 400])) == expected == [4, 4, 31]
    assert tolerance.one(400) == 31


def slowed_down(tmp_path: Path, **load: Any) -> dict[str, Any]:
    """Closed-loop users send 10 requests/s, but only 2/s while web-1 is partitioned (10-15 s):
    each of those waits 0.5 s before it fails."""
    requests = [Req(i / 10, 5.0) for i in range(100)]  # 0 - 10 s
    requests += [Req(10.0 + i / 2, 500.0, False) for i in range(10)]  # 10 - 15 s
    requests += [Req(15.0 + i / 10, 5.0) for i in range(150)]  # 15 - 30 s
    events = [inject(10.0, "f1", kind="network_partition", has_duration=True), revert(15.0, "f1")]
    write_run(tmp_path, requests, events=events, load_s=(0.0, 30.0), load=load)
    summary: dict[str, Any] = analyze_run(tmp_path)
    return summary


def test_a_closed_loop_shows_the_load_that_never_happened(tmp_path: Path) -> None:
    phases = slowed_down(tmp_path)["phases"]

    # intended: the steady baseline's rate, 90 requests started in [1, 10) s: 10/s
    assert phases["baseline"]["intended_rps"] == pytest.approx(10.0)
    assert phases["baseline"]["shortfall"] == pytest.approx(0.0)
    # the fault phase [10, 15): 10 requests started in 5 s, 2/s: 80 % of the load never sent
    assert phases["fault"]["achieved_rps"] == pytest.approx(2.0)
    assert phases["fault"]["shortfall"] == pytest.approx(0.8)


def test_an_open_loop_is_held_to_its_own_rate(tmp_path: Path) -> None:
    phases = slowed_down(tmp_path, mode="open", rate_per_s=12.0)["phases"]

    assert phases["baseline"]["intended_rps"] == 12.0
    assert phases["baseline"]["achieved_rps"] == pytest.approx(10.0)
    assert phases["baseline"]["shortfall"] == pytest.approx(1 - 10 / 12, abs=1e-4)
