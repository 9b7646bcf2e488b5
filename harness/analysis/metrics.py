"""Per-fault metrics: what each fault did to the observations it can affect.

Every fault is measured on its own observations (its `view`, harness.analysis.observations),
each placed by its completion. From the fault's action `t0`: whether its impact was visible
(failures beyond the baseline rate, or answers slower than the baseline's:
harness.analysis.latency_impact), when it was detected and recovered (evidence SENT after a
candidate recovery, so an outage's hanging requests do not count against it), whether the data
ended first (censored), and what every user saw in a fixed comparison window that a later
recovery cannot lengthen. Also the faults it overlapped, the orchestrator's intervals and
response. The baseline rates come from harness.analysis.baseline.

Each rule, with the cases that shaped it: docs/METRICS.md, "Per fault".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

from harness.analysis.baseline import (
    Baseline,
    BaselineWindow,
    Rates,
    baseline_window,
    judge,
    rates_in,
)
from harness.analysis.cluster import ClusterView, cluster_view
from harness.analysis.data import RunData
from harness.analysis.latency_impact import STATISTIC, WINDOW_NS, LatencyOutcome, Span
from harness.analysis.latency_impact import latency_outcome as judge_latency
from harness.analysis.observations import (
    IntArray,
    RunObservations,
    Stream,
    View,
    instance_hostnames,
)
from harness.analysis.response import (
    Response,
    ServedInstance,
    fault_response,
    served_through_service,
)
from harness.analysis.timebase import (
    ComparisonWindow,
    LoadWindow,
    comparison_window,
    load_window,
)
from harness.analysis.tolerance import Tolerance
from harness.results.manifest import DEFAULT_WINDOW_S
from harness.results.summary import (
    FaultSummary,
    FaultWindow,
    LatencyImpact,
    OrchestratorTimeline,
    Served,
    ViewCounts,
)
from harness.results.summary import Response as ResponseRecord

__all__ = ["Context", "Fault", "FaultMetrics", "LoadWindow", "fault_metrics", "load_window"]

DIE_TOLERANCE_NS = 1_000_000  # an engine `die` may be stamped up to 1 ms before our t0
MANUAL_STOP = (
    "the engine's kill through the API is a manual stop, so the restart policy does not apply"
)
CHUNK = 1 << 16  # recovery candidates examined per vectorised step
SCAN_NS = 1_000_000_000  # the short windows the detection scan looks through
# A stability window must hold this many observations, and a kind of observation with failures
# in it this many of that kind: 2 failures of 6 requests are "at" a 5 % baseline by the
# binomial quantile, yet 6 observations cannot tell 5 % from 33 %.
MIN_STABLE_OBSERVATIONS = 10
Impact = Literal["visible", "none", "unmeasured"]
ImpactKind = Literal["errors", "latency", "both"]


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
    planned_s: float | None = None  # the scenario's duration, when the event carries it

    @property
    def lasts(self) -> bool:
        if self.has_duration is not None:
            return self.has_duration
        return self.reverted_at_ns is not None

    @property
    def action_end_ns(self) -> int:
        """When the fault's own action ended: its revert, or its injection for a one-off."""
        return self.reverted_at_ns if self.reverted_at_ns is not None else self.injected_at_ns

    @property
    def duration_s(self) -> float:
        """How long the fault is on: planned, else measured (injection to revert), 0 one-off."""
        if not self.lasts:
            return 0.0
        if self.planned_s is not None:
            return self.planned_s
        return (self.action_end_ns - self.injected_at_ns) / 1e9


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

    def record(self) -> OrchestratorTimeline:
        """As summary.json writes it."""
        return OrchestratorTimeline(
            instance=self.instance,
            die_at_ns=self.die_at_ns,
            start_at_ns=self.start_at_ns,
            healthy_at_ns=self.healthy_at_ns,
            kill_to_die_s=_round(self.kill_to_die_s),
            die_to_start_s=_round(self.die_to_start_s),
            start_to_healthy_s=_round(self.start_to_healthy_s),
            restarted=self.restarted,
        )


@dataclass(frozen=True)
class WindowCounts:
    """Requests and probes completed in a fault's comparison window [start, end)."""

    end_ns: int
    requests: int
    failed_requests: int
    probes: int
    failed_probes: int

    @property
    def availability(self) -> float | None:
        return 1.0 - self.failed_requests / self.requests if self.requests else None

    @property
    def successful_requests(self) -> int:
        return self.requests - self.failed_requests


@dataclass(frozen=True)
class Outcome:
    """Detection and recovery of one fault on its view."""

    impact: Impact
    horizon_end_ns: int
    detected_at_ns: int | None = None
    recovered_at_ns: int | None = None
    reason: str | None = None
    # the data ended while the view was calm after this success, before stable_for: the
    # recovery is at this instant or later, unknown after (censored)
    censored_from_ns: int | None = None
    impact_kind: ImpactKind | None = None
    latency: LatencyOutcome | None = None
    # a service view judged on users' requests alone: when its targets' probes were back
    target_recovered_at_ns: int | None = None


@dataclass(frozen=True)
class FaultMetrics:
    """Everything measured about one fault occurrence."""

    fault: Fault
    view: View
    baseline: Rates
    outcome: Outcome
    window: WindowCounts
    users: WindowCounts
    comparison: ComparisonWindow
    intended_requests: float | None
    evidence_end_ns: int
    orchestrator: tuple[InstanceTimeline, ...]
    cluster: ClusterView | None = None
    overlapped_with: tuple[str, ...] = ()
    shared_observations_with: tuple[str, ...] = ()
    phase_bounds: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    response: Response | None = None
    served: tuple[ServedInstance, ...] | None = None  # who served users, by the header

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
    def censored(self) -> bool:
        return self.impact == "visible" and self.outcome.censored_from_ns is not None

    @property
    def recovered(self) -> bool | None:
        """True/False for a fault with a visible impact; None when there was none to recover
        or when the data ended before its recovery could be shown (censored)."""
        if self.impact != "visible" or self.censored:
            return None
        return self.recovered_at_ns is not None

    @property
    def ttr_at_least_s(self) -> float | None:
        """Censored: the recovery came this long after t0 or later."""
        if not self.censored:
            return None
        return _interval_s(self.fault.injected_at_ns, self.outcome.censored_from_ns)

    @property
    def lost_requests(self) -> int | None:
        """Intended minus successful requests in the comparison window (never below 0)."""
        if self.intended_requests is None:
            return None
        return max(0, round(self.intended_requests) - self.users.successful_requests)

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

    def record(self) -> FaultSummary:
        """As summary.json writes it, without what the analysis adds around it (the
        occurrence's phases, Kubernetes' Events, the timers' predictions)."""
        fault = self.fault
        return FaultSummary(
            id=fault.fault_id,
            entry=fault.entry or fault.fault_id,
            occurrence=fault.occurrence,
            name=fault.name,
            kind=fault.kind,
            mode=fault.mode,
            mechanism=fault.mechanism,
            restart_policy_applies=fault.restart_policy_applies,
            targets=list(fault.targets),
            view=self.view.kind,
            observed=self.view.description,
            injected_at_ns=fault.injected_at_ns,
            reverted_at_ns=fault.reverted_at_ns,
            apply_s=fault.apply_s,
            active_s=fault.active_s,
            horizon_end_ns=self.outcome.horizon_end_ns,
            impact=self.impact,
            impact_kind=self.outcome.impact_kind,
            latency_impact=self._latency_record(),
            detected_at_ns=self.detected_at_ns,
            recovered_at_ns=self.recovered_at_ns,
            ttd_s=_round(self.ttd_s),
            ttr_s=_round(self.ttr_s),
            recovered=self.recovered,
            censored=self.censored,
            ttr_at_least_s=_round(self.ttr_at_least_s),
            reason=self.outcome.reason,
            window=self._window_record(),
            window_end_ns=self.window.end_ns,
            failed_requests=self.users.failed_requests,
            requests_in_window=self.users.requests,
            availability=_round(self.users.availability, 6),
            probes_failed=self.window.failed_probes,
            probes_in_window=self.window.probes,
            view_counts=ViewCounts(
                requests=self.window.requests,
                failed_requests=self.window.failed_requests,
                availability=_round(self.window.availability, 6),
                probes=self.window.probes,
                failed_probes=self.window.failed_probes,
            ),
            baseline=self.baseline.record(),
            overlapped_with=list(self.overlapped_with),
            shared_observations_with=list(self.shared_observations_with),
            orchestrator=[timeline.record() for timeline in self.orchestrator],
            cluster=None if self.cluster is None else self.cluster.record(),
            response=None
            if self.response is None
            else ResponseRecord.model_validate(self.response.to_dict()),
            served=None
            if self.served is None
            else [Served.model_validate(s.to_dict()) for s in self.served],
            target_recovered_at_ns=self.outcome.target_recovered_at_ns,
            target_ttr_s=_round(
                _interval_s(fault.injected_at_ns, self.outcome.target_recovered_at_ns)
            ),
        )

    def _latency_record(self) -> LatencyImpact | None:
        latency, t0 = self.outcome.latency, self.fault.injected_at_ns
        if latency is None:
            return None
        limits = {x.kind: x.record() for x in latency.limits}
        return LatencyImpact(
            statistic=STATISTIC,
            window_s=WINDOW_NS / 1e9,
            limits={kind: limits.get(kind) for kind in ("requests", "probes")},
            visible=latency.visible,
            detected_at_ns=latency.detected_at_ns,
            recovered_at_ns=latency.recovered_at_ns,
            censored_from_ns=latency.censored_from_ns,
            ttd_s=_round(_interval_s(t0, latency.detected_at_ns)),
            ttr_s=_round(_interval_s(t0, latency.recovered_at_ns)),
            reason=latency.reason,
        )

    def _window_record(self) -> FaultWindow:
        window, users = self.comparison, self.users
        intended = self.intended_requests
        return FaultWindow(
            start_ns=window.start_ns,
            end_ns=window.end_ns,
            duration_s=round(window.duration_s, 3),
            cut_by=window.cut_by,
            cut_by_data_end=window.cut_by_data_end,
            requests=users.requests,
            failed_requests=users.failed_requests,
            successful_requests=users.successful_requests,
            availability=_round(users.availability, 6),
            intended_requests=None if intended is None else round(intended, 1),
            lost_requests=self.lost_requests,
        )


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
    window_s: float = DEFAULT_WINDOW_S
    intended_rps: float | None = None  # open loop: load.rate; closed: the baseline's sending

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
        planned_s=_opt_float(attributes.get("planned_duration_s")),
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
    hostnames = instance_hostnames(run.events, instances)
    observations = RunObservations.of(run.requests, run.probes, instances, hostnames)
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
        window_s=settings.window_s,
        intended_rps=_intended_rps(run, window),
    )


def _intended_rps(run: RunData, window: BaselineWindow) -> float | None:
    """The open loop's rate, else the requests the closed loop sent per second in the
    steady baseline (None without one)."""
    if run.manifest.load.rate_per_s is not None:
        return run.manifest.load.rate_per_s
    if window.includes_ramp_up or window.duration_s <= 0:
        return None
    starts = run.requests["start_ns"]
    sent = int(((starts >= window.start_ns) & (starts < window.end_ns)).sum())
    return sent / window.duration_s


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


def _cutoff(index: int, faults: Sequence[Fault], views: Sequence[View]) -> tuple[str, int] | None:
    """The first later fault that shares this one's observations, and its injection."""
    t0 = faults[index].injected_at_ns
    later = [
        (f.injected_at_ns, f.fault_id)
        for f, v in zip(faults, views, strict=True)
        if f.injected_at_ns > t0 and v.shares_with(views[index])
    ]
    first = min(later, default=None)
    return None if first is None else (first[1], first[0])


def measure_fault(
    fault: Fault,
    view: View,
    context: Context,
    events: pd.DataFrame,
    cut: tuple[str, int] | None,
) -> FaultMetrics:
    """Detection, recovery, window counts and orchestrator intervals of one fault."""
    t0 = fault.injected_at_ns
    timelines = tuple(instance_timeline(events, name, t0) for name in fault.targets)
    baseline = rates_in(view.requests, view.probes, context.baseline.window)
    outcome = _outcome(fault, view, baseline, context, None if cut is None else cut[1])
    unrecovered = outcome.recovered_at_ns is None and outcome.censored_from_ns is None
    if outcome.impact == "visible" and unrecovered:
        outcome = replace(outcome, reason=_with_diagnosis(outcome, fault, timelines, events))
    window = comparison_window(t0, fault.duration_s, context.window_s, cut, context.data_end_ns)
    cluster = cluster_view(events, t0, fault.targets)
    users = _counts(context.observations.all_requests, Stream.empty(), window)
    outage_from = outcome.detected_at_ns or t0
    served = served_through_service(
        context.observations, fault.targets, t0, outage_from, window.end_ns
    )
    metrics = FaultMetrics(
        fault=fault,
        view=view,
        baseline=baseline,
        outcome=outcome,
        window=_counts(view.requests, view.probes, window),
        users=users,
        comparison=window,
        intended_requests=_intended(context, window),
        evidence_end_ns=_evidence_end(fault, outcome, context),
        orchestrator=timelines,
        cluster=cluster,
        served=served,
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
    diffuse = requests[1] > allowed[0] or probes[1] > allowed[1]
    detected = _detect(view, t0, detect_end, tolerance, diffuse)
    latency = _latency(fault, view, context, detect_end)
    if detected is None and not latency.visible:
        reason = _no_impact(fault, requests, probes, allowed)
        return Outcome("none", detect_end, reason=reason, latency=latency)
    errors = None
    if detected is not None:
        earliest = detected if fault.heals_during_fault else max(detected, fault.action_end_ns)
        errors = _recover_errors(view, baseline, earliest, tolerance, context, t0)
        errors = replace(errors, horizon_end_ns=detect_end, detected_at_ns=detected)
    return _combined(errors, latency, detect_end)


def _latency(fault: Fault, view: View, context: Context, detect_end_ns: int) -> LatencyOutcome:
    window = context.baseline.window
    span = Span(
        t0_ns=fault.injected_at_ns,
        detect_end_ns=detect_end_ns,
        data_end_ns=context.data_end_ns,
        stable_ns=context.stable_for_ns,
        heals_during_fault=fault.heals_during_fault,
        action_end_ns=fault.action_end_ns,
    )
    return judge_latency(view, (window.start_ns, window.end_ns), span, broken=False)


def _combined(errors: Outcome | None, latency: LatencyOutcome, horizon_end_ns: int) -> Outcome:
    """One visible outcome from the errors' and the latency's: detection the earlier,
    recovery the later (both must have recovered), censored when one is and neither failed
    to recover."""
    if not latency.visible:
        assert errors is not None  # the caller returns `none` when neither is visible
        return replace(errors, impact_kind="errors", latency=latency)
    from_latency = Outcome(
        "visible",
        horizon_end_ns,
        detected_at_ns=latency.detected_at_ns,
        recovered_at_ns=latency.recovered_at_ns,
        reason=None if latency.reason is None else f"latency: {latency.reason}",
        censored_from_ns=latency.censored_from_ns,
    )
    if errors is None:
        return replace(from_latency, impact_kind="latency", latency=latency)
    parts = (errors, from_latency)
    detected = min(int(p.detected_at_ns or 0) for p in parts)
    ends = [p.recovered_at_ns or p.censored_from_ns for p in parts]
    unrecovered = [p for p, end in zip(parts, ends, strict=True) if end is None]
    both = replace(errors, detected_at_ns=detected, impact_kind="both", latency=latency)
    if unrecovered:
        return replace(
            both, recovered_at_ns=None, censored_from_ns=None, reason=unrecovered[0].reason
        )
    last = max(int(end or 0) for end in ends)
    if any(p.censored_from_ns is not None for p in parts):
        reason = next(p.reason for p in parts if p.censored_from_ns is not None)
        return replace(both, recovered_at_ns=None, censored_from_ns=last, reason=reason)
    return replace(both, recovered_at_ns=last, censored_from_ns=None, reason=None)


def _detect(
    view: View,
    t0_ns: int,
    end_ns: int,
    tolerance: tuple[Tolerance, Tolerance],
    diffuse: bool,
) -> int | None:
    """The detection instant: the start of the first cluster of either kind; when only the
    whole horizon exceeds the tolerance (`diffuse`: thinly spread, no short window stands
    out), its first failure; None without visible impact."""
    streams = (view.requests, view.probes)
    clusters = [first_cluster(s, t0_ns, end_ns, t) for s, t in zip(streams, tolerance, strict=True)]
    found = [x for x in clusters if x is not None]
    if found:
        return min(found)
    if not diffuse:
        return None
    firsts = [s.first_failure(t0_ns, end_ns) for s in streams]
    return min(x for x in firsts if x is not None)


def first_cluster(stream: Stream, lo_ns: int, hi_ns: int, tolerance: Tolerance) -> int | None:
    """The first failure in [lo, hi] that opens a cluster: the observations completed in
    [it, it + SCAN_NS] (within hi) hold more failures than the baseline rate allows. A lone
    background failure does not open one (when the baseline has failures); a 150 ms outage
    that the whole horizon dilutes does."""
    lo, hi = stream.index(lo_ns, after=False), stream.index(hi_ns, after=True)
    anchors = stream.end_ns[lo:hi][~stream.ok[lo:hi]]
    if anchors.size == 0:
        return None
    ends = np.minimum(anchors + SCAN_NS, hi_ns)
    first = np.searchsorted(stream.end_ns, anchors, side="left")
    last = np.searchsorted(stream.end_ns, ends, side="right")
    failed = stream.cum_failed[last] - stream.cum_failed[first]
    exceeding = np.flatnonzero(failed > tolerance(last - first))
    return None if exceeding.size == 0 else int(anchors[exceeding[0]])


def _tolerances(baseline: Rates, confidence: float) -> tuple[Tolerance, Tolerance]:
    return (
        Tolerance(baseline.tolerance_request_rate, confidence),
        Tolerance(baseline.tolerance_probe_rate, confidence),
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


def _recover_errors(
    view: View,
    baseline: Rates,
    earliest_ns: int,
    tolerance: tuple[Tolerance, Tolerance],
    context: Context,
    t0_ns: int,
) -> Outcome:
    """Recovery on what users saw. A service view is judged on its requests alone when they
    are dense enough to fill a stability window (its targets' probes then give
    `target_recovered_at_ns`); otherwise, and for an instance view, on requests and probes."""
    if view.kind != "service" or not _dense_enough(baseline.requests, context):
        return recover(view, earliest_ns, tolerance, context, t0_ns)
    users = recover(view.users(), earliest_ns, tolerance, context, t0_ns)
    target = recover(view.targets_only(), earliest_ns, tolerance, context, t0_ns)
    return replace(users, target_recovered_at_ns=target.recovered_at_ns)


def _dense_enough(baseline_requests: int, context: Context) -> bool:
    """At least twice MIN_STABLE_OBSERVATIONS requests per stability window in the baseline."""
    span_s = context.baseline.window.duration_s
    if span_s <= 0:
        return False
    per_window = baseline_requests * context.stable_for_ns / 1e9 / span_s
    return per_window >= 2 * MIN_STABLE_OBSERVATIONS


def recover(
    view: View,
    earliest_ns: int,
    tolerance: tuple[Tolerance, Tolerance],
    context: Context,
    t0_ns: int,
) -> Outcome:
    """The visible outcome from `earliest_ns`: recovered, censored or not recovered (with the
    reason) — see the module docstring."""
    stable, data_end = context.stable_for_ns, context.data_end_ns
    visible = Outcome("visible", 0)  # the caller sets the horizon and detection
    # censored only when the data ends with the view calm: no failure completed after the
    # candidate (a timeout sent before it but still coming in is the outage going on)
    lasts = [x for x in (view.requests.last_failure(), view.probes.last_failure()) if x]
    last_failure = max(lasts, default=earliest_ns - 1)
    pending: int | None = None
    thin = False
    for chunk in candidate_chunks(view, earliest_ns):
        calm, observed = _calm(view, chunk, stable, tolerance)
        covered = chunk + stable <= data_end
        accepted = np.flatnonzero(calm & covered & observed)
        if accepted.size:
            return replace(visible, recovered_at_ns=int(chunk[accepted[0]]))
        thin = thin or bool(np.any(calm & covered & ~observed))
        waiting = np.flatnonzero(calm & ~covered & (chunk > last_failure))
        if pending is None and waiting.size:
            pending = int(chunk[waiting[0]])
    if pending is not None:
        reason = _censored(pending, t0_ns, context)
        return replace(visible, censored_from_ns=pending, reason=reason)
    reason = _still_failing(view, context.load)
    if thin:
        reason += (
            f"; stability windows with fewer than {MIN_STABLE_OBSERVATIONS} observations "
            "cannot show the baseline rate (raise analysis.stable_for or the load)"
        )
    return replace(visible, reason=reason)


def _censored(pending_ns: int, t0_ns: int, context: Context) -> str:
    since = context.load.seconds(pending_ns)
    return (
        f"censored: the run ended before {context.stable_for_ns / 1e9:g} s of stability "
        f"(after the success at +{since:.1f} s): recovered in at least "
        f"{(pending_ns - t0_ns) / 1e9:.3f} s, unknown after"
    )


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
    """Per candidate s, over the observations sent in [s, s + stable], whatever their
    completion (one sent before s is evidence of the outage, not against s; one sent in it
    that times out later is against it): (each kind at its baseline rate, with at least
    MIN_STABLE_OBSERVATIONS of a kind that failed; the window holds at least
    MIN_STABLE_OBSERVATIONS)."""
    n_requests, f_requests = view.requests.windows_sent_from(starts, stable_ns)
    n_probes, f_probes = view.probes.windows_sent_from(starts, stable_ns)
    calm = _at_baseline(n_requests, f_requests, tolerance[0])
    calm &= _at_baseline(n_probes, f_probes, tolerance[1])
    return calm, (n_requests + n_probes) >= MIN_STABLE_OBSERVATIONS


def _at_baseline(counts: IntArray, failed: IntArray, tolerance: Tolerance) -> np.ndarray:
    enough = (failed == 0) | (counts >= MIN_STABLE_OBSERVATIONS)
    result: np.ndarray = (failed <= tolerance(counts)) & enough
    return result


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


def _intended(context: Context, window: ComparisonWindow) -> float | None:
    rate = context.intended_rps
    return None if rate is None else rate * window.duration_s


def _evidence_end(fault: Fault, outcome: Outcome, context: Context) -> int:
    """The last instant this fault's numbers depend on (for overlaps)."""
    if outcome.impact != "visible":
        end = fault.action_end_ns + context.horizon_ns
    elif outcome.recovered_at_ns is not None:
        end = outcome.recovered_at_ns + context.stable_for_ns
    else:
        end = max(context.data_end_ns, context.load.end_ns)
    return max(end, fault.action_end_ns)


def _counts(requests: Stream, probes: Stream, window: ComparisonWindow) -> WindowCounts:
    n_requests, f_requests = requests.half_open(window.start_ns, window.end_ns)
    n_probes, f_probes = probes.half_open(window.start_ns, window.end_ns)
    return WindowCounts(window.end_ns, n_requests, f_requests, n_probes, f_probes)


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
