"""Kubernetes v1.34: the kubelet's restarts and readiness, the node lifecycle, eviction.

- die -> start in the same pod: the crash back-off and the pod worker's requeue
  (harness.analysis.timers.kube_backoff); a replacement pod has no back-off.
- kill -> die as the API sees it: the kubelet's next PLEG relist (every 1 s).
- start -> ready: the readiness probe runs when the kubelet sees the new container, else at
  its next period tick, so within period + timeout; `failureThreshold` failures in a row make
  it not ready.
- node down: the node lifecycle controller notes lease renewals at its monitor passes (every
  5 s) and marks a node Unknown once node-monitor-grace-period (50 s default) passed since the
  last; the kubelet renews every 10 s: down (grace - renew, grace + 2 periods] after the cut.
- replacement: the unreachable taint's toleration (300 s default) runs out, then the pod is
  deleted and its ReplicaSet replaces it; a drain evicts at once.
- kube-proxy applies an endpoint change within its minSyncPeriod (1 s); the harness does not
  see iptables syncs, so that rule is stated, not measured.
The source files and functions behind each rule: docs/METRICS.md, Kubernetes' timers.
"""

from __future__ import annotations

from dataclasses import replace

from harness.analysis.timers import kube_backoff as backoff
from harness.analysis.timers.inputs import EngineEvent, InstanceTimes, TimerInputs, per_instance
from harness.analysis.timers.model import (
    PUBLISHED,
    SETTINGS,
    Prediction,
    Setting,
    combined_source,
    never,
    ranged,
)

# The container's own start (containerd create and start) and the status write: not timers.
CONTAINER_START_S = 1.5
STATUS_WRITE_S = 0.5
POD_START_S = 5.0  # a new pod: created, scheduled, sandbox, container started
MIN_SYNC_S = 1.0  # kube-proxy iptables.minSyncPeriod default (v1alpha1/defaults.go)
BACKOFF_WHERE = "kuberuntime doBackOff, pod_workers.go completeWork"
DEFAULTS = {  # published defaults of the lab's flags (kube-controller-manager, kubelet, apiserver)
    "lab_node_monitor_grace_period_s": (
        50.0,
        "kube-controller-manager --node-monitor-grace-period",
    ),
    "lab_node_monitor_period_s": (5.0, "kube-controller-manager --node-monitor-period"),
    "lab_node_lease_duration_s": (40.0, "kubelet nodeLeaseDurationSeconds"),
    "lab_unreachable_toleration_s": (
        300.0,
        "kube-apiserver --default-unreachable-toleration-seconds",
    ),
}
EVICTING_KINDS = frozenset({"node_down", "node_partition"})


def predict(inputs: TimerInputs) -> list[Prediction]:
    found = per_instance(inputs, _restart, _kill_to_die, _ready)
    found.extend(_not_ready(inputs))
    if inputs.fault.cluster is not None:
        found.extend(_node(inputs))
    found.extend(_endpoint_rules(inputs))
    return found


def _slack(*events: EngineEvent | None) -> float:
    return sum(e.slack_s() for e in events if e is not None)


def _pod(event: EngineEvent | None) -> str | None:
    uid = None if event is None else event.attributes.get("pod_uid")
    return None if uid is None else str(uid)


def _restart(inputs: TimerInputs, times: InstanceTimes) -> list[Prediction]:
    die = inputs.event_at(times.instance, "die", times.die_at_ns)
    start = inputs.event_at(times.instance, "start", times.start_at_ns)
    if die is None:
        return []
    measured, tolerance = times.die_to_start_s, _slack(die, start)
    if start is not None and _pod(start) != _pod(die):
        why = (
            f"a new pod from its ReplicaSet has no crash back-off: created, scheduled and "
            f"started within {POD_START_S:g} s"
        )
        return [
            _prediction(
                "die_to_start",
                times.instance,
                measured,
                "the replacement pod started {s:.2f} s after it died",
                why,
                0.0,
                POD_START_S,
                PUBLISHED,
                tolerance,
            )
        ]
    wait = backoff.crash_waits(_exits(inputs, die)).get(die.time_ns)
    if wait is None:
        return []
    low, high = backoff.restart_window(wait.wait_s)
    high += CONTAINER_START_S
    return [
        _prediction(
            "die_to_start",
            times.instance,
            measured,
            "restarted {s:.2f} s after it died",
            _backoff_words(wait),
            low,
            high,
            PUBLISHED,
            tolerance,
        )
    ]


def _backoff_words(wait: backoff.CrashWait) -> str:
    tail = f", plus up to {CONTAINER_START_S:g} s to start the container (published defaults)"
    if wait.wait_s <= 0:
        return (
            "the kubelet restarts a first crash at once (no back-off entry yet: "
            f"{BACKOFF_WHERE}), at the sync its PLEG relist (every {backoff.RELIST_S:g} s) "
            "triggers" + tail
        )
    return (
        f"the kubelet's crash back-off ({wait.wait_s:g} s after the exit: crash {wait.crash} "
        f"in a row, 10 s doubling to 5 min) and its pod worker's requeue (10-15 s after the "
        f"sync that found the pod in back-off, picked up on the 1 s sync tick; the first such "
        f"sync at the relist, within 1 s of the exit: {BACKOFF_WHERE})" + tail
    )


def _exits(inputs: TimerInputs, die: EngineEvent) -> list[tuple[int, int | None]]:
    """(exit, next start) of the dead container's pod, in order."""
    pod = _pod(die)
    own = [e for e in inputs.events if e.instance == die.instance and _pod(e) == pod]
    exits: list[tuple[int, int | None]] = []
    for event in own:
        if event.action == "die":
            after = (e.time_ns for e in own if e.action == "start" and e.time_ns > event.time_ns)
            exits.append((event.time_ns, next(after, None)))
    return exits


def _kill_to_die(inputs: TimerInputs, times: InstanceTimes) -> list[Prediction]:
    die = inputs.event_at(times.instance, "die", times.die_at_ns)
    if (
        die is None
        or die.attributes.get("time_source") == "host"
        or inputs.fault.kind != ("container_kill")
    ):
        return []
    high = backoff.RELIST_S + STATUS_WRITE_S
    why = (
        f"the kubelet sees an exit at its next PLEG relist (every {backoff.RELIST_S:g} s, "
        f"kubelet.go genericPlegRelistPeriod; published default) and writes the pod's status"
    )
    return [
        _prediction(
            "kill_to_die",
            times.instance,
            times.kill_to_die_s,
            "the API showed the exit {s:.2f} s after the kill",
            why,
            0.0,
            high,
            PUBLISHED,
            _slack(die),
        )
    ]


def _probe(inputs: TimerInputs) -> tuple[Setting, Setting, Setting]:
    """The readiness probe's period, timeout and failure threshold (kube_objects.http_probe:
    whole seconds of workload.health, at least 1)."""
    period = inputs.setting("workload.health.interval", 10.0, "Kubernetes periodSeconds")
    timeout = inputs.setting("workload.health.timeout", 1.0, "Kubernetes timeoutSeconds")
    failures = inputs.setting("workload.health.retries", 3.0, "Kubernetes failureThreshold")
    period = Setting(max(1.0, round(period.value)), period.source, period.where)
    timeout = Setting(max(1.0, round(timeout.value)), timeout.source, timeout.where)
    return period, timeout, failures


def _ready(inputs: TimerInputs, times: InstanceTimes) -> list[Prediction]:
    start = inputs.event_at(times.instance, "start", times.start_at_ns)
    if start is None or inputs.text("workload.health.path") is None:
        return []
    healthy = _healthy_event(inputs, times)
    period, timeout, _failures = _probe(inputs)
    high = period.value + timeout.value + STATUS_WRITE_S
    why = (
        f"the readiness probe, run when the kubelet sees the new container or at its next "
        f"period ({period.words()}), taking at most its timeout ({timeout.words()})"
    )
    return [
        _prediction(
            "start_to_healthy",
            times.instance,
            times.start_to_healthy_s,
            "ready {s:.2f} s after it started",
            why,
            0.0,
            high,
            combined_source(period, timeout),
            _slack(start, healthy),
        )
    ]


def _healthy_event(inputs: TimerInputs, times: InstanceTimes) -> EngineEvent | None:
    return inputs.event_at(times.instance, "health_status", times.healthy_at_ns)


def _not_ready(inputs: TimerInputs) -> list[Prediction]:
    """Ready -> not ready by failing probes, for targets that did not die."""
    fault = inputs.fault
    died = {t.instance for t in fault.orchestrator if t.die_at_ns is not None}
    period, timeout, failures = _probe(inputs)
    low = (failures.value - 1) * period.value
    high = failures.value * period.value + timeout.value + STATUS_WRITE_S
    found: list[Prediction] = []
    for name in fault.targets:
        event = _first_unready(inputs, name, fault.injected_at_ns)
        if name in died or event is None:
            continue
        measured = (event.time_ns - fault.injected_at_ns) / 1e9
        why = (
            f"{failures.value:g} failed readiness probes in a row (failureThreshold "
            f"{failures.words('')}, every {period.words()}, each failing within its timeout "
            f"{timeout.words()}: prober worker.go doProbe)"
        )
        found.append(
            _prediction(
                "to_not_ready",
                name,
                measured,
                "not ready {s:.2f} s after the fault",
                why,
                low,
                high,
                combined_source(period, timeout, failures),
                _slack(event),
            )
        )
    return found


def _first_unready(inputs: TimerInputs, name: str, after_ns: int) -> EngineEvent | None:
    return next(
        (
            e
            for e in inputs.of_instance(name)
            if e.action == "health_status"
            and e.attributes.get("health") == "unhealthy"
            and e.time_ns >= after_ns
        ),
        None,
    )


def lab_setting(inputs: TimerInputs, key: str, scenario_path: str | None = None) -> Setting:
    """A lab flag in force: the manifest's record, else the scenario's, else the default."""
    published, where = DEFAULTS[key]
    reported = inputs.reported(key, published, where)
    if reported.source == SETTINGS or scenario_path is None:
        return reported
    return inputs.setting(scenario_path, published, where)


def _node(inputs: TimerInputs) -> list[Prediction]:
    cluster = inputs.fault.cluster
    assert cluster is not None
    if inputs.fault.kind == "node_drain":
        why = f"a drain evicts at once; the ReplicaSet's new pod starts within {POD_START_S:g} s"
        return [
            _prediction(
                "to_replacement_running",
                None,
                cluster.to_replacement_running_s,
                "replacement running {s:.2f} s after the drain",
                why,
                0.0,
                POD_START_S,
                PUBLISHED,
                0.0,
            )
        ]
    if inputs.fault.kind not in EVICTING_KINDS:
        return []
    return [_node_down(inputs), *_eviction(inputs)]


def _node_down(inputs: TimerInputs) -> Prediction:
    cluster = inputs.fault.cluster
    assert cluster is not None
    grace = lab_setting(
        inputs, "lab_node_monitor_grace_period_s", "target.lab.node_monitor_grace_period"
    )
    monitor = lab_setting(inputs, "lab_node_monitor_period_s")
    lease = lab_setting(inputs, "lab_node_lease_duration_s")
    renew = lease.value * 0.25  # kubelet.go nodeLeaseRenewIntervalFraction
    low, high = grace.value - renew, grace.value + 2 * monitor.value
    why = (
        f"the node lifecycle controller marks a node Unknown once node-monitor-grace-period "
        f"({grace.words()}) passed since it saw the last lease renewal (every {renew:g} s: a "
        f"quarter of {lease.words()}), checking every {monitor.words()}"
    )
    return _prediction(
        "to_node_down",
        None,
        cluster.to_node_down_s,
        "node marked down {s:.2f} s after the fault",
        why,
        low,
        high,
        combined_source(grace, monitor, lease),
        1.0,
    )


def _eviction(inputs: TimerInputs) -> list[Prediction]:
    cluster = inputs.fault.cluster
    assert cluster is not None
    toleration = lab_setting(
        inputs, "lab_unreachable_toleration_s", "target.lab.unreachable_toleration"
    )
    down_s = cluster.to_node_down_s
    if down_s is None or cluster.node_down_at_ns is None:
        return []
    measured = cluster.to_replacement_running_s
    evict_ns = cluster.node_down_at_ns + int(toleration.value * 1e9)
    back_ns = cluster.node_ready_at_ns
    if back_ns is not None and back_ns < evict_ns:
        why = (
            f"the node came back before its pods' unreachable toleration ({toleration.words()}) "
            f"ran out, so nothing is evicted (taint_eviction.go processPodOnNode)"
        )
        words = "replacement running {s:.2f} s after the fault"
        return [
            never(
                "to_replacement_running",
                None,
                words,
                measured,
                why,
                "no replacement",
                toleration.source,
            )
        ]
    low = down_s + toleration.value
    why = (
        f"the pod evicted when its unreachable toleration ({toleration.words()}) runs out after "
        f"the node went down at +{down_s:.2f} s (taint_eviction.go processPodOnNode), then "
        f"replaced by its ReplicaSet within {POD_START_S:g} s"
    )
    return [
        _prediction(
            "to_replacement_running",
            None,
            measured,
            "replacement running {s:.2f} s after the fault",
            why,
            low,
            low + POD_START_S,
            toleration.source,
            1.0,
        )
    ]


def _endpoint_rules(inputs: TimerInputs) -> list[Prediction]:
    fault = inputs.fault
    removed = any(
        e.action == "endpoint_removed" and e.instance in fault.targets
        for e in inputs.events
        if e.time_ns >= fault.injected_at_ns
    )
    if not removed:
        return []
    why = (
        f"kube-proxy (iptables) applies an endpoint change within its minimum sync period "
        f"({MIN_SYNC_S:g} s, published default: the lab's KubeProxyConfiguration does not set "
        f"it; pkg/proxy/apis/config/v1alpha1/defaults.go)"
    )
    return [
        _prediction(
            "endpoint_removed_to_rules", None, None, "", why, 0.0, MIN_SYNC_S, PUBLISHED, 0.0
        )
    ]


def _prediction(
    interval: str,
    instance: str | None,
    measured: float | None,
    words: str,
    why: str,
    low: float,
    high: float,
    source: str,
    tolerance: float,
) -> Prediction:
    kind = SETTINGS if source == SETTINGS else PUBLISHED
    found = ranged(interval, instance, words, measured, why, low, high, kind, tolerance)
    rule = found.rule
    if tolerance >= 0.5:
        rule += f"; measured to ±{tolerance:.1f} s (the API stamps to the second)"
    return replace(found, rule=rule, tolerance_s=round(tolerance, 3))
