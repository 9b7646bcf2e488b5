"""Parse the human units of scenario files: durations ("100ms", "2s", "1m"), sizes ("128Mi") and
rates ("200/s", "600/min")."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_FACTOR = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_POWER = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute))?\s*$")
_RATE_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}


def parse_duration(value: object) -> float:
    """Seconds from a number (seconds) or a string with a unit: ms, s, m, h."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '2s' or '100ms', got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return float(value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return float(match.group(1)) * _DURATION_FACTOR[match.group(2)]
    raise ValueError(f"expected a duration like '2s', '100ms' or '1m', got {value!r}")


def parse_size(value: object) -> int:
    """Bytes from a number (bytes) or a string: 512K, 128Mi, 1G (K/M/G/T are powers of 1024)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like '128Mi', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value!r}")
        return value
    if isinstance(value, str) and (match := _SIZE.match(value)):
        unit = (match.group(2) or "").upper().rstrip("B").rstrip("I")
        return int(float(match.group(1)) * 1024 ** _SIZE_POWER[unit])
    raise ValueError(f"expected a size like '128Mi', '512K' or '1G', got {value!r}")


def parse_rate(value: object) -> float:
    """Events per second from a number (per second) or a string: "200/s", "600/min", "50"."""
    if isinstance(value, bool):
        raise ValueError(f"expected a rate like '200/s', got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and (match := _RATE.match(value)):
        number = float(match.group(1)) / _RATE_PER.get(match.group(2) or "s", 1.0)
    else:
        raise ValueError(f"expected a rate like '200/s' or '600/min', got {value!r}")
    if number <= 0:
        raise ValueError(f"a rate must be positive, got {value!r}")
    return number


# Field types for pydantic models (scenario and fault params): "2s" -> 2.0, "128Mi" -> bytes.
Seconds = Annotated[float, BeforeValidator(parse_duration)]
Bytes = Annotated[int, BeforeValidator(parse_size)]
PerSecond = Annotated[float, BeforeValidator(parse_rate)]
