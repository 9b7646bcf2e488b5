"""The wait helper: how often it asks, when it gives up, and what it raises (pure timing, no
engine)."""

from __future__ import annotations

import time

import pytest

from harness.errors import FaultError, TargetError
from harness.waiting import wait_until


class Countdown:
    """A condition that holds from its `holds_at`-th call on, counting its calls."""

    def __init__(self, holds_at: int) -> None:
        self.calls, self.holds_at = 0, holds_at

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.holds_at


def test_returns_as_soon_as_the_condition_holds() -> None:
    condition = Countdown(3)
    began = time.monotonic()
    assert wait_until(condition, timeout_s=30, interval_s=0.01) is True
    assert condition.calls == 3
    assert time.monotonic() - began < 5  # two short sleeps, not the timeout


def test_a_condition_that_holds_at_once_is_asked_once_without_sleeping() -> None:
    condition = Countdown(1)
    assert wait_until(condition, timeout_s=0, interval_s=60) is True
    assert condition.calls == 1


def test_without_a_message_the_timeout_returns_false_after_asking_at_the_deadline() -> None:
    condition = Countdown(10**9)
    began = time.monotonic()
    assert wait_until(condition, timeout_s=0.3, interval_s=10) is False
    waited = time.monotonic() - began
    assert 0.3 <= waited < 5  # the 10 s interval is cut to the time left
    assert condition.calls == 2  # at once, and at the deadline


def test_the_interval_spaces_the_calls() -> None:
    condition = Countdown(10**9)
    wait_until(condition, timeout_s=0.5, interval_s=0.1)
    assert 3 <= condition.calls <= 7  # about 0.5 / 0.1 + 1; fewer on a loaded machine


def test_the_timeout_raises_the_given_error_with_the_message() -> None:
    with pytest.raises(FaultError, match=r"^still busy$"):
        wait_until(
            lambda: False, timeout_s=0.05, interval_s=0.01, failure="still busy", error=FaultError
        )
    with pytest.raises(TargetError, match="never"):
        wait_until(lambda: False, timeout_s=0, failure="never")


def test_a_message_function_is_called_at_the_timeout_only() -> None:
    condition, messages = Countdown(10**9), []

    def failure() -> str:
        messages.append(condition.calls)
        return f"asked {condition.calls} times"

    assert wait_until(Countdown(2), timeout_s=5, interval_s=0.01, failure=failure) is True
    assert messages == []
    with pytest.raises(TargetError, match=r"^asked \d+ times$") as raised:
        wait_until(condition, timeout_s=0.2, interval_s=0.05, failure=failure)
    assert messages == [condition.calls] and f"{condition.calls} times" in str(raised.value)


def test_an_exception_of_the_condition_ends_the_wait() -> None:
    def died() -> bool:
        raise FaultError("the process exited")

    with pytest.raises(FaultError, match="exited"):
        wait_until(died, timeout_s=30, interval_s=0.01, failure="not this one")
