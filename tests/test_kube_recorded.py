"""Kubernetes' own Events as `k8s_event`s (pure: raw core/v1 Event JSON as the API serves it)."""

from __future__ import annotations

from typing import Any

from harness.targets.kubernetes.events import SlotBook
from harness.targets.kubernetes.recorded import RecordedEventTracker, recorded_view
from harness.targets.kubernetes.views import pod_view

S = 1_000_000_000
T0 = 1_800_000_000  # a whole second, in seconds since the epoch


def _event(uid: str, reason: str, **fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "metadata": {"uid": uid, "name": f"web.{uid}"},
        "reason": reason,
        "type": fields.pop("type", "Normal"),
        "message": fields.pop("message", ""),
        "involvedObject": fields.pop("regarding", {"kind": "Pod", "name": "web-abc", "uid": "p1"}),
        "source": {"component": "kubelet"},
    }
    raw.update(fields)
    return raw


def _slots_with_pod() -> SlotBook:
    from kubernetes.client import V1ObjectMeta, V1Pod

    slots = SlotBook()
    pod = V1Pod(
        metadata=V1ObjectMeta(
            name="web-abc", uid="p1", labels={"chaos-harness.service": "web"}, namespace="n"
        )
    )
    slots.observe([pod_view(pod)])
    return slots


def test_a_kubelet_event_lands_on_the_pods_slot_stamped_by_its_second() -> None:
    tracker = RecordedEventTracker(_slots_with_pod())
    raw = _event(
        "e1", "Killing", message="Stopping container web", lastTimestamp="2027-01-15T08:00:00Z"
    )
    view = recorded_view(raw)
    assert view is not None
    api_ns = 1_800_000_000 * S  # 2027-01-15T08:00:00Z
    # received 2.5 s after the API's second: the latest instant both allow is the second's end
    (event,) = tracker.update(view, api_ns + 2_500_000_000)
    assert event.action == "k8s_event" and event.instance == "web-1"
    assert event.time_ns == api_ns + S - 1
    assert event.attributes["reason"] == "Killing"
    assert event.attributes["object"] == "Pod/web-abc"
    assert event.attributes["time_source"] == "api"


def test_a_repeat_is_new_only_when_its_count_grows() -> None:
    tracker = RecordedEventTracker(SlotBook())
    first = recorded_view(_event("e2", "BackOff", count=1, lastTimestamp="2027-01-15T08:00:00Z"))
    again = recorded_view(_event("e2", "BackOff", count=1, lastTimestamp="2027-01-15T08:00:00Z"))
    later = recorded_view(_event("e2", "BackOff", count=2, lastTimestamp="2027-01-15T08:00:10Z"))
    assert first is not None and again is not None and later is not None
    assert len(tracker.update(first, 1_800_000_001 * S)) == 1
    assert tracker.update(again, 1_800_000_002 * S) == []
    (repeat,) = tracker.update(later, 1_800_000_011 * S)
    assert repeat.attributes["count"] == "2"
    # a pod unknown to the slots keeps the pod's own name
    assert repeat.instance == "web-abc"


def test_an_event_time_in_microseconds_is_kept_and_a_node_event_has_no_instance() -> None:
    tracker = RecordedEventTracker(SlotBook())
    raw = _event(
        "e3",
        "NodeNotReady",
        regarding={"kind": "Node", "name": "chk8s-n2", "uid": "n2"},
        eventTime="2027-01-15T08:00:00.250000Z",
        reportingComponent="node-controller",
    )
    view = recorded_view(raw)
    assert view is not None and view.component == "node-controller"
    # received at +3 s: the microsecond stamp (+0.25 s, resolution 1 µs) is the latest instant
    (event,) = tracker.update(view, 1_800_000_003 * S)
    assert event.instance is None
    assert event.time_ns == 1_800_000_000 * S + 250_000_000 + 1_000 - 1
    assert event.attributes["object"] == "Node/chk8s-n2"


def test_an_event_without_uid_or_reason_is_not_one() -> None:
    assert recorded_view({"metadata": {}, "reason": "Killing"}) is None
    assert recorded_view({"metadata": {"uid": "x"}}) is None
