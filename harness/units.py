"""Parse the human units of scenario files: durations ("100ms", "2s", "1m"), sizes ("128Mi") and
rates ("200/s", "600/min").

Every parser raises ValueError, and only ValueError, for a value it refuses (pydantic turns that
into a field error with its line; any other exception would escape as a traceback): numbers
that are not finite, and numbers past what a scenario can mean (a duration over a week, a size
over 1 PiB, a rate over ten million a second), are refused with the limit in the message.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_FACTOR = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_POWER = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute))?\s*$")
_RATE_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
MAX_DURATION_S = 7 * 24 * 3600.0
MAX_SIZE = 2**50
MAX_RATE = 1e7


def _shown(value: object, limit: int = 40) -> str:
    """The value as the message quotes it, cut short when it is long."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-2:]}"


def _number(
    value: int | float | str, what: str, limit: float, unit: str, given: object = None
) -> float:
    """`value` as a float that is a number and at most `limit`; ValueError naming the limit and
    quoting `given` (what the scenario says; default `value`) otherwise."""
    quoted = _shown(value if given is None else given)
    try:
        number = float(value)
    except (OverflowError, ValueError):
        number = math.inf
    if math.isnan(number):
        raise ValueError(f"{what} must be a number, got {quoted}")
    if number > limit:
        raise ValueError(f"{what} can be at most {limit:g}{unit}, got {quoted}")
    return number


def parse_duration(value: object) -> float:
    """Seconds from a number (seconds) or a string with a unit: ms, s, m, h (a week at most)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '2s' or '100ms', got {_shown(value)}")
    if isinstance(value, int | float):
        seconds = _number(value, "a duration", MAX_DURATION_S, " s")
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        scaled = _number(match.group(1), "a duration", math.inf, "", value)
        factor = _DURATION_FACTOR[match.group(2)]
        seconds = _number(scaled * factor, "a duration", MAX_DURATION_S, " s", value)
    else:
        raise ValueError(f"expected a duration like '2s', '100ms' or '1m', got {_shown(value)}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {_shown(value)}")
    return seconds


def parse_size(value: object) -> int:
    """Bytes from a number (bytes) or a string: 512K, 128Mi, 1G (K/M/G/T are powers of 1024)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like '128Mi', got {_shown(value)}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {_shown(value)}")
        _number(value, "a size", MAX_SIZE, " bytes (1 PiB)")
        return value
    if isinstance(value, str) and (match := _SIZE.match(value)):
        unit = (match.group(2) or "").upper().rstrip("B").rstrip("I")
        number = _number(match.group(1), "a size", math.inf, "", value)
        scaled = number * 1024 ** _SIZE_POWER[unit]
        return int(_number(scaled, "a size", MAX_SIZE, " bytes (1 PiB)", value))
    raise ValueError(f"expected a size like '128Mi', '512K' or '1G', got {_shown(value)}")


def parse_rate(value: object) -> float:
    """Events per second from a number (per second) or a string: "200/s", "600/min", "50"."""
    if isinstance(value, bool):
        raise ValueError(f"expected a rate like '200/s', got {_shown(value)}")
    if isinstance(value, int | float):
        number = _number(value, "a rate", MAX_RATE, "/s")
    elif isinstance(value, str) and (match := _RATE.match(value)):
        count = _number(match.group(1), "a rate", math.inf, "", value)
        per = _RATE_PER.get(match.group(2) or "s", 1.0)
        number = _number(count / per, "a rate", MAX_RATE, "/s", value)
    else:
        raise ValueError(f"expected a rate like '200/s' or '600/min', got {_shown(value)}")
    if number <= 0:
        raise ValueError(f"a rate must be positive, got {_shown(value)}")
    return number


# Field types for pydantic models (scenario and fault params): "2s" -> 2.0, "128Mi" -> bytes.
Seconds = Annotated[float, BeforeValidator(parse_duration)]
Bytes = Annotated[int, BeforeValidator(parse_size)]
PerSecond = Annotated[float, BeforeValidator(parse_rate)]
