"""Docker Swarm: the restart policy's delay and window, and a node's heartbeat.

Restart (moby/swarmkit manager/orchestrator/restart/restart.go, `Supervisor.Restart`): a failed
task is replaced by a new task that starts after the spec's restart delay (`DelayStart`; the
default `defaults.Service.Task.Restart.Delay`, api/defaults/service.go, is 5 s), not waiting
for the old task when it is already dead or its node down; the delay is skipped for a task on
a drained node. `shouldRestart` gives up once `MaxAttempts` restarts happened within `Window`.
So die -> the new task's start is the delay plus the new task's own start.

Node down (manager/dispatcher/dispatcher.go and nodes.go, `nodeStore.Heartbeat`): each
heartbeat sets the node's deadline to 3 (`defaultGracePeriodMultiplier`) times a period chosen
in [P - e, P + e) (period.go `periodChooser.Choose`; e = `defaultHeartBeatEpsilon` 500 ms), and
tells the node to beat again after that period. A node cut at t0 beat last in (t0 - p, t0], so
it is marked down 2p to 3p after t0: (2(P - e), 3(P + e)]. Its tasks are then restarted
elsewhere after the restart delay.
"""

from __future__ import annotations

from harness.analysis.timers import docker
from harness.analysis.timers.inputs import InstanceTimes, TimerInputs, per_instance
from harness.analysis.timers.model import (
    SETTINGS,
    Prediction,
    Setting,
    combined_source,
    never,
    ranged,
)

RESTART_WHERE = "swarmkit restart.Supervisor.Restart"
NEW_TASK = "a new task started {s:.2f} s after it died"
DEFAULT_DELAY_S = 5.0  # swarmkit api/defaults/service.go Service.Task.Restart.Delay
HEARTBEAT_S = 5.0  # swarmkit dispatcher.DefaultHeartBeatPeriod
EPSILON_S = 0.5  # swarmkit dispatcher.defaultHeartBeatEpsilon
GRACE_MULTIPLIER = 3  # swarmkit dispatcher.defaultGracePeriodMultiplier
# A new task's own start (agent assignment, create, start) and the state reaching the watcher:
# not a timer; the allowance's measurements: docs/METRICS.md
TASK_START_S = 3.0
NODE_REPORT_S = 1.0  # the node's new state reaching the harness's watcher
CONDITIONS = {"no": "none", "on-failure": "on-failure", "always": "any", "unless-stopped": "any"}
NODE_KINDS = frozenset({"node_down", "node_partition", "node_drain"})


def predict(inputs: TimerInputs) -> list[Prediction]:
    found = per_instance(inputs, _restart, docker.health_predictions)
    if inputs.fault.kind in NODE_KINDS and inputs.fault.cluster is not None:
        found.extend(_node(inputs))
    return found


def restart_delay(inputs: TimerInputs) -> Setting:
    """The service's restart delay: the scenario's, else the one the target reported."""
    where = "swarmkit defaults.Service.Task.Restart"
    written = inputs.setting("target.swarm.restart_delay", DEFAULT_DELAY_S, where)
    if written.source == SETTINGS:
        return written
    return inputs.reported("restart_delay_s", DEFAULT_DELAY_S, where)


def _condition(inputs: TimerInputs) -> str:
    return inputs.text("target.swarm.restart_condition") or CONDITIONS.get(
        docker.policy(inputs), "any"
    )


def _restart(inputs: TimerInputs, times: InstanceTimes) -> list[Prediction]:
    die = inputs.event_at(times.instance, "die", times.die_at_ns)
    if die is None:
        return []
    measured = times.die_to_start_s
    refused = _refusal(inputs, times, str(die.attributes.get("exitCode", "")))
    if refused is not None:
        if inputs.fault.started_by_revert(times):
            measured, refused = None, refused + "; the fault's revert started it again"
        return [
            never(
                "die_to_start", times.instance, NEW_TASK, measured, refused, "no new task", SETTINGS
            )
        ]
    delay = restart_delay(inputs)
    low, high = delay.value, delay.value + TASK_START_S
    why = (
        f"Swarm's restart delay ({delay.words()}; {RESTART_WHERE}) plus up to "
        f"{TASK_START_S:g} s for the new task to start"
    )
    return [
        ranged("die_to_start", times.instance, NEW_TASK, measured, why, low, high, delay.source)
    ]


def _refusal(inputs: TimerInputs, times: InstanceTimes, exit_code: str) -> str | None:
    """Why Swarm's restart policy makes no new task, or None when it does."""
    condition = _condition(inputs)
    if condition == "none" or (condition == "on-failure" and exit_code == "0"):
        return f"the restart condition {condition!r} makes no new task ({RESTART_WHERE})"
    attempts = inputs.scenario_int("target.swarm.restart_max_attempts")
    if not attempts:
        return None
    window = inputs.setting("target.swarm.restart_window", 0.0, "swarmkit: unbounded")
    die_ns = times.die_at_ns or 0
    since = die_ns - int(window.value * 1e9) if window.value > 0 else 0
    earlier = [
        e
        for e in inputs.of_instance(times.instance)
        if e.action == "die" and since <= e.time_ns < die_ns
    ]
    if len(earlier) < attempts:
        return None
    return (
        f"restart_max_attempts {attempts} already used within the window "
        f"({RESTART_WHERE} shouldRestart)"
    )


def heartbeat(inputs: TimerInputs) -> Setting:
    return inputs.reported("lab_heartbeat_s", HEARTBEAT_S, "swarmkit DefaultHeartBeatPeriod")


def _node(inputs: TimerInputs) -> list[Prediction]:
    cluster = inputs.fault.cluster
    assert cluster is not None
    delay = restart_delay(inputs)
    if inputs.fault.kind == "node_drain":
        why = (
            f"a drained node's tasks are replaced at once: no restart delay on a drained node "
            f"({RESTART_WHERE}), up to {TASK_START_S:g} s for the new task to start"
        )
        return [
            _cluster_prediction(
                "to_replacement_running",
                cluster.to_replacement_running_s,
                "replacement running {s:.2f} s after the drain",
                why,
                0.0,
                TASK_START_S,
                delay,
            )
        ]
    period = heartbeat(inputs)
    low = max(0.0, 2 * (period.value - EPSILON_S))
    high = GRACE_MULTIPLIER * (period.value + EPSILON_S) + NODE_REPORT_S
    why = (
        f"Swarm's dispatcher marks a node down {GRACE_MULTIPLIER} heartbeat periods after its "
        f"last beat (period {period.words()}, jittered by ±{EPSILON_S:g} s: swarmkit "
        f"nodeStore.Heartbeat, periodChooser.Choose), and the fault came 0-1 period after it"
    )
    down = _cluster_prediction(
        "to_node_down",
        cluster.to_node_down_s,
        "node marked down {s:.2f} s after the fault",
        why,
        low,
        high,
        period,
    )
    found = [down]
    if cluster.to_node_down_s is not None:
        start = cluster.to_node_down_s
        why = (
            f"its tasks restarted elsewhere after the restart delay ({delay.words()}) from the "
            f"node's loss at +{start:.2f} s, plus up to {TASK_START_S:g} s to start"
        )
        found.append(
            _cluster_prediction(
                "to_replacement_running",
                cluster.to_replacement_running_s,
                "replacement running {s:.2f} s after the fault",
                why,
                start + delay.value,
                start + delay.value + TASK_START_S,
                delay,
            )
        )
    return found


def _cluster_prediction(
    interval: str,
    measured: float | None,
    words: str,
    why: str,
    low: float,
    high: float,
    *settings: Setting,
) -> Prediction:
    return ranged(interval, None, words, measured, why, low, high, combined_source(*settings))
