"""Cases whose answer is known before the run: from physics or the orchestrator's own timers.

Each case writes a scenario for a target and reads the run's summary.json (and manifest.json)
into checks: a measured value beside the interval the rule allows, with the rule's source.
The harness's analysis is what is checked; the rules come from the case's construction (a
partition of 5 s, a delay of 100 ms) or from the orchestrator's source code, never from the
harness.

    case = CASES["partition"]
    scenario = case.scenario("docker")            # a dict, written as YAML by the caller
    ...                                           # harness run
    for check, value in case.measure("docker", run_dir):
        ...
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGETS = ("docker", "podman", "swarm", "kubernetes")
LOAD_TIMEOUT_S = 1.0
PROBE_INTERVAL_S = 0.1
PARTITION_S = 5.0
DELAY_MS = 100.0


@dataclass(frozen=True)
class Check:
    """One expected quantity: the interval [low, high] a rule allows (None: unbounded)."""

    name: str
    expected: str  # the rule, in words, with its source
    low: float | None
    high: float | None
    unit: str = "s"
    source: str = ""  # where the rule comes from, in a few words

    def interval(self) -> str:
        """The allowed values, as the table prints them."""
        if self.low is None and self.high is None:
            return "-"
        if self.high is None:
            return f">= {self.low:g} {self.unit}"
        if self.low is None:
            return f"<= {self.high:g} {self.unit}"
        return f"{self.low:g} to {self.high:g} {self.unit}"

    def holds(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


Measured = list[tuple[Check, float]]


@dataclass(frozen=True)
class Case:
    name: str
    targets: tuple[str, ...]
    scenario: Callable[[str], dict[str, Any]]
    measure: Callable[[str, Path], Measured]


def base_scenario(name: str, target: str, duration_s: float) -> dict[str, Any]:
    """Three demo replicas under light load (few users, so queueing stays out of latency)."""
    return {
        "name": f"accuracy-{name}",
        "target": target,
        "workload": {
            "image": "demo",
            "replicas": 3,
            "port": 8080,
            "restart": "always",
            "health": {"path": "/health", "interval": "1s", "timeout": "1s", "retries": 3},
            "resources": {"cpus": 0.5, "memory": "64Mi"},
        },
        "load": {
            "users": 6,
            "spawn_rate": 6,
            "duration": f"{duration_s:g}s",
            "paths": [{"path": "/"}],
            "timeout": f"{LOAD_TIMEOUT_S:g}s",
        },
        "probes": {"interval": f"{PROBE_INTERVAL_S * 1000:g}ms", "path": "/health"},
        "analysis": {"stable_for": "2s"},
        "slo": {"allow_no_data": True},
    }


def _summary(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return data


def _fault(summary: Mapping[str, Any], fault_id: str) -> dict[str, Any]:
    for fault in summary["faults"]:
        if fault["id"] == fault_id:
            found: dict[str, Any] = fault
            return found
    raise KeyError(f"no fault {fault_id} in the summary ({[f['id'] for f in summary['faults']]})")


def _number(value: object) -> float:
    """A summary number, or NaN where the summary has none (a measurement that is missing)."""
    return float(value) if isinstance(value, int | float) else math.nan


def _p50(phase: Mapping[str, Any] | None) -> float:
    latency = (phase or {}).get("latency_ms") or {}
    value = latency.get("p50")
    if isinstance(value, Mapping):  # {value, count} if the summary's shape grows
        value = value.get("value")
    return _number(value)


# --- a partition of known length ----------------------------------------------------------------


def _partition_scenario(target: str) -> dict[str, Any]:
    data = base_scenario("partition", target, 22)
    data["faults"] = [
        {
            "kind": "network_partition",
            "name": "partition",
            "at": "8s",
            "duration": f"{PARTITION_S:g}s",
            "select": {"names": ["web-2"]},
            "from": "load",
            "direction": "both",
        }
    ]
    return data


PARTITION_BOUND_S = LOAD_TIMEOUT_S + PROBE_INTERVAL_S
PARTITION_CHECK = Check(
    "ttr - partition length",
    f"(0, {PARTITION_BOUND_S:g}]: the view recovers only on evidence after the revert (> 0); "
    f"a request or probe sent just before it fails at most one timeout ({LOAD_TIMEOUT_S:g} s) "
    f"later, and the next probe of the replica comes within {PROBE_INTERVAL_S:g} s (physics)",
    0.0,
    PARTITION_BOUND_S,
    source="physics: timeouts",
)


def _partition_measure(target: str, run_dir: Path) -> Measured:
    fault = _fault(_summary(run_dir), "f1")
    # The partition's real length: from the rule's insertion (t0) to its removal.
    length = (_number(fault["reverted_at_ns"]) - _number(fault["injected_at_ns"])) / 1e9
    return [(PARTITION_CHECK, _number(fault["ttr_s"]) - length)]


# --- a latency of known size --------------------------------------------------------------------


def _latency_scenario(target: str) -> dict[str, Any]:
    data = base_scenario("latency", target, 22)
    # An open loop: the same arrivals in both phases. A closed loop sends less while every
    # response is late, the host's queueing shrinks, and the difference falls short of the delay.
    for key in ("users", "spawn_rate"):  # the harness sizes them for the rate
        data["load"].pop(key)
    data["load"]["rate"] = "30/s"
    data["faults"] = [
        {
            "kind": "latency",
            "name": "latency",
            "at": "8s",
            "duration": "6s",
            "select": {"percent": 100},
            "delay": f"{DELAY_MS:g}ms",
        }
    ]
    return data


LATENCY_CHECK = Check(
    "p50 fault - p50 baseline",
    f"{DELAY_MS:g} ms, within -5/+25 ms: every response of every replica is held "
    f"{DELAY_MS:g} ms (the scenario), at the same arrival rate in both phases (open loop, "
    "30/s); the proxy's relay adds a little",
    DELAY_MS - 5,
    DELAY_MS + 25,
    "ms",
    source="physics: the delay",
)


def _latency_measure(target: str, run_dir: Path) -> Measured:
    summary = _summary(run_dir)
    fault = _fault(summary, "f1")
    during = _p50((fault.get("phases") or {}).get("fault"))
    before = _p50(summary["phases"]["baseline"])
    return [(LATENCY_CHECK, during - before)]


# --- a crash back-off: three SIGKILLs of the same replica ---------------------------------------

# moby restartmanager/restartmanager.go: defaultTimeout 100 ms, backoffMultiplier 2, reset when
# the container ran >= 10 s; the wait runs before the restart, so die -> start >= the timeout.
DOCKER_BACKOFF_S = (0.1, 0.2, 0.4)
# kubelet 1.34: kuberuntime doBackOff refuses a restart until 10 s after the exit of a container
# that already crashed once (the first crash is restarted at once); the pod worker's sync fails
# with CrashLoopBackOff and pod_workers.go requeues it after wait.Jitter(10 s, 0.5) = 10-15 s
# from that sync, which follows the exit by 0.5-1.5 s (the PLEG's 1 s relist).
KUBE_SECOND_RESTART_S = (10.5, 16.5)
KUBE_FIRST_RESTART_MAX_S = 2.5  # not in back-off: the next relist (1 s) + a container start


def _backoff_scenario(target: str) -> dict[str, Any]:
    kube = target == "kubernetes"
    data = base_scenario("backoff", target, 45 if kube else 26)
    data["faults"] = [
        {
            "kind": "container_kill",
            "name": "crash-loop",
            "at": "8s",
            # Docker: 5 s apart, so web-1 runs < 10 s between kills and the back-off grows.
            # Kubernetes: the first restart is at once; the second kill 8 s later is the case.
            "every": "8s" if kube else "5s",
            "times": 2 if kube else 3,
            "select": {"names": ["web-1"]},
        }
    ]
    return data


def _die_to_start(fault: Mapping[str, Any]) -> float:
    entries = fault.get("orchestrator") or []
    return _number(entries[0].get("die_to_start_s")) if entries else math.nan


def _backoff_checks(target: str) -> list[Check]:
    if target == "kubernetes":
        low, high = KUBE_SECOND_RESTART_S
        return [
            Check(
                "crash 1: die -> start",
                f"<= {KUBE_FIRST_RESTART_MAX_S:g} s: not in back-off, restarted at the next "
                "relist (kubelet kuberuntime doBackOff)",
                0.0,
                KUBE_FIRST_RESTART_MAX_S,
                source="kubelet kuberuntime",
            ),
            Check(
                "crash 2: die -> start",
                f"{low:g}-{high:g} s: back-off 10 s after the exit (kuberuntime doBackOff), "
                "then the pod worker's requeue, 10 s +0-50 % jitter after the sync that found "
                "it (pod_workers.go)",
                low,
                high,
                source="kubelet doBackOff + pod_workers.go",
            ),
        ]
    return [
        Check(
            f"crash {index}: die -> start",
            f">= {wait:g} s: the restart manager waits 100 ms, doubling per crash of a "
            "container that ran < 10 s (moby restartmanager.go)",
            wait,
            None,
            source="moby restartmanager.go",
        )
        for index, wait in enumerate(DOCKER_BACKOFF_S, start=1)
    ]


def _backoff_measure(target: str, run_dir: Path) -> Measured:
    summary = _summary(run_dir)
    checks = _backoff_checks(target)
    faults = [_fault(summary, f"f1#{index}") for index in range(1, len(checks) + 1)]
    return [(check, _die_to_start(fault)) for check, fault in zip(checks, faults, strict=True)]


# --- Swarm's restart delay ----------------------------------------------------------------------

SWARM_DELAY_S = 5.0
SWARM_CHECK = Check(
    "die -> new task's start",
    f">= {SWARM_DELAY_S:g} s: the restart policy's delay, 5 s by default (swarmkit "
    "api/defaults/service.go), waited by the restart supervisor before the new task starts "
    "(manager/orchestrator/restart/restart.go)",
    SWARM_DELAY_S,
    None,
    source="swarmkit restart delay",
)


def _swarm_scenario(target: str) -> dict[str, Any]:
    data = base_scenario("swarm-delay", target, 24)
    data["faults"] = [
        {"kind": "container_kill", "name": "crash", "at": "8s", "select": {"names": ["web-2"]}}
    ]
    return data


def _swarm_measure(target: str, run_dir: Path) -> Measured:
    return [(SWARM_CHECK, _die_to_start(_fault(_summary(run_dir), "f1")))]


# --- the node grace period (Kubernetes lab) -----------------------------------------------------


def _find_key(data: object, key: str) -> object:
    if isinstance(data, Mapping):
        if key in data:
            return data[key]
        data = list(data.values())
    if isinstance(data, list):
        for item in data:
            found = _find_key(item, key)
            if found is not None:
                return found
    return None


def _grace_scenario(target: str) -> dict[str, Any]:
    from bench.kube_session import current_grace_s

    grace = current_grace_s()
    data = base_scenario("node-grace", target, grace + 35)
    data["faults"] = [
        {
            "kind": "node_down",
            "name": "kubelet-down",
            "at": "8s",
            "duration": f"{grace + 20:g}s",
            "mode": "daemon",
            "select": {"names": ["web-1"]},
        }
    ]
    return data


def _lab_setting(run_dir: Path, name: str, default: float) -> float:
    """A lab setting in force, as the run's manifest recorded it (`lab_<name>`)."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    found = _find_key(manifest, f"lab_{name}")
    return float(str(found)) if found is not None else default


def _grace_measure(target: str, run_dir: Path) -> Measured:
    grace = _lab_setting(run_dir, "node_monitor_grace_period_s", 50.0)
    monitor = _lab_setting(run_dir, "node_monitor_period_s", 5.0)
    renew = _lab_setting(run_dir, "node_lease_duration_s", 40.0) / 4  # kubelet: a quarter
    low, high = grace - renew, grace + monitor
    check = Check(
        "kubelet killed -> node NotReady",
        f"{low:g}-{high:g} s: the node's Lease last renewed 0-{renew:g} s before the kill "
        f"(a quarter of its {renew * 4:g} s duration), the node marked once the renewal is "
        f"older than the grace period ({grace:g} s, the lab's --node-monitor-grace-period), "
        f"checked every {monitor:g} s (node_lifecycle_controller.go)",
        low,
        high,
        source="node_lifecycle_controller.go",
    )
    cluster = _fault(_summary(run_dir), "f1").get("cluster") or {}
    return [(check, _number(cluster.get("to_node_down_s")))]


CASES: dict[str, Case] = {
    case.name: case
    for case in (
        Case("partition", TARGETS, _partition_scenario, _partition_measure),
        Case("latency", TARGETS, _latency_scenario, _latency_measure),
        Case("backoff", ("docker", "kubernetes"), _backoff_scenario, _backoff_measure),
        Case("swarm-delay", ("swarm",), _swarm_scenario, _swarm_measure),
        Case("node-grace", ("kubernetes",), _grace_scenario, _grace_measure),
    )
}


def applicable(cases: list[str], targets: list[str]) -> Iterator[tuple[Case, str]]:
    """Every (case, target) pair asked for where the case applies, in a stable order."""
    for name in cases:
        case = CASES[name]
        for target in targets:
            if target in case.targets:
                yield case, target
