"""The orchestrators' own timers against measured intervals (harness.analysis.timers).

Constructed event streams: every expected range is worked out by hand from the orchestrator's
documented timer (the arithmetic is in the comments), never copied from the code's output. One
real run: a crash-looping replica on Docker, whose restarts must show the back-off doubling.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import yaml

from harness.analysis import load_run
from harness.analysis.timers import Prediction, predictions
from harness.analysis.timers.kube_backoff import crash_waits, restart_window
from harness.analysis.timers.model import judge
from tests.synthetic_run import Event, engine, inject, ns, write_run

REPO = Path(__file__).resolve().parents[1]
WORKLOAD = {
    "restart": "always",
    "health": {"path": "/health", "interval": 1.0, "timeout": 1.0, "retries": 3},
}


def _run_dir(
    tmp_path: Path,
    target: str,
    events: Sequence[Event],
    scenario: Mapping[str, object] | None = None,
    versions: Mapping[str, str] | None = None,
) -> Path:
    """A run directory of `target` with these events, its scenario.yaml and manifest versions."""
    run_dir = write_run(tmp_path / "run", events=events)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["target"] = target
    manifest["versions"] = {**manifest["versions"], **(versions or {})}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    resolved = {"workload": WORKLOAD, **(scenario or {})}
    (run_dir / "scenario.yaml").write_text(yaml.safe_dump(resolved))
    return run_dir


def _fault(
    fault_id: str,
    t0: float,
    die: float | None,
    start: float | None,
    healthy: float | None = None,
    *,
    instance: str = "web-1",
    kind: str = "container_kill",
    policy_applies: bool = True,
    cluster: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """One fault of summary.json, its intervals from the given instants (s since BASE_NS)."""

    def gap(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(b - a, 3)

    return {
        "id": fault_id,
        "kind": kind,
        "targets": [instance],
        "injected_at_ns": ns(t0),
        "restart_policy_applies": policy_applies,
        "orchestrator": [
            {
                "instance": instance,
                "die_at_ns": None if die is None else ns(die),
                "start_at_ns": None if start is None else ns(start),
                "healthy_at_ns": None if healthy is None else ns(healthy),
                "kill_to_die_s": gap(t0, die),
                "die_to_start_s": gap(die, start),
                "start_to_healthy_s": gap(start, healthy),
            }
        ]
        if die is not None
        else [],
        "cluster": dict(cluster) if cluster is not None else None,
    }


def _only(found: Sequence[Prediction], interval: str) -> Prediction:
    matching = [p for p in found if p.interval == interval]
    assert len(matching) == 1, [p.rule for p in found]
    return matching[0]


# -- Docker: the restart manager --------------------------------------------------------------


def _docker_crashes(kills: Sequence[float], restarts: Sequence[float]) -> list[Event]:
    """web-1 started at 0 s, then killed at each `kills` (die at the same instant), restarted at
    each `restarts`."""
    events = [engine(0.0, "start", "web-1")]
    for number, (kill, start) in enumerate(zip(kills, restarts, strict=True), start=1):
        events += [inject(kill, f"f1#{number}"), engine(kill, "die", "web-1", exitCode="137")]
        events += [engine(start, "start", "web-1")]
    return events


def test_three_crashes_in_a_row_on_docker_wait_100_200_400_ms(tmp_path: Path) -> None:
    # web-1 ran 30 s before the first kill (>= 10 s: the back-off starts at 100 ms), then runs
    # 5 s between restarts (< 10 s: it doubles): 0.1, 0.2, 0.4 s. Each restart comes 0.5 s of
    # start work after its back-off: 0.6, 0.7, 0.9 s after the die, in [wait, wait + 2.5 s].
    kills = [30.0, 35.6, 41.3]
    restarts = [30.6, 36.3, 42.2]
    run = load_run(_run_dir(tmp_path, "docker", _docker_crashes(kills, restarts)))
    lows = []
    for number, (kill, start) in enumerate(zip(kills, restarts, strict=True), start=1):
        found = predictions(run, _fault(f"f1#{number}", kill, kill, start))
        restart = _only(found, "die_to_start")
        assert restart.verdict == "as_predicted", restart.rule
        assert restart.source == "published default"
        lows.append(restart.low_s)
    assert lows == pytest.approx([0.1, 0.2, 0.4])


def test_a_docker_restart_sooner_than_its_back_off_is_flagged_faster(tmp_path: Path) -> None:
    # the third crash in a row waits 0.4 s: a restart 0.15 s after the die is too soon (it would
    # pass if the back-off were not doubled: 0.1 s)
    kills, restarts = [30.0, 35.6, 41.3], [30.6, 36.3, 41.45]
    run = load_run(_run_dir(tmp_path, "docker", _docker_crashes(kills, restarts)))
    restart = _only(predictions(run, _fault("f1#3", 41.3, 41.3, 41.45)), "die_to_start")
    assert restart.low_s == pytest.approx(0.4)
    assert restart.verdict == "faster"


def test_ten_seconds_of_running_resets_docker_back_off(tmp_path: Path) -> None:
    # second crash after 12 s of running (>= 10 s): back to 100 ms, not 200 ms
    kills, restarts = [30.0, 42.6], [30.6, 43.2]
    run = load_run(_run_dir(tmp_path, "docker", _docker_crashes(kills, restarts)))
    restart = _only(predictions(run, _fault("f1#2", 42.6, 42.6, 43.2)), "die_to_start")
    assert restart.low_s == pytest.approx(0.1)


def test_docker_back_off_is_capped_at_one_minute(tmp_path: Path) -> None:
    # 0.1 * 2**10 = 102.4 s for the 11th crash in a row: capped at 60 s. Each crash comes 5 s
    # after its restart (< 10 s), each restart its back-off + 0.5 s after its die.
    kills, restarts, at = [], [], 30.0
    for number in range(11):
        wait = min(0.1 * 2**number, 60.0)
        kills.append(at)
        restarts.append(at + wait + 0.5)
        at += wait + 0.5 + 5.0
    run = load_run(_run_dir(tmp_path, "docker", _docker_crashes(kills, restarts)))
    last = _fault("f1#11", kills[-1], kills[-1], restarts[-1])
    restart = _only(predictions(run, last), "die_to_start")
    assert restart.low_s == pytest.approx(60.0)
    assert restart.verdict == "as_predicted"


def test_the_back_off_less_the_exits_handling_is_the_lower_bound(tmp_path: Path) -> None:
    # Docker starts the timer before it logs `die`: with the die 0.05 s after the kill, a
    # 0.2 s back-off allows the start 0.2 - 0.05 = 0.15 s after the die
    events = [
        engine(0.0, "start", "web-1"),
        engine(30.0, "die", "web-1", exitCode="137"),
        engine(30.6, "start", "web-1"),
        inject(35.6, "f1#2"),
        engine(35.65, "die", "web-1", exitCode="137"),
        engine(35.85, "start", "web-1"),
    ]
    run = load_run(_run_dir(tmp_path, "docker", events))
    restart = _only(predictions(run, _fault("f1#2", 35.6, 35.65, 35.85)), "die_to_start")
    assert restart.low_s == pytest.approx(0.15)
    assert restart.verdict == "as_predicted"


def test_an_api_kill_on_docker_predicts_no_restart(tmp_path: Path) -> None:
    events = [
        engine(0.0, "start", "web-1"),
        inject(30.0, "f1", mode="api"),
        engine(30.0, "kill", "web-1", signal="9"),
        engine(30.01, "die", "web-1", exitCode="137"),
    ]
    run = load_run(_run_dir(tmp_path, "docker", events))
    restart = _only(
        predictions(run, _fault("f1", 30.0, 30.01, None, policy_applies=False)), "die_to_start"
    )
    assert (restart.low_s, restart.high_s) == (None, None)
    assert restart.verdict == "as_predicted"


def test_a_stopped_container_started_by_the_revert_is_no_restart(tmp_path: Path) -> None:
    # container_stop: an API stop (kill 15, kill 9, die, stop), so no restart by the policy;
    # the start at 75.0 s comes with the revert (recorded at 75.001 s), not from the policy
    events = [
        engine(0.0, "start", "web-1"),
        engine(71.7, "kill", "web-1", signal="15"),
        engine(72.7, "kill", "web-1", signal="9"),
        engine(72.8, "die", "web-1", exitCode="137"),
        engine(73.0, "stop", "web-1"),
        engine(75.0, "start", "web-1"),
    ]
    run = load_run(_run_dir(tmp_path, "docker", events))
    fault = _fault("f1", 71.66, 72.8, 75.0, kind="container_stop", policy_applies=False)
    fault["reverted_at_ns"] = ns(75.001)
    restart = _only(predictions(run, fault), "die_to_start")
    assert (restart.low_s, restart.high_s, restart.measured_s) == (None, None, None)
    assert restart.verdict == "as_predicted"


def test_docker_health_check_first_probe_one_interval_after_start(tmp_path: Path) -> None:
    # interval 1 s, timeout 1 s: healthy 1-2 s after the start (+0.5 s for the report); the
    # container healthy 0.4 s after its start is faster than any probe can run
    events = _docker_crashes([30.0], [30.6])
    run = load_run(_run_dir(tmp_path, "docker", events))
    on_time = _only(predictions(run, _fault("f1", 30.0, 30.0, 30.6, 31.7)), "start_to_healthy")
    early = _only(predictions(run, _fault("f1", 30.0, 30.0, 30.6, 31.0)), "start_to_healthy")
    assert (on_time.low_s, on_time.high_s) == (1.0, 2.5)
    assert (on_time.verdict, early.verdict) == ("as_predicted", "faster")
    assert on_time.source == "settings"


# -- Podman: no back-off ----------------------------------------------------------------------


def test_podman_restarts_at_once_whatever_the_crash_count(tmp_path: Path) -> None:
    # libpod 4.3 has no delay timer: the third crash in a row restarts 0.3 s after the die, as
    # the first does (Docker would wait 0.4 s)
    kills, restarts = [30.0, 35.6, 41.3], [30.3, 35.9, 41.6]
    run = load_run(_run_dir(tmp_path, "podman", _docker_crashes(kills, restarts)))
    restart = _only(predictions(run, _fault("f1#3", 41.3, 41.3, 41.6)), "die_to_start")
    assert restart.low_s == 0.0
    assert restart.verdict == "as_predicted"


# -- Swarm: restart delay, heartbeat ----------------------------------------------------------


def test_swarm_new_task_after_its_restart_delay(tmp_path: Path) -> None:
    # target.swarm.restart_delay 1 s (settings): a new task no sooner than 1 s after the die,
    # at most 1 + 3 s (the new task's own start); 0.5 s is faster, 2.7 s as predicted
    events = [
        engine(0.0, "start", "web-1"),
        inject(30.0, "f1"),
        engine(30.05, "die", "web-1", exitCode="137"),
        engine(32.75, "start", "web-1"),
    ]
    scenario = {"target": {"kind": "swarm", "swarm": {"restart_delay": 1.0}}}
    run = load_run(_run_dir(tmp_path, "swarm", events, scenario))
    restart = _only(predictions(run, _fault("f1", 30.0, 30.05, 32.75)), "die_to_start")
    assert (restart.low_s, restart.high_s, restart.source) == (1.0, 4.0, "settings")
    assert restart.verdict == "as_predicted"
    early = _only(predictions(run, _fault("f1", 30.0, 30.05, 30.55)), "die_to_start")
    assert early.verdict == "faster"


def test_swarm_restart_delay_defaults_to_five_seconds(tmp_path: Path) -> None:
    events = [engine(0.0, "start", "web-1"), engine(30.05, "die", "web-1", exitCode="137")]
    run = load_run(_run_dir(tmp_path, "swarm", events, {"target": {"kind": "swarm"}}))
    restart = _only(predictions(run, _fault("f1", 30.0, 30.05, 37.0)), "die_to_start")
    assert (restart.low_s, restart.source) == (5.0, "published default")


def test_swarm_node_down_after_about_three_heartbeats(tmp_path: Path) -> None:
    # heartbeat P = 2 s (the lab's, in the manifest), jitter e = 0.5 s: the node's last beat
    # chose p in [1.5, 2.5), its deadline 3p after it and the cut 0-p after it: down 2p-3p after
    # the cut, (3.0, 7.5] s, + 1 s for the state to reach the watcher: 8.5 s
    cluster = {
        "node": "n3",
        "node_down_at_ns": ns(36.0),
        "to_node_down_s": 6.0,
        "replacement_running_at_ns": None,
        "to_replacement_running_s": None,
    }
    run = load_run(_run_dir(tmp_path, "swarm", [], versions={"lab_heartbeat_s": "2"}))
    fault = _fault("f1", 30.0, None, None, kind="node_partition", cluster=cluster)
    down = _only(predictions(run, fault), "to_node_down")
    assert (down.low_s, down.high_s) == pytest.approx((3.0, 8.5))
    assert down.verdict == "as_predicted"


# -- Kubernetes: crash back-off and requeue ---------------------------------------------------


def test_kubelet_sync_chain_arithmetic() -> None:
    # syncs: s1 in [0, 1] (the relist), then s(k+1) in s(k) + [10, 15 + 1] (requeue, 1 s tick);
    # the restart is at the first sync at or after the back-off B.
    assert restart_window(0.0) == (0.0, 1.0)  # first crash: the relist's sync
    assert restart_window(10.0) == (10.0, 17.0)  # s2 in [10, 17]
    assert restart_window(20.0) == (20.0, 33.0)  # s2 < 20, s3 in [20, 17 + 16 = 33]
    # B = 40: s3 in [20, 33], s4 in [30, 49] (restart if >= 40), s5 in [40, 40 + 16 = 56]
    assert restart_window(40.0) == (40.0, 56.0)


def test_kubelet_back_off_doubles_caps_and_expires() -> None:
    s = 1_000_000_000
    # exits 0, 20, 60, ... each restarted 1 s... later: waits 0, 10, 20, 40, ... capped at 300
    exits, at, waits_s = [], 0, [0, 10, 20, 40, 80, 160, 300, 300]
    for wait in waits_s:
        exits.append((at * s, (at + wait + 1) * s))
        at += wait + 1 + 5
    found = crash_waits(exits)
    assert [found[e].wait_s for e, _ in exits] == waits_s
    # an exit 601 s after the last restart: the entry expired, a first crash again
    late = (exits[-1][1] + 601 * s, None)
    assert crash_waits([*exits, late])[late[0]].wait_s == 0


def _kube_crashes(kills: Sequence[float], restarts: Sequence[float]) -> list[Event]:
    events = [engine(0.0, "start", "web-1", pod_uid="pod-a", time_source="host")]
    for kill, start in zip(kills, restarts, strict=True):
        events += [
            engine(kill, "die", "web-1", pod_uid="pod-a", exitCode="137", time_source="host")
        ]
        events += [engine(start, "start", "web-1", pod_uid="pod-a", time_source="host")]
    return events


def test_second_crash_on_kubernetes_restarts_10_to_17_s_after_its_exit(tmp_path: Path) -> None:
    # first crash at once (at the relist, <= 1 s: restarted 0.9 s later); second: the 10 s
    # back-off, found at the relist's sync, requeued 10-15 s later and picked up on the 1 s
    # tick: 10-17 s, + 1.5 s for containerd to start it = 18.5 s. Restarted 16.2 s later.
    kills, restarts = [30.0, 40.0], [30.9, 56.2]
    run = load_run(_run_dir(tmp_path, "kubernetes", _kube_crashes(kills, restarts)))
    first = _only(predictions(run, _fault("f1#1", 30.0, 30.0, 30.9)), "die_to_start")
    second = _only(predictions(run, _fault("f1#2", 40.0, 40.0, 56.2)), "die_to_start")
    assert (first.low_s, first.high_s) == (0.0, 2.5)
    assert (second.low_s, second.high_s) == (10.0, 18.5)
    assert (first.verdict, second.verdict) == ("as_predicted", "as_predicted")
    assert "16.20 s after it died" in second.rule


def test_a_kubernetes_restart_before_its_back_off_is_flagged(tmp_path: Path) -> None:
    # the third crash in a row waits 20 s: restarted 12 s after its exit is faster than that
    kills, restarts = [30.0, 40.0, 62.0], [30.9, 52.0, 74.0]
    run = load_run(_run_dir(tmp_path, "kubernetes", _kube_crashes(kills, restarts)))
    third = _only(predictions(run, _fault("f1#3", 62.0, 62.0, 74.0)), "die_to_start")
    assert third.low_s == 20.0
    assert third.verdict == "faster"


def test_kubernetes_node_loss_from_the_labs_flags(tmp_path: Path) -> None:
    # grace 20 s, monitor period 5 s, lease 40 s (renewed every 10 s), from the manifest: down
    # (20 - 10, 20 + 2 * 5] = (10, 30] s after the cut; toleration 10 s: the pod evicted 10 s
    # after the node went down (+17.1 s), replaced within 5 s: 27.1-32.1 s
    versions = {
        "lab_node_monitor_grace_period_s": "20",
        "lab_node_monitor_period_s": "5",
        "lab_node_lease_duration_s": "40",
        "lab_unreachable_toleration_s": "10",
    }
    cluster = {
        "node": "n3",
        "node_down_at_ns": ns(47.1),
        "to_node_down_s": 17.1,
        "replacement_running_at_ns": ns(58.9),
        "to_replacement_running_s": 28.9,
        "node_ready_at_ns": None,
    }
    run = load_run(_run_dir(tmp_path, "kubernetes", [], versions=versions))
    found = predictions(run, _fault("f1", 30.0, None, None, kind="node_partition", cluster=cluster))
    down, replaced = _only(found, "to_node_down"), _only(found, "to_replacement_running")
    assert (down.low_s, down.high_s, down.source) == (10.0, 30.0, "settings")
    assert (replaced.low_s, replaced.high_s) == pytest.approx((27.1, 32.1))
    assert (down.verdict, replaced.verdict) == ("as_predicted", "as_predicted")


def test_a_measurement_known_to_the_second_is_judged_with_its_slack() -> None:
    # predicted [10, 17]: 9.3 s measured to +-1 s may be 10.3 s (as predicted); 8.5 s may not
    assert judge(9.3, 10.0, 17.0, 1.0) == "as_predicted"
    assert judge(8.5, 10.0, 17.0, 1.0) == "faster"
    assert judge(None, 10.0, 17.0) == "not_measured"


# -- a real crash loop on Docker --------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.slow
def test_a_crash_loop_on_docker_shows_the_back_off_doubling(
    tmp_path: Path, demo_image: str
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            str(REPO / "scenarios" / "crash-loop.yaml"),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
        cwd=REPO,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    summary = json.loads((run_dir / "summary.json").read_text())
    run = load_run(run_dir)
    restarts = [_only(predictions(run, f), "die_to_start") for f in summary["faults"]]
    # six kills 8 s apart, web-1 running 3-7 s between them: back-offs 0.1 * 2**k s
    backoffs = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]
    assert len(restarts) == len(backoffs)
    for restart, backoff in zip(restarts, backoffs, strict=True):
        assert restart.verdict == "as_predicted", restart.rule
        assert restart.measured_s is not None
        assert restart.measured_s >= backoff - 0.3  # less at most the die's 0.3 s handling
    # measured = back-off + start work in [0, 2.5] s: the sixth restart came at least
    # 3.2 - (0.1 + 2.5) = 0.6 s later after its die than the first did
    first, last = restarts[0].measured_s, restarts[-1].measured_s
    assert first is not None and last is not None
    assert last - first >= 0.6, [r.measured_s for r in restarts]
