"""Waiting until a condition holds: the harness's one poll loop."""

from __future__ import annotations

import time
from collections.abc import Callable

from harness.errors import HarnessError, TargetError


def wait_until(
    condition: Callable[[], bool],
    timeout_s: float,
    interval_s: float = 0.1,
    failure: str | Callable[[], str] | None = None,
    error: type[HarnessError] = TargetError,
) -> bool:
    """Call `condition` every `interval_s` until it returns true, for at most `timeout_s`.

    It is called at once and once more at the deadline, so a zero timeout still asks once.
    True when it held. At the timeout: `error(failure)` when a failure message is given (a
    callable is called then, to name what was still missing), else False. An exception of
    `condition` (a process that died while awaited) ends the wait."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if failure is None:
                return False
            raise error(failure() if callable(failure) else failure)
        time.sleep(min(interval_s, remaining))
    return True
