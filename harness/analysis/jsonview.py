"""Read values out of a loaded summary.json without trusting their types."""

from __future__ import annotations

import math
from collections.abc import Mapping


def as_map(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def as_number(value: object) -> float | None:
    """A finite number, or None (booleans and NaN are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
