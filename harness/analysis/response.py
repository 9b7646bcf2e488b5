"""What the orchestrator did about a fault, in one word per instance: from its own events.

For each target instance, between the fault's injection and the next fault on the same
instance (or the end of the data), the engine's events say: `replaced` (a new task id, pod uid
or container id took its place), `restarted_in_place` (the same unit started again),
`not_restarted` (it died and nothing came back), `kept_running` (it never died nor was
replaced), or `unknown` (no event at all, of any instance, after the injection: the event
stream was lost, so silence says nothing). The unit is named after the target (container,
task, pod); `action` over the instances is the one they share, else `mixed`.

Through the service, when the workload names the replica that served each request,
`served_through_service` says how many successes each target served in the fault's window and
the first it served once the outage began; None when no request names its server. The long
form: docs/METRICS.md, Responses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from harness.analysis.observations import RunObservations
from harness.targets import target_kinds

Action = Literal[
    "replaced", "restarted_in_place", "not_restarted", "kept_running", "unknown", "mixed"
]
ACTIONS = frozenset(
    {"replaced", "restarted_in_place", "not_restarted", "kept_running", "unknown", "mixed"}
)
DIE_TOLERANCE_NS = 1_000_000  # an engine `die` may be stamped up to 1 ms before our t0


@dataclass(frozen=True)
class InstanceResponse:
    instance: str
    action: Action
    at_ns: int | None  # the replacement's or restart's instant, when there was one
    injected_at_ns: int

    @property
    def after_s(self) -> float | None:
        return None if self.at_ns is None else round((self.at_ns - self.injected_at_ns) / 1e9, 3)

    def to_dict(self) -> dict[str, object]:
        return {
            "instance": self.instance,
            "action": self.action,
            "at_ns": self.at_ns,
            "after_s": self.after_s,
        }


@dataclass(frozen=True)
class Response:
    unit: str
    instances: tuple[InstanceResponse, ...]

    @property
    def action(self) -> Action | None:
        actions = {i.action for i in self.instances}
        if not actions:
            return None
        return actions.pop() if len(actions) == 1 else "mixed"

    def describe(self) -> str:
        """'restarted the same container in place (+0.62 s)' and the like."""
        action, unit = self.action, self.unit
        if action is None:
            return "no instance was targeted"
        if action == "mixed":
            parts = (f"{i.instance}: {action_words(i.action, unit)}" for i in self.instances)
            return "; ".join(parts)
        times = [i.after_s for i in self.instances if i.after_s is not None]
        when = f" (+{max(times):.2f} s)" if times else ""
        return action_words(action, unit) + when

    def to_dict(self) -> dict[str, object]:
        return {
            "action": self.action,
            "unit": self.unit,
            "description": self.describe(),
            "instances": [i.to_dict() for i in self.instances],
        }


def action_words(action: Action, unit: str) -> str:
    """'restarted the same container in place' and the like (without the time)."""
    return {
        "replaced": f"replaced the {unit} with a new one",
        "restarted_in_place": (
            "restarted the container inside the same pod"
            if unit == "pod"
            else f"restarted the same {unit} in place"
        ),
        "not_restarted": f"left the {unit} dead (never restarted)",
        "kept_running": f"nothing: the {unit} kept running",
        "unknown": "unknown (the engine reported no event after the fault)",
        "mixed": "several responses",
    }[action]


def fault_response(
    events: pd.DataFrame, target: str, targets: Sequence[str], t0_ns: int, end_ns: int | None
) -> Response:
    """The orchestrator's response to a fault on `targets` injected at `t0_ns`, judged from
    the engine events up to `end_ns` (the next fault on the same instances; None: the end)."""
    engine = events[events["source"] == "engine"]
    unit = unit_of(target)
    if not bool((engine["time_ns"] >= t0_ns - DIE_TOLERANCE_NS).any()):
        silent = (InstanceResponse(name, "unknown", None, t0_ns) for name in targets)
        return Response(unit, tuple(silent))
    return Response(unit, tuple(_instance(engine, name, t0_ns, end_ns) for name in targets))


def _identities(frame: pd.DataFrame) -> tuple[set[str], set[str], set[str]]:
    """(container ids, task ids, pod uids) named by the events."""
    attributes: list[Mapping[str, object]] = frame["attributes"].tolist()
    containers = {str(c) for c in frame["container_id"].tolist() if c}
    tasks = {str(a["task_id"]) for a in attributes if a.get("task_id")}
    pods = {str(a["pod_uid"]) for a in attributes if a.get("pod_uid")}
    return containers, tasks, pods


def _instance(engine: pd.DataFrame, name: str, t0_ns: int, end_ns: int | None) -> InstanceResponse:
    own = engine[engine["instance"] == name]
    times = own["time_ns"]
    before = own[times < t0_ns - DIE_TOLERANCE_NS]
    after = own[(times >= t0_ns - DIE_TOLERANCE_NS) & (times < (end_ns or 2**63 - 1))]
    containers, tasks, pods = _identities(before)
    replaced_at = _first_new_unit(after, containers, tasks, pods)
    if replaced_at is not None:
        return InstanceResponse(name, "replaced", replaced_at, t0_ns)
    dies = after.loc[after["action"] == "die", "time_ns"]
    if dies.empty:
        return InstanceResponse(name, "kept_running", None, t0_ns)
    starts = after.loc[(after["action"] == "start") & (after["time_ns"] > int(dies.iloc[0]))]
    if starts.empty:
        return InstanceResponse(name, "not_restarted", None, t0_ns)
    return InstanceResponse(name, "restarted_in_place", int(starts["time_ns"].iloc[0]), t0_ns)


def _first_new_unit(
    after: pd.DataFrame, containers: set[str], tasks: set[str], pods: set[str]
) -> int | None:
    """When a unit not seen before the fault started serving (or was created), if one was."""
    found: list[int] = []
    for time_ns, action, container, attributes in zip(
        after["time_ns"].tolist(),
        after["action"].tolist(),
        after["container_id"].tolist(),
        after["attributes"].tolist(),
        strict=True,
    ):
        task, pod = attributes.get("task_id"), attributes.get("pod_uid")
        new_task = bool(task) and str(task) not in tasks and attributes.get("state") == "running"
        new_pod = bool(pod) and str(pod) not in pods and action == "start"
        new_container = (  # only when the fault's container was known by its id
            bool(containers)
            and not task
            and not pod
            and action == "start"
            and bool(container)
            and str(container) not in containers
        )
        if new_task or new_pod or new_container:
            found.append(int(time_ns))
    return min(found) if found else None


@dataclass(frozen=True)
class ServedInstance:
    """What one target instance served users through the service during a fault."""

    instance: str
    served_in_window: int  # successes it served, completed in the fault's window
    first_served_at_ns: int | None  # completion of its first success sent once the outage began
    injected_at_ns: int

    def to_dict(self) -> dict[str, object]:
        at = self.first_served_at_ns
        return {
            "instance": self.instance,
            "served_in_window": self.served_in_window,
            "first_served_at_ns": at,
            "first_served_after_s": None
            if at is None
            else round((at - self.injected_at_ns) / 1e9, 3),
        }


def served_through_service(
    observations: RunObservations,
    targets: Sequence[str],
    t0_ns: int,
    outage_from_ns: int,
    window_end_ns: int,
) -> tuple[ServedInstance, ...] | None:
    """Per target: successes it served in [t0, window end], and the first success it served
    among the requests sent at or after `outage_from_ns` (the fault's first failure, or t0);
    None when the workload names no server."""
    if observations.served is None:
        return None
    found = []
    for name in targets:
        served = observations.served_by([name])
        in_window = served.end_ns[served.ok & (served.end_ns >= t0_ns)]
        in_window = in_window[in_window <= window_end_ns]
        later = served.ok & (served.start_ns >= outage_from_ns)
        firsts = served.end_ns[later]
        first = int(np.min(firsts)) if firsts.size else None
        found.append(ServedInstance(name, int(in_window.size), first, t0_ns))
    return tuple(found)


def unit_of(target: str) -> str:
    """What one replica of the target kind is called (TargetKind.unit: container, task, pod)."""
    kind = target_kinds().get(target)
    return kind.unit if kind is not None else "instance"
