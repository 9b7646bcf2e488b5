"""Kubernetes' own Events (core/v1), recorded beside the harness's view of the objects.

The kubelet, the scheduler and the controllers say why they acted: Killing, BackOff,
Unhealthy, Started, Scheduled, NodeNotReady, TaintManagerEviction, FailedScheduling... Each
becomes one engine event `k8s_event` (attributes: reason, type, note, object `Kind/name`,
component, count), on the pod's slot when it regards one of the run's pods. A recorder
aggregates repeats into one object with a count (and a series), so an Event is new each time
its uid or count changes. Time: the Event's own stamp (its series' last observation, else its
eventTime in microseconds, else lastTimestamp to the second), merged with the receipt as every
Kubernetes event is (`harness.targets.kubernetes.events.stamp`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.targets.base import EngineEvent
from harness.targets.kubernetes.events import SlotBook, stamp
from harness.targets.kubernetes.views import parse_time_ns


@dataclass(frozen=True)
class RecordedEvent:
    """The parts of a core/v1 Event the report uses."""

    uid: str
    count: int
    reason: str
    type: str
    note: str
    kind: str
    name: str
    object_uid: str
    component: str
    api_ns: int | None


def recorded_view(raw: Mapping[str, Any]) -> RecordedEvent | None:
    """A raw core/v1 Event as a view; None for one without a uid or a reason."""
    meta = raw.get("metadata") or {}
    regarding = raw.get("involvedObject") or {}
    series = raw.get("series") or {}
    uid, reason = str(meta.get("uid") or ""), str(raw.get("reason") or "")
    if not uid or not reason:
        return None
    api_ns = (
        parse_time_ns(series.get("lastObservedTime"))
        or parse_time_ns(raw.get("eventTime"))
        or parse_time_ns(raw.get("lastTimestamp"))
        or parse_time_ns(raw.get("firstTimestamp"))
    )
    source = raw.get("source") or {}
    return RecordedEvent(
        uid=uid,
        count=int(series.get("count") or raw.get("count") or 1),
        reason=reason,
        type=str(raw.get("type") or ""),
        note=str(raw.get("message") or raw.get("note") or ""),
        kind=str(regarding.get("kind") or ""),
        name=str(regarding.get("name") or ""),
        object_uid=str(regarding.get("uid") or ""),
        component=str(raw.get("reportingComponent") or source.get("component") or ""),
        api_ns=api_ns,
    )


class RecordedEventTracker:
    """Turns each new Event (or a repeat of one: a higher count) into a `k8s_event`."""

    def __init__(self, slots: SlotBook) -> None:
        self._slots = slots
        self._seen: dict[str, int] = {}

    def update(self, view: RecordedEvent, received_ns: int) -> list[EngineEvent]:
        if self._seen.get(view.uid, 0) >= view.count:
            return []
        self._seen[view.uid] = view.count
        return [self._event(view, received_ns)]

    def deleted(self, view: RecordedEvent, received_ns: int) -> list[EngineEvent]:
        return []  # Events expire (an hour by default): nothing happened to the cluster

    def resync(self, views: Sequence[RecordedEvent], received_ns: int) -> list[EngineEvent]:
        return [event for view in views for event in self.update(view, received_ns)]

    def _event(self, view: RecordedEvent, received_ns: int) -> EngineEvent:
        at = stamp(received_ns, view.api_ns)
        instance = (
            self._slots.name_by_uid(view.object_uid, view.name) if view.kind == "Pod" else None
        )
        return EngineEvent(
            time_ns=at.time_ns,
            action="k8s_event",
            instance=instance,
            container_id=None,
            attributes={
                **at.attributes,
                "reason": view.reason,
                "type": view.type,
                "note": view.note,
                "object": f"{view.kind}/{view.name}",
                "component": view.component,
                "count": str(view.count),
            },
        )
