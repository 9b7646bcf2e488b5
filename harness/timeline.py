"""Expand the scenario's fault entries into timed occurrences: one-off, repeated, overlapping.

The N-th entry of the scenario is `fN`; a repeated entry (`every`, `times`) has one occurrence
per injection, `fN#1`, `fN#2`..., each analysed on its own (its own detection, recovery and
phases) and summed up per entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.scenario import FaultEntry
from harness.specs import occurrence_id


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
        return occurrence_id(self.entry_index, None)

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
        for k, at_s in enumerate(entry.start_times(load_duration_s), start=1):
            repeat = k if entry.every is not None else None
            revert_at = None if entry.duration is None else at_s + entry.duration
            occurrences.append(
                Occurrence(occurrence_id(index, repeat), index, entry, at_s, revert_at, repeat)
            )
    return sorted(occurrences, key=lambda o: (o.at_s, o.fault_id))


def actions(occurrences: Sequence[Occurrence]) -> list[Action]:
    """Inject and revert actions in time order; at equal times reverts go first."""
    planned = [Action(o.at_s, "inject", o) for o in occurrences]
    planned += [
        Action(o.revert_at_s, "revert", o) for o in occurrences if o.revert_at_s is not None
    ]
    return ordered(planned)


def ordered(planned: Iterable[Action]) -> list[Action]:
    """Actions in time order; at equal times reverts go first (they free what the next takes)."""
    return sorted(planned, key=lambda a: (a.at_s, a.verb != "revert", a.occurrence.fault_id))
