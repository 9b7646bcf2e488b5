"""Podman's checks before a run when the run starts its own Podman service."""

from __future__ import annotations

import shutil

from harness import commands
from harness.errors import CapabilityError, CommandError, ScenarioError, TargetError
from harness.specs import ScenarioBase
from harness.targets.docker.preflight import DEMO_IMAGES


def podman_preflight(scenario: ScenarioBase) -> None:
    podman = shutil.which("podman")
    if podman is None:
        raise CapabilityError(
            "target podman needs Podman: apt-get install -y podman containernetworking-plugins"
        )
    image = scenario.workload.image
    if image in DEMO_IMAGES:
        return
    try:
        done = commands.run([podman, "image", "exists", image], timeout_s=60, check=False)
    except CommandError as exc:
        raise TargetError(f"cannot ask Podman for image {image!r}: {exc}") from exc
    if done.returncode == 1:
        raise ScenarioError(
            [
                f"workload.image: no image {image!r} in Podman's store, and no registry can be "
                f"reached from here: build it (podman build -t {image} .), copy it from Docker "
                f"(docker save {image} | podman load) or use image: demo"
            ]
        )
