"""Expand the scenario's fault entries into timed occurrences: one-off, repeated, overlapping.

The N-th entry of the scenario is `fN`; a repeated entry (`every`, `times`) has one occurrence
per injection, `fN#1`, `fN#2`..., each analysed on its own (its own detection, recovery and
phases) and summed up per entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.scenario import FaultEntry


@dataclass(frozen=True)
class Occurrence:
    """One injection of one fault entry, with its own id (its own band and summary entry)."""

    fault_id: str
    entry_index: int
    entry: FaultEntry
    at_s: float
    revert_at_s: float | None
    repeat: int | None = None  # 1, 2... for a repeated entry; None for a one-off entry

    @property
    def entry_id(self) -> str:
        return f"f{self.entry_index}"

    @property
    def label(self) -> str:
        return self.entry.name or self.entry.kind


@dataclass(frozen=True)
class Action:
    at_s: float
    verb: str  # "inject" or "revert"
    occurrence: Occurrence


def expand(entries: Sequence[FaultEntry], load_duration_s: float) -> list[Occurrence]:
    """Every occurrence that starts before the load ends, in time order."""
    occurrences = []
    for index, entry in enumerate(entries, start=1):
        starts = _starts(entry, load_duration_s)
        for repeat, at_s in enumerate(starts, start=1):
            repeated = entry.every is not None
            fault_id = f"f{index}#{repeat}" if repeated else f"f{index}"
            revert_at = None if entry.duration is None else at_s + entry.duration
            occurrences.append(
                Occurrence(fault_id, index, entry, at_s, revert_at, repeat if repeated else None)
            )
    return sorted(occurrences, key=lambda o: (o.at_s, o.fault_id))


def _starts(entry: FaultEntry, load_duration_s: float) -> list[float]:
    if entry.every is None:
        return [entry.at]
    starts: list[float] = []
    at_s = entry.at
    while at_s < load_duration_s and (entry.times is None or len(starts) < entry.times):
        starts.append(at_s)
        at_s += entry.every
    return starts


def actions(occurrences: Sequence[Occurrence]) -> list[Action]:
    """Inject and revert actions in time order; at equal times reverts go first."""
    planned = [Action(o.at_s, "inject", o) for o in occurrences]
    planned += [
        Action(o.revert_at_s, "revert", o) for o in occurrences if o.revert_at_s is not None
    ]
    return sorted(planned, key=lambda a: (a.at_s, a.verb != "revert", a.occurrence.fault_id))
