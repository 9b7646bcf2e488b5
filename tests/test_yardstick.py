"""Issue 15's per-fault rules, each on a hand-made run whose answer is computed by hand.

Runs are built by tests/synthetic_run.py: a request started at t with latency d completes at
t + d; the load runs 0-30 s (unless told) with a 1 s warm-up (20 users spawned at 20/s), so
the steady baseline is [1 s, first injection). Tolerances are the 0.99 quantile of
Binomial(n, p), worked out in the comments. Every test failed on the code before issue 15.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.analysis import analyze_run
from tests.synthetic_run import Event, Probe, Req, inject, ns, write_run

SVC = "10.9.0.1:8080"  # a service address: the replica behind it is unknown


def kill(at_s: float, fault_id: str = "f1", target: str = "web-1") -> Event:
    return inject(at_s, fault_id, targets=(target,), has_duration=False)


def every(step_s: float, start_s: float, end_s: float, failing: Any = lambda t: False) -> list[Req]:
    """Requests to web-1 started every step_s in [start_s, end_s), 5 ms each."""
    count = round((end_s - start_s) / step_s)
    starts = [round(start_s + i * step_s, 6) for i in range(count)]
    return [Req(t, 5.0, not failing(t)) for t in starts]


def analyze(tmp_path: Path, requests: list[Req], events: list[Event], **kw: Any) -> Any:
    write_run(tmp_path, requests, kw.pop("probes", []), events, **kw)
    return analyze_run(tmp_path)


def only_fault(summary: Any) -> dict[str, Any]:
    (fault,) = summary["faults"]
    assert isinstance(fault, dict)
    return fault


# -- 1. fixed comparison windows ----------------------------------------------------------------


def test_1_a_later_recovery_never_gets_the_better_availability(tmp_path: Path) -> None:
    # 10 requests/s to web-1, killed at 10 s. Run A: the requests started 10.0..10.9 fail
    # (10), all later ones succeed: ttr 1.005 s. Run B: the same 10, then the one started at
    # 12.5 fails too (11): ttr 2.605 s (the first success after 12.505).
    fast = every(0.1, 0.0, 30.0, lambda t: 10.0 <= t < 10.95)
    slow = every(0.1, 0.0, 30.0, lambda t: 10.0 <= t < 10.95 or t == 12.5)
    a = only_fault(analyze(tmp_path / "a", fast, [kill(10.0)]))
    b = only_fault(analyze(tmp_path / "b", slow, [kill(10.0)]))
    assert (a["ttr_s"], b["ttr_s"]) == (pytest.approx(1.005), pytest.approx(2.605))

    # Before issue 15 the window ended at each run's own recovery: A 1 ok of 11 (0.09),
    # B 16 ok of 27 (0.59): the slower run looked better. Now both are [10, 20): one-off
    # (0 s) + the default 10 s window: requests started 10.0..19.9 complete by 19.905: 100
    for fault, failed in ((a, 10), (b, 11)):
        window = fault["window"]
        assert (window["start_ns"], window["end_ns"]) == (ns(10.0), ns(20.0))
        assert window["duration_s"] == 10.0
        assert (window["cut_by"], window["cut_by_data_end"]) == (None, False)
        assert (window["requests"], window["failed_requests"]) == (100, failed)
        assert window["successful_requests"] == 100 - failed
        # closed loop: 90 requests sent in the steady baseline [1, 10): 10/s, 100 intended
        assert window["intended_requests"] == pytest.approx(100.0)
        assert window["lost_requests"] == failed
    assert (a["availability"], b["availability"]) == (0.9, 0.89)
    assert b["availability"] < a["availability"]


def test_1_the_window_is_cut_by_a_fault_on_the_same_observations_and_by_the_data(
    tmp_path: Path,
) -> None:
    # analysis.window 5 s. f1 kills web-1 at 10 s, f2 again at 12 s: f1's window [10, 15)
    # is cut at 12; f2's [12, 17). f3 at 27 s: [27, 32) cut at the data's end (the last
    # completion 29.905 belongs to it): 2.905 s
    requests = every(0.1, 0.0, 30.0, lambda t: t in (10.0, 12.0, 27.0))
    events = [kill(10.0, "f1"), kill(12.0, "f2"), kill(27.0, "f3")]
    summary = analyze(tmp_path, requests, events, analysis={"window_s": 5})
    windows = {f["id"]: f["window"] for f in summary["faults"]}

    assert summary["analysis"]["window_s"] == 5.0
    assert (windows["f1"]["end_ns"], windows["f1"]["cut_by"]) == (ns(12.0), "f2")
    assert windows["f1"]["requests"] == 20  # started 10.0 .. 11.9
    assert (windows["f2"]["end_ns"], windows["f2"]["cut_by"]) == (ns(17.0), None)
    assert windows["f3"]["end_ns"] == ns(29.905) + 1 and windows["f3"]["cut_by_data_end"]
    assert windows["f3"]["duration_s"] == pytest.approx(2.905)
    assert windows["f3"]["requests"] == 30  # started 27.0 .. 29.9


# -- 2. censoring -------------------------------------------------------------------------------


def censored_run(tmp_path: Path, ttr_limit: float) -> Any:
    # web-1 killed at 27 s: the requests started 27.0..27.9 fail, then 28.0..29.9 succeed; the
    # data ends at 29.905, 1.9 s after the first success (28.005): short of stable_for (2 s)
    requests = every(0.1, 0.0, 30.0, lambda t: 27.0 <= t < 27.95)
    return analyze(tmp_path, requests, [kill(27.0)], slo={"ttr_s": ttr_limit})


def test_2_a_fault_cut_off_by_the_end_of_the_data_is_censored_not_unrecovered(
    tmp_path: Path,
) -> None:
    summary = censored_run(tmp_path, ttr_limit=5.0)
    fault = only_fault(summary)

    # before issue 15: recovered false, "never recovered", recovered[f1] failed
    assert (fault["recovered"], fault["censored"]) == (None, True)
    assert fault["ttr_at_least_s"] == pytest.approx(1.005)  # 28.005 - 27.0
    assert fault["ttr_s"] is None
    checks = {c["name"]: c for c in summary["slo"]["checks"]}
    # 1.005 s so far is within the 5 s limit: unknown, with the reason
    assert checks["recovered[f1]"]["verdict"] == "no_data"
    assert checks["ttr_s[f1]"]["verdict"] == "no_data"
    assert checks["ttr_s[f1]"]["reason"].startswith("censored")


def test_2_a_censored_fault_already_over_the_limit_fails(tmp_path: Path) -> None:
    summary = censored_run(tmp_path, ttr_limit=0.5)
    checks = {c["name"]: c for c in summary["slo"]["checks"]}

    # at least 1.005 s > 0.5 s: whatever comes after, the limit is already missed
    for name in ("recovered[f1]", "ttr_s[f1]"):
        assert checks[name]["verdict"] == "fail"
        assert checks[name]["value"] == pytest.approx(1.005)


# -- 3. recovery on evidence from after it --------------------------------------------------------


def test_3_a_probe_sent_during_the_outage_does_not_refute_the_recovery(tmp_path: Path) -> None:
    # The demo: web-1 killed at 10 s, back at 10.98 s. Requests every 0.1 s: those started
    # 10.0..10.9 fail (5 ms, refused); one sent at 10.985 succeeds at 10.990, and all later.
    # Probes every 0.2 s (1 ms): those at 10.0..10.8 fail fast, the one sent at 10.48 hangs
    # until its 1 s timeout and fails at 11.48, after the container came back. Baseline clean.
    requests = [*every(0.1, 0.0, 30.0, lambda t: 10.0 <= t < 10.95), Req(10.985, 5.0)]
    probes = [Probe(round(i * 0.2, 6), 1.0, not 10.0 <= i * 0.2 < 10.95) for i in range(150)]
    probes.append(Probe(10.48, 1000.0, ok=False))
    fault = only_fault(analyze(tmp_path, requests, [kill(10.0)], probes=probes))

    # the window after the success at 10.990 holds the probe failure at 11.48, but that probe
    # was sent at 10.48, before 10.990: evidence of the outage. Sent at or after 10.990 and
    # completed by 12.990: requests 11.0..12.9 (20) and probes 11.0..12.8 (10), all ok.
    # Before issue 15: ttr 1.505 (the first success after 11.48, the request sent at 11.5)
    assert fault["recovered_at_ns"] == ns(10.990)
    assert fault["ttr_s"] == pytest.approx(0.990)


def test_3_a_timeout_sent_after_a_candidate_refutes_it_though_it_completes_later(
    tmp_path: Path,
) -> None:
    # Through a service address (replica unknown): from the kill of web-2 at 10 s, every
    # third request (sent at 10.2, 10.5, .. 29.7 s, i % 3 == 0) is balanced to the dead
    # replica and times out 2 s later. A success's window [s, s + 2] always holds failing
    # sendings, their timeouts completing after s + 2: they count, so it never recovers (a
    # window of completions by s + 2 held none: "recovered" at 10.105 s)
    dead = [i >= 100 and i % 3 == 0 for i in range(300)]
    requests = [Req(i / 10, 2000.0 if dead[i] else 5.0, not dead[i], SVC) for i in range(300)]
    fault = only_fault(analyze(tmp_path, requests, [kill(10.0, target="web-2")]))

    assert fault["view"] == "service" and fault["impact"] == "visible"
    # the last timeout completes at 31.7 s, after every success: not censored
    assert (fault["recovered"], fault["censored"], fault["ttr_s"]) == (False, False, None)
    assert fault["reason"].startswith("failures continued until the end of the run")


# -- 4. robust baseline and detection -------------------------------------------------------------


def test_4_a_blip_in_the_baseline_does_not_excuse_a_replica_still_failing(tmp_path: Path) -> None:
    # 10 requests/s to web-1. Steady baseline [1, 11): 100 requests, 4 failing in 0.4 s (sent
    # 5.0..5.3: a blip), pooled 4 %. Kill at 11: 11.0..11.9 fail, then one request in 7 fails
    # (sent at 12.0, 12.7, .. 19.7) until 20 s; clean after.
    def failing(t: float) -> bool:
        step = round((t - 12.0) * 10)
        return 5.0 <= t < 5.35 or 11.0 <= t < 11.95 or (12.0 <= t < 20.0 and step % 7 == 0)

    summary = analyze(tmp_path, every(0.1, 0.0, 30.0, failing), [kill(11.0)])
    fault = only_fault(summary)

    # Pooled 4 %: after the success at 12.105 the next 2 s hold 20 requests, 3 failing (12.7,
    # 13.4, 14.1), and P(Bin(20, .04) <= 2) = .956 < .99 <= P(<= 3) = .993: 3 allowed, so it
    # was "recovered" at 12.105 (ttr 1.105) while failing one in 7. Trimmed: the baseline's ten
    # 1 s windows less the 2 with the most failures (the blip's [5, 6) and one clean): 0 of 80
    assert fault["baseline"]["error_rate"] == pytest.approx(0.04)
    assert fault["baseline"]["tolerance_error_rate"] == 0.0
    # no failure allowed: the last one completes at 19.705, and from the success at 19.805
    # the 20 requests sent in the next 2 s all succeed
    assert fault["recovered_at_ns"] == ns(19.805)
    assert fault["ttr_s"] == pytest.approx(8.805)


def test_4_a_few_observations_cannot_show_the_baseline_rate(tmp_path: Path) -> None:
    # 3 requests/s to web-1 (sent at k/3 s), probes of web-1 every 0.1 s, all ok. Steady
    # baseline [1, 31): 90 requests, the ones sent at 2, 3, .. 13 s failed (12, one per 1 s
    # window): pooled 12/90; trimmed (6 of the 30 windows left out, 6 of them with a failure):
    # 6 of 72 = 1/12. Kill at 31: the requests sent 31.0..32.67 fail; then one in three (sent
    # at 33, 34, .. 43 s) until 44 s.
    def failing(k: int) -> bool:
        return (k % 3 == 0 and 6 <= k <= 39) or 93 <= k <= 98 or (k % 3 == 0 and 99 <= k <= 129)

    requests = [Req(k / 3, 5.0, not failing(k)) for k in range(180)]
    probes = [Probe(round(i * 0.1, 6), 1.0) for i in range(600)]
    analysis = {"baseline_max_error_rate": 0.2}
    summary = analyze(
        tmp_path, requests, [kill(31.0)], probes=probes, load_s=(0.0, 60.0), analysis=analysis
    )
    fault = only_fault(summary)
    assert fault["baseline"]["tolerance_error_rate"] == pytest.approx(1 / 12, abs=1e-6)

    # A 2 s window holds 6 requests. P(Bin(6, 1/12) <= 1) = .917, P(<= 2) = .990: 2 of 6
    # would be "at the baseline" (at the old pooled 12/90, P(Bin(6, .133) <= 2) = .966 <
    # .99 <= P(<= 3) = .997: 3 of 6; before issue 15 the probe at 32.401 was the recovery,
    # its window holding 32.672, 33.005 and 34.005 failed of 6: ttr 1.401). A kind with
    # failures needs 10 observations in the window: the first window with no failing request
    # sent in it starts after the last one was sent (43.0):
    # the probe sent at 43.0 succeeds at 43.001, then requests 43.33 .. 45.0 and 20 probes
    # sent by 45.0, all ok (the request sent at 43.0, failing at 43.005, was sent before it)
    assert fault["recovered_at_ns"] == ns(43.001)
    assert fault["ttr_s"] == pytest.approx(12.001)


def baseline_with_background() -> list[Req]:
    """20 requests/s to web-1, the ones sent at 2, 4 and 6 s failing: steady baseline [1, 10)
    of nine 1 s windows, 180 requests; trimmed (the window with the most failures, 1 of 9,
    left out): 2 of 160 = 1.25 %. P(Bin(20, .0125) <= 1) = .974, P(<= 2) = .998: 2 failures
    allowed in a 1 s window of 20 requests."""
    return every(0.05, 0.0, 10.0, lambda t: t in (2.0, 4.0, 6.0))


def test_4_a_single_background_failure_is_not_the_detection_instant(tmp_path: Path) -> None:
    # kill at 10: the request sent at 10.2 fails alone (10.205); the outage is the requests
    # sent 12.0 .. 12.95 (20 failures, 12.005 .. 12.955), back from 13.0
    after = every(0.05, 10.0, 30.0, lambda t: t == 10.2 or 12.0 <= t < 12.975)
    fault = only_fault(analyze(tmp_path, baseline_with_background() + after, [kill(10.0)]))

    # [10.205, 11.205] holds 20 requests, 1 failed (<= 2): not a cluster. [12.005, 13.005]
    # holds 21, 20 failed. Before issue 15 the detection was the first failure: ttd 0.205 s
    assert fault["detected_at_ns"] == ns(12.005)
    assert fault["ttd_s"] == pytest.approx(2.005)
    assert fault["recovered_at_ns"] == ns(13.005)


def test_4_a_150_ms_outage_is_not_diluted_by_the_horizon(tmp_path: Path) -> None:
    # kill at 10: the requests sent at 12.0, 12.05 and 12.1 fail (3 in a row, 150 ms)
    after = every(0.05, 10.0, 30.0, lambda t: 12.0 <= t < 12.125)
    fault = only_fault(analyze(tmp_path, baseline_with_background() + after, [kill(10.0)]))

    # The horizon [10, 15] holds 100 requests, 3 failed. Before issue 15, at the pooled 3/180:
    # P(Bin(100, 1/60) <= 4) = .973 < .99 <= P(<= 5) = .993: 5 allowed, "no visible impact".
    # [12.005, 13.005] holds 20 requests (12.0 .. 12.95), 3 failed, more than the 2 allowed
    assert fault["impact"] == "visible"
    assert fault["detected_at_ns"] == ns(12.005)
    # the first success after 12.105 completes at 12.155, 2 clean seconds follow
    assert fault["recovered_at_ns"] == ns(12.155)


# -- 5. percentiles -------------------------------------------------------------------------------


def test_5_percentiles_are_over_successes_with_their_count_and_a_minimum(tmp_path: Path) -> None:
    # baseline phase [0, 10): 40 successful requests (sent every 0.25 s, 1..10 ms, each value
    # 4 times) and 4 timeouts (2 s, failed) sent at 1.1, 3.1, 5.1, 7.1 s; a kill at 10 s
    ok = [Req(i * 0.25, float(i % 10 + 1)) for i in range(40)]
    timeouts = [Req(t, 2000.0, ok=False) for t in (1.1, 3.1, 5.1, 7.1)]
    slo = {"p95_ms": {"baseline": 50}, "p99_ms": {"baseline": 50}}
    summary = analyze(tmp_path, [*ok, *timeouts], [kill(10.0)], slo=slo)
    latency = summary["phases"]["baseline"]["latency_ms"]

    # sorted successes: 1 x4, 2 x4, .. 10 x4. p50 at rank 0.5 x 39 = 19.5: between 5 and 6;
    # p95 at 37.05: 10. p99 needs 100 values: null. Before issue 15 the timeouts were among
    # the values: p95 and p99 of 44 were 2000 ms, and p95_ms[baseline] failed.
    assert (latency["successful"], latency["failed"]) == (40, 4)
    assert (latency["p50"], latency["p95"], latency["p99"], latency["max"]) == (
        5.5,
        10.0,
        None,
        10.0,
    )
    checks = {c["name"]: c for c in summary["slo"]["checks"]}
    assert (checks["p95_ms[baseline]"]["value"], checks["p95_ms[baseline]"]["verdict"]) == (
        10.0,
        "pass",
    )
    assert checks["p99_ms[baseline]"]["verdict"] == "no_data"
    assert checks["p99_ms[baseline]"]["reason"] == (
        "phase baseline: p99 needs at least 100 successful requests, 40 here"
    )
