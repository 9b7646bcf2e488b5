"""container_stop, container_pause, container_restart on the real engine, with measured
effects on requests, their reverts, and an abort test (harness SIGKILLed mid-fault)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from faults.base import FaultContext, FaultParams
from faults.container_pause import ContainerPause
from faults.container_restart import ContainerRestart, ContainerRestartParams
from faults.container_stop import ContainerStop, ContainerStopParams
from harness.http_probe import probe_once
from tests.abort import (
    SCENARIOS,
    finish_with_cleanup,
    run_and_kill_during_fault,
    shortened,
    wait_for_lease_revert,
)
from tests.conftest import DeployFactory

pytestmark = pytest.mark.docker


def _answers(url: str, timeout_s: float = 0.5) -> tuple[bool, str | None]:
    return probe_once(f"{url}/health", timeout_s)


def _wait_answering(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _answers(url)[0]:
            return True
        time.sleep(0.1)
    return False


def test_stop_makes_requests_fail_and_revert_starts_it_again(
    deploy: DeployFactory, fault_context: Callable[..., FaultContext]
) -> None:
    target = deploy(replicas=1)
    ctx = fault_context(target)
    instance = target.instances()[0]
    fault = ContainerStop(ContainerStopParams(timeout=2))
    record = fault.plan(ctx, "f1", [instance])
    fault.apply(ctx, record)

    assert target.instances()[0].state == "exited"
    ok, error = _answers(instance.url)
    assert not ok and error is not None
    fault.revert(ctx, record)
    fault.revert(ctx, record)  # idempotent
    assert target.instances()[0].state == "running"
    assert _wait_answering(instance.url, 10)


def test_pause_hangs_requests_until_unpaused(
    deploy: DeployFactory, fault_context: Callable[..., FaultContext]
) -> None:
    target = deploy(replicas=1)
    ctx = fault_context(target)
    instance = target.instances()[0]
    fault = ContainerPause(FaultParams())
    record = fault.plan(ctx, "f1", [instance])
    fault.apply(ctx, record)

    started = time.perf_counter()
    ok, error = _answers(instance.url, timeout_s=1.0)
    waited = time.perf_counter() - started
    assert (ok, error) == (False, "timeout")  # frozen: connections hang, nothing is refused
    assert waited >= 0.9
    fault.revert(ctx, record)
    fault.revert(ctx, record)
    assert target.instances()[0].state == "running"
    assert _answers(instance.url, timeout_s=2.0) == (True, None)


def test_restart_replaces_the_process_and_it_comes_back(
    deploy: DeployFactory, fault_context: Callable[..., FaultContext]
) -> None:
    target = deploy(replicas=1)
    ctx = fault_context(target)
    before = target.instances()[0]
    fault = ContainerRestart(ContainerRestartParams(timeout=1))
    fault.apply(ctx, fault.plan(ctx, "f1", [before]))

    after = target.instances()[0]
    assert after.container_id == before.container_id
    assert after.pid not in (0, before.pid)
    assert _wait_answering(after.url, 10)


@pytest.mark.parametrize("kind", ["container_stop", "container_pause"])
def test_abort_mid_fault_the_lease_reverts_it(kind: str, tmp_path: Path) -> None:
    scenario = shortened(SCENARIOS / f"{kind}.yaml", tmp_path)
    aborted = run_and_kill_during_fault(scenario, tmp_path / "runs")
    assert {i.state for i in aborted.instances()} != {"running"}  # the fault is in place
    wait_for_lease_revert(aborted)
    assert {i.state for i in aborted.instances()} == {"running"}
    finish_with_cleanup(aborted)
