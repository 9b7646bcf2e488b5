"""Latency is impact too (issue 16): hand-made runs whose answers are computed by hand.

Requests start every 0.1 s on web-1 and take 5 ms unless told otherwise; the load runs 0-30 s
with a 1 s warm-up, so the steady baseline is [1, 10): nine 1 s windows of 10 requests each.
Each test failed before issue 16 (a slowdown without failures read `impact: none`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.analysis import analyze_run
from tests.synthetic_run import Req, inject, ns, revert, write_run

LOAD = (0.0, 30.0)


def slowdown(at_s: float, end_s: float) -> list[Any]:
    return [
        inject(at_s, "f1", kind="latency", has_duration=True, restart_policy_applies=None),
        revert(end_s, "f1", kind="latency"),
    ]


def only_fault(tmp_path: Path, requests: list[Req], events: list[Any]) -> dict[str, Any]:
    write_run(tmp_path, requests, [], events, load_s=LOAD)
    fault: dict[str, Any] = analyze_run(tmp_path)["faults"][0]
    return fault


def test_a_300ms_step_without_failures_is_a_latency_impact(tmp_path: Path) -> None:
    # requests started in [10, 15) take 305 ms, none fails; the fault is on 10-15 s
    requests = [Req(i / 10, 305.0 if 100 <= i < 150 else 5.0) for i in range(300)]
    fault = only_fault(tmp_path, requests, slowdown(10.0, 15.0))

    assert fault["impact"] == "visible" and fault["impact_kind"] == "latency"
    assert fault["failed_requests"] == 0
    # baseline windows' medians are all 5 ms (MAD 0): limit 5 + max(0, 5, 20) = 25 ms
    limits = fault["latency_impact"]["limits"]
    assert limits["requests"]["baseline_median_ms"] == pytest.approx(5.0)
    assert limits["requests"]["limit_ms"] == pytest.approx(25.0)
    assert limits["probes"] is None  # no probes in this run
    # the first window [10, 11) has median 305 > 25: the request sent at 10.0 is the first
    # slow answer, at 10.305 -> ttd 0.305
    assert fault["detected_at_ns"] == ns(10.305)
    assert fault["ttd_s"] == pytest.approx(0.305)
    # recovery windows from the revert at 15: [15, 16) and [16, 17) hold 10 answers at 5 ms:
    # recovered at the first of them, 15.0 + 0.005 -> ttr 5.005
    assert fault["recovered_at_ns"] == ns(15.005)
    assert fault["ttr_s"] == pytest.approx(5.005)
    assert fault["recovered"] is True


def test_a_slowdown_that_outlasts_its_revert_recovers_at_a_window_edge(tmp_path: Path) -> None:
    # the fault is reverted at 15.0 but the requests started in [15.0, 15.5) still take
    # 305 ms (a proxy draining): the window [15, 16) holds five at 305 and five at 5 ms,
    # median (5 + 305) / 2 = 155 > 25: not calm. [16, 17) and [17, 18) are: recovered at
    # 16.0 + 0.005 -> ttr 6.005, the 0.5 s overrun rounded up to the 1 s window edge
    requests = [Req(i / 10, 305.0 if 100 <= i < 155 else 5.0) for i in range(300)]
    fault = only_fault(tmp_path, requests, slowdown(10.0, 15.0))

    assert fault["impact_kind"] == "latency"
    assert fault["ttr_s"] == pytest.approx(6.005)


def test_ordinary_jitter_is_not_a_latency_impact(tmp_path: Path) -> None:
    # every latency drawn from the same 4 ms lognormal (sd of its log 0.35), fault or not:
    # a window median of 10 such draws stays within a few ms; the limit is at least
    # median + 20 ms. The 2 % of single answers above 9 ms move no median.
    rng = np.random.default_rng(3)
    latencies = rng.lognormal(np.log(4.0), 0.35, 300).tolist()
    latencies[105] = 400.0  # one blip inside the fault: a lone slow answer is no impact
    requests = [Req(i / 10, latencies[i]) for i in range(300)]
    fault = only_fault(tmp_path, requests, slowdown(10.0, 15.0))

    assert fault["impact"] == "none" and fault["impact_kind"] is None
    assert fault["latency_impact"]["visible"] is False
    assert fault["ttd_s"] is None and fault["ttr_s"] is None


def test_failures_and_slowness_are_both(tmp_path: Path) -> None:
    # requests started in [10, 11) fail (5 ms refusals); those in [11, 14) succeed in 305 ms
    def request(i: int) -> Req:
        if 100 <= i < 110:
            return Req(i / 10, 5.0, ok=False)
        return Req(i / 10, 305.0 if 110 <= i < 140 else 5.0)

    kill = inject(10.0, "f1", has_duration=False)
    fault = only_fault(tmp_path, [request(i) for i in range(300)], [kill])

    assert fault["impact"] == "visible" and fault["impact_kind"] == "both"
    # errors: first failure 10.005; latency: the window [10, 11) has no success (not judged),
    # [11, 12) has median 305: first slow answer 11.305. Detection: the earlier, 10.005
    assert fault["ttd_s"] == pytest.approx(0.005)
    assert fault["latency_impact"]["ttd_s"] == pytest.approx(1.305)
    # errors recover at 11.005 (the first success, 20 clean requests sent after it); latency
    # windows from its detection at 11.305: [11.305, 12.305) .. [13.305, 14.305) hold slow
    # answers (median 305 in the first three); [14.305, 15.305) holds 14.4 .. 15.3 at 5 ms,
    # as does the next one: recovered at 14.4 + 0.005 = 14.405. Recovery: the later, ttr 4.405
    assert fault["latency_impact"]["ttr_s"] == pytest.approx(4.405)
    assert fault["ttr_s"] == pytest.approx(4.405)
