"""Per-fault metrics: what each fault did to the observations it can affect.

Every fault is measured on its own observations (its `view`, harness.analysis.observations):
the requests sent to its target instances and the probes of them when the load names each
request's replica, else every request through the service address and the probes of its
targets. Each observation is placed by its completion, the instant its client saw the outcome.
For a fault whose action happened at `t0` (the fault marks it: the signal sent, the rule
inserted) and ended at `a` (its revert; `t0` for a one-off fault such as a kill):

- detection horizon: [t0, a + analysis.detection_horizon] (default 5 s), cut short at the
  injection of a later fault that shares its observations: a failure outside it is not this
  fault's impact (a kill that changed nothing must not take a later kill's failures);
- `impact`: `visible` when the failures of the view's requests or of its probes in the horizon
  exceed what the baseline rate allows there (harness.analysis.tolerance), `none` when they do
  not (ttd and ttr are then null: nothing to detect, nothing to recover from), `unmeasured`
  when no request or probe of the view completed in the horizon, or the baseline was broken;
- `detected_at`: the completion of the first failed request or probe of the view in the horizon;
- `recovered_at`: the completion of the first success of the view at or after `detected_at`
  (and at or after the revert, unless the orchestrator is expected to heal while the fault is
  on: a lost node's tasks are rescheduled before the node comes back) such that in
  (s, s + stable_for] the view's requests hold no more failures than the baseline rate of the
  view's requests allows, and likewise its probes; that window holds at least one observation
  and the run's data covers it. Never recovered: null, with the reason;
- `ttd_s`, `ttr_s`: from t0;
- the fault's window is [t0, end], end being `recovered_at`, the end of the horizon when there
  was no visible impact, or the end of the data when it never recovered. `availability`,
  `failed_requests`, `requests_in_window`: what every user saw in it (successful / all requests
  completed there, whatever their replica: comparable across targets); `view_counts`: the same
  over the fault's own view, with its probes;
- `overlapped_with`: the faults whose windows [t0, evidence end] intersect this one's (evidence
  end: recovered_at + stable_for, the horizon's end without visible impact, the end of the data
  when never recovered); `shared_observations_with`: those among them measured on the same
  observations, whose failures this fault's numbers may include;
- `orchestrator`: per target instance, engine `die` -> `start` -> `health_status: healthy`,
  each interval measured from its own start, never summed;
- `response`: what the orchestrator did about it (restarted the same unit in place, replaced
  it with a new task or pod, left it dead, nothing), from its events
  (harness.analysis.response).

The baseline rates (per view, requests and probes apart) come from the steady baseline
(harness.analysis.baseline).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

from harness.analysis.baseline import Baseline, Rates, baseline_window, judge, rates_in
from harness.analysis.cluster import ClusterView, cluster_view
from harness.analysis.data import RunData
from harness.analysis.observations import IntArray, RunObservations, Stream, View
from harness.analysis.response import Response, fault_response
from harness.analysis.timebase import LoadWindow, load_window
from harness.analysis.tolerance import Tolerance

__all__ = ["Context", "Fault", "FaultMetrics", "LoadWindow", "fault_metrics", "load_window"]

DIE_TOLERANCE_NS = 1_000_000  # an engine `die` may be stamped up to 1 ms before our t0
MANUAL_STOP = (
    "the engine's kill through the API is a manual stop, so the restart policy does not apply"
)
CHUNK = 1 << 16  # recovery candidates examined per vectorised step
Impact = Literal["visible", "none", "unmeasured"]


@dataclass(frozen=True)
class Fault:
    """One injected fault occurrence, from the harness's fault_inject / fault_revert events."""

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
    entry: str | None = None  # the scenario entry (f1) of a repeated fault's occurrence (f1#2)
    occurrence: int | None = None
    name: str | None = None
    has_duration: bool | None = None  # None: unknown (older runs), inferred from the revert
    apply_s: float | None = None
    active_s: float | None = None

    @property
    def lasts(self) -> bool:
        if self.has_duration is not None:
            return self.has_duration
        return self.reverted_at_ns is not None

    @property
    def action_end_ns(self) -> int:
        """When the fault's own action ended: its revert, or its injection for a one-off."""
        return self.reverted_at_ns if self.reverted_at_ns is not None else self.injected_at_ns


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
    """Requests and probes completed in a fault's window [t0, end]."""

    end_ns: int
    requests: int
    failed_requests: int
    probes: int
    failed_probes: int

    @property
    def availability(self) -> float | None:
        return 1.0 - self.failed_requests / self.requests if self.requests else None


@dataclass(frozen=True)
class Outcome:
    """Detection and recovery of one fault on its view."""

    impact: Impact
    horizon_end_ns: int
    detected_at_ns: int | None = None
    recovered_at_ns: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class FaultMetrics:
    """Everything measured about one fault occurrence."""

    fault: Fault
    view: View
    baseline: Rates
    outcome: Outcome
    window: WindowCounts
    users: WindowCounts
    evidence_end_ns: int
    orchestrator: tuple[InstanceTimeline, ...]
    cluster: ClusterView | None = None
    overlapped_with: tuple[str, ...] = ()
    shared_observations_with: tuple[str, ...] = ()
    phase_bounds: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    response: Response | None = None

    @property
    def impact(self) -> Impact:
        return self.outcome.impact

    @property
    def detected_at_ns(self) -> int | None:
        return self.outcome.detected_at_ns

    @property
    def recovered_at_ns(self) -> int | None:
        return self.outcome.recovered_at_ns

    @property
    def recovered(self) -> bool | None:
        """True/False for a fault with a visible impact; None when there was none to recover."""
        if self.impact != "visible":
            return None
        return self.recovered_at_ns is not None

    @property
    def ttd_s(self) -> float | None:
        return _interval_s(self.fault.injected_at_ns, self.detected_at_ns)

    @property
    def ttr_s(self) -> float | None:
        return _interval_s(self.fault.injected_at_ns, self.recovered_at_ns)

    @property
    def availability(self) -> float | None:
        """What every user saw in the fault's window: successful / all requests."""
        return self.users.availability

    def to_dict(self) -> dict[str, object]:
        fault = self.fault
        return {
            "id": fault.fault_id,
            "entry": fault.entry or fault.fault_id,
            "occurrence": fault.occurrence,
            "name": fault.name,
            "kind": fault.kind,
            "mode": fault.mode,
            "mechanism": fault.mechanism,
            "restart_policy_applies": fault.restart_policy_applies,
            "targets": list(fault.targets),
            "view": self.view.kind,
            "observed": self.view.description,
            "injected_at_ns": fault.injected_at_ns,
            "reverted_at_ns": fault.reverted_at_ns,
            "apply_s": fault.apply_s,
            "active_s": fault.active_s,
            "horizon_end_ns": self.outcome.horizon_end_ns,
            "impact": self.impact,
            "detected_at_ns": self.detected_at_ns,
            "recovered_at_ns": self.recovered_at_ns,
            "ttd_s": _round(self.ttd_s),
            "ttr_s": _round(self.ttr_s),
            "recovered": self.recovered,
            "reason": self.outcome.reason,
            "window_end_ns": self.window.end_ns,
            "failed_requests": self.users.failed_requests,
            "requests_in_window": self.users.requests,
            "availability": _round(self.users.availability, 6),
            "probes_failed": self.window.failed_probes,
            "probes_in_window": self.window.probes,
            "view_counts": {
                "requests": self.window.requests,
                "failed_requests": self.window.failed_requests,
                "availability": _round(self.window.availability, 6),
                "probes": self.window.probes,
                "failed_probes": self.window.failed_probes,
            },
            "baseline": self.baseline.to_dict(),
            "overlapped_with": list(self.overlapped_with),
            "shared_observations_with": list(self.shared_observations_with),
            "orchestrator": [timeline.to_dict() for timeline in self.orchestrator],
            "cluster": None if self.cluster is None else self.cluster.to_dict(),
            "response": None if self.response is None else self.response.to_dict(),
        }


@dataclass(frozen=True, eq=False)
class Context:
    """What every fault's computation shares."""

    observations: RunObservations
    load: LoadWindow
    baseline: Baseline
    stable_for_ns: int
    horizon_ns: int
    confidence: float
    target: str = "docker"

    @property
    def data_end_ns(self) -> int:
        end = self.observations.data_end_ns
        return self.load.end_ns if end is None else end

    @property
    def baseline_failure_rate(self) -> float:
        """The run's request failure rate in the steady baseline (0 without requests)."""
        return self.baseline.rates.request_rate or 0.0


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
    reverts: dict[str, tuple[int, Mapping[str, object]]] = {}
    for time_ns, attributes in _rows(harness[harness["action"] == "fault_revert"]):
        reverts.setdefault(str(attributes.get("fault_id")), (time_ns, attributes))
    faults: dict[str, Fault] = {}
    for time_ns, attributes in _rows(harness[harness["action"] == "fault_inject"]):
        fault_id = str(attributes.get("fault_id"))
        if fault_id not in faults:
            faults[fault_id] = _fault(fault_id, time_ns, attributes, reverts.get(fault_id))
    return tuple(sorted(faults.values(), key=lambda f: (f.injected_at_ns, f.fault_id)))


def _rows(frame: pd.DataFrame) -> list[tuple[int, Mapping[str, object]]]:
    return list(zip(frame["time_ns"].tolist(), frame["attributes"].tolist(), strict=True))


def _fault(
    fault_id: str,
    time_ns: int,
    attributes: Mapping[str, object],
    revert: tuple[int, Mapping[str, object]] | None,
) -> Fault:
    targets = attributes.get("targets") or []
    policy = attributes.get("restart_policy_applies")
    lasts = attributes.get("has_duration")
    occurrence = attributes.get("occurrence")
    return Fault(
        fault_id=fault_id,
        kind=str(attributes.get("kind") or "unknown"),
        mode=_opt_str(attributes.get("mode")),
        mechanism=_opt_str(attributes.get("mechanism")),
        restart_policy_applies=policy if isinstance(policy, bool) else None,
        targets=tuple(str(t) for t in targets) if isinstance(targets, list) else (),
        injected_at_ns=int(time_ns),
        reverted_at_ns=None if revert is None else int(revert[0]),
        heals_during_fault=attributes.get("heals_during_fault") is True,
        entry=_opt_str(attributes.get("entry")) or entry_of(fault_id),
        occurrence=occurrence if isinstance(occurrence, int) else occurrence_of(fault_id),
        name=_opt_str(attributes.get("name")),
        has_duration=lasts if isinstance(lasts, bool) else None,
        apply_s=_opt_float(attributes.get("apply_s")),
        active_s=None if revert is None else _opt_float(revert[1].get("active_s")),
    )


def entry_of(fault_id: str) -> str:
    """The scenario entry of an occurrence id: f1#2 -> f1 (f1.2 in runs before the #)."""
    for separator in ("#", "."):
        head, sep, tail = fault_id.partition(separator)
        if sep and tail.isdigit():
            return head
    return fault_id


def occurrence_of(fault_id: str) -> int | None:
    for separator in ("#", "."):
        _head, sep, tail = fault_id.partition(separator)
        if sep and tail.isdigit():
            return int(tail)
    return None


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def make_context(run: RunData, faults: tuple[Fault, ...]) -> Context:
    """The run's observations, its load window and its baseline."""
    load = load_window(run)
    spec = run.manifest.load
    # load sent through a balancer names its endpoint after it ("service"), not a replica
    endpoints = () if spec.routing == "service" else spec.endpoints
    instances = {*endpoints, *(t for f in faults for t in f.targets)}
    observations = RunObservations.of(run.requests, run.probes, instances)
    first = faults[0].injected_at_ns if faults else None
    window = baseline_window(load, first, run.manifest.warmup_s())
    rates = rates_in(observations.all_requests, observations.all_probes, window)
    settings = run.manifest.analysis
    baseline = judge(window, rates, settings.baseline_max_error_rate, run.requests)
    return Context(
        observations=observations,
        load=load,
        baseline=baseline,
        stable_for_ns=round(settings.stable_for_s * 1e9),
        horizon_ns=round(settings.detection_horizon_s * 1e9),
        confidence=settings.confidence,
        target=run.manifest.target,
    )


# -- per fault --------------------------------------------------------------------------------


def fault_metrics(run: RunData) -> tuple[tuple[FaultMetrics, ...], Context]:
    """Measure every fault of the run; also return the shared context (baseline, load)."""
    faults = extract_faults(run.events)
    context = make_context(run, faults)
    views = [context.observations.view(f.targets) for f in faults]
    measured = [
        replace(
            measure_fault(fault, view, context, run.events, _cutoff(i, faults, views)),
            response=fault_response(
                run.events, context.target, fault.targets, fault.injected_at_ns, _next_on(i, faults)
            ),
        )
        for i, (fault, view) in enumerate(zip(faults, views, strict=True))
    ]
    return tuple(_with_overlaps(measured)), context


def _next_on(index: int, faults: Sequence[Fault]) -> int | None:
    """The injection of the first later fault on any of this one's instances."""
    this = faults[index]
    later = [
        f.injected_at_ns
        for f in faults
        if f.injected_at_ns > this.injected_at_ns and set(f.targets) & set(this.targets)
    ]
    return min(later, default=None)


def _cutoff(index: int, faults: Sequence[Fault], views: Sequence[View]) -> int | None:
    """The injection of the first later fault that shares this one's observations."""
    t0 = faults[index].injected_at_ns
    later = [
        f.injected_at_ns
        for f, v in zip(faults, views, strict=True)
        if f.injected_at_ns > t0 and v.shares_with(views[index])
    ]
    return min(later, default=None)


def measure_fault(
    fault: Fault, view: View, context: Context, events: pd.DataFrame, cutoff_ns: int | None
) -> FaultMetrics:
    """Detection, recovery, window counts and orchestrator intervals of one fault."""
    t0 = fault.injected_at_ns
    timelines = tuple(instance_timeline(events, name, t0) for name in fault.targets)
    baseline = rates_in(view.requests, view.probes, context.baseline.window)
    outcome = _outcome(fault, view, baseline, context, cutoff_ns)
    if outcome.impact == "visible" and outcome.recovered_at_ns is None:
        outcome = replace(outcome, reason=_with_diagnosis(outcome, fault, timelines, events))
    window_end = _window_end(outcome, context)
    cluster = cluster_view(events, t0, fault.targets)
    metrics = FaultMetrics(
        fault=fault,
        view=view,
        baseline=baseline,
        outcome=outcome,
        window=_counts(view.requests, view.probes, t0, window_end),
        users=_counts(context.observations.all_requests, Stream.empty(), t0, window_end),
        evidence_end_ns=_evidence_end(fault, outcome, context),
        orchestrator=timelines,
        cluster=cluster,
    )
    return replace(metrics, phase_bounds=fault_phases(metrics, context.load))


def _outcome(
    fault: Fault, view: View, baseline: Rates, context: Context, cutoff_ns: int | None
) -> Outcome:
    t0 = fault.injected_at_ns
    horizon_end = fault.action_end_ns + context.horizon_ns
    if context.baseline.broken:
        return Outcome("unmeasured", horizon_end, reason="not measured: the baseline was broken")
    detect_end = horizon_end if cutoff_ns is None else min(horizon_end, cutoff_ns - 1)
    requests = view.requests.closed(t0, detect_end)
    probes = view.probes.closed(t0, detect_end)
    names = ", ".join(fault.targets) or "its targets"
    if requests[0] + probes[0] == 0:
        return Outcome(
            "unmeasured",
            detect_end,
            reason=f"no request or probe of {names} completed within the detection horizon: "
            "nothing to measure",
        )
    tolerance = _tolerances(baseline, context.confidence)
    allowed = (tolerance[0].one(requests[0]), tolerance[1].one(probes[0]))
    if requests[1] <= allowed[0] and probes[1] <= allowed[1]:
        return Outcome("none", detect_end, reason=_no_impact(fault, requests, probes, allowed))
    firsts = [s.first_failure(t0, detect_end) for s in (view.requests, view.probes)]
    detected = min(x for x in firsts if x is not None)
    earliest = detected if fault.heals_during_fault else max(detected, fault.action_end_ns)
    recovered, reason = recover(view, earliest, tolerance, context)
    return Outcome("visible", detect_end, detected, recovered, reason)


def _tolerances(baseline: Rates, confidence: float) -> tuple[Tolerance, Tolerance]:
    return (
        Tolerance(baseline.request_rate or 0.0, confidence),
        Tolerance(baseline.probe_rate or 0.0, confidence),
    )


def _no_impact(
    fault: Fault, requests: tuple[int, int], probes: tuple[int, int], allowed: tuple[int, int]
) -> str:
    since = "revert" if fault.lasts else "injection"
    seen = f"{requests[0]} requests and {probes[0]} probes of its view"
    horizon = f"within the detection horizon after its {since}"
    if requests[1] + probes[1] == 0:
        return f"no visible impact: none of {seen} failed {horizon}"
    return (
        f"no visible impact: {requests[1]} failed requests and {probes[1]} failed probes among "
        f"{seen} {horizon}, no more than the baseline "
        f"rate allows (up to {allowed[0]} and {allowed[1]})"
    )


def recover(
    view: View, earliest_ns: int, tolerance: tuple[Tolerance, Tolerance], context: Context
) -> tuple[int | None, str | None]:
    """(recovered_at, None) or (None, reason) — see the module docstring."""
    stable, data_end = context.stable_for_ns, context.data_end_ns
    pending: int | None = None
    for chunk in candidate_chunks(view, earliest_ns):
        calm, observed = _calm(view, chunk, stable, tolerance)
        covered = chunk + stable <= data_end
        accepted = np.flatnonzero(calm & covered & observed)
        if accepted.size:
            return int(chunk[accepted[0]]), None
        waiting = np.flatnonzero(calm & ~covered)
        if pending is None and waiting.size:
            pending = int(chunk[waiting[0]])
    if pending is not None:
        since = context.load.seconds(pending)
        return None, (
            f"run ended before {stable / 1e9:g} s of stability "
            f"(after the success at +{since:.1f} s)"
        )
    return None, _still_failing(view, context.load)


def candidate_chunks(view: View, earliest_ns: int) -> Iterator[IntArray]:
    """The successes of the view's requests and probes from `earliest_ns` on, merged in time
    order, CHUNK requests at a time: recovery usually comes within the first chunk, so the
    cost does not grow with the length of the run after it."""
    requests, probes = view.requests, view.probes
    r_pos, p_pos = requests.index(earliest_ns, after=False), probes.index(earliest_ns, after=False)
    while r_pos < len(requests) or p_pos < len(probes):
        if r_pos < len(requests):
            r_end = min(r_pos + CHUNK, len(requests))
            last = int(requests.end_ns[r_end - 1]) if r_end < len(requests) else None
            p_end = len(probes) if last is None else probes.index(last, after=True)
        else:
            r_end, p_end = r_pos, min(p_pos + CHUNK, len(probes))
        p_end = max(p_end, p_pos)
        yield np.union1d(
            requests.successes_between(r_pos, r_end), probes.successes_between(p_pos, p_end)
        )
        r_pos, p_pos = r_end, p_end


def _calm(
    view: View, starts: IntArray, stable_ns: int, tolerance: tuple[Tolerance, Tolerance]
) -> tuple[np.ndarray, np.ndarray]:
    """Per start s: (the view is at its baseline rates in (s, s + stable], it holds any)."""
    n_requests, f_requests = view.requests.windows_after(starts, stable_ns)
    n_probes, f_probes = view.probes.windows_after(starts, stable_ns)
    calm = (f_requests <= tolerance[0](n_requests)) & (f_probes <= tolerance[1](n_probes))
    return calm, (n_requests + n_probes) > 0


def _still_failing(view: View, load: LoadWindow) -> str:
    lasts = [x for x in (view.requests.last_failure(), view.probes.last_failure()) if x]
    last = load.seconds(max(lasts)) if lasts else 0.0
    return f"failures continued until the end of the run (last failure at +{last:.1f} s)"


def _with_diagnosis(
    outcome: Outcome, fault: Fault, timelines: tuple[InstanceTimeline, ...], events: pd.DataFrame
) -> str:
    notes = [str(outcome.reason)]
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


def _window_end(outcome: Outcome, context: Context) -> int:
    """End of the window availability is taken over (module docstring)."""
    if outcome.impact != "visible":
        return outcome.horizon_end_ns
    if outcome.recovered_at_ns is not None:
        return outcome.recovered_at_ns
    return max(context.data_end_ns, context.load.end_ns)


def _evidence_end(fault: Fault, outcome: Outcome, context: Context) -> int:
    """The last instant this fault's numbers depend on (for overlaps)."""
    if outcome.impact != "visible":
        end = fault.action_end_ns + context.horizon_ns
    elif outcome.recovered_at_ns is not None:
        end = outcome.recovered_at_ns + context.stable_for_ns
    else:
        end = max(context.data_end_ns, context.load.end_ns)
    return max(end, fault.action_end_ns)


def _counts(requests: Stream, probes: Stream, t0_ns: int, end_ns: int) -> WindowCounts:
    n_requests, f_requests = requests.closed(t0_ns, end_ns)
    n_probes, f_probes = probes.closed(t0_ns, end_ns)
    return WindowCounts(end_ns, n_requests, f_requests, n_probes, f_probes)


def _with_overlaps(measured: Sequence[FaultMetrics]) -> list[FaultMetrics]:
    """Mark every pair of faults whose windows intersect (and those sharing observations)."""
    result = []
    for this in measured:
        others = [
            other
            for other in measured
            if other is not this
            and other.fault.injected_at_ns <= this.evidence_end_ns
            and this.fault.injected_at_ns <= other.evidence_end_ns
        ]
        shared = [o for o in others if o.view.shares_with(this.view)]
        result.append(
            replace(
                this,
                overlapped_with=tuple(o.fault.fault_id for o in others),
                shared_observations_with=tuple(o.fault.fault_id for o in shared),
            )
        )
    return result


def fault_phases(metrics: FaultMetrics, load: LoadWindow) -> dict[str, tuple[int, int]]:
    """This occurrence's `fault` and `recovery` intervals, clipped to the load window.

    fault: from t0 to the end of the fault's active part: its revert for a fault with a
    duration; for a one-off fault the orchestrator's repair (the latest restart of its targets,
    or a replacement task running) when the engine reported one, else users' recovery (the
    end of the data when it never recovered; t0 when it had no visible impact).
    recovery: from there to users' recovery (the end of the data when never recovered)."""
    fault, outcome = metrics.fault, metrics.outcome
    t0 = fault.injected_at_ns
    visible = outcome.impact == "visible"
    recovered = outcome.recovered_at_ns
    users_end = recovered if recovered is not None else load.end_ns
    if fault.lasts:
        active = fault.reverted_at_ns if fault.reverted_at_ns is not None else load.end_ns
    else:
        repaired = _repaired_at(metrics)
        active = repaired if repaired is not None else (users_end if visible else t0)
    recovery_end = users_end if visible else active
    start, active = load.clip(t0), load.clip(max(active, t0))
    return {"fault": (start, active), "recovery": (active, max(active, load.clip(recovery_end)))}


def _repaired_at(metrics: FaultMetrics) -> int | None:
    starts = [t.start_at_ns for t in metrics.orchestrator if t.start_at_ns is not None]
    if starts and len(starts) == len([t for t in metrics.orchestrator if t.die_at_ns]):
        return max(starts)
    if metrics.cluster is not None and metrics.cluster.replacement_running_at_ns is not None:
        return metrics.cluster.replacement_running_at_ns
    return None


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
