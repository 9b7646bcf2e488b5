"""Numbers of summary.json as text: one place for the HTML report, its explanations and the
Markdown summary, so a value reads the same everywhere (NONE where there is none)."""

from __future__ import annotations

from harness.analysis.jsonview import as_number

NONE = "—"


def seconds(value: object, digits: int = 3) -> str:
    number = as_number(value)
    return NONE if number is None else f"{number:.{digits}f} s"


def percent(value: object) -> str:
    number = as_number(value)
    return NONE if number is None else f"{100 * number:.2f} %"


def millis(value: object, unit: str = " ms") -> str:
    number = as_number(value)
    return NONE if number is None else f"{number:.1f}{unit}"
