"""Tidy tables for notebooks and ad-hoc exploration (notebooks/ use only these and the loaders).

    newest(results, "run" | "trials" | "matrix")   the latest directory of that kind
    requests_around(run, summary, "f1", margin_s)  raw requests near a fault, seconds from t0
    recovery_table(matrix)                         one row per run and fault: ttr, impact...

Nothing here measures anything new: the numbers come from summary.json (harness.analysis)
and the run's own files, so a notebook shows what the reports show.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from harness.analysis.data import RunData
from harness.analysis.matrix import Matrix
from harness.errors import AnalysisError
from harness.results.summary import FaultSummary, Summary, as_summary

MARKERS = {"run": "summary.json", "trials": "trials.json", "matrix": "matrix.json"}


def newest(results: Path, kind: str = "run") -> Path:
    """The most recently written directory of `kind` under `results` (AnalysisError if none)."""
    marker = MARKERS[kind]
    found = [p.parent for p in Path(results).glob(f"*/{marker}")]
    if not found:
        raise AnalysisError(f"no {kind} directory (with {marker}) under {results}")
    return max(found, key=lambda p: (p / marker).stat().st_mtime)


def fault_of(summary: Summary | Mapping[str, object], fault_id: str) -> FaultSummary:
    """The fault `fault_id` of a summary (the model, or summary.json decoded)."""
    summary = as_summary(summary)
    fault = summary.fault(fault_id)
    if fault is None:
        raise AnalysisError(f"no fault {fault_id!r} in run {summary.run_id}")
    return fault


def requests_around(
    run: RunData, summary: Summary | Mapping[str, object], fault_id: str, margin_s: float = 2.0
) -> pd.DataFrame:
    """The run's requests completed from `margin_s` before the fault's injection to `margin_s`
    after its recovery (or its window's end), with `t_s`: seconds from the injection, by
    completion. Columns: t_s, latency_ms, ok, endpoint, name, error."""
    fault = fault_of(summary, fault_id)
    t0 = fault.injected_at_ns
    end = fault.recovered_at_ns or fault.window_end_ns
    if t0 is None:
        raise AnalysisError(f"fault {fault_id} has no injection time")
    end = t0 if end is None else end
    margin = margin_s * 1e9
    requests = run.requests
    ends = requests["end_ns"]
    chosen = requests[(ends >= t0 - margin) & (ends <= end + margin)]
    frame = chosen.loc[:, ["latency_ms", "ok", "endpoint", "name", "error"]].copy()
    frame.insert(0, "t_s", (chosen["end_ns"] - int(t0)) / 1e9)
    return frame.reset_index(drop=True)


def recovery_table(matrix: Matrix) -> pd.DataFrame:
    """One row per compared run and fault: scenario, fault, target, run_id, impact,
    recovered, ttr_s, ttd_s, failed_requests, availability, response."""
    rows = []
    for scenario in matrix.scenarios:
        for fault in scenario.comparison.faults:
            for group in fault.groups:
                for sample in group.samples:
                    rows.append(
                        {
                            "scenario": scenario.scenario,
                            "fault": fault.key,
                            "target": group.group,
                            "run_id": sample.run_id,
                            "impact": sample.impact,
                            "recovered": sample.recovered,
                            "ttr_s": sample.values.get("ttr_s") if sample.recovered else None,
                            "ttd_s": sample.values.get("ttd_s"),
                            "failed_requests": sample.values.get("failed_requests"),
                            "availability": sample.values.get("availability"),
                            "response": sample.response,
                        }
                    )
    return pd.DataFrame(rows)
