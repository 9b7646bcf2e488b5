"""Shared fixtures: the real Docker engine, the demo image, a deployed workload.

Tests that touch the engine are marked `docker`; tests that take minutes are marked `slow`
and run only with --run-slow (or `make bench`-style explicit runs).
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from faults.base import FaultContext
from harness.images import build_demo_image
from harness.scenario import WorkloadSpec
from harness.targets import target_spec
from harness.targets.base import RUN_LABEL
from harness.targets.docker.target import DockerTarget, connect


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    return connect(None)


@pytest.fixture(scope="session")
def demo_image(docker_client: docker.DockerClient) -> str:
    return build_demo_image(docker_client)


def labelled_objects(client: docker.DockerClient, run_id: str) -> list[str]:
    """Every container, network and volume that still carries the run's label."""
    label = {"label": f"{RUN_LABEL}={run_id}"}
    return [
        *(f"container {c.name}" for c in client.containers.list(all=True, filters=label)),
        *(f"network {n.name}" for n in client.networks.list(filters=label)),
        *(f"volume {v.name}" for v in client.volumes.list(filters=label)),
    ]


DeployFactory = Callable[..., DockerTarget]


@pytest.fixture
def deploy(docker_client: docker.DockerClient, demo_image: str) -> Iterator[DeployFactory]:
    """Deploy the demo workload (or a variant) on the real engine; removed after the test."""
    targets: list[DockerTarget] = []

    def _deploy(**workload: object) -> DockerTarget:
        run_id = f"test-{secrets.token_hex(3)}"
        target = DockerTarget(run_id, target_spec("docker"), docker_client)
        targets.append(target)
        target.deploy(WorkloadSpec.model_validate({"replicas": 1, **workload}))
        target.wait_healthy(60)
        return target

    yield _deploy
    for target in targets:
        target.teardown()
        assert labelled_objects(docker_client, target.run_id) == []


@pytest.fixture
def fault_context(tmp_path: Path) -> Callable[[DockerTarget], FaultContext]:
    def _context(target: DockerTarget) -> FaultContext:
        return FaultContext(target, target.run_id, tmp_path, random.Random(7))

    return _context
