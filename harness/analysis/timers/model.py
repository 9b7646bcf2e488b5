"""A prediction of one measured interval from the orchestrator's own timers, and its verdict.

A rule gives a range [low_s, high_s] for an interval (high_s None: no upper bound; both None:
the rule predicts that the thing never happens, a restart the policy does not make). The
measured value is judged against it, widened by the measurement's own uncertainty
(`tolerance_s`: an event the API stamps to the second can be up to a second late):

- `as_predicted`: within the range (or nothing happened, as predicted);
- `faster`: below it (or it happened where the rule says it never does);
- `slower`: above it (or it never happened where the rule says it does, by the data's end);
- `not_measured`: the run has no measurement of that interval.

Each range is the timer itself plus, where the interval includes it, an allowance for the
machine's own work (starting a container, writing a status): that work is not a timer, so the
allowance is named in the rule (its measurements: docs/METRICS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.results.summary import Expectation

Verdict = Literal["as_predicted", "slower", "faster", "not_measured"]
Source = Literal["settings", "published default"]
SETTINGS: Source = "settings"
PUBLISHED: Source = "published default"


@dataclass(frozen=True)
class Setting:
    """One value a rule relies on, and where it came from (`where`: the file and key, or the
    source file and constant of a published default)."""

    value: float
    source: Source
    where: str

    def words(self, unit: str = "s") -> str:
        """'5 s [settings: scenario.yaml target.swarm.restart_delay]' and the like."""
        return f"{self.value:g} {unit} [{self.source}: {self.where}]".replace("  ", " ")


def combined_source(*settings: Setting) -> Source:
    """'settings' when every value came from the run, else 'published default'."""
    return SETTINGS if all(s.source == SETTINGS for s in settings) else PUBLISHED


@dataclass(frozen=True)
class Prediction:
    """What the orchestrator's settings predict for one interval of one fault, and how the
    measured value compares (field meanings in this module's docstring)."""

    interval: str  # die_to_start, start_to_healthy, kill_to_die, to_node_down, ...
    instance: str | None
    rule: str  # one sentence: the measured value, the rule and the range it predicts
    low_s: float | None
    high_s: float | None
    source: Source
    measured_s: float | None
    verdict: Verdict
    tolerance_s: float = 0.0

    def record(self) -> Expectation:
        """As summary.json writes it (a fault's `expected`)."""
        return Expectation(
            interval=self.interval,
            instance=self.instance,
            rule=self.rule,
            low_s=_round(self.low_s),
            high_s=_round(self.high_s),
            source=self.source,
            measured_s=_round(self.measured_s),
            verdict=self.verdict,
            tolerance_s=_round(self.tolerance_s),
        )


def judge(
    measured_s: float | None,
    low_s: float | None,
    high_s: float | None,
    tolerance_s: float = 0.0,
    *,
    never: bool = False,
) -> Verdict:
    """The verdict of a measured value against [low_s, high_s] (see the module docstring).
    `never`: the rule predicts the thing does not happen at all."""
    if never:
        return "as_predicted" if measured_s is None else "faster"
    if measured_s is None:
        return "not_measured"
    if low_s is not None and measured_s + tolerance_s < low_s:
        return "faster"
    if high_s is not None and measured_s - tolerance_s > high_s:
        return "slower"
    return "as_predicted"


def range_words(low_s: float | None, high_s: float | None) -> str:
    """'10.0–17.0 s', 'no sooner than 0.1 s', or 'no restart'."""
    if low_s is None and high_s is None:
        return "nothing"
    if high_s is None:
        return f"no sooner than {low_s:.2f} s"
    if low_s is None or low_s <= 0:
        return f"at most {high_s:.2f} s"
    return f"{low_s:.2f}–{high_s:.2f} s"


VERDICT_WORDS = {
    "as_predicted": "as predicted",
    "slower": "SLOWER than predicted",
    "faster": "FASTER than predicted",
    "not_measured": "not measured",
}


def sentence(
    measured_words: str, measured_s: float | None, why: str, predicted: str, verdict: Verdict
) -> str:
    """'restarted 16.2 s after it died: <why> predict 10.0–17.0 s (as predicted)'."""
    head = measured_words.format(s=measured_s) if measured_s is not None else "not measured"
    return f"{head}: {why} predict {predicted} ({VERDICT_WORDS[verdict]})"


RESTARTED = "restarted {s:.2f} s after it died"  # what die_to_start measured, for `sentence`
HEALTHY = "healthy {s:.2f} s after it started"  # and start_to_healthy


def ranged(
    interval: str,
    instance: str | None,
    words: str,
    measured_s: float | None,
    why: str,
    low_s: float,
    high_s: float,
    source: Source,
    tolerance_s: float = 0.0,
) -> Prediction:
    """The prediction that `interval` lasts [low_s, high_s], judged and said in one sentence
    (`words`: what was measured, as `sentence` takes it)."""
    verdict = judge(measured_s, low_s, high_s, tolerance_s)
    rule = sentence(words, measured_s, why, range_words(low_s, high_s), verdict)
    return Prediction(
        interval, instance, rule, low_s, high_s, source, measured_s, verdict, tolerance_s
    )


def never(
    interval: str,
    instance: str | None,
    words: str,
    measured_s: float | None,
    why: str,
    nothing: str,
    source: Source,
) -> Prediction:
    """The prediction that the thing does not happen at all (`nothing`: 'no restart')."""
    verdict = judge(measured_s, None, None, never=True)
    rule = sentence(words, measured_s, why, nothing, verdict)
    return Prediction(interval, instance, rule, None, None, source, measured_s, verdict)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
