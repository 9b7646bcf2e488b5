"""Podman 4.3: no restart back-off; health checks run by the harness every interval.

Restart (containers/podman v4.3.1 libpod/container_api.go `Container.Cleanup`, run by the
`podman container cleanup` exit command conmon starts when the container exits, calls
libpod/container_internal.go `handleRestartPolicy`): if `shouldRestart` (the policy matched;
on-failure: a non-zero exit and retries left) it re-initialises and starts the container at
once. There is no delay timer and no back-off on that path, whatever the crash count: die ->
start is only the exit command's and the start's own work.

Health: without systemd Podman runs no health checks of its own; the harness has the engine run
each replica's check every `health.interval` (harness/targets/podman.py), so the first check
after a start comes within one interval and takes at most its timeout.
"""

from __future__ import annotations

from harness.analysis.timers.docker import policy, policy_restarts
from harness.analysis.timers.inputs import InstanceTimes, TimerInputs, per_instance
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

WHERE = "podman v4.3.1 libpod Container.Cleanup -> handleRestartPolicy"
# The exit command (a new podman process), re-init and start: not a timer; the allowance's
# measurements: docs/METRICS.md
START_WORK_S = 2.0
PROBE_REPORT_S = 0.5  # the harness's check result reaching the event stream


def predict(inputs: TimerInputs) -> list[Prediction]:
    return per_instance(inputs, _restart, _health)


def _restart(inputs: TimerInputs, times: InstanceTimes) -> list[Prediction]:
    die = inputs.event_at(times.instance, "die", times.die_at_ns)
    if die is None:
        return []
    code = die.attributes.get("exitCode")
    manual = inputs.fault.restart_policy_applies is False
    measured = times.die_to_start_s
    if not policy_restarts(policy(inputs), None if code is None else str(code), manual):
        why = f"libpod's shouldRestart says no (restart policy {policy(inputs)!r}, {WHERE})"
        if inputs.fault.started_by_revert(times):
            measured, why = None, why + "; the fault's revert started it again"
        return [
            never("die_to_start", times.instance, RESTARTED, measured, why, "no restart", SETTINGS)
        ]
    why = (
        f"libpod restarts as soon as conmon's exit command runs, with no delay timer or "
        f"back-off ({WHERE}; published source), plus up to {START_WORK_S:g} s of its own work"
    )
    return [
        ranged(
            "die_to_start", times.instance, RESTARTED, measured, why, 0.0, START_WORK_S, PUBLISHED
        )
    ]


def _health(inputs: TimerInputs, times: InstanceTimes) -> list[Prediction]:
    if times.start_at_ns is None or inputs.text("workload.health.path") is None:
        return []
    interval = inputs.setting("workload.health.interval", 30.0, "Podman's default interval")
    timeout = inputs.setting("workload.health.timeout", 30.0, "Podman's default timeout")
    high = interval.value + timeout.value + PROBE_REPORT_S
    why = (
        f"the harness's health check through the engine every {interval.words()}, taking at "
        f"most its timeout ({timeout.words()})"
    )
    source = combined_source(interval, timeout)
    measured = times.start_to_healthy_s
    return [ranged("start_to_healthy", times.instance, HEALTHY, measured, why, 0.0, high, source)]
