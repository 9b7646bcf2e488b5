"""container_kill on the real engine: a host-side SIGKILL is a crash (restarted); an API kill
is a manual stop (not restarted)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from faults.base import FaultContext
from faults.container_kill import ContainerKill, ContainerKillParams
from tests.conftest import DeployFactory
from tests.helpers import wait_until

pytestmark = pytest.mark.docker


def test_host_sigkill_is_a_crash_and_the_restart_policy_brings_it_back(
    deploy: DeployFactory, fault_context: Callable[..., FaultContext]
) -> None:
    target = deploy(replicas=1, restart="always")
    ctx = fault_context(target)
    before = target.instances()[0]
    fault = ContainerKill(ContainerKillParams(mode="signal"))
    fault.apply(ctx, fault.plan(ctx, "f1", [before]))

    assert wait_until(lambda: target.instances()[0].pid not in (0, before.pid), 10)
    after = target.instances()[0]
    assert after.container_id == before.container_id
    container = target.client.containers.get(after.container_id)
    assert container.attrs["RestartCount"] >= 1
    assert fault.restart_policy(target) is True


def test_api_kill_is_a_manual_stop_that_the_restart_policy_leaves_down(
    deploy: DeployFactory, fault_context: Callable[..., FaultContext]
) -> None:
    target = deploy(replicas=1, restart="always")
    ctx = fault_context(target)
    fault = ContainerKill(ContainerKillParams(mode="api"))
    fault.apply(ctx, fault.plan(ctx, "f1", target.instances()))

    assert wait_until(lambda: not target.instances()[0].running, 5)
    time.sleep(2.0)  # well past Docker's first restart back-off (100 ms)
    assert not target.instances()[0].running
    assert fault.restart_policy(target) is False
