"""The report's pieces that explain a fault: which impact it had, what the orchestrator's timers
predicted for its measured intervals, Kubernetes' own Events in its window; and the run's
warnings (a watch of the orchestrator that kept failing). HTML fragments, every text escaped;
they read summary.json's `impact_kind`, `latency_impact`, `expected`, `k8s_events` and
`warnings` (harness.analysis)."""

from __future__ import annotations

import html
from collections.abc import Callable

from harness.analysis.formats import NONE
from harness.analysis.formats import millis as _ms
from harness.analysis.formats import seconds as _secs
from harness.results.summary import FaultSummary, Summary

DEPARTS = ("slower", "faster")
KIND_WORDS = {
    "errors": "errors: requests or probes failed",
    "latency": "latency: answers slower than the baseline allows, none failing more",
    "both": "errors and latency: failures, and slow answers",
}


def esc(value: object) -> str:
    return html.escape(NONE if value is None else str(value))


def impact_cell(fault: FaultSummary) -> str:
    """The impact column: `errors`, `latency`, `both`, or why there is none."""
    kind = fault.impact_kind
    if kind is not None:
        css = "no_data" if kind == "latency" else "fail"
        return f'<span class="badge {css}">{esc(kind)}</span>'
    return '<span class="badge na">' + esc(fault.impact) + "</span>"


def latency_paragraph(fault: FaultSummary, since: str) -> str:
    """What the latency rule saw: the limits and, when slowed, its own ttd and ttr."""
    latency = fault.latency_impact
    if latency is None:
        return ""
    words = [
        f"{kind}: window median {_ms(limit.baseline_median_ms)} in the baseline, "
        f"limit {_ms(limit.limit_ms)}"
        for kind, limit in latency.limits.items()
        if limit
    ]
    head = f"impact: {KIND_WORDS.get(str(fault.impact_kind), 'none visible')}. "
    text = head + "Latency judged on the " + latency.statistic
    text += "; " + ("; ".join(words) if words else "no kind had enough baseline windows")
    if latency.visible:
        text += (
            f". Slow from {since} (ttd {_secs(latency.ttd_s)}), back within the limit "
            f"at ttr {_secs(latency.ttr_s)}"
        )
    if latency.reason:
        text += f" ({latency.reason})"
    return f'<p class="latency">{esc(text)}.</p>'


def expected_list(fault: FaultSummary) -> str:
    """The timers' predictions beside the measured intervals, a departure flagged."""
    items = []
    for prediction in fault.expected:
        verdict = prediction.verdict
        css = "fail" if verdict in DEPARTS else ("pass" if verdict == "as_predicted" else "na")
        flag = f'<span class="badge {css}">{esc(verdict.replace("_", " "))}</span>'
        who = f" [{esc(prediction.instance)}]" if prediction.instance else ""
        items.append(
            f"<li>{flag} {esc(prediction.interval)}{who}: {esc(prediction.rule)}"
            f" <span class='meta'>({esc(prediction.source)})</span></li>"
        )
    if not items:
        return ""
    return (
        "<p class='meta'>what the orchestrator's settings predict for these intervals "
        "(a verdict other than 'as predicted' departs from its own timers):</p>"
        f"<ul class='expected'>{''.join(items)}</ul>"
    )


def k8s_events_table(fault: FaultSummary, since: Callable[[int], str]) -> str:
    """Kubernetes' own Events in the fault's window (`since`: a time in the report's words)."""
    rows = []
    for event in fault.k8s_events:
        css = "fail" if event.type == "Warning" else "na"
        rows.append(
            f"<tr><td>{since(event.time_ns)}</td><td><span class='badge {css}'>{esc(event.type)}"
            f"</span></td><td>{esc(event.reason)}</td><td>{esc(event.object)}</td>"
            f"<td>{esc(event.count)}</td><td>{esc(event.note)}</td></tr>"
        )
    if not rows:
        return ""
    head = "".join(f"<th>{h}</th>" for h in ("at", "type", "reason", "object", "count", "note"))
    return (
        f"<p class='meta'>Kubernetes' own Events in the fault's window:</p>"
        f"<table><tr>{head}</tr>{''.join(rows)}</table>"
    )


def warnings_section(summary: Summary) -> str:
    """The run's warnings, each a note: a hole in the engine's view is never silent."""
    if not summary.warnings:
        return ""
    notes = "".join(f'<p class="note">{esc(w)}</p>' for w in summary.warnings)
    return f"<h2>Warnings</h2>{notes}"
