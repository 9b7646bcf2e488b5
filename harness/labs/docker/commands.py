"""What `harness lab` and `harness cleanup` ask of the Docker lab (harness.labs.LabCommands),
and the node faults' side of it: none (one engine, no nodes)."""

from __future__ import annotations

from pathlib import Path

import docker
import docker.errors

from harness.errors import FaultError, TargetError
from harness.labs import LabRequest, Progress, StatusView, down_if_orphaned
from harness.labs.docker.lab import DockerLab, DockerLabState, answers, daemon_pid
from harness.labs.nodes import LabNodes
from harness.owners import OWNER_LABEL, RUN_LABEL, owner_alive
from harness.specs import TargetSpec
from harness.targets import target_spec
from harness.targets.docker.engine import connect


class DockerLabCommands:
    def __init__(self, lab: DockerLab | None = None) -> None:
        self.lab = lab or DockerLab()

    def build(self, progress: Progress) -> Path | None:
        return None  # dockerd comes from the host's Debian packages

    def problems(self, request: LabRequest) -> list[str]:
        """One engine: the Swarm and Kubernetes shapes do not apply (--nodes is ignored)."""
        found = []
        if request.managers != 1:
            found.append("--managers is for --kind swarm: a Docker lab is one engine")
        if request.control_plane_args:
            found.append("--control-plane-args is for --kind kubernetes")
        return found

    def up(self, request: LabRequest, progress: Progress) -> list[str]:
        if request.nodes not in (1, LabRequest().nodes):
            progress(f"a Docker lab is one engine: --nodes {request.nodes} does not apply")
        state = self.lab.up(request.images)
        node = state.node
        return [f"{node.name}\t{node.address}\tdockerd pid {node.pid}", state.url]

    def status(self) -> StatusView | None:
        state = self.lab.state()
        if state is None:
            return None
        pid = daemon_pid(state)
        row = (
            state.node.name,
            state.url,
            f"pid {pid}" if pid else "[red]not running[/red]",
            "yes" if answers(state) else "[red]no[/red]",
        )
        heading = (
            f"Docker lab {state.status}: storage driver {state.storage_driver}, state "
            f"{Path(state.lab_dir) / 'state.json'}"
        )
        return StatusView([heading], ("engine", "address", "daemon", "answers"), [row])

    def down(self) -> list[str]:
        return self.lab.down()

    def target_if_up(self) -> TargetSpec | None:
        state = self.lab.state()
        if state is None or state.status != "up":
            return None
        return target_spec("docker", engine=state.url)

    def take_down_if_orphaned(self) -> list[str] | None:
        state = self.lab.state()
        return down_if_orphaned(state, lambda: state is not None and in_use(state), self.lab.down)


def in_use(state: DockerLabState) -> bool:
    """Whether a live run still has containers on the lab's engine."""
    try:
        client = connect(state.url, 10)
    except TargetError:
        return False  # an engine that does not answer serves nobody
    try:
        containers = client.containers.list(all=True, filters={"label": RUN_LABEL})
    except (docker.errors.DockerException, OSError):
        return False
    finally:
        client.close()
    return any(owner_alive(c.labels.get(OWNER_LABEL)) for c in containers)


class NoNodes:
    """The Docker lab has no nodes for node faults (the Docker target names no lab)."""

    @classmethod
    def current(cls) -> LabNodes:
        raise FaultError(
            "node faults act on the nodes of a multi-node lab: the Docker lab is one engine "
            "(use target swarm or kubernetes)"
        )

    @classmethod
    def of_lab(cls, directory: Path, created_ns: object) -> LabNodes | None:
        del directory, created_ns
        return None
