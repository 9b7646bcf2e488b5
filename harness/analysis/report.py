"""The self-contained HTML report of one run: report.html with its figures embedded.

`write_report(run_dir)` needs only the stored files of the run: it rebuilds the summary (and
summary.json) when not given one, draws the figures into `figures/`, and writes `report.html`
with inline CSS and the PNGs as base64 data URIs, so the file can be mailed or attached to a
ticket as is. Every piece of text is escaped.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from harness.analysis import summarize, write_summary
from harness.analysis.data import RunData, load_run
from harness.analysis.explain import (
    expected_list,
    impact_cell,
    k8s_events_table,
    latency_paragraph,
    warnings_section,
)
from harness.analysis.formats import NONE, millis
from harness.analysis.formats import percent as _pct
from harness.analysis.formats import seconds as _secs
from harness.analysis.phases import PHASE_NAMES
from harness.analysis.plots import write_figures
from harness.analysis.resource_figure import resource_figure
from harness.results.summary import (
    ClusterView,
    FaultGroup,
    FaultSummary,
    Latency,
    OrchestratorTimeline,
    PhaseSummary,
    ResourceUse,
    Summary,
)

REPORT_FILE = "report.html"

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f;
       max-width: 1240px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
table { border-collapse: collapse; margin: 8px 0 4px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d0d5; padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #f3f3f6; font-weight: 600; }
td.num { text-align: right; }
.meta { color: #55555a; }
.badge { display: inline-block; padding: 2px 9px; border-radius: 10px; font-weight: 600; }
.passed, .pass, .yes { background: #ddf3e1; color: #145a24; }
.slo_violated, .fail, .no, .interrupted, .error, .aborted, .failed, .baseline_broken {
  background: #fbe0e0; color: #8a1414; }
.no_data, .na { background: #ececef; color: #444; }
.note { background: #fff8e1; border-left: 4px solid #e6a100; padding: 8px 12px; margin: 10px 0; }
.policy { margin: 6px 0; font-size: 15px; }
img { max-width: 100%; border: 1px solid #e2e2e6; }
"""


def write_report(run_dir: Path, summary: Summary | None = None, run: RunData | None = None) -> Path:
    """Write figures/*.png and report.html into `run_dir`; return the report's path. `run`:
    the run already loaded (a long run's data is then read once, not twice)."""
    run_dir = Path(run_dir)
    run = run if run is not None else load_run(run_dir)
    if summary is None:
        summary = summarize(run)
        write_summary(run_dir, summary)
    figures = write_figures(run, summary, run_dir / "figures")
    resources = resource_figure(run, summary, run_dir / "figures" / "resources.png")
    figures[1:1] = [] if resources is None else [resources]  # beside the latency timeline
    path = run_dir / REPORT_FILE
    path.write_text(render_report(summary, figures), encoding="utf-8")
    return path


def report_run(run_dir: Path) -> tuple[Summary, Path]:
    """summary.json and report.html of a run, its data read once; (summary, report path)."""
    run = load_run(Path(run_dir))
    summary = summarize(run)
    write_summary(Path(run_dir), summary)
    return summary, write_report(run_dir, summary, run)


def render_report(summary: Summary, figures: Sequence[Path]) -> str:
    """The report's HTML, figures embedded."""
    title = f"chaos-harness run {summary.run_id}"
    body = "\n".join(
        [
            _header(summary),
            warnings_section(summary),
            _load_note(summary),
            _slo_section(summary),
            _prometheus_section(summary),
            _baseline_section(summary),
            _faults_section(summary),
            _groups_section(summary),
            _phases_section(summary),
            _workers_section(summary),
            _resources_section(summary),
            figures_section(figures),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


# -- formatting ------------------------------------------------------------------------------


def esc(value: object) -> str:
    return html.escape(NONE if value is None else str(value))


def _since(summary: Summary, instant: int | None) -> str:
    origin = summary.load.started_at_ns
    if origin is None or instant is None:
        return NONE
    return f"+{(instant - origin) / 1e9:.3f} s"


def badge(text: str, css: str) -> str:
    return f'<span class="badge {esc(css)}">{esc(text)}</span>'


def run_cells(run_dir: Path | None, label: str, status: str, included: bool) -> tuple[str, str]:
    """A campaign's run as two cells: a link to its report (`label`; the label alone when its
    report was not written) and its status badge (left out of the sums: red; summed: grey
    unless it passed)."""
    link = esc(label) if label else NONE
    if run_dir is not None and (run_dir / REPORT_FILE).is_file():
        link = f'<a href="{esc(run_dir.name)}/{REPORT_FILE}">{esc(label)}</a>'
    css = "pass" if status == "passed" else "na" if included else "fail"
    return link, badge(status.replace("_", " "), css)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table; cells are HTML already escaped by the caller."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# -- sections --------------------------------------------------------------------------------


def _header(summary: Summary) -> str:
    status, totals, load = summary.status, summary.totals, summary.load
    lines = [
        f"<h1>Run {esc(summary.run_id)} {badge(status, status)}</h1>",
        f'<p class="meta">scenario <b>{esc(summary.scenario)}</b> · target '
        f"<b>{esc(summary.target)}</b> · run {_secs(summary.duration_s, 1)} · "
        f"load {_secs(load.duration_s, 1)}, {esc(load.users)} users, "
        f"{esc(load.workers)} workers · {esc(totals.requests)} requests, "
        f"{esc(totals.failures)} failed ({_pct(totals.error_rate)}), "
        f"{esc(totals.throughput_rps)} req/s</p>",
    ]
    if summary.error:
        lines.append(f'<p class="note">run error: {esc(summary.error)}</p>')
    reason = summary.status_reason
    if reason:
        lines.append(f'<p class="note"><b>{esc(status.replace("_", " "))}:</b> {esc(reason)}</p>')
    return "\n".join(lines)


def _load_note(summary: Summary) -> str:
    load = summary.load
    endpoints = ", ".join(load.endpoints) or NONE
    balancing = load.load_balancing or "not recorded"
    mode = (
        f"open loop: {esc(load.rate_per_s)} requests/s on a fixed schedule"
        if load.mode == "open"
        else "closed loop: each user sends its next request when the last one completed, "
        "so users waiting on a broken replica send nothing meanwhile"
    )
    routing = (
        "each request names its replica (per-instance attribution)"
        if load.routing == "per_instance"
        else "requests went through the service address: their replica is unknown"
    )
    return (
        f'<p class="note"><b>How the load was spread:</b> {esc(balancing)}<br>'
        f"endpoints: {esc(endpoints)}; Locust's host: {esc(load.host)}; {routing}. "
        "When the load is spread client-side across replica endpoints, a dead replica's share "
        f"of requests fails until it is back.<br><b>Load:</b> {mode}.</p>"
    )


def _slo_section(summary: Summary) -> str:
    slo = summary.slo
    if not slo.checks:
        return "<h2>SLOs</h2><p>No SLO in this scenario.</p>"
    verdict = "passed" if slo.passed else "slo_violated"
    rows = [
        [esc(c.name), esc(c.limit), esc(c.value), _verdict(c.verdict), esc(c.reason or "")]
        for c in slo.checks
    ]
    allowed = "allowed (slo.allow_no_data)" if slo.allow_no_data else "a failure"
    note = f"<p class='meta'>a check without data is {allowed}.</p>"
    head = f"<h2>SLOs {badge(verdict.replace('_', ' '), verdict)}</h2>"
    return head + table(["check", "limit", "value", "verdict", "why"], rows) + note


def _prometheus_section(summary: Summary) -> str:
    """The checks read from Prometheus: each query as sent, its interval, step and points."""
    outcome = summary.prometheus
    if outcome is None:
        return ""
    rows = [
        [
            esc(c.name),
            f"<code>{esc(c.query)}</code>",
            f"{_since(summary, c.start_ns)} → {_since(summary, c.end_ns)}",
            f"{esc(c.step_s)} s",
            f"{esc(c.points)} in {esc(c.series)} series",
            f"{esc(c.bound)} {esc(c.limit)}",
            esc(c.value),
            _verdict(c.verdict),
        ]
        for c in outcome.checks
    ]
    note = (
        f"<p class='meta'>Range queries to {esc(outcome.url)} after the run; the value is the "
        "worst point in the interval (the highest against a max, the lowest against a min)."
        "</p>"
    )
    headers = ["check", "query", "interval", "step", "points", "limit", "value", "verdict"]
    return "<h3>SLOs read from Prometheus</h3>" + table(headers, rows) + note


def _baseline_section(summary: Summary) -> str:
    baseline = summary.baseline
    state = badge("broken", "fail") if baseline.broken else badge("healthy", "pass")
    ramp = (
        " (includes the ramp-up: the first fault came first)"
        if baseline.includes_ramp_up
        else f" (after a {esc(baseline.warmup_s)} s warm-up)"
    )
    row = [
        f"{_since(summary, baseline.start_ns)} → {_since(summary, baseline.end_ns)}" + esc(ramp),
        f"{esc(baseline.failed_requests)} / {esc(baseline.requests)}",
        _pct(baseline.error_rate),
        f"{esc(baseline.failed_probes)} / {esc(baseline.probes)}",
        _pct(baseline.probe_error_rate),
        _pct(baseline.max_error_rate),
    ]
    headers = ["steady baseline", "failed requests", "rate", "failed probes", "rate", "limit"]
    reason = baseline.reason
    note = f'<p class="note">{esc(reason)}</p>' if reason else ""
    return (
        f"<h2>Baseline {state}</h2>"
        + table(headers, [row])
        + note
        + (
            "<p class='meta'>requests and probes are counted apart; a stability window may hold as "
            "many failures as the baseline rate allows by chance (a binomial upper bound).</p>"
        )
    )


def _verdict(value: object) -> str:
    text = str(value)
    return badge(text.replace("_", " "), text)


def _faults_section(summary: Summary) -> str:
    faults = summary.faults
    if not faults:
        return "<h2>Faults</h2><p>No fault was injected: the whole run is baseline.</p>"
    rows = [_fault_row(summary, f) for f in faults]
    headers = ["fault", "kind", "targets", "measured on", "impact", "injected", "reverted"]
    headers += ["detected (ttd)", "recovered (ttr)", "its requests failed"]
    headers += ["window", "all users: failed", "availability", "lost requests"]
    headers += ["failed probes", "overlapped with"]
    parts = ["<h2>Faults</h2>", table(headers, rows)]
    parts += [_fault_detail(summary, f) for f in faults]
    return "\n".join(parts)


def _fault_row(summary: Summary, fault: FaultSummary) -> list[str]:
    if fault.impact == "none":
        recovered = badge("no visible impact", "na")
    elif fault.impact == "unmeasured":
        recovered = badge("not measured", "na")
    elif fault.recovered:
        recovered = f"{_since(summary, fault.recovered_at_ns)} ({_secs(fault.ttr_s)})"
    elif fault.censored:
        recovered = badge(f"censored: at least {_secs(fault.ttr_at_least_s)}", "no_data")
    else:
        recovered = badge("never recovered", "fail")
    own = fault.view_counts
    shared = set(fault.shared_observations_with)
    overlaps = [
        f"{esc(x)}{' (shared observations)' if x in shared else ''}" for x in fault.overlapped_with
    ]
    return [
        f"<b>{esc(fault.id)}</b>",
        esc(fault.kind),
        esc(", ".join(fault.targets) or NONE),
        esc(fault.view or NONE),
        impact_cell(fault),
        _since(summary, fault.injected_at_ns),
        _since(summary, fault.reverted_at_ns),
        f"{_since(summary, fault.detected_at_ns)} ({_secs(fault.ttd_s)})",
        recovered,
        f"{esc(own.failed_requests)} / {esc(own.requests)}" if own else NONE,
        _window_cell(summary, fault),
        f"{esc(fault.failed_requests)} / {esc(fault.requests_in_window)}",
        _pct(fault.availability),
        esc(fault.window.lost_requests if fault.window else None),
        f"{esc(fault.probes_failed)} / {esc(fault.probes_in_window)}",
        ", ".join(overlaps) or NONE,
    ]


def _window_cell(summary: Summary, fault: FaultSummary) -> str:
    """`+10.0 s, 10.000 s (cut by f2)`: the comparison window every count of the row is over."""
    window = fault.window
    if window is None:
        return NONE
    text = f"{_since(summary, window.start_ns)}, {_secs(window.duration_s)}"
    if window.cut_by:
        text += f" (cut by {esc(window.cut_by)})"
    if window.cut_by_data_end:
        text += " (cut by the end of the data)"
    return text


def _fault_detail(summary: Summary, fault: FaultSummary) -> str:
    how = " · ".join(x for x in (fault.mode, fault.mechanism) if x)
    parts = [
        f"<h3>{esc(fault.id)}: {esc(fault.kind)}</h3>",
        f"<p class='meta'>{esc(how or 'mechanism not recorded')}; measured on "
        f"{esc(fault.observed or 'every request and probe')}</p>",
        f'<p class="policy">{_policy(fault.restart_policy_applies)}</p>',
    ]
    if fault.reason:
        parts.append(f"<p>{esc(fault.reason)}</p>")
    latency = fault.latency_impact
    detected = None if latency is None else latency.detected_at_ns
    parts.append(latency_paragraph(fault, _since(summary, detected)))
    overlapped = fault.overlapped_with
    if overlapped:
        shared = fault.shared_observations_with
        text = f"overlapped with {', '.join(overlapped)}: "
        text += (
            f"it shares observations with {', '.join(shared)}, so its numbers may include "
            "their failures"
            if shared
            else "measured on different observations, neither took the other's failures"
        )
        parts.append(f'<p class="note">{esc(text)}</p>')
    parts.append(_occurrence_phases(summary, fault.phases))
    parts.append(_orchestrator_table(fault.orchestrator))
    parts.append(expected_list(fault))
    parts.append(k8s_events_table(fault, lambda time_ns: _since(summary, time_ns)))
    parts.append(_cluster_table(fault.cluster, fault.ttr_s))
    return "\n".join(parts)


def _occurrence_phases(summary: Summary, phases: dict[str, PhaseSummary]) -> str:
    """This occurrence's own fault and recovery intervals, what every user saw in them."""
    rows = []
    for name in ("fault", "recovery"):
        phase = phases.get(name)
        if phase is None:
            continue
        rows.append(
            [
                esc(name),
                _since(summary, phase.start_ns),
                _secs(phase.duration_s, 2),
                f"{esc(phase.failures)} / {esc(phase.requests)}",
                esc(phase.achieved_rps),
                _pct(phase.shortfall),
            ]
        )
    if not rows:
        return ""
    headers = ["its phase", "from", "duration", "failed / requests", "sent req/s", "load lost"]
    return table(headers, rows)


def _groups_section(summary: Summary) -> str:
    if not summary.fault_groups:
        return ""
    rows = [_group_row(group) for group in summary.fault_groups]
    headers = ["entry", "kind", "occurrences", "ttd median / max", "ttr median / max"]
    headers += ["no visible impact", "never recovered"]
    return (
        "<h2>Repeated faults</h2>"
        + table(headers, rows)
        + "<p class='meta'>each occurrence is measured on its own (rows above); an occurrence "
        "without visible impact has no ttr and is counted apart.</p>"
    )


def _group_row(group: FaultGroup) -> list[str]:
    ttr, ttd = group.ttr_s, group.ttd_s
    return [
        f"<b>{esc(group.id)}</b>",
        esc(group.kind),
        esc(len(group.occurrences)),
        f"{_secs(ttd.median)} / {_secs(ttd.max)}",
        f"{_secs(ttr.median)} / {_secs(ttr.max)} (n={esc(ttr.n)})",
        esc(group.no_impact),
        esc(", ".join(group.unrecovered) or NONE),
    ]


def _cluster_table(cluster: ClusterView | None, ttr_s: float | None) -> str:
    """Swarm's own view (node down, degraded, replacement, full strength) beside users'."""
    if cluster is None:
        return ""
    row = [
        esc(cluster.node) if cluster.node else NONE,
        _secs(cluster.to_node_down_s),
        _secs(cluster.to_degraded_s),
        _secs(cluster.to_replacement_running_s),
        _secs(cluster.to_full_strength_s),
        _secs(cluster.to_node_ready_s),
        _secs(ttr_s),
    ]
    headers = [
        "node",
        "node down",
        "service degraded",
        "replacement running",
        "full strength",
        "node ready",
        "users recovered",
    ]
    return (
        table(headers, [row]) + "<p class='meta'>the orchestrator's own view, each measured from "
        "the injection, next to the time users saw recovery (ttr).</p>"
    )


def _policy(applies: bool | None) -> str:
    if applies is True:
        return "restart policy applies: " + badge("yes", "yes")
    if applies is False:
        return "restart policy applies: " + badge(
            "no — killed through the engine API, a manual stop", "no"
        )
    return "restart policy applies: " + badge("not applicable", "na")


def _orchestrator_table(rows: list[OrchestratorTimeline]) -> str:
    if not rows:
        return ""
    cells = [
        [
            esc(row.instance),
            _secs(row.kill_to_die_s),
            _secs(row.die_to_start_s),
            _secs(row.start_to_healthy_s),
            _restarted(row),
        ]
        for row in rows
    ]
    headers = ["instance", "fault → die", "die → start", "start → healthy", "restarted"]
    return (
        table(headers, cells) + "<p class='meta'>orchestrator intervals from engine events; "
        "each is measured from its own start, never summed.</p>"
    )


def _restarted(row: OrchestratorTimeline) -> str:
    if row.restarted:
        return badge("yes", "yes")
    if row.die_at_ns is None:
        return badge("did not die", "na")
    return badge("no: never started again", "no")


def _workers_section(summary: Summary) -> str:
    """Each Locust worker's share (distributed load only): sent against intended."""
    workers = summary.load.per_worker
    if not workers:
        return ""
    headers = ["worker", "requests", "failed", "sent/s", "intended sent/s"]
    rows = [
        [esc(w.name), esc(w.requests), esc(w.failed), esc(w.sent_per_s), esc(w.intended_per_s)]
        for w in workers
    ]
    note = (
        "<p class='meta'><i>sent/s</i>: requests the worker started per second over the load's "
        "span; <i>intended sent/s</i>: its share of the open-loop rate (the rate split evenly "
        "over the workers its master expected; none for a closed loop). A worker cut off or "
        "lost shows here as its own shortfall.</p>"
    )
    return "<h2>Load workers</h2>" + table(headers, rows) + note


def _phases_section(summary: Summary) -> str:
    rows = []
    for name in PHASE_NAMES:
        phase = summary.phases.get(name)
        rows.append([f"<b>{esc(name)}</b>", *_phase_cells(summary, phase)])
    headers = ["phase", "from", "duration", "requests", "failed", "error rate", "req/s"]
    headers += ["p50 ms", "p95 ms", "p99 ms", "max ms", "latency over (ok / failed)"]
    headers += ["intended sent/s", "sent/s", "load lost"]
    note = (
        "<p class='meta'>requests counted by completion; latency over the successful requests "
        "that started in the phase, failed ones counted apart; a percentile needs at least "
        "1 / (1 - q) values (p50 2, p95 20, p99 100), else it is not shown. "
        "A phase may be several intervals (one per fault occurrence). "
        "<i>intended sent/s</i>: the open-loop rate, or for a closed loop the rate users kept "
        "in the steady baseline; <i>sent/s</i>: requests started per second after the warm-up; "
        "<i>load lost</i>: the share of the intended load that was never sent (closed-loop "
        "users wait on broken replicas instead of sending).</p>"
    )
    return "<h2>Phases</h2>" + table(headers, rows) + note


def _phase_cells(summary: Summary, phase: PhaseSummary | None) -> list[str]:
    if phase is None:  # a summary written before the phase existed
        return [NONE] * 14
    latency = phase.latency_ms
    quantiles = (
        (None,) * 4 if latency is None else (latency.p50, latency.p95, latency.p99, latency.max)
    )
    return [
        _since(summary, phase.start_ns),
        _secs(phase.duration_s, 2),
        esc(phase.requests),
        esc(phase.failures),
        _pct(phase.error_rate),
        esc(phase.throughput_rps),
        *(millis(q, unit="") for q in quantiles),
        _latency_counts(latency),
        esc(phase.intended_rps),
        esc(phase.achieved_rps),
        _pct(phase.shortfall),
    ]


def _latency_counts(latency: Latency | None) -> str:
    if latency is None:
        return NONE
    text = f"{esc(latency.successful)} / {esc(latency.failed)}"
    if latency.null_reasons:
        text += f" ({esc('; '.join(latency.null_reasons.values()))})"
    return text


def _resources_section(summary: Summary) -> str:
    """CPU and memory per phase and around each fault; nothing for a run without samples."""
    use = summary.resources
    if use is None:
        return ""
    if not use.sampled:
        return f"<h2>Resources</h2><p class='meta'>{esc(use.reason)}</p>"
    headers = ["", "CPU cores", "memory mean MiB", "memory max MiB", "rounds"]
    rows = [[f"<b>{esc(name)}</b>", *_use_cells(u)] for name, u in use.phases.items()]
    for fault in use.faults:
        for window in ("baseline", "during", "after"):
            label = f"{esc(fault.fault)} {window}"
            rows.append([label, *_use_cells(getattr(fault, window))])
    costs = "; ".join(
        f"{esc(f.fault)}: {esc(f.cpu_cost_cores)} cores during, "
        f"{esc(f.recovery_cpu_cost_cores)} after"
        for f in use.faults
    )
    note = (
        "<p class='meta'>summed over the instances "
        f"({esc(', '.join(use.instances))}), read from their cgroups every "
        f"{esc(use.interval_s)} s; memory includes the page cache. "
        f"CPU cost against each fault's baseline: {costs or NONE}.</p>"
    )
    return "<h2>Resources</h2>" + table(headers, rows) + note


def _use_cells(use: ResourceUse) -> list[str]:
    mean, peak = use.memory_mean_bytes, use.memory_max_bytes
    return [
        esc(use.cpu_cores),
        NONE if mean is None else esc(round(mean / 2**20, 1)),
        NONE if peak is None else esc(round(peak / 2**20, 1)),
        esc(use.rounds),
    ]


def figures_section(figures: Sequence[Path]) -> str:
    parts = ["<h2>Figures</h2>"]
    for path in figures:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(
            f'<figure><img alt="{esc(path.stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption class='meta'>{esc(path.name)}</figcaption></figure>"
        )
    return "\n".join(parts)
