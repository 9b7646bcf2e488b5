"""Analysis of hand-made runs whose answers are known (docs/DESIGN.md, "Metrics")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.analysis import analyze_run, load_run
from harness.errors import AnalysisError
from tests.synthetic_run import (
    Event,
    Probe,
    Req,
    engine,
    inject,
    ns,
    revert,
    series,
    write_run,
)


def analyze(run_dir: Path, requests: list[Req], events: list[Event], **kw: Any) -> dict[str, Any]:
    write_run(run_dir, requests, events=events, **kw)
    return summary_of(run_dir)


def summary_of(run_dir: Path) -> dict[str, Any]:
    summary: dict[str, Any] = analyze_run(run_dir)
    return summary


def kill_then_flap() -> list[Req]:
    """t0 = 10 s: a request started before t0 fails after it, a success at 11.005 s is
    followed by a failure within 2 s, and clean traffic resumes at 12.0 s."""
    return [
        *series(0.0, 10.0, 0.1),
        Req(9.95, 100.0, ok=False),  # started before t0, completes at 10.05 s
        *[Req(10.2 + 0.1 * i, 5.0, ok=False) for i in range(8)],
        Req(11.0, 5.0),  # a success at 11.005 s ...
        Req(11.5, 5.0, ok=False),  # ... followed by a failure within stable_for
        *series(12.0, 30.0, 0.1),
    ]


# -- detection and recovery -----------------------------------------------------------------


def test_detection_and_recovery_instants(tmp_path: Path) -> None:
    probes = [Probe(10.5, 1.0, ok=False, instance="web-1"), Probe(20.0, 1.0)]
    write_run(tmp_path, kill_then_flap(), probes, [inject(10.0, "f1")], load_s=(0.0, 30.0))
    fault = summary_of(tmp_path)["faults"][0]

    assert fault["injected_at_ns"] == ns(10.0)
    assert fault["detected_at_ns"] == ns(10.05)  # completion of the request started at 9.95
    assert fault["recovered_at_ns"] == ns(12.005)  # not 11.005: a failure followed it
    assert fault["ttd_s"] == pytest.approx(0.05)
    assert fault["ttr_s"] == pytest.approx(2.005)
    assert fault["recovered"] is True
    assert fault["reason"] is None
    # the comparison window is [10, 20) (one-off: 0 s + analysis.window 10 s; before issue 15
    # it ended at the recovery, 12.005): the 10 failures (10.05, 8 in 10.205..10.905, 11.505),
    # 11.005 and the 80 requests started 12.0..19.9 (completed by 19.905): 91, 81 ok
    assert (fault["failed_requests"], fault["requests_in_window"]) == (10, 91)
    assert fault["availability"] == pytest.approx(81 / 91, abs=1e-6)
    assert fault["window"]["duration_s"] == 10.0 and fault["window"]["cut_by"] is None
    # probes: 10.501 failed; the one completing at 20.001 is outside
    assert (fault["probes_failed"], fault["probes_in_window"]) == (1, 1)


def test_probe_failure_alone_detects(tmp_path: Path) -> None:
    requests = series(0.0, 30.0, 0.1)
    probes = [Probe(10.3, 2.0, ok=False), Probe(10.4, 2.0)]
    write_run(tmp_path, requests, probes, [inject(10.0, "f1")], load_s=(0.0, 30.0))
    fault = summary_of(tmp_path)["faults"][0]

    assert fault["detected_at_ns"] == ns(10.302)
    assert fault["recovered_at_ns"] == ns(10.305)  # the request started at 10.3
    assert fault["failed_requests"] == 0
    assert fault["availability"] == 1.0
    assert fault["probes_failed"] == 1


def test_baseline_failure_rate_is_tolerated(tmp_path: Path) -> None:
    # every 10th request fails all along: 10 % baseline (allowed here: the default limit is
    # 5 %); a burst after t0, then back to 10 %
    requests = [Req(i / 10, 5.0, ok=i % 10 != 0) for i in range(300)]
    requests = [
        r if not 100 <= round(r.start_s * 10) < 120 else Req(r.start_s, 5.0, False)
        for r in requests
    ]
    analysis = {"baseline_max_error_rate": 0.2}
    summary = analyze(
        tmp_path, requests, [inject(10.0, "f1")], load_s=(0.0, 30.0), analysis=analysis
    )

    # steady baseline [1, 10): requests 10..99 complete there, 10, 20, .. 90 failed: 9 of 90
    assert summary["analysis"]["baseline_failure_rate"] == pytest.approx(0.1)
    fault = summary["faults"][0]
    assert fault["detected_at_ns"] == ns(10.005)
    # first success completes at 12.105; its next 2 s hold 20 requests, 2 failed (13.0, 14.0),
    # within the 99th percentile of Binomial(20, 0.1) (5)
    assert fault["recovered_at_ns"] == ns(12.105)


def test_fault_that_never_recovers(tmp_path: Path) -> None:
    requests = series(0.0, 10.0, 0.1)
    requests += [
        Req(10.0 + 0.1 * i, 5.0, ok=i % 2 == 0, endpoint="web-1" if i % 2 == 0 else "web-2")
        for i in range(200)
    ]
    events = [
        engine(-3.0, "start", "web-2"),
        inject(10.0, "f1", targets=("web-2",), restart_policy_applies=False, mode="api_kill"),
        engine(10.002, "die", "web-2", exitCode="137"),
    ]
    summary = analyze(
        tmp_path, requests, events, load_s=(0.0, 30.0), slo={"ttr_s": 5, "availability": 0.9}
    )
    fault = summary["faults"][0]

    assert fault["recovered"] is False
    assert fault["recovered_at_ns"] is None
    assert fault["ttr_s"] is None
    assert fault["detected_at_ns"] == ns(10.105)
    reason = fault["reason"]
    assert reason.startswith("failures continued until the end of the run")
    assert "last failure at +29.9 s" in reason
    assert "web-2 never restarted" in reason
    assert "manual stop" in reason and "restart policy does not apply" in reason
    # the comparison window is [10, 20) (before issue 15 it ran to the end of the data): the
    # requests started 10.0..19.9 complete by 19.905: 100, every other one failed
    assert (fault["failed_requests"], fault["requests_in_window"]) == (50, 100)
    assert fault["orchestrator"][0]["restarted"] is False
    assert fault["orchestrator"][0]["die_to_start_s"] is None

    checks = {c["name"]: c for c in summary["slo"]["checks"]}
    assert checks["ttr_s[f1]"] == {
        "name": "ttr_s[f1]",
        "limit": 5.0,
        "value": None,
        "verdict": "fail",
        "reason": reason,
    }
    assert checks["recovered[f1]"]["verdict"] == "fail"
    assert checks["availability[f1]"]["verdict"] == "fail"
    assert summary["slo"]["passed"] is False
    assert summary["status"] == "slo_violated"
    phases = summary["phases"]
    assert phases["fault"]["end_ns"] == ns(30.0)  # an unrecovered kill is active to the end
    assert phases["recovery"]["duration_s"] == 0
    assert phases["after"]["duration_s"] == 0


def test_run_ended_before_stability(tmp_path: Path) -> None:
    requests = series(0.0, 10.0, 0.1) + series(10.0, 29.0, 0.1, ok=False)
    requests += series(29.0, 30.0, 0.1)
    summary = analyze(tmp_path, requests, [inject(10.0, "f1")], load_s=(0.0, 30.0))
    fault = summary["faults"][0]

    # censored (issue 15; it read "never recovered"): the success at 29.005 s is followed by
    # 9 successes and then the data ends (29.905 s), short of 2 s: recovered at 29.005 or
    # later, 19.005 s after the kill at the earliest
    assert fault["recovered_at_ns"] is None
    assert (fault["recovered"], fault["censored"]) == (None, True)
    assert fault["ttr_at_least_s"] == pytest.approx(19.005)
    assert fault["reason"].startswith("censored: the run ended before 2 s of stability")


def test_fault_without_failures(tmp_path: Path) -> None:
    summary = analyze(
        tmp_path,
        series(0.0, 30.0, 0.1),
        [inject(10.0, "f1")],
        load_s=(0.0, 30.0),
        slo={"ttr_s": 1, "ttd_s": 1, "availability": 0.99},
    )
    fault = summary["faults"][0]

    assert fault["impact"] == "none"
    assert fault["detected_at_ns"] is None
    assert fault["ttd_s"] is None
    assert fault["recovered"] is None
    assert fault["recovered_at_ns"] is None
    assert fault["ttr_s"] is None
    assert fault["reason"] == (
        "no visible impact: none of 50 requests and 0 probes of its view failed within the "
        "detection horizon after its injection"
    )  # the horizon [10, 15] holds the completions 10.005 .. 14.905
    assert fault["availability"] == 1.0  # measured over those 50 requests, not assigned
    verdicts = {c["name"]: c["verdict"] for c in summary["slo"]["checks"]}
    assert verdicts == {
        "ttr_s[f1]": "no_data",
        "ttd_s[f1]": "no_data",
        "availability[f1]": "pass",
    }
    assert summary["status"] == "slo_violated"  # no data is not a pass
    phases = summary["phases"]
    assert phases["fault"]["duration_s"] == 0
    assert phases["after"]["start_ns"] == ns(10.0)
    assert phases["after"]["requests"] == 200


def partition_requests() -> list[Req]:
    """web-2 partitioned 10-15 s: its requests started in it time out after 2 s (fail at
    completion); from 15 s it answers in 5 ms again. web-1 succeeds all along."""
    lost = [Req(10.0 + 0.1 * i, 2000.0, ok=False, endpoint="web-2") for i in range(50)]
    back = [Req(15.0 + 0.1 * i, 5.0, endpoint="web-2") for i in range(150)]
    return [*series(0.0, 30.0, 0.1), *lost, *back]


def test_fault_with_duration_recovers_after_revert(tmp_path: Path) -> None:
    events = [
        inject(
            10.0,
            "f1",
            kind="network_partition",
            targets=("web-2",),
            mode="drop",
            restart_policy_applies=None,
        ),
        revert(15.0, "f1"),
    ]
    summary = analyze(tmp_path, partition_requests(), events, load_s=(0.0, 30.0))
    fault = summary["faults"][0]

    assert fault["reverted_at_ns"] == ns(15.0)
    assert fault["detected_at_ns"] == ns(12.0)  # the first timeout completes 2 s in
    # web-2's request sent at 15.0 s succeeds at 15.005 s; the timeouts completing until
    # 16.9 s were all sent before 15.005 s (13.0..14.9 s): evidence of the partition, not
    # against the recovery (issue 15: it read 16.905 s, the last timeout's successor)
    assert fault["recovered_at_ns"] == ns(15.005)
    assert fault["ttr_s"] == pytest.approx(5.005)
    assert fault["orchestrator"][0]["die_at_ns"] is None


def test_recovery_never_precedes_the_revert(tmp_path: Path) -> None:
    # failures end at 11 s, but the partition is reverted only at 15 s
    requests = series(0.0, 30.0, 0.1) + [Req(10.0 + 0.1 * i, 1.0, False) for i in range(10)]
    events = [inject(10.0, "f1", kind="network_partition"), revert(15.0, "f1")]
    fault = analyze(tmp_path, requests, events, load_s=(0.0, 30.0))["faults"][0]

    assert fault["recovered_at_ns"] == ns(15.005)


def test_an_orchestrator_that_heals_during_the_fault_recovers_before_the_revert(
    tmp_path: Path,
) -> None:
    # a node partitioned 10-40 s; its task rescheduled elsewhere, the last failure at 16.901 s
    requests = series(0.0, 60.0, 0.1) + [Req(10.0 + 0.1 * i, 1.0, False) for i in range(70)]
    events = [
        inject(10.0, "f1", kind="node_partition", heals_during_fault=True),
        revert(40.0, "f1"),
    ]
    fault = analyze(tmp_path, requests, events, load_s=(0.0, 60.0))["faults"][0]

    assert fault["recovered_at_ns"] == ns(16.905)  # not after 40 s: Swarm healed it meanwhile


def test_a_stray_failure_long_after_a_harmless_fault_is_not_its_impact(tmp_path: Path) -> None:
    # +100 ms latency from 10 to 15 s fails nothing; a lone timeout at 25 s is not its doing
    requests = [*series(0.0, 30.0, 0.1), Req(24.0, 1000.0, ok=False)]
    events = [inject(10.0, "f1", kind="latency"), revert(15.0, "f1")]
    fault = analyze(tmp_path, requests, events, load_s=(0.0, 30.0))["faults"][0]

    assert fault["detected_at_ns"] is None
    assert fault["impact"] == "none" and fault["reason"].startswith("no visible impact")
    assert fault["ttr_s"] is None


def test_failures_just_after_the_revert_still_count(tmp_path: Path) -> None:
    # a revert that drops connections: failures within stable_for of the revert are the fault's
    requests = [*series(0.0, 30.0, 0.1), Req(15.5, 1.0, ok=False)]
    events = [inject(10.0, "f1", kind="bandwidth"), revert(15.0, "f1")]
    fault = analyze(tmp_path, requests, events, load_s=(0.0, 30.0))["faults"][0]

    assert fault["detected_at_ns"] == ns(15.501)
    assert fault["recovered"] is True


# -- orchestrator intervals -----------------------------------------------------------------


def test_swarm_view_of_a_lost_node_next_to_what_users_saw(tmp_path: Path) -> None:
    def cluster_event(time_s: float, action: str, **attributes: object) -> Event:
        return Event(time_s, "engine", action, None, attributes)  # no instance: node/service

    events = [
        engine(1.0, "task_state", "web-2", task_id="old", state="running", node="n2"),
        inject(10.0, "f1", kind="node_partition", targets=("web-2",), heals_during_fault=True),
        cluster_event(14.0, "node_state", node="n2", old="ready", new="down"),
        cluster_event(14.1, "service_degraded", running="2", desired="3"),
        engine(15.0, "task_state", "web-3", task_id="other", state="running", node="n3"),
        engine(16.5, "task_state", "web-2", task_id="new", state="running", node="n1"),
        cluster_event(16.5, "service_converged", running="3", desired="3"),
        revert(30.0, "f1"),
        cluster_event(31.0, "node_state", node="n2", old="down", new="ready"),
    ]
    # web-2's requests fail from 10.0 to 16.7 s (1 ms each) and succeed again from 16.8 s
    failing = [Req(10.0 + 0.1 * i, 1.0, False, "web-2") for i in range(68)]
    back = [Req(16.8 + 0.1 * i, 5.0, True, "web-2") for i in range(232)]
    requests = series(0.0, 40.0, 0.1) + failing + back
    fault = analyze(tmp_path, requests, events, load_s=(0.0, 40.0))["faults"][0]

    cluster = fault["cluster"]
    assert cluster["node"] == "n2"
    assert cluster["to_node_down_s"] == 4.0
    assert cluster["to_degraded_s"] == 4.1
    assert cluster["to_replacement_running_s"] == 6.5  # the new task, not web-3's
    assert cluster["to_full_strength_s"] == 6.5
    assert cluster["to_node_ready_s"] == 21.0
    assert fault["ttr_s"] == pytest.approx(6.805)  # users: web-2's first success, at 16.805


def test_kubernetes_view_of_a_lost_node_finds_the_replacement_pod(tmp_path: Path) -> None:
    def cluster_event(time_s: float, action: str, **attributes: object) -> Event:
        return Event(time_s, "engine", action, None, attributes)

    def phase(time_s: float, slot: str, uid: str, phase: str, old: str) -> Event:
        return engine(time_s, "pod_phase", slot, pod_uid=uid, phase=phase, old_phase=old)

    events = [
        phase(1.0, "web-2", "uid-old", "Running", "Pending"),
        inject(10.0, "f1", kind="node_partition", targets=("web-2",), heals_during_fault=True),
        cluster_event(27.0, "node_state", node="chk8s-n2", old="ready", new="down"),
        cluster_event(27.1, "service_degraded", running="2", desired="3"),
        phase(30.0, "web-3", "uid-other", "Running", "Pending"),  # another slot's new pod
        phase(37.2, "web-2", "uid-new", "Running", "Pending"),
        cluster_event(37.8, "service_converged", running="3", desired="3"),
        revert(50.0, "f1"),
    ]
    fault = analyze(tmp_path, series(0.0, 60.0, 0.1), events, load_s=(0.0, 60.0))["faults"][0]

    cluster = fault["cluster"]
    assert (cluster["node"], cluster["to_node_down_s"]) == ("chk8s-n2", 17.0)
    assert cluster["to_replacement_running_s"] == 27.2  # web-2's new pod, not web-3's
    assert cluster["to_full_strength_s"] == 27.8


def test_a_docker_run_has_no_cluster_view(tmp_path: Path) -> None:
    fault = analyze(tmp_path, kill_then_flap(), [inject(10.0, "f1")], load_s=(0.0, 30.0))
    assert fault["faults"][0]["cluster"] is None


def test_orchestrator_intervals_from_engine_events(tmp_path: Path) -> None:
    events = [
        engine(-5.0, "start", "web-2"),  # the deployment's start: before t0, ignored
        engine(-4.0, "health_status", "web-2", health="healthy"),
        inject(10.0, "f1", targets=("web-2", "web-3")),
        engine(9.9995, "die", "web-2", exitCode="137"),  # 0.5 ms before t0: within tolerance
        engine(10.35, "start", "web-2"),
        engine(10.5, "health_status", "web-2", health="unhealthy"),
        engine(11.4, "health_status", "web-2", health="healthy"),
        engine(10.01, "die", "web-3", exitCode="137"),
    ]
    fault = analyze(tmp_path, series(0.0, 30.0, 0.1), events, load_s=(0.0, 30.0))["faults"][0]
    web2, web3 = fault["orchestrator"]

    assert web2["instance"] == "web-2"
    assert (web2["die_at_ns"], web2["start_at_ns"], web2["healthy_at_ns"]) == (
        ns(9.9995),
        ns(10.35),
        ns(11.4),
    )
    assert web2["kill_to_die_s"] == pytest.approx(-0.0005, abs=1e-3)
    assert web2["die_to_start_s"] == pytest.approx(0.3505, abs=1e-3)
    assert web2["start_to_healthy_s"] == pytest.approx(1.05)
    assert web2["restarted"] is True
    assert web3["kill_to_die_s"] == pytest.approx(0.01)
    assert (web3["start_at_ns"], web3["healthy_at_ns"], web3["restarted"]) == (None, None, False)


# -- phases ---------------------------------------------------------------------------------


def test_phase_boundaries_and_counts(tmp_path: Path) -> None:
    partition = inject(10.0, "f1", kind="network_partition", targets=("web-2",))
    events = [partition, revert(15.0, "f1")]
    requests = partition_requests()
    summary = analyze(tmp_path, requests, events, load_s=(0.0, 30.0))
    phases = summary["phases"]
    bounds = {name: (p["start_ns"], p["end_ns"]) for name, p in phases.items()}

    assert bounds == {
        "baseline": (ns(0.0), ns(10.0)),
        "fault": (ns(10.0), ns(15.0)),
        "recovery": (ns(15.0), ns(15.005)),  # users' recovery at 15.005 s (issue 15)
        "after": (ns(15.005), ns(30.0)),
    }
    expected = {name: [0, 0] for name in phases}
    for r in requests:
        end = ns(r.start_s) + round(r.latency_ms * 1e6)
        name = next(n for n, (lo, hi) in bounds.items() if lo <= end < hi or n == "after")
        expected[name][0] += 1
        expected[name][1] += not r.ok
    for name, (count, failed) in expected.items():
        assert (phases[name]["requests"], phases[name]["failures"]) == (count, failed), name
    assert phases["fault"]["failures"] == 30  # timeouts completing 12.0-14.9 s
    # the timeout sent at 13.0 s completes at 15.0 s, in recovery; the 19 later ones in after
    assert (phases["recovery"]["failures"], phases["after"]["failures"]) == (1, 19)
    assert phases["baseline"]["throughput_rps"] == pytest.approx(10.0)
    assert phases["fault"]["error_rate"] == pytest.approx(30 / 80)
    # 300 requests to web-1, 50 lost to the partition, 150 to web-2 once it is back
    assert sum(p["requests"] for p in phases.values()) == summary["totals"]["requests"] == 500
    # latency over the SUCCESSFUL requests that started in the phase, failures counted apart
    # (issue 15; the 2 s timeouts were the fault phase's max before): started in [10, 15):
    # web-1's 50 (5 ms, ok) and web-2's 50 timeouts. p99 needs 100 values: null, said why
    fault_latency = phases["fault"]["latency_ms"]
    assert (fault_latency["successful"], fault_latency["failed"]) == (50, 50)
    assert (fault_latency["max"], fault_latency["p95"], fault_latency["p99"]) == (5.0, 5.0, None)
    assert fault_latency["null_reasons"] == {
        "p99": "p99 needs at least 100 successful requests, 50 here"
    }
    # recovery [15.0, 15.005): web-1's and web-2's requests sent at 15.0, both ok
    assert phases["recovery"]["latency_ms"]["max"] == 5.0


def test_phase_percentiles(tmp_path: Path) -> None:
    # baseline latencies 1..100 ms; one request started in baseline completes in the fault phase
    requests = [Req(i * 0.09, float(i + 1)) for i in range(100)]
    requests.append(Req(9.5, 900.0))  # completes at 10.4 s: fault-phase count, baseline latency
    events = [inject(10.0, "f1"), revert(12.0, "f1")]
    summary = analyze(tmp_path, requests, events, load_s=(0.0, 30.0))
    baseline = summary["phases"]["baseline"]

    assert baseline["requests"] == 100
    latency = baseline["latency_ms"]
    values = sorted([float(i + 1) for i in range(100)] + [900.0])
    assert latency["p50"] == pytest.approx(values[50])
    assert latency["max"] == 900.0
    assert latency["p95"] == pytest.approx(96.0)
    assert latency["p99"] == pytest.approx(100.0)
    assert summary["phases"]["fault"]["requests"] == 1
    assert summary["phases"]["fault"]["latency_ms"] is None


def test_no_fault_is_all_baseline(tmp_path: Path) -> None:
    summary = analyze(tmp_path, series(0.0, 30.0, 0.1), [], load_s=(0.0, 30.0))

    assert summary["faults"] == []
    assert summary["phases"]["baseline"]["requests"] == 300
    assert summary["phases"]["baseline"]["duration_s"] == 30.0
    for name in ("fault", "recovery", "after"):
        assert summary["phases"][name]["requests"] == 0
        assert summary["phases"][name]["throughput_rps"] is None
    assert summary["totals"] == {
        "requests": 300,
        "failures": 0,
        "error_rate": 0.0,
        "throughput_rps": 10.0,
        "probes": 0,
        "probe_failures": 0,
    }


def test_endpoint_counts(tmp_path: Path) -> None:
    requests = [Req(0.1 * i, 5.0, ok=i % 3 != 2, endpoint=f"web-{i % 3 + 1}") for i in range(30)]
    summary = analyze(tmp_path, requests, [], load_s=(0.0, 3.0))

    assert summary["endpoints"]["web-3"]["failures"] == 10
    assert summary["endpoints"]["web-1"]["requests"] == 10


# -- edges ----------------------------------------------------------------------------------


def test_empty_requests_table(tmp_path: Path) -> None:
    slo = {"p95_ms": {"baseline": 50}, "error_rate": {"fault": 0.1}, "ttr_s": 5}
    summary = analyze(tmp_path, [], [inject(10.0, "f1")], load_s=(0.0, 30.0), slo=slo)

    assert summary["totals"]["requests"] == 0
    assert summary["totals"]["error_rate"] is None
    assert summary["phases"]["baseline"]["latency_ms"] is None
    # no request at all: not an experiment, nothing is measured
    assert summary["status"] == "baseline_broken"
    assert summary["status_reason"].startswith("no request completed in the steady baseline")
    assert summary["faults"][0]["impact"] == "unmeasured"
    assert summary["faults"][0]["recovered"] is None
    assert summary["faults"][0]["availability"] is None
    verdicts = {c["name"]: c["verdict"] for c in summary["slo"]["checks"]}
    assert verdicts == {
        "ttr_s[f1]": "no_data",
        "p95_ms[baseline]": "no_data",
        "error_rate[fault]": "no_data",
    }
    assert summary["slo"]["passed"] is False
    assert load_run(tmp_path).requests.empty


@pytest.mark.parametrize(
    "name", ["manifest.json", "requests.parquet", "probes.parquet", "events.jsonl"]
)
def test_missing_file_is_named(tmp_path: Path, name: str) -> None:
    write_run(tmp_path, series(0.0, 1.0, 0.1))
    (tmp_path / name).unlink()
    with pytest.raises(AnalysisError, match=name.replace(".", r"\.")):
        analyze_run(tmp_path)


def test_torn_last_event_line_is_ignored(tmp_path: Path) -> None:
    write_run(tmp_path, series(0.0, 30.0, 0.1), events=[inject(10.0, "f1")], load_s=(0.0, 30.0))
    with (tmp_path / "events.jsonl").open("a", encoding="utf-8") as out:
        out.write('{"time_ns": 17000')
    assert len(load_run(tmp_path).events) == 1


def test_slo_verdicts_and_status(tmp_path: Path) -> None:
    slo = {
        "ttr_s": 3,
        "ttd_s": 0.01,
        "availability": 0.5,
        "error_rate": {"baseline": 0.0, "recovery": 0.1, "total": 0.5},
        "p95_ms": {"baseline": 4},
        "p99_ms": {"after": 10},
    }
    summary = analyze(tmp_path, kill_then_flap(), [inject(10.0, "f1")], load_s=(0.0, 30.0), slo=slo)
    checks = {c["name"]: (c["value"], c["verdict"]) for c in summary["slo"]["checks"]}

    assert checks == {
        "recovered[f1]": (pytest.approx(2.005), "pass"),
        "ttr_s[f1]": (pytest.approx(2.005), "pass"),
        "ttd_s[f1]": (pytest.approx(0.05), "fail"),
        # the comparison window [10, 20): 81 of 91 ok (see test_detection_and_recovery_instants)
        "availability[f1]": (pytest.approx(81 / 91, abs=1e-6), "pass"),
        "error_rate[baseline]": (0.0, "pass"),
        "error_rate[recovery]": (None, "no_data"),  # an instantaneous fault: empty recovery
        "error_rate[total]": (pytest.approx(10 / 291, abs=1e-6), "pass"),
        "p95_ms[baseline]": (5.0, "fail"),
        "p99_ms[after]": (5.0, "pass"),
    }
    assert summary["slo"]["passed"] is False
    assert summary["status"] == "slo_violated"


def test_manifest_status_wins(tmp_path: Path) -> None:
    summary = analyze(tmp_path, series(0.0, 5.0, 0.1), [], load_s=(0.0, 5.0), status="interrupted")
    assert summary["status"] == "aborted"  # an older manifest's word, read in today's
    assert summary["error"] == "interrupted by SIGINT"


def test_summary_json_is_strict(tmp_path: Path) -> None:
    write_run(tmp_path, [], events=[inject(1.0, "f1")], load_s=(0.0, 5.0))
    returned = analyze_run(tmp_path)

    def refuse(token: str) -> None:
        raise AssertionError(f"non-JSON number {token}")

    stored = json.loads((tmp_path / "summary.json").read_text(), parse_constant=refuse)
    assert stored == returned


# -- the orchestrator's timers, Kubernetes' Events, watch gaps (issue 16) ---------------------


def kill_with_restart(restart_s: float) -> list[Event]:
    """web-1 killed at 10 s (crash 1 after 14 s of running: it started at -4 s), died at
    10.004 s, started again at `restart_s`."""
    return [
        engine(-4.0, "start", "web-1"),
        inject(10.0, "f1", has_duration=False),
        engine(10.004, "die", "web-1", exitCode="137"),
        engine(restart_s, "start", "web-1"),
    ]


@pytest.mark.parametrize(
    ("restart_s", "verdict"),
    [
        # Docker's back-off before a first restart is 100 ms, plus up to 2.5 s of start work
        # (harness.analysis.timers.docker): die -> start 10.3 - 10.004 = 0.296 s is within
        # 0.1-2.6 s; 14.004 - 10.004 = 4.0 s is above 2.6 s
        (10.3, "as_predicted"),
        (14.004, "slower"),
    ],
)
def test_a_docker_kill_carries_what_the_restart_timers_expect(
    tmp_path: Path, restart_s: float, verdict: str
) -> None:
    requests = [Req(i / 10, 5.0, ok=not 100 <= i < 110) for i in range(300)]
    fault = analyze(tmp_path, requests, kill_with_restart(restart_s), load_s=(0.0, 30.0))["faults"][
        0
    ]

    (expected,) = [e for e in fault["expected"] if e["interval"] == "die_to_start"]
    assert expected["instance"] == "web-1"
    assert expected["measured_s"] == pytest.approx(restart_s - 10.004, abs=1e-3)
    assert expected["low_s"] <= 0.1 and expected["high_s"] == pytest.approx(2.6)
    assert expected["verdict"] == verdict
    assert expected["source"] == "published default"  # no scenario.yaml in this run dir


def k8s_event(time_s: float, reason: str, kind: str = "Warning", slot: str = "web-1") -> Event:
    attributes = {"reason": reason, "type": kind, "note": f"{reason} note"}
    return Event(time_s, "engine", "k8s_event", slot, {**attributes, "object": "Pod/web-abc"})


def test_kubernetes_events_in_a_faults_window(tmp_path: Path) -> None:
    # web-1's requests started in [10, 11) fail: recovered at 11.005, the evidence ends at
    # 11.005 + stable_for 2 s = 13.005. Events at 5 and 20 s are outside [10, 13.005]
    events = [
        k8s_event(5.0, "Scheduled", kind="Normal"),
        inject(10.0, "f1", has_duration=False),
        k8s_event(10.01, "Killing", kind="Normal"),
        Event(
            12.5,
            "engine",
            "k8s_event",
            "web-1",
            {
                "reason": "BackOff",
                "type": "Warning",
                "object": "Pod/web-abc",
                "count": "3",
                "note": "Back-off restarting",
            },
        ),
        k8s_event(20.0, "Started", kind="Normal"),
    ]
    requests = [Req(i / 10, 5.0, ok=not 100 <= i < 110) for i in range(300)]
    fault = analyze(tmp_path, requests, events, load_s=(0.0, 30.0))["faults"][0]

    assert [(e["reason"], e["type"], e["time_ns"]) for e in fault["k8s_events"]] == [
        ("Killing", "Normal", ns(10.01)),
        ("BackOff", "Warning", ns(12.5)),
    ]
    assert fault["k8s_events"][1]["object"] == "Pod/web-abc"
    assert fault["k8s_events"][1]["count"] == 3


def test_a_failing_watch_is_a_warning_never_silent(tmp_path: Path) -> None:
    def watch(time_s: float, action: str, **attributes: object) -> Event:
        return Event(time_s, "engine", action, None, {"resource": "pods", **attributes})

    # pods' watch failing since 20.0 s (said at 20.0), answering again at 32.0 s: a 12 s gap;
    # events' watch failing since 25.0 s and never back: 25 -> the data's end, the last
    # request's completion 29.9 + 0.005 = 29.905 s: 4.905 s, printed 4.9
    events = [
        watch(20.0, "watch_failing", error="403 Forbidden", since_ns=str(ns(20.0))),
        watch(32.0, "watch_resumed", since_ns=str(ns(20.0)), gap_s="12.000"),
        Event(
            25.0,
            "engine",
            "watch_failing",
            None,
            {"resource": "events", "error": "connection refused", "since_ns": str(ns(25.0))},
        ),
    ]
    summary = analyze(tmp_path, series(0.0, 30.0, 0.1), events, load_s=(0.0, 30.0))

    assert summary["warnings"] == [
        "the orchestrator's view of pods had a gap of 12.0 s from +20.0 s (403 Forbidden): "
        "engine events in it may be missing or late",
        "the orchestrator's view of events had a gap of 4.9 s from +25.0 s until the end of "
        "the data (connection refused): engine events in it may be missing or late",
    ]
