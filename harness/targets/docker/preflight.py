"""The Docker engine's checks before a run (Target.preflight): the engine answers and holds
the workload's image. Podman's given engine and Swarm use them too."""

from __future__ import annotations

from collections.abc import Callable

import docker
import docker.errors

from harness.errors import ScenarioError, TargetError
from harness.specs import ScenarioBase
from harness.targets.docker.engine import connect
from harness.targets.docker.spec import EngineSpec, engine_spec

ENGINE_CHECK_TIMEOUT_S = 10
DEMO_IMAGES = ("demo",)


def engine_preflight(
    scenario: ScenarioBase,
    engine: str | None,
    then: Callable[[docker.DockerClient], None] | None = None,
) -> None:
    """The engine at `engine` answers and holds the image (for a lab: the host's engine, which
    builds it); then `then`, a target's own check on that engine."""
    spec = engine_spec(scenario.target)
    client = engine_client(spec, engine)
    try:
        image_check(scenario, client, where(spec))
        if then is not None:
            then(client)
    finally:
        client.close()


def where(spec: EngineSpec) -> str:
    return spec.engine or "DOCKER_HOST / unix:///var/run/docker.sock"


def engine_client(spec: EngineSpec, engine: str | None) -> docker.DockerClient:
    """The engine of the run (for a lab, the host's engine, which builds and holds images)."""
    try:
        return connect(engine, timeout_s=ENGINE_CHECK_TIMEOUT_S)
    except TargetError as exc:
        raise TargetError(
            f"{exc}\nthe {spec.kind} target needs a running engine: start the host's with "
            "`make setup` (it runs `harness engine up`), or point target.engine (or "
            "DOCKER_HOST) at an engine that runs; nothing was deployed"
        ) from exc


def image_check(scenario: ScenarioBase, client: docker.DockerClient, where: str) -> None:
    image = scenario.workload.image
    if image in DEMO_IMAGES:
        return  # built locally on first use
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise ScenarioError(
            [
                f"workload.image: no image {image!r} on the engine at {where}, and no registry "
                "can be reached from here: build it locally (docker build -t "
                f"{image} .; docker load -i FILE for a saved one) or use image: demo"
            ]
        ) from None
    except docker.errors.APIError as exc:
        raise TargetError(f"cannot inspect image {image!r} on {where}: {exc}") from exc
