"""Analysis of a run directory: tidy data, metrics, SLOs, summary.json (report: .report).

`analyze_run(run_dir)` loads the run, measures it and writes `run_dir/summary.json`; it returns
the same JSON object. `summarize(run)` gives the typed `Summary`; its blocks and what their
fields mean are harness.results.summary's (published by `harness schema --summary`), and
`load_summary` reads any version of the file back. Times are wall-clock nanoseconds (`*_ns`),
durations seconds (`*_s`), latencies milliseconds (`*_ms`, 3 decimals), rates fractions in
[0, 1]; a value that cannot be measured is null, never NaN. The definitions are in
harness.analysis.metrics (faults, their windows), .baseline, .phases (baseline, fault,
recovery, after), .slo, .latency_impact, .response, .timers, .kube_events and .resources.
"""

from __future__ import annotations

from pathlib import Path

from harness.analysis.data import RunData, load_run
from harness.analysis.kube_events import KubeEvent, fault_k8s_events, kube_events, watch_gaps
from harness.analysis.metrics import Context, FaultMetrics, fault_metrics
from harness.analysis.phases import (
    PHASE_NAMES,
    Phase,
    RequestIndex,
    endpoint_stats,
    intended_rps,
    interval_stats,
    phase_bounds,
    phase_stats,
    totals,
)
from harness.analysis.repeats import repeated_entries
from harness.analysis.resources import load_samples, resources
from harness.analysis.slo import SloResult, evaluate_slo, with_prometheus
from harness.analysis.timers import predictions
from harness.analysis.workers import per_worker
from harness.results import ABORTED, FAILED, normalized_status
from harness.results.summary import (
    SUMMARY_FILE,
    FaultGroup,
    FaultSummary,
    PhaseSummary,
    Summary,
    SummaryAnalysis,
    SummaryLoad,
    Totals,
    read_prometheus_outcome,
    write_summary_file,
)

__all__ = ["SUMMARY_FILE", "RunData", "analyze_run", "load_run", "summarize", "write_summary"]


def analyze_run(run_dir: Path) -> dict[str, object]:
    """Load `run_dir`, measure it, write summary.json there and return it as the file holds it."""
    summary = summarize(load_run(Path(run_dir)))
    write_summary(Path(run_dir), summary)
    return summary.as_json()


def write_summary(run_dir: Path, summary: Summary) -> Path:
    """Write summary.json (strict JSON: NaN is refused)."""
    return write_summary_file(Path(run_dir), summary)


def summarize(run: RunData) -> Summary:
    """The summary of a loaded run (fields in this module's docstring)."""
    faults, context = fault_metrics(run)
    load = context.load
    index = RequestIndex.of(run.requests)
    steady = (context.baseline.window.start_ns, context.baseline.window.end_ns)
    intended = intended_rps(index, steady, run.manifest.load.rate_per_s)
    bounds = phase_bounds(faults, load)
    phases = phase_stats(index, bounds, load, steady[0], intended)
    by_name = {p.phase.name: p for p in phases}
    total = totals(run.requests, load)
    prometheus = read_prometheus_outcome(run.run_dir)
    slo = with_prometheus(evaluate_slo(run.manifest.slo, faults, by_name, total), prometheus)
    status, reason = _status(run.manifest.status, context, slo)
    warnings = watch_gaps(run.events, load.start_ns, context.data_end_ns)
    if warnings and reason is not None:
        reason = "; ".join([reason, *warnings])
    every_k8s = kube_events(run.events)
    manifest = run.manifest
    return Summary(
        run_id=manifest.run_id,
        scenario=manifest.scenario,
        status=status,
        status_reason=reason,
        target=manifest.target,
        started_at_ns=manifest.started_at_ns,
        ended_at_ns=manifest.ended_at_ns,
        duration_s=_duration(manifest.started_at_ns, manifest.ended_at_ns),
        load=_load(run, context),
        analysis=_analysis(run, context),
        baseline=context.baseline.record(),
        totals=Totals(**total.record().model_dump(), **_probe_totals(run)),
        endpoints={k: v.record() for k, v in endpoint_stats(run.requests, load).items()},
        phases={name: by_name[name].record() for name in PHASE_NAMES},
        faults=[
            _with_timers(run, _fault_record(f, index, steady[0], intended, every_k8s))
            for f in faults
        ],
        fault_groups=[FaultGroup.model_validate(e.to_dict()) for e in repeated_entries(faults)],
        slo=slo.record(),
        warnings=warnings,
        error=manifest.error,
        prometheus=prometheus,
        resources=resources(load_samples(run.run_dir), bounds, faults, load),
    )


def _status(manifest_status: str, context: Context, slo: SloResult) -> tuple[str, str | None]:
    status = normalized_status(manifest_status)
    if status in (ABORTED, FAILED):
        return status, None
    if context.baseline.broken:
        return "baseline_broken", context.baseline.reason
    if slo.passed:
        return "passed", None
    parts = []
    if slo.failed:
        parts.append("failed: " + ", ".join(c.name for c in slo.failed))
    if slo.no_data and not slo.allow_no_data:
        names = ", ".join(c.name for c in slo.no_data)
        parts.append(f"no data (slo.allow_no_data is false): {names}")
    return "slo_violated", "; ".join(parts)


def _with_timers(run: RunData, fault: FaultSummary) -> FaultSummary:
    """The fault with what the orchestrator's timers predict for its measured intervals."""
    expected = [p.record() for p in predictions(run, fault)]
    return fault.model_copy(update={"expected": expected})


def _fault_record(
    fault: FaultMetrics,
    index: RequestIndex,
    steady_from_ns: int,
    intended: float | None,
    every_k8s: list[KubeEvent],
) -> FaultSummary:
    """The fault as summary.json writes it, with its occurrence's own phases and Events."""
    phases: dict[str, PhaseSummary] = {}
    for name in ("fault", "recovery"):
        start, end = fault.phase_bounds.get(name, (0, 0))
        phase = Phase(name, ((start, end),) if end > start else ())
        stats = interval_stats(index, phase, phase.intervals, steady_from_ns, intended)
        phases[name] = stats.record()
    t0, end = fault.fault.injected_at_ns, fault.evidence_end_ns
    k8s_events = fault_k8s_events(every_k8s, t0, end)
    return fault.record().model_copy(update={"phases": phases, "k8s_events": k8s_events})


def _duration(start_ns: int | None, end_ns: int | None) -> float | None:
    return None if start_ns is None or end_ns is None else round((end_ns - start_ns) / 1e9, 3)


def _load(run: RunData, context: Context) -> SummaryLoad:
    load = run.manifest.load
    return SummaryLoad(
        users=load.users,
        spawn_rate=load.spawn_rate,
        workers=load.workers,
        mode=load.mode,
        rate_per_s=load.rate_per_s,
        host=load.host,
        routing="per_instance" if context.observations.routed else "service",
        endpoints=list(load.endpoints),
        load_balancing=load.load_balancing,
        started_at_ns=context.load.start_ns,
        ended_at_ns=context.load.end_ns,
        duration_s=_duration(context.load.start_ns, context.load.end_ns),
        per_worker=per_worker(
            run.requests,
            context.load.start_ns,
            context.load.end_ns,
            load.rate_per_s,
            len(load.workers_seen or []),
        ),
    )


def _analysis(run: RunData, context: Context) -> SummaryAnalysis:
    settings = run.manifest.analysis
    return SummaryAnalysis(
        stable_for_s=settings.stable_for_s,
        detection_horizon_s=settings.detection_horizon_s,
        warmup_s=run.manifest.warmup_s(),
        confidence=settings.confidence,
        baseline_max_error_rate=settings.baseline_max_error_rate,
        baseline_failure_rate=round(context.baseline_failure_rate, 6),
        window_s=settings.window_s,
    )


def _probe_totals(run: RunData) -> dict[str, int]:
    return {"probes": len(run.probes), "probe_failures": int((~run.probes["ok"]).sum())}
