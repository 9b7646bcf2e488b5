"""Per-fault metrics, exactly as docs/DESIGN.md "Metrics: exact definitions" states them.

Observations are requests and probes merged; each is placed in time by its completion
(`end_ns`). For a fault injected at `t0`:

- `detected_at`: completion of the first failed observation completed at or after `t0`; for
  a fault with a duration, only up to `stable_for` after its revert: a failure later than that
  is not this fault's impact (a fault that changed nothing users saw, such as added latency,
  must not take a stray failure half a minute later for its own);
- `recovered_at`: completion of the first success completed at or after `detected_at` (and,
  for a fault with a duration, at or after its revert, unless the orchestrator is expected to
  heal while it is on: a lost node's tasks are rescheduled before the node comes back) such
  that the observations completed in `(s, s + stable_for]` fail at no more than the baseline
  rate (none at all when the baseline had no failure), that window holds at least one
  observation and the data covers it;
- `availability`: successful / all requests (not probes) completed in `[t0, recovered_at]`,
  or from `t0` to the end of the data when the fault never recovered;
- `orchestrator`: per target instance, engine `die` -> `start` -> `health_status: healthy`,
  each interval measured from its own start, never summed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from harness.analysis.cluster import ClusterView, cluster_view
from harness.analysis.data import RunData

DIE_TOLERANCE_NS = 1_000_000  # an engine `die` may be stamped up to 1 ms before our t0
NO_IMPACT = "no user-visible failures"
MANUAL_STOP = (
    "the engine's kill through the API is a manual stop, so the restart policy does not apply"
)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Fault:
    """One injected fault, from the harness's fault_inject / fault_revert events."""

    fault_id: str
    kind: str
    mode: str | None
    mechanism: str | None
    restart_policy_applies: bool | None
    targets: tuple[str, ...]
    injected_at_ns: int
    reverted_at_ns: int | None
    # True when the orchestrator is expected to heal while the fault is still on (a lost node's
    # tasks rescheduled elsewhere): recovery may then come before the revert.
    heals_during_fault: bool = False


@dataclass(frozen=True, eq=False)
class Observations:
    """Requests and probes merged: completion instants (sorted) and outcomes."""

    end_ns: IntArray
    ok: BoolArray

    def count_between(self, lo_ns: int, hi_ns: int) -> tuple[int, int]:
        """(observations, failures) completed in [lo_ns, hi_ns)."""
        lo, hi = np.searchsorted(self.end_ns, [lo_ns, hi_ns], side="left")
        return int(hi - lo), int(np.count_nonzero(~self.ok[lo:hi]))


@dataclass(frozen=True)
class LoadWindow:
    """When the load ran; every phase lies inside it."""

    start_ns: int
    end_ns: int

    def seconds(self, time_ns: int) -> float:
        """Seconds since load start."""
        return (time_ns - self.start_ns) / 1e9


@dataclass(frozen=True)
class InstanceTimeline:
    """What the engine reported for one affected instance after the fault."""

    instance: str
    injected_at_ns: int
    die_at_ns: int | None
    start_at_ns: int | None
    healthy_at_ns: int | None

    @property
    def restarted(self) -> bool:
        return self.start_at_ns is not None

    @property
    def kill_to_die_s(self) -> float | None:
        return _interval_s(self.injected_at_ns, self.die_at_ns)

    @property
    def die_to_start_s(self) -> float | None:
        return _interval_s(self.die_at_ns, self.start_at_ns)

    @property
    def start_to_healthy_s(self) -> float | None:
        return _interval_s(self.start_at_ns, self.healthy_at_ns)

    def to_dict(self) -> dict[str, object]:
        return {
            "instance": self.instance,
            "die_at_ns": self.die_at_ns,
            "start_at_ns": self.start_at_ns,
            "healthy_at_ns": self.healthy_at_ns,
            "kill_to_die_s": _round(self.kill_to_die_s),
            "die_to_start_s": _round(self.die_to_start_s),
            "start_to_healthy_s": _round(self.start_to_healthy_s),
            "restarted": self.restarted,
        }


@dataclass(frozen=True)
class WindowCounts:
    """Requests and probes completed in a fault's window."""

    requests: int
    failed_requests: int
    probes: int
    failed_probes: int


@dataclass(frozen=True)
class FaultMetrics:
    """Everything measured about one fault."""

    fault: Fault
    detected_at_ns: int | None
    recovered_at_ns: int | None
    reason: str | None
    window: WindowCounts
    orchestrator: tuple[InstanceTimeline, ...]
    cluster: ClusterView | None = None

    @property
    def recovered(self) -> bool:
        return self.recovered_at_ns is not None

    @property
    def ttd_s(self) -> float | None:
        return _interval_s(self.fault.injected_at_ns, self.detected_at_ns)

    @property
    def ttr_s(self) -> float | None:
        return _interval_s(self.fault.injected_at_ns, self.recovered_at_ns)

    @property
    def availability(self) -> float | None:
        """Share of requests that succeeded in the window; 1.0 for a fault with no impact."""
        if self.detected_at_ns is None:
            return 1.0
        if self.window.requests == 0:
            return None
        return 1.0 - self.window.failed_requests / self.window.requests

    def active_until_ns(self, load: LoadWindow) -> int:
        """End of the fault's active window: its revert, else its recovery (or end of load)."""
        if self.fault.reverted_at_ns is not None:
            return self.fault.reverted_at_ns
        if self.recovered_at_ns is not None:
            return self.recovered_at_ns
        return max(load.end_ns, self.fault.injected_at_ns)

    def to_dict(self) -> dict[str, object]:
        fault = self.fault
        return {
            "id": fault.fault_id,
            "kind": fault.kind,
            "mode": fault.mode,
            "mechanism": fault.mechanism,
            "restart_policy_applies": fault.restart_policy_applies,
            "targets": list(fault.targets),
            "injected_at_ns": fault.injected_at_ns,
            "reverted_at_ns": fault.reverted_at_ns,
            "detected_at_ns": self.detected_at_ns,
            "recovered_at_ns": self.recovered_at_ns,
            "ttd_s": _round(self.ttd_s),
            "ttr_s": _round(self.ttr_s),
            "recovered": self.recovered,
            "reason": self.reason,
            "failed_requests": self.window.failed_requests,
            "requests_in_window": self.window.requests,
            "availability": _round(self.availability, 6),
            "probes_failed": self.window.failed_probes,
            "probes_in_window": self.window.probes,
            "orchestrator": [timeline.to_dict() for timeline in self.orchestrator],
            "cluster": None if self.cluster is None else self.cluster.to_dict(),
        }


@dataclass(frozen=True)
class Context:
    """What every fault's computation shares."""

    observations: Observations
    requests: Observations
    probes: Observations
    load: LoadWindow
    baseline_failure_rate: float
    stable_for_ns: int


def _interval_s(start_ns: int | None, end_ns: int | None) -> float | None:
    if start_ns is None or end_ns is None:
        return None
    return (end_ns - start_ns) / 1e9


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


# -- inputs -----------------------------------------------------------------------------------


def extract_faults(events: pd.DataFrame) -> tuple[Fault, ...]:
    """Faults from the harness's fault_inject events, matched to fault_revert by fault_id."""
    harness = events[events["source"] == "harness"]
    reverts: dict[str, int] = {}
    for time_ns, attributes in _rows(harness[harness["action"] == "fault_revert"]):
        reverts.setdefault(str(attributes.get("fault_id")), time_ns)
    faults: dict[str, Fault] = {}
    for time_ns, attributes in _rows(harness[harness["action"] == "fault_inject"]):
        fault_id = str(attributes.get("fault_id"))
        if fault_id not in faults:
            faults[fault_id] = _fault(fault_id, time_ns, attributes, reverts.get(fault_id))
    return tuple(sorted(faults.values(), key=lambda f: (f.injected_at_ns, f.fault_id)))


def _rows(frame: pd.DataFrame) -> list[tuple[int, Mapping[str, object]]]:
    return list(zip(frame["time_ns"].tolist(), frame["attributes"].tolist(), strict=True))


def _fault(
    fault_id: str, time_ns: int, attributes: Mapping[str, object], reverted_at_ns: int | None
) -> Fault:
    targets = attributes.get("targets") or []
    policy = attributes.get("restart_policy_applies")
    return Fault(
        fault_id=fault_id,
        kind=str(attributes.get("kind") or "unknown"),
        mode=_opt_str(attributes.get("mode")),
        mechanism=_opt_str(attributes.get("mechanism")),
        restart_policy_applies=policy if isinstance(policy, bool) else None,
        targets=tuple(str(t) for t in targets) if isinstance(targets, list) else (),
        injected_at_ns=int(time_ns),
        reverted_at_ns=None if reverted_at_ns is None else int(reverted_at_ns),
        heals_during_fault=attributes.get("heals_during_fault") is True,
    )


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def observations(*frames: pd.DataFrame) -> Observations:
    """Merge request / probe tables into completion-sorted arrays."""
    ends = [f["end_ns"].to_numpy(dtype=np.int64) for f in frames]
    oks = [f["ok"].to_numpy(dtype=np.bool_) for f in frames]
    end_ns = np.concatenate(ends) if ends else np.empty(0, dtype=np.int64)
    ok = np.concatenate(oks) if oks else np.empty(0, dtype=np.bool_)
    order = np.argsort(end_ns, kind="stable")
    return Observations(end_ns=end_ns[order], ok=ok[order])


def load_window(run: RunData) -> LoadWindow:
    """The load's start and end: manifest, else harness events, else the data, else the run."""
    events = run.events[run.events["source"] == "harness"]
    start = _first_of(
        run.manifest.load.started_at_ns,
        _event_time(events, "load_start"),
        _extreme(run.requests, "start_ns", first=True),
        run.manifest.started_at_ns,
    )
    end = _first_of(
        run.manifest.load.ended_at_ns,
        _event_time(events, "load_stop"),
        _extreme(run.requests, "end_ns", first=False),
        run.manifest.ended_at_ns,
    )
    start = 0 if start is None else start
    return LoadWindow(start_ns=start, end_ns=start if end is None else max(start, end))


def _first_of(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def _event_time(events: pd.DataFrame, action: str) -> int | None:
    times = events.loc[events["action"] == action, "time_ns"]
    return None if times.empty else int(times.iloc[0])


def _extreme(frame: pd.DataFrame, column: str, *, first: bool) -> int | None:
    if frame.empty:
        return None
    return int(frame[column].min() if first else frame[column].max())


def make_context(run: RunData, faults: tuple[Fault, ...]) -> Context:
    """Merge the observations and measure the baseline failure rate."""
    load = load_window(run)
    merged = observations(run.requests, run.probes)
    first_t0 = faults[0].injected_at_ns if faults else load.end_ns
    count, failures = merged.count_between(load.start_ns, first_t0)
    return Context(
        observations=merged,
        requests=observations(run.requests),
        probes=observations(run.probes),
        load=load,
        baseline_failure_rate=failures / count if count else 0.0,
        stable_for_ns=round(run.manifest.stable_for_s * 1e9),
    )


# -- per fault --------------------------------------------------------------------------------


def fault_metrics(run: RunData) -> tuple[tuple[FaultMetrics, ...], Context]:
    """Measure every fault of the run; also return the shared context (baseline, load)."""
    faults = extract_faults(run.events)
    context = make_context(run, faults)
    return tuple(measure_fault(f, context, run.events) for f in faults), context


def measure_fault(fault: Fault, context: Context, events: pd.DataFrame) -> FaultMetrics:
    """Detection, recovery, window counts and orchestrator intervals of one fault."""
    t0 = fault.injected_at_ns
    timelines = tuple(instance_timeline(events, name, t0) for name in fault.targets)
    horizon = None
    if fault.reverted_at_ns is not None:
        horizon = fault.reverted_at_ns + context.stable_for_ns
    detected = detect(context.observations, fault.injected_at_ns, horizon)
    if detected is None:
        recovered: int | None = fault.injected_at_ns
        reason: str | None = NO_IMPACT
    else:
        recovered, reason = recover(fault, detected, context)
        if recovered is None:
            reason = _with_diagnosis(str(reason), fault, timelines, events)
    return FaultMetrics(
        fault=fault,
        detected_at_ns=detected,
        recovered_at_ns=recovered,
        reason=reason,
        window=window_counts(context, fault.injected_at_ns, recovered),
        orchestrator=timelines,
        cluster=cluster_view(events, fault.injected_at_ns, fault.targets),
    )


def detect(obs: Observations, t0_ns: int, horizon_ns: int | None = None) -> int | None:
    """Completion of the first failed observation completed in [t0, horizon]."""
    start = int(np.searchsorted(obs.end_ns, t0_ns, side="left"))
    stop = len(obs.end_ns)
    if horizon_ns is not None:
        stop = int(np.searchsorted(obs.end_ns, horizon_ns, side="right"))
    failed = np.flatnonzero(~obs.ok[start:stop])
    return None if failed.size == 0 else int(obs.end_ns[start + failed[0]])


def recover(fault: Fault, detected_ns: int, context: Context) -> tuple[int | None, str | None]:
    """(recovered_at, None) or (None, reason) — see the module docstring."""
    obs, stable = context.observations, context.stable_for_ns
    earliest = detected_ns
    if not fault.heals_during_fault:
        earliest = max(detected_ns, fault.reverted_at_ns or detected_ns)
    first = int(np.searchsorted(obs.end_ns, earliest, side="left"))
    candidates = first + np.flatnonzero(obs.ok[first:])
    if candidates.size:
        ends = obs.end_ns[candidates]
        cum_failed = np.concatenate(([0], np.cumsum(~obs.ok)))
        lo = np.searchsorted(obs.end_ns, ends, side="right")
        hi = np.searchsorted(obs.end_ns, ends + stable, side="right")
        count, failed = hi - lo, cum_failed[hi] - cum_failed[lo]
        calm = failed <= context.baseline_failure_rate * count + 1e-9
        covered = ends + stable <= obs.end_ns[-1]
        stable_at = np.flatnonzero(calm & covered & (count > 0))
        if stable_at.size:
            return int(ends[stable_at[0]]), None
        pending = np.flatnonzero(calm & ~covered)
        if pending.size:
            since = context.load.seconds(int(ends[pending[0]]))
            return None, (
                f"run ended before {stable / 1e9:g} s of stability "
                f"(after the success at +{since:.1f} s)"
            )
    return None, _still_failing(obs, context.load)


def _still_failing(obs: Observations, load: LoadWindow) -> str:
    failed = obs.end_ns[~obs.ok]
    last = load.seconds(int(failed[-1])) if failed.size else 0.0
    return f"failures continued until the end of the run (last failure at +{last:.1f} s)"


def _with_diagnosis(
    reason: str, fault: Fault, timelines: tuple[InstanceTimeline, ...], events: pd.DataFrame
) -> str:
    notes = [reason]
    for timeline in timelines:
        if timeline.die_at_ns is not None and not timeline.restarted:
            notes.append(f"instance {timeline.instance} never restarted (no engine start event)")
        elif timeline.healthy_at_ns is None and _has_health_events(events, timeline):
            notes.append(f"instance {timeline.instance} restarted but never became healthy")
    if fault.restart_policy_applies is False:
        notes.append(MANUAL_STOP)
    return ": ".join(notes[:2]) + "".join(f"; {n}" for n in notes[2:])


def _has_health_events(events: pd.DataFrame, timeline: InstanceTimeline) -> bool:
    """Did a restarted instance ever report its health (does it have a health check)?"""
    if not timeline.restarted:
        return False
    mask = (events["instance"] == timeline.instance) & (events["action"] == "health_status")
    return bool(mask.any())


def window_counts(context: Context, t0_ns: int, recovered_ns: int | None) -> WindowCounts:
    """Requests and probes completed in [t0, recovered_at] (to the end if not recovered)."""
    end = np.iinfo(np.int64).max if recovered_ns is None else recovered_ns + 1
    requests, failed_requests = context.requests.count_between(t0_ns, end)
    probes, failed_probes = context.probes.count_between(t0_ns, end)
    return WindowCounts(requests, failed_requests, probes, failed_probes)


def instance_timeline(events: pd.DataFrame, instance: str, t0_ns: int) -> InstanceTimeline:
    """First die at/after t0 (1 ms tolerance), the start after it, the healthy after that."""
    own = events[(events["source"] == "engine") & (events["instance"] == instance)]
    die = _first_event(own, "die", t0_ns - DIE_TOLERANCE_NS, inclusive=True)
    start = None if die is None else _first_event(own, "start", die, inclusive=False)
    healthy = None if start is None else _first_healthy(own, start)
    return InstanceTimeline(instance, t0_ns, die, start, healthy)


def _first_event(frame: pd.DataFrame, action: str, after_ns: int, *, inclusive: bool) -> int | None:
    times = frame.loc[frame["action"] == action, "time_ns"]
    times = times[times >= after_ns] if inclusive else times[times > after_ns]
    return None if times.empty else int(times.iloc[0])


def _first_healthy(frame: pd.DataFrame, after_ns: int) -> int | None:
    health = frame[(frame["action"] == "health_status") & (frame["time_ns"] > after_ns)]
    for time_ns, attributes in _rows(health):
        if attributes.get("health") == "healthy":
            return time_ns
    return None
