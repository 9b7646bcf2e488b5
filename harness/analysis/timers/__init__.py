"""Each fault's measured intervals against what the orchestrator's own timers predict.

`predictions(run, fault_summary)` takes one fault of summary.json (`faults[]`: its
`orchestrator[]`, `cluster`, kind and targets) and returns, per interval the target's rules
cover, the range the settings in force predict, the rule in one sentence, where the values came
from (`settings`: the run's scenario.yaml or manifest; `published default`: the orchestrator's
source or documentation, where the run does not reveal it) and a verdict (as_predicted,
slower, faster, not_measured): harness.analysis.timers.model. One module per orchestrator holds
its rules, each citing the source file and function it follows; a target kind names its module
(TargetKind.timers), so a new orchestrator's rules need no edit here. Nothing here talks to an
engine: it reads the run's files.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

from harness.analysis.data import RunData
from harness.analysis.timers.inputs import TimerInputs, timer_inputs
from harness.analysis.timers.model import Prediction, Verdict
from harness.results.summary import FaultSummary
from harness.targets import target_kinds

__all__ = ["Prediction", "Verdict", "predictions", "predictions_for", "predictor_for"]

Predictor = Callable[[TimerInputs], list[Prediction]]


def predictor_for(target: str) -> Predictor | None:
    """The timer rules the target kind names (None: an unknown kind, or one without rules)."""
    kind = target_kinds().get(target)
    if kind is None or kind.timers is None:
        return None
    module_name, _, attr = kind.timers.partition(":")
    found: Predictor = getattr(importlib.import_module(module_name), attr)
    return found


def predictions(run: RunData, fault: FaultSummary | Mapping[str, object]) -> list[Prediction]:
    """What the target's timers predict for one fault of summary.json (the model or decoded),
    with verdicts (empty for a target without rules)."""
    return predictions_for(run.manifest.target, timer_inputs(run, fault))


def predictions_for(target: str, inputs: TimerInputs) -> list[Prediction]:
    predictor = predictor_for(target)
    return [] if predictor is None else predictor(inputs)
