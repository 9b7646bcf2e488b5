"""Each worker's share of a distributed load in the summary (pure: a hand-made frame)."""

from __future__ import annotations

import pandas as pd

from harness.analysis.workers import per_worker

S = 1_000_000_000


def _requests(rows: list[tuple[str, int, bool]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "worker_name": [r[0] for r in rows],
            "start_ns": [r[1] for r in rows],
            "ok": [r[2] for r in rows],
        }
    )


def test_each_workers_requests_failures_and_rates() -> None:
    # a: 10 requests inside the 10 s span, 2 failed; b: 4 inside, 1 started before the span
    rows = [("a", 100 * S + i * S, i >= 2) for i in range(10)]
    rows += [("b", 100 * S + i * 2 * S, True) for i in range(4)] + [("b", 99 * S, False)]
    found = per_worker(_requests(rows), 100 * S, 110 * S, rate_per_s=3.0, workers=3)
    assert found is not None
    a, b = found
    assert (a.name, a.requests, a.failed, a.sent_per_s) == ("a", 10, 2, 1.0)
    assert (b.name, b.requests, b.failed, b.sent_per_s) == ("b", 5, 1, 0.4)
    # the rate split over the three the master expected, one of which sent nothing
    assert a.intended_per_s == b.intended_per_s == 1.0


def test_one_worker_or_none_named_is_no_table() -> None:
    assert per_worker(_requests([("a", 5 * S, True)]), 0, 10 * S, None) is None
    assert per_worker(pd.DataFrame({"start_ns": [1], "ok": [True]}), 0, 10 * S, None) is None
    closed = per_worker(_requests([("a", S, True), ("b", S, True)]), 0, 10 * S, None)
    assert closed is not None and closed[0].intended_per_s is None
