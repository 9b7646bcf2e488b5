"""One line per repeated fault entry, over its occurrences (f1#1, f1#2, ...).

Each occurrence is measured on its own (harness.analysis.metrics); the aggregate says how many
had a visible impact, recovered, never recovered, were censored (the data ended before their
recovery could be shown) or had nothing to measure, and the median and
maximum of ttd_s and ttr_s over the occurrences that have one. An occurrence without visible
impact has no ttr: it is counted apart, never as a 0 s recovery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.analysis.metrics import FaultMetrics


@dataclass(frozen=True)
class EntrySummary:
    entry: str
    kind: str
    occurrences: tuple[FaultMetrics, ...]

    def to_dict(self) -> dict[str, object]:
        runs = self.occurrences
        return {
            "id": self.entry,
            "kind": self.kind,
            "occurrences": [m.fault.fault_id for m in runs],
            "visible_impact": sum(m.impact == "visible" for m in runs),
            "no_impact": sum(m.impact == "none" for m in runs),
            "unmeasured": sum(m.impact == "unmeasured" for m in runs),
            "recovered": sum(m.recovered is True for m in runs),
            "unrecovered": [m.fault.fault_id for m in runs if m.recovered is False],
            "censored": [m.fault.fault_id for m in runs if m.censored],
            "ttd_s": _spread([m.ttd_s for m in runs]),
            "ttr_s": _spread([m.ttr_s for m in runs if m.recovered]),
            "failed_requests": sum(m.window.failed_requests for m in runs),
        }


def _spread(values: Sequence[float | None]) -> dict[str, object]:
    known = [v for v in values if v is not None]
    if not known:
        return {"n": 0, "median": None, "max": None}
    median = round(float(np.median(known)), 3)
    return {"n": len(known), "median": median, "max": round(max(known), 3)}


def repeated_entries(faults: Sequence[FaultMetrics]) -> list[EntrySummary]:
    """The entries with more than one occurrence, in the order of their first injection."""
    groups: dict[str, list[FaultMetrics]] = {}
    for metrics in faults:
        if metrics.fault.occurrence is not None:
            groups.setdefault(metrics.fault.entry or metrics.fault.fault_id, []).append(metrics)
    return [
        EntrySummary(entry, runs[0].fault.kind, tuple(runs))
        for entry, runs in groups.items()
        if len(runs) > 1
    ]
