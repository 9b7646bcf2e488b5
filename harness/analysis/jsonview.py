"""Read a number out of decoded JSON without trusting its type."""

from __future__ import annotations

import math


def as_number(value: object) -> float | None:
    """A finite number, or None (booleans and NaN are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
