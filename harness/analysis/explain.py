"""The report's pieces that explain a fault: which impact it had, what the orchestrator's timers
predicted for its measured intervals, Kubernetes' own Events in its window; and the run's
warnings (a watch of the orchestrator that kept failing). HTML fragments, every text escaped;
they read summary.json's `impact_kind`, `latency_impact`, `expected`, `k8s_events` and
`warnings` (harness.analysis)."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping

from harness.analysis.formats import NONE
from harness.analysis.formats import millis as _ms
from harness.analysis.formats import seconds as _secs
from harness.analysis.jsonview import as_list, as_map

DEPARTS = ("slower", "faster")
KIND_WORDS = {
    "errors": "errors: requests or probes failed",
    "latency": "latency: answers slower than the baseline allows, none failing more",
    "both": "errors and latency: failures, and slow answers",
}


def esc(value: object) -> str:
    return html.escape(NONE if value is None else str(value))


def impact_cell(fault: Mapping[str, object]) -> str:
    """The impact column: `errors`, `latency`, `both`, or why there is none."""
    kind = fault.get("impact_kind")
    if kind is not None:
        css = "no_data" if kind == "latency" else "fail"
        return f'<span class="badge {css}">{esc(kind)}</span>'
    impact = fault.get("impact")
    return '<span class="badge na">' + esc("none" if impact == "none" else impact) + "</span>"


def latency_paragraph(fault: Mapping[str, object], since: str) -> str:
    """What the latency rule saw: the limits and, when slowed, its own ttd and ttr."""
    latency = as_map(fault.get("latency_impact"))
    if not latency:
        return ""
    limits = as_map(latency.get("limits"))
    words = [
        f"{kind}: window median {_ms(as_map(limit).get('baseline_median_ms'))} in the baseline, "
        f"limit {_ms(as_map(limit).get('limit_ms'))}"
        for kind, limit in limits.items()
        if limit
    ]
    head = f"impact: {KIND_WORDS.get(str(fault.get('impact_kind')), 'none visible')}. "
    text = head + "Latency judged on the " + str(latency.get("statistic"))
    text += "; " + ("; ".join(words) if words else "no kind had enough baseline windows")
    if latency.get("visible"):
        text += (
            f". Slow from {since} (ttd {_secs(latency.get('ttd_s'))}), back within the limit "
            f"at ttr {_secs(latency.get('ttr_s'))}"
        )
    if latency.get("reason"):
        text += f" ({latency.get('reason')})"
    return f'<p class="latency">{esc(text)}.</p>'


def expected_list(fault: Mapping[str, object]) -> str:
    """The timers' predictions beside the measured intervals, a departure flagged."""
    items = []
    for raw in as_list(fault.get("expected")):
        prediction = as_map(raw)
        verdict = str(prediction.get("verdict"))
        css = "fail" if verdict in DEPARTS else ("pass" if verdict == "as_predicted" else "na")
        flag = f'<span class="badge {css}">{esc(verdict.replace("_", " "))}</span>'
        source = prediction.get("source")
        who = f" [{esc(prediction.get('instance'))}]" if prediction.get("instance") else ""
        items.append(
            f"<li>{flag} {esc(prediction.get('interval'))}{who}: {esc(prediction.get('rule'))}"
            f" <span class='meta'>({esc(source)})</span></li>"
        )
    if not items:
        return ""
    return (
        "<p class='meta'>what the orchestrator's settings predict for these intervals "
        "(a verdict other than 'as predicted' departs from its own timers):</p>"
        f"<ul class='expected'>{''.join(items)}</ul>"
    )


def k8s_events_table(fault: Mapping[str, object], since: Callable[[object], str]) -> str:
    """Kubernetes' own Events in the fault's window (`since`: a time in the report's words)."""
    rows = []
    for raw in as_list(fault.get("k8s_events")):
        event = as_map(raw)
        when = since(event.get("time_ns"))
        css = "fail" if event.get("type") == "Warning" else "na"
        rows.append(
            f"<tr><td>{when}</td><td><span class='badge {css}'>{esc(event.get('type'))}"
            f"</span></td><td>{esc(event.get('reason'))}</td><td>{esc(event.get('object'))}</td>"
            f"<td>{esc(event.get('count'))}</td><td>{esc(event.get('note'))}</td></tr>"
        )
    if not rows:
        return ""
    head = "".join(f"<th>{h}</th>" for h in ("at", "type", "reason", "object", "count", "note"))
    return (
        f"<p class='meta'>Kubernetes' own Events in the fault's window:</p>"
        f"<table><tr>{head}</tr>{''.join(rows)}</table>"
    )


def warnings_section(summary: Mapping[str, object]) -> str:
    """The run's warnings, each a note: a hole in the engine's view is never silent."""
    warnings = [str(w) for w in as_list(summary.get("warnings"))]
    if not warnings:
        return ""
    notes = "".join(f'<p class="note">{esc(w)}</p>' for w in warnings)
    return f"<h2>Warnings</h2>{notes}"
