"""Kubernetes' own Events and the gaps in the harness's view of the cluster, from events.jsonl.

A Kubernetes run records each Event the cluster emitted as an engine `k8s_event` (reason, type,
note, object, component, count; instance = the pod's slot) and a watch that kept failing as
`watch_failing` (resource, error, since_ns) then `watch_resumed` (gap_s)
(harness.targets.kubernetes.recorded, harness.targets.kubernetes.watch). Here:

- `fault_k8s_events`: the Events in a fault's window [t0, its evidence end], for the summary's
  `faults[].k8s_events`;
- `watch_gaps`: every failing watch as one sentence, "the orchestrator's view of <resource> had
  a gap of N s from +X s (<error>)", for the summary's `warnings`: a run whose engine events
  have a hole must say so, since an orchestrator interval measured across it may be wrong. A
  watch still failing when the data ends has its gap counted to the end of the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from harness.results.summary import KubeEventRecord

WARNING_REASONS = frozenset(
    {"BackOff", "Unhealthy", "Killing", "NodeNotReady", "TaintManagerEviction", "FailedScheduling"}
)


@dataclass(frozen=True)
class KubeEvent:
    time_ns: int
    reason: str
    type: str
    involved: str  # Kind/name
    instance: str | None
    note: str
    count: int | None

    @property
    def notable(self) -> bool:
        """Drawn on the timeline: a Warning, or one of the reasons a recovery turns on."""
        return self.type == "Warning" or self.reason in WARNING_REASONS

    def record(self) -> KubeEventRecord:
        """As summary.json writes it (a fault's `k8s_events`)."""
        return KubeEventRecord(
            time_ns=self.time_ns,
            reason=self.reason,
            type=self.type,
            object=self.involved,
            instance=self.instance,
            note=self.note,
            count=self.count,
        )


def kube_events(events: pd.DataFrame) -> list[KubeEvent]:
    """The run's k8s_event lines, in time order."""
    rows = events[(events["source"] == "engine") & (events["action"] == "k8s_event")]
    found = []
    for time_ns, instance, attributes in _rows(rows):
        found.append(
            KubeEvent(
                time_ns=time_ns,
                reason=str(attributes.get("reason") or ""),
                type=str(attributes.get("type") or ""),
                involved=str(attributes.get("object") or ""),
                instance=instance,
                note=str(attributes.get("note") or ""),
                count=_int(attributes.get("count")),
            )
        )
    return sorted(found, key=lambda e: e.time_ns)


def fault_k8s_events(every: list[KubeEvent], start_ns: int, end_ns: int) -> list[KubeEventRecord]:
    """The Events in [start_ns, end_ns], as summary.json writes them."""
    return [e.record() for e in every if start_ns <= e.time_ns <= end_ns]


def watch_gaps(events: pd.DataFrame, origin_ns: int, data_end_ns: int) -> list[str]:
    """One sentence per failing watch (module docstring); times from `origin_ns` (load start)."""
    engine = events[events["source"] == "engine"]
    failing = engine[engine["action"] == "watch_failing"]
    resumed = engine[engine["action"] == "watch_resumed"]
    sentences = []
    for time_ns, _instance, attributes in _rows(failing):
        resource = str(attributes.get("resource") or "a resource")
        since = _int(attributes.get("since_ns")) or time_ns
        end = _resumed_at(resumed, resource, time_ns)
        gap_s = ((data_end_ns if end is None else end) - since) / 1e9
        still = " until the end of the data" if end is None else ""
        error = str(attributes.get("error") or "no error given")
        sentences.append(
            f"the orchestrator's view of {resource} had a gap of {gap_s:.1f} s from "
            f"+{(since - origin_ns) / 1e9:.1f} s{still} ({error}): engine events in it "
            "may be missing or late"
        )
    return sentences


def _resumed_at(resumed: pd.DataFrame, resource: str, after_ns: int) -> int | None:
    for time_ns, _instance, attributes in _rows(resumed):
        if time_ns >= after_ns and attributes.get("resource") == resource:
            return time_ns
    return None


def _rows(frame: pd.DataFrame) -> list[tuple[int, str | None, Mapping[str, object]]]:
    instances = [None if pd.isna(x) else str(x) for x in frame["instance"].tolist()]
    return list(
        zip(frame["time_ns"].tolist(), instances, frame["attributes"].tolist(), strict=True)
    )


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return None
