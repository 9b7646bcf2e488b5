"""summary.json: what the analysis measured in one run, one model per block (each block's
docstring says what its fields mean; `harness schema --summary` publishes them).

Version 1 added `schema_version`; version 0 (no `schema_version`) is every summary written
before, read with its statuses in today's words and the blocks it lacks empty. Names and
order are the file's: a field added by a newer writer is kept (see `Record`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from pydantic import Field

from harness.results import normalized_status, write_text_atomic
from harness.results.records import (
    Number,
    Record,
    absent,
    dump_json,
    parse_versioned,
    read_versioned,
)

SUMMARY_VERSION: Final = 1
SUMMARY_FILE: Final = "summary.json"
PASSED_STATUSES: Final = ("passed", "slo_violated")  # the run measured something


class WorkerLoad(Record):
    """One Locust worker's share of the load: its requests and failures, the requests it
    started per second over the load's span, and (open loop) the rate it was given."""

    name: str
    requests: int = 0
    failed: int = 0
    sent_per_s: Number | None = None
    intended_per_s: Number | None = None


class SummaryLoad(Record):
    """The load: `mode` closed | open (`rate_per_s`: the open loop's), `host` (Locust's
    --host), `routing` per_instance (the load named each request's replica) | service (through
    a shared address), the load's own start, end and duration; `per_worker` with more than one
    named worker (distributed load)."""

    users: int | None = None
    spawn_rate: Number | None = None
    workers: int | None = None
    mode: str = "closed"
    rate_per_s: Number | None = None
    host: str | None = None
    routing: str | None = None  # per_instance | service
    endpoints: list[str] = Field(default_factory=list)
    load_balancing: str | None = None
    started_at_ns: int | None = None
    ended_at_ns: int | None = None
    duration_s: Number | None = None
    per_worker: list[WorkerLoad] | None = Field(default=None, exclude_if=absent)


class SummaryAnalysis(Record):
    """The analysis settings in force; `baseline_failure_rate`: requests, steady baseline;
    `window_s`: each fault's comparison window after its duration."""

    stable_for_s: Number | None = None
    detection_horizon_s: Number | None = None
    warmup_s: Number | None = None
    confidence: Number | None = None
    baseline_max_error_rate: Number | None = None
    baseline_failure_rate: Number | None = None
    window_s: Number | None = None


class BaselineCounts(Record):
    """A view's steady-baseline counts and the trimmed rates its windows are judged against."""

    requests: int = 0
    failed_requests: int = 0
    error_rate: Number | None = None
    tolerance_error_rate: Number | None = None
    probes: int = 0
    failed_probes: int = 0
    probe_error_rate: Number | None = None
    tolerance_probe_error_rate: Number | None = None


class SummaryBaseline(Record):
    """The steady baseline: its window, counts and verdict."""

    start_ns: int | None = None
    end_ns: int | None = None
    duration_s: Number | None = None
    warmup_s: Number | None = None
    includes_ramp_up: bool = False
    requests: int = 0
    failed_requests: int = 0
    error_rate: Number | None = None
    tolerance_error_rate: Number | None = None
    probes: int = 0
    failed_probes: int = 0
    probe_error_rate: Number | None = None
    tolerance_probe_error_rate: Number | None = None
    max_error_rate: Number | None = None
    broken: bool = False
    reason: str | None = None


class RequestCounts(Record):
    """Requests completed, failed, their error rate and throughput (an endpoint's, or all)."""

    requests: int = 0
    failures: int = 0
    error_rate: Number | None = None
    throughput_rps: Number | None = None


class Totals(RequestCounts):
    """Every request (throughput over the load window) and every probe."""

    probes: int = 0
    probe_failures: int = 0


class Latency(Record):
    """Percentiles (ms) over the successful requests that started in the phase, failed ones
    counted apart; a percentile is null below 1 / (1 - q) values (`null_reasons` says why)."""

    p50: Number | None = None
    p95: Number | None = None
    p99: Number | None = None
    max: Number | None = None
    successful: int = 0
    failed: int = 0
    null_reasons: dict[str, str] = Field(default_factory=dict)


class PhaseSummary(Record):
    """A phase's (or a fault's own phase's) intervals (first and last instant, null when
    empty), the requests completed in it, latency over those that started in it (null if none
    did), and the intended against the achieved sending rate (`shortfall`: the share lost)."""

    start_ns: int | None = None
    end_ns: int | None = None
    intervals: list[list[int]] = Field(default_factory=list)
    duration_s: Number = 0.0
    requests: int = 0
    failures: int = 0
    error_rate: Number | None = None
    throughput_rps: Number | None = None
    latency_ms: Latency | None = None
    intended_rps: Number | None = None
    achieved_rps: Number | None = None
    shortfall: Number | None = None


class LatencyLimit(Record):
    baseline_median_ms: Number
    limit_ms: Number
    baseline_windows: int


class LatencyImpact(Record):
    """The latency rule (harness.analysis.latency_impact): per kind its baseline windows'
    median and limit, and when the view's answers were slower than the limit, its own
    detection and recovery."""

    statistic: str = ""
    window_s: Number | None = None
    limits: dict[str, LatencyLimit | None] = Field(default_factory=dict)
    visible: bool = False
    detected_at_ns: int | None = None
    recovered_at_ns: int | None = None
    censored_from_ns: int | None = None
    ttd_s: Number | None = None
    ttr_s: Number | None = None
    reason: str | None = None


class FaultWindow(Record):
    """The fault's comparison window (harness.analysis.metrics), cut by the next fault or the
    data's end, and every user's requests completed in it."""

    start_ns: int | None = None
    end_ns: int | None = None
    duration_s: Number | None = None
    cut_by: str | None = None
    cut_by_data_end: bool = False
    requests: int = 0
    failed_requests: int = 0
    successful_requests: int = 0
    availability: Number | None = None
    intended_requests: Number | None = None
    lost_requests: Number | None = None


class ViewCounts(Record):
    """The fault's own view (its targets' requests and probes), same window."""

    requests: int = 0
    failed_requests: int = 0
    availability: Number | None = None
    probes: int = 0
    failed_probes: int = 0


class OrchestratorTimeline(Record):
    """One targeted instance: when it died, started and was healthy again, each interval from
    its own start (never summed)."""

    instance: str
    die_at_ns: int | None = None
    start_at_ns: int | None = None
    healthy_at_ns: int | None = None
    kill_to_die_s: Number | None = None
    die_to_start_s: Number | None = None
    start_to_healthy_s: Number | None = None
    restarted: bool | None = None


class InstanceResponse(Record):
    instance: str
    action: str
    at_ns: int | None = None
    after_s: Number | None = None


class Response(Record):
    """What the orchestrator did (harness.analysis.response), over the instances."""

    action: str  # replaced | restarted_in_place | not_restarted | kept_running | unknown | mixed
    unit: str  # container | task | pod
    description: str = ""
    instances: list[InstanceResponse] = Field(default_factory=list)


class Expectation(Record):
    """What the orchestrator's own timers predict for one measured interval
    (harness.analysis.timers): `source` settings | published default."""

    interval: str
    instance: str | None = None
    rule: str = ""
    low_s: Number | None = None
    high_s: Number | None = None
    source: str = ""
    measured_s: Number | None = None
    verdict: str = "not_measured"  # as_predicted | slower | faster | not_measured
    tolerance_s: Number | None = None


class KubeEventRecord(Record):
    """One of Kubernetes' own Events in the fault's window [injection, evidence end]."""

    time_ns: int
    reason: str = ""
    type: str = ""
    object: str = ""
    instance: str | None = None
    note: str = ""
    count: int | None = None


class ClusterView(Record):
    """The orchestrator's own view of a node fault (Swarm), each instant also as seconds from
    the injection."""

    node: str | None = None
    node_down_at_ns: int | None = None
    service_degraded_at_ns: int | None = None
    replacement_running_at_ns: int | None = None
    full_strength_at_ns: int | None = None
    node_ready_at_ns: int | None = None
    to_node_down_s: Number | None = None
    to_degraded_s: Number | None = None
    to_replacement_running_s: Number | None = None
    to_full_strength_s: Number | None = None
    to_node_ready_s: Number | None = None


class Served(Record):
    """What one target instance served users through the service (the workload names its
    replica in a response header): successes completed in the fault's window, and when it
    first served a request sent once the outage began."""

    instance: str
    served_in_window: int = 0
    first_served_at_ns: int | None = None
    first_served_after_s: Number | None = None


class FaultSummary(Record):
    """One fault occurrence, in injection order: `id` (`f1`, `f1#2` for a repeated entry's
    2nd), its action's instant, `impact` visible | none | unmeasured and `impact_kind` errors |
    latency | both; detection, recovery, `ttd_s`, `ttr_s` (null without visible impact),
    `recovered` (null when censored: `ttr_at_least_s`, the data ended first); every user's
    requests in the window (`failed_requests`, `availability`) and its own view's
    (`view_counts`, judged against `baseline`); what the orchestrator did, its timers
    predicted, and Kubernetes said."""

    id: str
    entry: str | None = None
    occurrence: int | None = None
    name: str | None = None
    kind: str
    mode: str | None = None
    mechanism: str | None = None
    restart_policy_applies: bool | None = None
    targets: list[str] = Field(default_factory=list)
    view: str | None = None  # instance | service
    observed: str | None = None
    injected_at_ns: int | None = None
    reverted_at_ns: int | None = None
    apply_s: Number | None = None
    active_s: Number | None = None
    horizon_end_ns: int | None = None
    impact: str = "visible"  # visible | none | unmeasured
    impact_kind: str | None = None  # errors | latency | both
    latency_impact: LatencyImpact | None = None
    detected_at_ns: int | None = None
    recovered_at_ns: int | None = None
    ttd_s: Number | None = None
    ttr_s: Number | None = None
    recovered: bool | None = None
    censored: bool = False
    ttr_at_least_s: Number | None = None
    reason: str | None = None
    window: FaultWindow | None = None
    window_end_ns: int | None = None
    failed_requests: int | None = None
    requests_in_window: int | None = None
    availability: Number | None = None
    probes_failed: int | None = None
    probes_in_window: int | None = None
    view_counts: ViewCounts | None = None
    baseline: BaselineCounts | None = None
    overlapped_with: list[str] = Field(default_factory=list)
    shared_observations_with: list[str] = Field(default_factory=list)
    orchestrator: list[OrchestratorTimeline] = Field(default_factory=list)
    cluster: ClusterView | None = None
    response: Response | None = None
    served: list[Served] | None = Field(default=None, exclude_if=absent)  # by the header
    # a service view judged on users' requests alone: when its targets' own probes were back
    target_recovered_at_ns: int | None = Field(default=None, exclude_if=absent)
    target_ttr_s: Number | None = Field(default=None, exclude_if=absent)
    phases: dict[str, PhaseSummary] = Field(default_factory=dict)  # fault, recovery
    k8s_events: list[KubeEventRecord] = Field(default_factory=list)
    expected: list[Expectation] = Field(default_factory=list)


class Spread(Record):
    """The median and maximum of the known values, and how many were known."""

    n: int = 0
    median: Number | None = None
    max: Number | None = None


class FaultGroup(Record):
    """The occurrences of one repeated fault entry."""

    id: str
    kind: str
    occurrences: list[str] = Field(default_factory=list)
    visible_impact: int = 0
    no_impact: int = 0
    unmeasured: int = 0
    recovered: int = 0
    unrecovered: list[str] = Field(default_factory=list)
    censored: list[str] = Field(default_factory=list)
    ttd_s: Spread = Field(default_factory=Spread)
    ttr_s: Spread = Field(default_factory=Spread)
    failed_requests: int = 0


class SloCheck(Record):
    name: str
    limit: Number | None = None
    value: Number | None = None
    verdict: str  # pass | fail | no_data
    reason: str | None = None
    # "min" for a lower limit read from Prometheus (absent: the check's name says which)
    bound: str | None = Field(default=None, exclude_if=absent)


class PrometheusCheck(Record):
    """One slo.prometheus check as evaluated: the query as sent to /api/v1/query_range over
    [start_ns, end_ns] every step_s, the worst point of every series (the highest against a
    `max`, the lowest against a `min`) as `value`, and how many points there were."""

    name: str  # name[subject], as in slo.checks
    query: str
    subject: str  # the phase or fault id
    bound: str  # max | min
    limit: Number
    step_s: Number
    start_ns: int | None = None
    end_ns: int | None = None
    points: int = 0
    series: int = 0
    value: Number | None = None
    verdict: str  # pass | fail | no_data
    reason: str | None = None


PROMETHEUS_FILE: Final = "prometheus.json"
PROMETHEUS_VERSION: Final = 1


class PrometheusOutcome(Record):
    """What Prometheus answered after the run (prometheus.json in the run directory, written
    by the runner; the analysis reads it back into summary.json)."""

    schema_version: int = PROMETHEUS_VERSION
    url: str
    evaluated_at_ns: int | None = None
    checks: list[PrometheusCheck] = Field(default_factory=list)


class NoData(Record):
    name: str
    reason: str | None = None


class SloOutcome(Record):
    """The SLO checks (verdict pass | fail | no_data), the failed names and those without
    data; `passed` unless a check failed or, without `allow_no_data`, lacked data."""

    passed: bool = True
    allow_no_data: bool = False
    failed: list[str] = Field(default_factory=list)
    no_data: list[NoData] = Field(default_factory=list)
    checks: list[SloCheck] = Field(default_factory=list)


class ResourceUse(Record):
    """The CPU and memory of the workload's instances over some time, summed over instances,
    from their cgroups (what cAdvisor and `docker stats` read): `cpu_cores` the CPU time used
    per second of it (1.0: one core busy), memory the bytes charged to their cgroups (page cache
    included), mean and max over the sampling rounds in it; null without samples there."""

    start_ns: int | None = None
    end_ns: int | None = None
    cpu_cores: Number | None = None
    memory_mean_bytes: int | None = None
    memory_max_bytes: int | None = None
    rounds: int = 0  # sampling rounds inside


class FaultResources(Record):
    """What one fault cost in CPU and memory: `baseline` just before the injection (as long as
    `during`, at least 10 s), `during` its fault window, `after` its recovery window (else as
    long as the baseline after the revert); the costs are against the baseline."""

    fault: str
    baseline: ResourceUse
    during: ResourceUse
    after: ResourceUse
    cpu_cost_cores: Number | None = None  # during - baseline
    recovery_cpu_cost_cores: Number | None = None  # after - baseline
    memory_cost_bytes: int | None = None  # max during - mean baseline


class Resources(Record):
    """The workload's CPU and memory per phase and around each fault (resources.parquet);
    `sampled` false, with the reason, when no instance was on this host (a remote engine)."""

    sampled: bool = False
    reason: str | None = None
    interval_s: Number | None = None  # the median time between sampling rounds
    instances: list[str] = Field(default_factory=list)
    phases: dict[str, ResourceUse] = Field(default_factory=dict)
    faults: list[FaultResources] = Field(default_factory=list)


class Summary(Record):
    """summary.json. `status`: aborted or failed when the run was (harness.results), else
    baseline_broken when the steady baseline failed, slo_violated when an SLO check failed or
    lacked data, else passed; `status_reason` why not passed; `warnings` what makes the
    numbers less certain without failing the run."""

    schema_version: int = SUMMARY_VERSION
    run_id: str
    scenario: str = ""
    status: str = ""  # passed | slo_violated | baseline_broken | aborted | failed
    status_reason: str | None = None
    target: str = ""
    started_at_ns: int | None = None
    ended_at_ns: int | None = None
    duration_s: Number | None = None
    load: SummaryLoad = Field(default_factory=SummaryLoad)
    analysis: SummaryAnalysis = Field(default_factory=SummaryAnalysis)
    baseline: SummaryBaseline = Field(default_factory=SummaryBaseline)
    totals: Totals = Field(default_factory=Totals)
    endpoints: dict[str, RequestCounts] = Field(default_factory=dict)
    phases: dict[str, PhaseSummary] = Field(default_factory=dict)
    faults: list[FaultSummary] = Field(default_factory=list)
    fault_groups: list[FaultGroup] = Field(default_factory=list)
    slo: SloOutcome = Field(default_factory=SloOutcome)
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None
    prometheus: PrometheusOutcome | None = Field(default=None, exclude_if=absent)
    # the instances' CPU and memory (absent: a run from before the harness sampled them)
    resources: Resources | None = Field(default=None, exclude_if=absent)

    @property
    def measured(self) -> bool:
        """The run got as far as measuring users (not broken, aborted or failed)."""
        return self.status in PASSED_STATUSES

    def fault(self, fault_id: str) -> FaultSummary | None:
        return next((f for f in self.faults if f.id == fault_id), None)


def _from_unversioned(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 0 -> 1: the statuses in today's words and null blocks empty; then what the
    oldest summaries lacked: a phase's intervals (its one [start, end)), a latency's count of
    successful requests (its percentiles were over every request), a fault's impact (they
    said "no user-visible failures" when there was none)."""
    upgraded = {k: v for k, v in raw.items() if v is not None or k in _NULLABLE}
    if "status" in raw:
        upgraded["status"] = normalized_status(raw["status"])
    phases = upgraded.get("phases")
    if isinstance(phases, dict):
        upgraded["phases"] = {name: _old_phase(p) for name, p in phases.items()}
    faults = upgraded.get("faults")
    if isinstance(faults, list):
        upgraded["faults"] = [_old_fault(f) for f in faults]
    return upgraded


def _old_phase(phase: Any) -> Any:
    if not isinstance(phase, dict):
        return phase
    upgraded = dict(phase)
    if "intervals" not in phase:
        start, end = phase.get("start_ns"), phase.get("end_ns")
        whole = isinstance(start, int) and isinstance(end, int) and end > start
        upgraded["intervals"] = [[start, end]] if whole else []
    latency = phase.get("latency_ms")
    if isinstance(latency, dict) and "successful" not in latency:
        upgraded["latency_ms"] = {**latency, "successful": phase.get("requests", 0)}
    return upgraded


def _old_fault(fault: Any) -> Any:
    if not isinstance(fault, dict) or "impact" in fault:
        return fault
    impact = "none" if fault.get("reason") == "no user-visible failures" else "visible"
    return {**fault, "impact": impact}


_NULLABLE: Final = frozenset({"status_reason", "started_at_ns", "ended_at_ns", "duration_s"})


UPGRADES: Final = {0: _from_unversioned}


def load_summary(path: Path) -> Summary:
    """summary.json at `path` (a run directory or the file), any version this harness knows,
    as today's model; AnalysisError names what is wrong."""
    path = Path(path)
    file = path / SUMMARY_FILE if path.is_dir() else path
    return read_versioned(file, Summary, SUMMARY_VERSION, UPGRADES)


def as_summary(value: Summary | Mapping[str, Any]) -> Summary:
    """A summary given as the model or as decoded summary.json (any version), as the model."""
    if isinstance(value, Summary):
        return value
    return parse_versioned(value, SUMMARY_FILE, Summary, SUMMARY_VERSION, UPGRADES)


def write_summary_file(run_dir: Path, summary: Summary) -> Path:
    """Write summary.json into `run_dir` (strict JSON: NaN is refused)."""
    path = Path(run_dir) / SUMMARY_FILE
    write_text_atomic(path, dump_json(summary))
    return path


def read_prometheus_outcome(run_dir: Path) -> PrometheusOutcome | None:
    """The run's prometheus.json, or None when the run had no slo.prometheus check."""
    path = Path(run_dir) / PROMETHEUS_FILE
    if not path.exists():
        return None
    return read_versioned(path, PrometheusOutcome, PROMETHEUS_VERSION, {})


def write_prometheus_outcome(run_dir: Path, outcome: PrometheusOutcome) -> Path:
    path = Path(run_dir) / PROMETHEUS_FILE
    write_text_atomic(path, dump_json(outcome))
    return path
