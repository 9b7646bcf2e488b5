"""Whether runs were measured the same way, so that ranking them means something.

A recovery time through a Service (kube-proxy routing around a dead pod) and one on a replica's
own requests answer different questions; so do availabilities over different windows. Runs are
compared only when they agree on:

- `load.routing` (summary.json: `service` or `per_instance`): the path the load took;
- the `view` of their faults (`instance` or `service`): the stream each fault was measured on;
- `analysis.window_s`: the fixed window of availability and lost requests after a fault.

A field a run's summary lacks (a run from before it was recorded) is "not recorded": such runs
compare only with runs equally without it, and the comparison says so. `measurement(runs)`
returns what the runs share; it raises ScenarioError (exit 2) naming every difference and the
runs on each side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.errors import ScenarioError
from harness.results.summary import Summary

NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class Measurement:
    """How a run was measured: the load's routing, its faults' views, the analysis window."""

    routing: str | None
    views: tuple[str, ...] | None  # () without faults: nothing measured, agrees with any view
    window_s: float | None

    def fields(self) -> dict[str, str]:
        """Each field as the refusal and the report print it."""
        return {
            "load.routing": self.routing or NOT_RECORDED,
            "faults' view": NOT_RECORDED
            if self.views is None
            else ", ".join(self.views) or "no fault",
            "analysis.window_s": NOT_RECORDED if self.window_s is None else f"{self.window_s:g} s",
        }

    def describe(self) -> str:
        """'load.routing service; faults' view service; analysis.window_s 10 s', with a note
        for the fields the runs' versions did not record."""
        fields = self.fields()
        text = "; ".join(f"{name} {value}" for name, value in fields.items())
        missing = [name for name, value in fields.items() if value == NOT_RECORDED]
        if missing:
            text += (
                f" ({', '.join(missing)} not recorded by these runs' version: they are compared "
                "only with runs equally without it)"
            )
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "routing": self.routing,
            "views": None if self.views is None else list(self.views),
            "window_s": self.window_s,
            "description": self.describe(),
        }


def measurement_of(summary: Summary) -> Measurement:
    """What one run's summary says of how it was measured (absent fields: None; a run without
    faults has the views ())."""
    faults = summary.faults
    views = sorted({f.view for f in faults if f.view is not None})
    return Measurement(
        summary.load.routing,
        tuple(views) if views or not faults else None,
        summary.analysis.window_s,
    )


def measurement(runs: Sequence[tuple[str, Summary]]) -> Measurement | None:
    """The measurement every run (run id, summary) shares; None without runs.

    Raises ScenarioError naming each field that differs and which runs measured it how."""
    if not runs:
        return None
    by_run = [(run_id, measurement_of(summary)) for run_id, summary in runs]
    problems = []
    for name in by_run[0][1].fields():
        sides: dict[str, list[str]] = {}
        for run_id, measured in by_run:
            if name == "faults' view" and measured.views == ():
                continue  # a run without faults measured none: it agrees with any view
            sides.setdefault(measured.fields()[name], []).append(run_id)
        if len(sides) > 1:
            problems.append(_difference(name, sides))
    if problems:
        raise ScenarioError(
            [
                *problems,
                "runs measured on different routing, views or windows are not ranked: their "
                "numbers answer different questions; rerun them with the same load.routing "
                "and analysis.window (scenario), or compare each kind apart",
            ]
        )
    with_faults = [m for _, m in by_run if m.views != ()]
    return with_faults[0] if with_faults else by_run[0][1]


def _difference(name: str, sides: Mapping[str, list[str]]) -> str:
    """'load.routing differs: service (k8s-1, k8s-2) vs per_instance (docker-1)'."""
    parts = [f"{value} ({', '.join(_few(run_ids))})" for value, run_ids in sides.items()]
    return f"{name} differs: " + " vs ".join(parts)


def _few(run_ids: Sequence[str], limit: int = 4) -> list[str]:
    if len(run_ids) <= limit:
        return list(run_ids)
    return [*run_ids[:limit], f"{len(run_ids) - limit} more"]
