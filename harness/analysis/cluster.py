"""The orchestrator's own view of a fault, for clustered targets (Swarm, Kubernetes): from its
events.

Next to the user-visible numbers, a Swarm or Kubernetes run records when the node was marked
down, when the service dropped below its desired replica count, when a replacement task (a
new pod, on Kubernetes) for an affected slot was running, when the service was back at full
strength, and when the node was ready again. Each is measured from the fault's injection
(never added to another interval).
Targets without such events (the Docker Engine) have no cluster view.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from harness.results.summary import ClusterView as ClusterRecord

# Swarm's task states; Kubernetes' pod phases; both record the service's strength and nodes
CLUSTER_ACTIONS = (
    "task_state",
    "pod_phase",
    "service_degraded",
    "service_converged",
    "node_state",
)


@dataclass(frozen=True)
class ClusterView:
    injected_at_ns: int
    node: str | None
    node_down_at_ns: int | None
    degraded_at_ns: int | None
    replacement_running_at_ns: int | None
    full_strength_at_ns: int | None
    node_ready_at_ns: int | None

    def record(self) -> ClusterRecord:
        """As summary.json writes it: each instant, and as seconds from the injection."""

        def since_t0(at_ns: int | None) -> float | None:
            return None if at_ns is None else round((at_ns - self.injected_at_ns) / 1e9, 3)

        return ClusterRecord(
            node=self.node,
            node_down_at_ns=self.node_down_at_ns,
            service_degraded_at_ns=self.degraded_at_ns,
            replacement_running_at_ns=self.replacement_running_at_ns,
            full_strength_at_ns=self.full_strength_at_ns,
            node_ready_at_ns=self.node_ready_at_ns,
            to_node_down_s=since_t0(self.node_down_at_ns),
            to_degraded_s=since_t0(self.degraded_at_ns),
            to_replacement_running_s=since_t0(self.replacement_running_at_ns),
            to_full_strength_s=since_t0(self.full_strength_at_ns),
            to_node_ready_s=since_t0(self.node_ready_at_ns),
        )


Row = tuple[int, str, str | None, Mapping[str, object]]


def _rows(events: pd.DataFrame) -> list[Row]:
    own = events[(events["source"] == "engine") & events["action"].isin(CLUSTER_ACTIONS)]
    return sorted(
        zip(
            own["time_ns"].astype("int64").tolist(),
            own["action"].tolist(),
            own["instance"].tolist(),
            own["attributes"].tolist(),
            strict=True,
        ),
        key=lambda row: row[0],
    )


def _first(rows: Sequence[Row], after_ns: int | None, match: Callable[[Row], bool]) -> Row | None:
    if after_ns is None:
        return None
    return next((row for row in rows if row[0] >= after_ns and match(row)), None)


def cluster_view(events: pd.DataFrame, t0_ns: int, targets: Sequence[str]) -> ClusterView | None:
    """The cluster's view of one fault, or None when the target records no cluster events."""
    rows = _rows(events)
    if not rows:
        return None
    # a replacement is a task (Swarm) or pod (Kubernetes) the slot did not have before t0
    tasks_before = {
        str(a.get("task_id") or a.get("pod_uid"))
        for t, act, _i, a in rows
        if act in ("task_state", "pod_phase") and t < t0_ns
    }
    down = _first(rows, t0_ns, lambda r: r[1] == "node_state" and r[3].get("new") == "down")
    node = None if down is None else str(down[3].get("node"))
    degraded = _first(rows, t0_ns, lambda r: r[1] == "service_degraded")
    replacement = _first(
        rows,
        t0_ns,
        lambda r: (
            r[2] in targets
            and (
                (r[1] == "task_state" and r[3].get("state") == "running")
                or (r[1] == "pod_phase" and r[3].get("phase") == "Running")
            )
            and str(r[3].get("task_id") or r[3].get("pod_uid")) not in tasks_before
        ),
    )
    converged = _first(
        rows, degraded[0] if degraded else None, lambda r: r[1] == "service_converged"
    )
    ready = _first(
        rows,
        down[0] if down else None,
        lambda r: r[1] == "node_state" and r[3].get("new") == "ready" and r[3].get("node") == node,
    )
    return ClusterView(
        injected_at_ns=t0_ns,
        node=node,
        node_down_at_ns=None if down is None else down[0],
        degraded_at_ns=None if degraded is None else degraded[0],
        replacement_running_at_ns=None if replacement is None else replacement[0],
        full_strength_at_ns=None if converged is None else converged[0],
        node_ready_at_ns=None if ready is None else ready[0],
    )
