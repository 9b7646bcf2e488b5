"""Issue 7's nine findings, each on a hand-made run whose answer is computed by hand.

Every run is built by tests/synthetic_run.py with stated instants: requests start every 0.1 s
and take 5 ms unless told otherwise, so a request started at t completes at t + 0.005 s; the
load runs 0-30 s with a 1 s warm-up (20 users spawned at 20/s). The expected values are
derived in the comments from those instants, not taken from the implementation. Each test
failed on the code before issue 7 (the summary gave the wrong number, or passed a run that
should fail).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from faults.base import Fault, FaultContext, FaultParams, RevertRecord
from harness.analysis import analyze_run
from harness.analysis.compare import compare_runs, load_runs
from harness.results import EventLog, read_json_lines
from harness.results.summary import Summary, as_summary
from harness.runner import LATE_INJECTION_SHIFT_S, Runner, RunOptions
from harness.scenario import parse_scenario
from harness.targets.base import RUN_LABEL, Instance
from harness.timeline import actions, expand
from harness.verdict import run_exit_code, verdict_lines
from tests.synthetic_run import Event, Probe, Req, engine, inject, ns, revert, write_run

LOAD = (0.0, 30.0)
SERVICE = "10.9.0.1:8080"  # a service address: the replica behind it is unknown


def kill(at_s: float, fault_id: str, target: str = "web-1", **extra: object) -> Event:
    return inject(at_s, fault_id, targets=(target,), has_duration=False, **extra)


def by_id(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["id"]: f for f in summary["faults"]}


def run(tmp_path: Path, requests: list[Req], events: list[Event], **kw: Any) -> dict[str, Any]:
    write_run(tmp_path, requests, kw.pop("probes", []), events, load_s=LOAD, **kw)
    summary: dict[str, Any] = analyze_run(tmp_path)
    return summary


def every_100ms(
    ok: Any = lambda i: True, endpoint: Any = lambda i: "web-1", latency: Any = lambda i: 5.0
) -> list[Req]:
    """Requests i = 0..299 started at i / 10 s."""
    return [Req(i / 10, latency(i), ok(i), endpoint(i)) for i in range(300)]


# -- 1. one-off faults have a detection horizon ----------------------------------------------


def test_1_a_harmless_kill_does_not_take_a_later_kills_failures(tmp_path: Path) -> None:
    # web-1's requests started in [20.0, 21.0) fail: only the kill at 20 s did anything
    requests = every_100ms(ok=lambda i: not 200 <= i < 210)
    summary = run(tmp_path, requests, [kill(10.0, "f1"), kill(20.0, "f2")])
    f1, f2 = by_id(summary)["f1"], by_id(summary)["f2"]

    # f1's horizon is [10, 15] (5 s): no failure there; before issue 7: ttd 10.005, ttr 11.005
    assert (f1["detected_at_ns"], f1["ttd_s"], f1["ttr_s"], f1["recovered"]) == (
        None,
        None,
        None,
        None,
    )
    assert f1["impact"] == "none"
    assert f1["reason"].startswith("no visible impact")
    assert f1["horizon_end_ns"] == ns(15.0)
    # f2: the request started at 20.0 fails at 20.005; the one started at 21.0 succeeds at
    # 21.005 and the 20 requests after it succeed
    assert f2["impact"] == "visible"
    assert f2["ttd_s"] == pytest.approx(0.005)
    assert f2["ttr_s"] == pytest.approx(1.005)


# -- 2. attribution ---------------------------------------------------------------------------


def test_2_load_through_the_orchestrators_service_is_measured_on_the_service_stream(
    tmp_path: Path,
) -> None:
    # Kubernetes: the load goes through the Service, whose endpoint the manifest names
    # "service" (routing: service). Requests started in [10.0, 11.0) fail after a kill of
    # web-3 at 10 s. Before this was fixed the fault was measured on "requests sent to web-3"
    # (none: "service" was taken for a replica's name) and reported no visible impact.
    requests = every_100ms(ok=lambda i: not 100 <= i < 110, endpoint=lambda i: "service")
    summary = run(
        tmp_path,
        requests,
        [kill(10.0, "f1", target="web-3")],
        endpoints=("service",),
        load={"routing": "service"},
    )
    fault = summary["faults"][0]
    assert fault["view"] == "service"
    assert fault["impact"] == "visible"
    # the request started at 10.0 fails at 10.005; the one started at 11.0 is the first ok
    assert fault["ttd_s"] == pytest.approx(0.005)
    assert fault["ttr_s"] == pytest.approx(1.005)
    assert summary["load"]["routing"] == "service"


def alternating(i: int) -> str:
    return "web-1" if i % 2 == 0 else "web-2"


def test_2_a_latency_fault_on_web2_does_not_take_the_kill_of_web1(tmp_path: Path) -> None:
    # even requests go to web-1, odd ones to web-2; web-1 killed at 10 s: its requests started
    # in [10.0, 11.0) fail; web-2 slowed by 100 ms from 10.5 to 13.0 s, every request succeeds
    requests = every_100ms(
        ok=lambda i: not (i % 2 == 0 and 100 <= i < 110),
        endpoint=alternating,
        latency=lambda i: 105.0 if i % 2 and 105 <= i < 130 else 5.0,
    )
    events = [
        kill(10.0, "f1"),
        inject(10.5, "f2", kind="latency", targets=("web-2",), has_duration=True),
        revert(13.0, "f2", kind="latency"),
    ]
    summary = run(tmp_path, requests, events, endpoints=("web-1", "web-2"))
    f1, f2 = by_id(summary)["f1"], by_id(summary)["f2"]

    # before issue 7: f2 ttd 0.105 s (web-1's failure at 10.605), ttr 2.5 s. Since issue 16
    # f2 has its own latency impact on web-2's requests (5 a second: 1.1, 1.3, ..): baseline
    # window medians 5 ms, limit 5 + max(0, 5, 20) = 25 ms; its first 1 s window from
    # 10.5 holds 10.5 .. 11.3 at 105 ms: detected at 10.5 + 0.105 = 10.605 (ttd 0.105);
    # windows re-cut from the revert at 13.0: [13, 14) holds 13.1 .. 13.9 at 5 ms, and so
    # does [14, 15): recovered at 13.105, ttr 13.105 - 10.5 = 2.605. No failure is its own.
    assert (f2["ttd_s"], f2["ttr_s"]) == (pytest.approx(0.105), pytest.approx(2.605))
    assert f2["view"] == "instance" and f2["impact"] == "visible"
    assert f2["impact_kind"] == "latency"
    # f1 on web-1's requests: first failure 10.005, first success 11.005, clean for 2 s after
    assert f1["view"] == "instance"
    assert f1["observed"] == "requests sent to web-1 and probes of web-1"
    assert (f1["ttd_s"], f1["ttr_s"]) == (pytest.approx(0.005), pytest.approx(1.005))
    # windows: f1 [10, 13.005], f2 [10.5, 13 + 5]: they overlap, on different observations
    assert f1["overlapped_with"] == ["f2"] and f2["overlapped_with"] == ["f1"]
    assert f1["shared_observations_with"] == [] and f2["shared_observations_with"] == []
    # what every user saw in f1's comparison window [10, 20) (issue 15; it ended at f1's own
    # recovery, 11.005): the requests started at 10.0 .. 19.9, all completed by 19.905 (web-2's
    # slowed ones by 13.005): 100; web-1's 5 failed. f2 is on web-2: it does not cut f1's window
    assert (f1["requests_in_window"], f1["failed_requests"]) == (100, 5)
    assert f1["window"]["cut_by"] is None
    # web-1's own: 50 requests (10.0, 10.2, .. 19.8), 5 failed
    assert f1["view_counts"]["requests"] == 50 and f1["view_counts"]["failed_requests"] == 5


def test_2_a_second_kill_in_the_first_ones_stability_window(tmp_path: Path) -> None:
    # web-1 down for requests started in [10, 11), web-2 for those started in [12, 13)
    def ok(i: int) -> bool:
        return not ((i % 2 == 0 and 100 <= i < 110) or (i % 2 and 120 <= i < 130))

    requests = every_100ms(ok=ok, endpoint=alternating)
    events = [kill(10.0, "f1"), kill(12.0, "f2", target="web-2")]
    summary = run(tmp_path, requests, events, endpoints=("web-1", "web-2"))
    f1, f2 = by_id(summary)["f1"], by_id(summary)["f2"]

    # before issue 7: f1's ttr was 3.005 s (web-2's failures until 12.905 kept it "unstable")
    assert f1["ttr_s"] == pytest.approx(1.005)
    # f2: web-2's first failing request starts at 12.1 (12.105), its first success at 13.1
    assert (f2["ttd_s"], f2["ttr_s"]) == (pytest.approx(0.105), pytest.approx(1.105))
    assert f1["overlapped_with"] == ["f2"] and f1["shared_observations_with"] == []


def test_2_faults_on_the_same_instance_are_marked_as_sharing(tmp_path: Path) -> None:
    # two kills of web-1, 1 s apart: the second lands while the first is still failing
    requests = every_100ms(ok=lambda i: not 100 <= i < 125)
    summary = run(tmp_path, requests, [kill(10.0, "f1"), kill(11.0, "f2")])
    f1, f2 = by_id(summary)["f1"], by_id(summary)["f2"]

    assert f1["shared_observations_with"] == ["f2"] and f2["shared_observations_with"] == ["f1"]
    assert f1["ttr_s"] == pytest.approx(2.505)  # includes f2's failures: said, not silent
    assert f2["ttd_s"] == pytest.approx(0.005)


# -- 3. no data is not a pass -----------------------------------------------------------------


SHORT_WINDOW = {"window_s": 0.05}


def probe_blip() -> list[Probe]:
    """web-3's probes every 0.1 s, one failing at 10.03 s (10.031) and back at 10.04 (10.041)."""
    regular = [Probe(i / 10, 1.0, True, "web-3") for i in range(300)]
    return [*regular, Probe(10.03, 1.0, False, "web-3"), Probe(10.04, 1.0, True, "web-3")]


def test_3_availability_without_any_request_in_the_window_fails(tmp_path: Path) -> None:
    # f1 on web-3 (no request goes there), an analysis window of 50 ms: its comparison window
    # is [10.02, 10.07), requests complete at 10.005 and 10.105, so none in it: availability
    # cannot be measured
    events = [kill(10.02, "f1", target="web-3")]
    slo = {"availability": 0.9}
    summary = run(
        tmp_path, every_100ms(), events, probes=probe_blip(), slo=slo, analysis=SHORT_WINDOW
    )
    fault = summary["faults"][0]

    assert (fault["ttd_s"], fault["ttr_s"]) == (pytest.approx(0.011), pytest.approx(0.021))
    assert fault["availability"] is None
    assert summary["slo"]["passed"] is False  # before issue 7: passed, exit 0
    assert summary["status"] == "slo_violated"
    (no_data,) = summary["slo"]["no_data"]
    assert no_data == {
        "name": "availability[f1]",
        "reason": "no request completed in f1's comparison window",
    }
    assert "no data" in summary["status_reason"]
    assert run_exit_code("completed", None, as_summary(summary)) == 1


def test_3_allow_no_data_accepts_it(tmp_path: Path) -> None:
    events = [kill(10.02, "f1", target="web-3")]
    slo = {"availability": 0.9, "allow_no_data": True}
    summary = run(
        tmp_path, every_100ms(), events, probes=probe_blip(), slo=slo, analysis=SHORT_WINDOW
    )

    assert summary["slo"]["passed"] is True and summary["status"] == "passed"
    assert [c["name"] for c in summary["slo"]["no_data"]] == ["availability[f1]"]


def test_3_a_fault_that_never_recovers_fails_with_its_reason_even_with_only_an_error_rate_slo(
    tmp_path: Path,
) -> None:
    # web-1 killed through the API at 10 s and never started again
    requests = every_100ms(ok=lambda i: i < 100)
    events = [kill(10.0, "f1", restart_policy_applies=False), engine(10.002, "die", "web-1")]
    summary = run(tmp_path, requests, events, slo={"error_rate": {"after": 0.01}})
    checks = {c["name"]: c for c in summary["slo"]["checks"]}

    assert summary["status"] == "slo_violated"  # before issue 7: passed, exit 0
    recovered = checks["recovered[f1]"]
    assert recovered["verdict"] == "fail"
    assert recovered["reason"].startswith(
        "never recovered: failures continued until the end of the run (last failure at +29.9 s)"
    )
    assert "web-1 never restarted" in recovered["reason"]
    assert checks["error_rate[after]"]["verdict"] == "no_data"
    assert checks["error_rate[after]"]["reason"] == "phase after is empty: f1 never recovered"
    assert run_exit_code("completed", None, as_summary(summary)) == 1
    lines = "\n".join(verdict_lines(as_summary(summary)))
    assert "f1 container_kill on web-1: NOT recovered" in lines
    assert "failures continued until the end of the run" in lines
    assert "SLOs met" not in lines


# -- 4. a robust baseline ---------------------------------------------------------------------


def through_service(i: int) -> str:
    return SERVICE


def test_4_the_ramp_up_is_not_the_baseline(tmp_path: Path) -> None:
    # 40 users at 10/s: a 4 s warm-up in which every request fails; steady baseline clean.
    # From the kill at 10 s, a third of the requests (i % 3 == 0) fail until 13 s.
    def ok(i: int) -> bool:
        return i >= 40 and not (100 <= i < 130 and i % 3 == 0)

    requests = every_100ms(ok=ok, endpoint=through_service)
    load = {"users": 40, "spawn_rate": 10}
    summary = run(tmp_path, requests, [kill(10.0, "f1")], load=load)
    fault = summary["faults"][0]

    # first failure: the request started at 10.2 (102 % 3 == 0); the last at 12.9 (12.905);
    # the first success after it completes at 13.005 and 2 clean seconds follow.
    # Before issue 7 (40 % "baseline" over load start -> fault, ramp-up included): ttr 0.305
    assert fault["ttr_s"] == pytest.approx(3.005)
    assert fault["ttd_s"] == pytest.approx(0.205)
    assert fault["view"] == "service"
    baseline = summary["baseline"]
    assert baseline["start_ns"] == ns(4.0) and baseline["end_ns"] == ns(10.0)
    # completions 4.005 .. 9.905: 60 requests, none failed
    assert (baseline["requests"], baseline["failed_requests"]) == (60, 0)


def test_4_probes_failing_in_the_baseline_do_not_excuse_failed_requests(tmp_path: Path) -> None:
    # probes of web-1 every 10 ms, 4 % of them failing in the baseline, none after 10 s;
    # requests: all fail in [10, 11), then one in five (i % 5 == 0) until 20 s
    probes = [Probe(i / 100, 1.0, not (i < 1000 and i % 25 == 0), "web-1") for i in range(3000)]

    def ok(i: int) -> bool:
        return not (100 <= i < 110 or (110 <= i < 200 and i % 5 == 0))

    requests = every_100ms(ok=ok, endpoint=through_service)
    summary = run(tmp_path, requests, [kill(10.0, "f1")], probes=probes)
    fault = summary["faults"][0]

    # requests held to their own baseline (0 %): the last failure is the request sent at
    # 19.5 (19.505). Users' recovery through the service is judged on the requests alone
    # (10 a second fill a 2 s stability window twice over): the first success sent after that
    # failure is the request sent at 19.6, completed at 19.605. The target's probes (every
    # 10 ms, 1 ms each) never fail after the kill: its own return is the first probe success
    # from detection (10.005) on, the probe sent at 10.01, done at 10.011. Before (probes as
    # evidence of users' recovery too): ttr 9.501; before issue 7 (one rate of 40 / 1100 over
    # requests and probes together): about 0.6 s
    assert fault["ttr_s"] == pytest.approx(9.605)
    assert fault["target_ttr_s"] == pytest.approx(0.011)
    # steady baseline [1, 10): 900 probes, 36 failed (4 %); 90 requests, none failed
    assert summary["baseline"]["probe_error_rate"] == pytest.approx(0.04)
    assert summary["baseline"]["error_rate"] == 0.0


def test_4_the_tolerance_is_a_binomial_bound_not_a_floor(tmp_path: Path) -> None:
    # one request in 25 fails all along (i % 25 == 0); the kill fails every request in [10, 11)
    def ok(i: int) -> bool:
        return i % 25 != 0 and not 100 <= i < 110

    requests = every_100ms(ok=ok, endpoint=through_service)
    summary = run(tmp_path, requests, [kill(10.0, "f1")])
    fault = summary["faults"][0]

    # The first success (11.005) is followed in 2 s by 20 requests, one failing (12.5).
    # P(Binomial(20, 3/90) <= 2) = 0.9697 < 0.99 <= P(... <= 3) = 0.9947: 3 allowed, calm.
    # Before issue 7: floor(0.04 x 20) = 0 allowed, so it waited until 12.605 (ttr 2.605)
    assert fault["ttr_s"] == pytest.approx(1.005)
    # steady baseline [1, 10): completions of requests 10..99: 90, failed 25, 50, 75: 3
    assert (summary["baseline"]["requests"], summary["baseline"]["failed_requests"]) == (90, 3)


# -- 5. no impact is its own result -----------------------------------------------------------


def test_5_a_fault_without_impact_has_no_ttr_and_does_not_pass_a_ttr_slo(tmp_path: Path) -> None:
    slo = {"ttr_s": 1, "availability": 0.99}
    summary = run(tmp_path, every_100ms(), [kill(10.0, "f1")], slo=slo)
    fault = summary["faults"][0]
    checks = {c["name"]: c for c in summary["slo"]["checks"]}

    assert fault["ttr_s"] is None and fault["recovered"] is None  # before: ttr 0, recovered
    assert fault["impact"] == "none"
    # availability is measured, not assigned: the comparison window [10, 20) (it was the
    # horizon [10, 15] before issue 15): completions 10.005 .. 19.905, all ok
    assert (fault["requests_in_window"], fault["availability"]) == (100, 1.0)
    assert checks["availability[f1]"]["verdict"] == "pass"
    assert checks["ttr_s[f1]"]["verdict"] == "no_data"
    assert checks["ttr_s[f1]"]["reason"].startswith("f1 had no time to detect or recover")
    assert summary["status"] == "slo_violated"


def comparison_run(run_dir: Path, ttr_s: float | None) -> Path:
    """web-1 killed at 10 s: its requests fail until ttr_s - 5 ms later (None: no failure)."""
    back = 10.0 if ttr_s is None else 10.0 + ttr_s - 0.005
    requests = every_100ms(ok=lambda i: not 100 <= i < round(back * 10))
    return write_run(run_dir, requests, events=[kill(10.0, "f1")], load_s=LOAD)


def test_5_comparisons_count_no_impact_apart(tmp_path: Path) -> None:
    ttrs = [1.005, None, 1.205, None, 1.405]
    dirs = [comparison_run(tmp_path / f"run-{i}", t) for i, t in enumerate(ttrs)]
    comparison = compare_runs(load_runs(dirs, "target"), "target")
    (fault,) = comparison.faults
    (group,) = fault.groups

    # the median of the three real recoveries, not of [0, 0, 1.005, 1.205, 1.405] (1.005)
    assert group.stat("ttr_s").values == pytest.approx((1.005, 1.205, 1.405))
    assert group.stat("ttr_s").median == pytest.approx(1.205)
    assert group.no_impact == ("run-1", "run-3")
    assert "2 of 5 had no visible impact" in group.describe_impact()
    assert comparison.to_dict()["faults"][0]["groups"]["docker"]["no_impact_runs"] == [
        "run-1",
        "run-3",
    ]


# -- 6. repeated faults -----------------------------------------------------------------------


def test_6_each_occurrence_is_measured_and_phases_leave_the_gaps_out(tmp_path: Path) -> None:
    # f1 every 10 s, twice: web-1 killed at 10 and 20 s, restarted 0.5 s later each time;
    # its requests started in [10, 11) and [20, 21) fail
    requests = every_100ms(ok=lambda i: not (100 <= i < 110 or 200 <= i < 210))
    events = []
    for n, at in ((1, 10.0), (2, 20.0)):
        events += [
            kill(at, f"f1#{n}", entry="f1", occurrence=n),
            engine(at + 0.004, "die", "web-1", exitCode="137"),
            engine(at + 0.5, "start", "web-1"),
        ]
    summary = run(tmp_path, requests, events)
    faults = by_id(summary)
    phases = summary["phases"]

    assert phases["fault"]["duration_s"] == 1.0  # before issue 7: 11.005 s, gap included
    assert list(faults) == ["f1#1", "f1#2"]
    for fid in ("f1#1", "f1#2"):
        assert (faults[fid]["ttd_s"], faults[fid]["ttr_s"]) == (
            pytest.approx(0.005),
            pytest.approx(1.005),
        )
        assert faults[fid]["entry"] == "f1"
    (group,) = summary["fault_groups"]
    assert group["id"] == "f1" and group["occurrences"] == ["f1#1", "f1#2"]
    assert group["ttr_s"] == {"n": 2, "median": 1.005, "max": 1.005}
    # fault: injection -> restart, twice; recovery: restart -> users' recovery (11.005, 21.005)
    assert phases["fault"]["intervals"] == [[ns(10.0), ns(10.5)], [ns(20.0), ns(20.5)]]
    assert phases["recovery"]["intervals"] == [[ns(10.5), ns(11.005)], [ns(20.5), ns(21.005)]]
    assert phases["after"]["intervals"] == [[ns(11.005), ns(20.0)], [ns(21.005), ns(30.0)]]
    # completions 10.005..10.405 and 20.005..20.405 in fault, 10.505..10.905 and 20.505..20.905
    # in recovery: all failed; every other request succeeded
    assert (phases["fault"]["requests"], phases["fault"]["failures"]) == (10, 10)
    assert (phases["recovery"]["requests"], phases["recovery"]["failures"]) == (10, 10)
    assert phases["after"]["failures"] == 0
    own = faults["f1#2"]["phases"]
    assert (own["fault"]["start_ns"], own["fault"]["end_ns"]) == (ns(20.0), ns(20.5))
    assert (own["recovery"]["start_ns"], own["recovery"]["end_ns"]) == (ns(20.5), ns(21.005))


# -- 7. t0 is the fault's action ----------------------------------------------------------------


class SlowToAct(Fault[FaultParams]):
    """Spends 0.2 s preparing (as a fault listing containers does), then acts, then 0.1 s more."""

    kind = "slow_to_act"
    summary = "test fault"
    has_duration = False

    def __init__(self) -> None:
        super().__init__(Fault.params_model())
        self.acted: tuple[int, int] = (0, 0)
        self.reverted: tuple[int, int] = (0, 0)

    def plan(self, ctx: FaultContext, fault_id: str, instances: Any) -> RevertRecord:
        return RevertRecord(fault_id, self.kind, tuple(i.name for i in instances), "test")

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        time.sleep(0.2)
        before = time.time_ns()
        ctx.mark_action()
        self.acted = (before, time.time_ns())
        time.sleep(0.1)

    def revert_now(self, ctx: FaultContext) -> None:
        time.sleep(0.2)
        before = time.time_ns()
        ctx.mark_action()
        self.reverted = (before, time.time_ns())


class OneInstance:
    """The one thing of a target the runner's injection touches: its instances."""

    def __init__(self, run_id: str) -> None:
        labels = {RUN_LABEL: run_id}
        self.instance = Instance("web-1", "web", "c1", "chaos-web-1", 1, "http://x", labels)

    def instances(self) -> list[Instance]:
        return [self.instance]


def test_7_t0_is_the_instant_the_fault_marks_not_before_its_preparation(tmp_path: Path) -> None:
    scenario = parse_scenario("name: t\nfaults: [{kind: container_kill, at: 1s}]\n")
    runner = Runner(scenario, RunOptions(out_dir=tmp_path))
    target = OneInstance(runner.run_id)
    ctx = FaultContext(target, runner.run_id, tmp_path, random.Random(1))  # type: ignore[arg-type]
    events = EventLog(tmp_path / "events.jsonl")
    fault = SlowToAct()
    (occurrence,) = expand(scenario.faults, scenario.load.duration)
    from harness.journal import Journal

    runner._inject(ctx, events, Journal(tmp_path / "faults.jsonl"), fault, occurrence)
    record = RevertRecord("f1", "slow_to_act", ("web-1",), "test")
    fault.revert = lambda c, r: fault.revert_now(c)  # type: ignore[method-assign]
    runner._revert(ctx, events, Journal(tmp_path / "faults.jsonl"), fault, record)
    events.close()
    inject_event, revert_event = read_json_lines(tmp_path / "events.jsonl")

    # the event's instant lies between the fault's own readings around its mark, 0.2 s after
    # apply began (before issue 7 it was stamped before apply: 0.2 s early)
    assert fault.acted[0] <= inject_event["time_ns"] <= fault.acted[1]
    attributes = inject_event["attributes"]
    assert attributes["apply_s"] >= 0.3 and attributes["action_marked"] is True
    assert "duration_s" not in attributes  # no nominal duration passed off as measured
    assert fault.reverted[0] <= revert_event["time_ns"] <= fault.reverted[1]
    measured = (revert_event["time_ns"] - inject_event["time_ns"]) / 1e9
    assert revert_event["attributes"]["active_s"] == pytest.approx(measured, abs=1e-6)


def test_a_late_injection_moves_its_revert_so_the_fault_lasts_its_duration(
    tmp_path: Path,
) -> None:
    scenario = parse_scenario(
        "name: t\nfaults: [{kind: network_partition, at: 2s, duration: 4s},"
        " {kind: cpu_stress, at: 6.2s, duration: 1s}]\n"
    )
    runner = Runner(scenario, RunOptions(out_dir=tmp_path))
    pending = actions(expand(scenario.faults, scenario.load.duration))
    inject, rest = pending[0], pending[1:]
    load_start_ns = 1_000_000_000_000
    # the agent acted 0.7 s after the planned instant (an exec's round trip)
    runner._injected_ns["f1"] = load_start_ns + int(2.7e9)
    moved = runner._revert_after_its_action(rest, inject, load_start_ns)
    assert [(a.verb, a.occurrence.fault_id, round(a.at_s, 6)) for a in moved] == [
        ("inject", "f2", 6.2),  # f1's revert now comes after f2's injection
        ("revert", "f1", 6.7),
        ("revert", "f2", 7.2),
    ]
    # far too late: moved by at most the shift the leases' grace allows
    runner._injected_ns["f1"] = load_start_ns + int(9e9)
    (late,) = [
        a
        for a in runner._revert_after_its_action(rest, inject, load_start_ns)
        if a.occurrence.fault_id == "f1"
    ]
    assert late.at_s == pytest.approx(6.0 + LATE_INJECTION_SHIFT_S)
    # early or on time, and reverts themselves, move nothing
    runner._injected_ns["f1"] = load_start_ns + int(1.9e9)
    assert runner._revert_after_its_action(rest, inject, load_start_ns) == rest
    assert runner._revert_after_its_action(rest[1:], rest[0], load_start_ns) == rest[1:]


# -- 8. a broken baseline is not an experiment ---------------------------------------------------


def test_8_a_load_that_never_reached_the_target_is_a_broken_baseline(tmp_path: Path) -> None:
    # a locustfile's own host: every request refused at 127.0.0.1:8089; the probes, fine
    # but during a kill of web-1 (10.0 - 12.6 s), would give a "recovery" of 2.6 s
    requests = every_100ms(ok=lambda i: False, endpoint=lambda i: "127.0.0.1:8089")
    probes = [Probe(i / 10, 1.0, not 100 <= i < 126, "web-1") for i in range(300)]
    summary = run(tmp_path, requests, [kill(10.0, "f1")], probes=probes)
    fault = summary["faults"][0]

    assert summary["status"] == "baseline_broken"  # before issue 7: passed, ttr 2.6 s
    assert summary["baseline"]["broken"] is True
    reason = summary["status_reason"]
    assert reason.startswith("100.0% of requests failed in the steady baseline")
    assert "ConnectionError on 127.0.0.1:8089 (90 of 90)" in reason
    assert fault["impact"] == "unmeasured"
    assert fault["ttr_s"] is None and fault["recovered"] is None
    assert run_exit_code("completed", None, as_summary(summary)) == 1
    assert "SLOs met" not in "\n".join(verdict_lines(as_summary(summary)))


def test_a_run_error_never_prints_slos_met() -> None:
    # a run that failed half-way: its SLO checks passed on what little data there was
    summary = Summary.model_validate(
        {"run_id": "r", "status": "error", "faults": [], "slo": {"passed": True, "checks": []}}
    )
    lines = verdict_lines(summary)
    assert lines[-1] == "run error: no SLO verdict (the run did not complete)"
    assert "SLOs met" not in lines
    assert run_exit_code("error", None, summary) == 3
