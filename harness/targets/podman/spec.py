"""The Podman target's scenario settings."""

from __future__ import annotations

from typing import Literal

from harness.targets.docker.spec import AgentEngineSpec


class PodmanSpec(AgentEngineSpec):
    kind: Literal["podman"] = "podman"
