"""Docker Engine: the restart manager's back-off, and the health check's first probe.

Restart (moby restartmanager/restartmanager.go, `restartManager.ShouldRestart`): on each exit
the wait before the restart is 100 ms (`defaultTimeout`) for a container that ran 10 s or more
(`executionDuration.Seconds() >= 10` resets it), else double the previous wait
(`backoffMultiplier`), capped at 1 min (`maxRestartTimeout`). daemon/monitor.go
(`handleContainerExit`) starts that timer before it logs `die`, and logs `start` when
`containerStart` is done, so die -> start is at least the wait less the exit's own handling
(at most kill -> die) and at most the wait plus the engine's work to start the container. A
start the user asked for (`containerStart(..., resetRestartManager=true)`) makes a new restart
manager: the next crash waits 100 ms again. A kill or stop through the API cancels the restart
(`Container.ExitOnNext`). Which crash this is comes from the container's own events in the run.

Health (daemon/health.go, `monitor`): the first probe runs one `interval` after the start (no
start interval on Engine 20.10) and a success makes it healthy, so start -> healthy is the
interval plus the probe's own time (at most its timeout).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.analysis.timers.inputs import EngineEvent, InstanceTimes, TimerInputs, per_instance
from harness.analysis.timers.model import (
    HEALTHY,
    PUBLISHED,
    RESTARTED,
    SETTINGS,
    Prediction,
    combined_source,
    never,
    ranged,
)

# moby restartmanager/restartmanager.go: defaultTimeout, backoffMultiplier, maxRestartTimeout
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 60.0
RESET_AFTER_RUNNING_S = 10.0  # ShouldRestart: `executionDuration.Seconds() >= 10`
WHERE = "moby restartmanager.ShouldRestart"
# The engine's own work from the timer's end to its `start` event (network, mounts, runc):
# not a timer; the allowance's measurements: docs/METRICS.md
START_WORK_S = 2.5
# A health probe's result reaching the event stream after its timeout at the latest
PROBE_REPORT_S = 0.5
MANUAL_SIGNALS = frozenset({"9", "15", "SIGKILL", "SIGTERM", "KILL", "TERM"})


@dataclass(frozen=True)
class Wait:
    """The restart manager's wait before restarting after one exit."""

    crash: int  # 1 for the first exit since the manager was (re)set
    wait_s: float | None  # None: no restart (manual stop, or the policy says no)
    ran_s: float | None  # how long it ran before this exit
    why: str


def predict(inputs: TimerInputs) -> list[Prediction]:
    return per_instance(inputs, restart_predictions, health_predictions)


def restart_predictions(inputs: TimerInputs, times: InstanceTimes) -> list[Prediction]:
    die = inputs.event_at(times.instance, "die", times.die_at_ns)
    if die is None:
        return []
    history = _container_history(inputs, die)
    wait = waits(history, policy(inputs)).get(die.time_ns)
    if wait is None:
        return []
    if inputs.fault.restart_policy_applies is False:
        wait = Wait(wait.crash, None, wait.ran_s, "a kill or stop through the API")
    return [_restart_prediction(times, wait, inputs.fault.started_by_revert(times))]


def _restart_prediction(times: InstanceTimes, wait: Wait, by_revert: bool) -> Prediction:
    measured = times.die_to_start_s
    if wait.wait_s is None:
        measured = None if by_revert else measured
        why = f"Docker's restart policy does not restart after {wait.why} ({WHERE})"
        if by_revert:
            why += "; the fault's revert started it again"
        return never(
            "die_to_start", times.instance, RESTARTED, measured, why, "no restart", SETTINGS
        )
    handled = min(times.kill_to_die_s or 0.0, wait.wait_s)
    low, high = wait.wait_s - handled, wait.wait_s + START_WORK_S
    ran = "" if wait.ran_s is None else f", after {wait.ran_s:.1f} s of running"
    why = (
        f"the restart manager's back-off for crash {wait.crash} in a row{ran} "
        f"({wait.wait_s:g} s: {wait.why}; published default, {WHERE}) "
        f"plus up to {START_WORK_S:g} s of the engine's own start work"
    )
    return ranged("die_to_start", times.instance, RESTARTED, measured, why, low, high, PUBLISHED)


def policy(inputs: TimerInputs) -> str:
    """The workload's restart policy (no, always, on-failure, unless-stopped); without a
    scenario.yaml, `always` when the fault says the policy applies (the scenario's default)."""
    written = inputs.text("workload.restart")
    if written is not None:
        return written
    return "always" if inputs.fault.restart_policy_applies is not False else "no"


def policy_restarts(policy_name: str, exit_code: str | None, manual: bool) -> bool:
    """Whether Docker's policy restarts after an exit (restartmanager.ShouldRestart's switch)."""
    if manual:
        return False
    if policy_name in ("always", "unless-stopped"):
        return True
    return policy_name == "on-failure" and exit_code not in (None, "0")


def waits(history: Sequence[EngineEvent], policy_name: str) -> dict[int, Wait]:
    """Replay one container's events through the restart manager: its wait for every `die`."""
    found: dict[int, Wait] = {}
    wait_s, crash = 0.0, 0
    started_ns: int | None = None
    restarting = manual = False
    for event in history:
        if event.action == "start":
            if not restarting:  # a start someone asked for: a fresh restart manager
                wait_s, crash = 0.0, 0
            started_ns, restarting, manual = event.time_ns, False, False
        elif event.action == "kill":
            manual = manual or str(event.attributes.get("signal")) in MANUAL_SIGNALS
        elif event.action == "stop":
            manual = True
        elif event.action == "die":
            ran_s = None if started_ns is None else (event.time_ns - started_ns) / 1e9
            wait_s, crash, why = _next_wait(wait_s, crash, ran_s)
            restarts = policy_restarts(policy_name, _exit_code(event), manual)
            reason = why if restarts else f"restart policy {policy_name!r}"
            if manual:
                reason = "a kill or stop through the API"
            found[event.time_ns] = Wait(crash, wait_s if restarts else None, ran_s, reason)
            restarting = restarts
    return found


def _next_wait(wait_s: float, crash: int, ran_s: float | None) -> tuple[float, int, str]:
    if ran_s is None or ran_s >= RESET_AFTER_RUNNING_S or wait_s == 0:
        reset = ran_s is not None and ran_s >= RESET_AFTER_RUNNING_S and wait_s > 0
        why = "it ran 10 s or more: reset to 100 ms" if reset else "100 ms for a first crash"
        return BACKOFF_FIRST_S, 1, why
    doubled = min(wait_s * 2, BACKOFF_MAX_S)
    why = "capped at 1 min" if doubled == BACKOFF_MAX_S else "doubled: it ran less than 10 s"
    return doubled, crash + 1, why


def _exit_code(event: EngineEvent) -> str | None:
    code = event.attributes.get("exitCode")
    return None if code is None else str(code)


def _container_history(inputs: TimerInputs, die: EngineEvent) -> list[EngineEvent]:
    """The events of the container that died (by id; by instance when the id is unknown)."""
    if die.container_id:
        return [e for e in inputs.events if e.container_id == die.container_id]
    return inputs.of_instance(str(die.instance))


def health_predictions(inputs: TimerInputs, times: InstanceTimes) -> list[Prediction]:
    """start -> healthy from the engine's own health check (Docker, and Swarm's tasks)."""
    if times.start_at_ns is None or inputs.text("workload.health.path") is None:
        return []
    interval = inputs.setting("workload.health.interval", 30.0, "Docker defaultProbeInterval")
    timeout = inputs.setting("workload.health.timeout", 30.0, "Docker defaultProbeTimeout")
    low = interval.value
    high = interval.value + timeout.value + PROBE_REPORT_S
    why = (
        f"the engine's first health probe one interval after the start "
        f"({interval.words()}, daemon/health.go monitor), taking at most its timeout "
        f"({timeout.words()})"
    )
    source = combined_source(interval, timeout)
    measured = times.start_to_healthy_s
    return [ranged("start_to_healthy", times.instance, HEALTHY, measured, why, low, high, source)]
