"""What `harness lab` and `harness cleanup` ask of the Swarm lab (harness.labs.LabCommands)."""

from __future__ import annotations

from pathlib import Path

from harness.labs import LabRequest, Progress, StatusView, down_if_orphaned
from harness.labs.swarm.lab import Lab, LabState, connect
from harness.specs import LabSpec, TargetSpec
from harness.targets import target_spec
from harness.targets.base import OWNER_LABEL, RUN_LABEL, owner_alive


class SwarmLabCommands:
    def __init__(self, lab: Lab | None = None) -> None:
        self.lab = lab or Lab()

    def build(self, progress: Progress) -> Path | None:
        return None  # dockerd comes from the host's Debian packages

    def problems(self, request: LabRequest) -> list[str]:
        found = []
        if request.nodes < 2:
            found.append("a Swarm lab has 2 nodes or more (--nodes 2)")
        if request.managers not in (1, 3):
            found.append(f"--managers must be 1 or 3, got {request.managers}")
        if request.control_plane_args:
            found.append("--control-plane-args is for --kind kubernetes")
        return found

    def up(self, request: LabRequest, progress: Progress) -> list[str]:
        info = self.lab.up(
            request.nodes, request.managers, request.heartbeat_s, images=request.images
        )
        lines = [
            f"{node.name}\t{node.role}\t{node.address}\t{node.url}\t{node.node_id}"
            for node in info.nodes
        ]
        return [*lines, info.manager_url]

    def status(self) -> StatusView | None:
        found = self.lab.status()
        if found is None:
            return None
        rows = [
            (
                node.name,
                node.role,
                node.address,
                f"pid {node.daemon_pid}" if node.daemon_pid else "[red]not running[/red]",
                node.swarm_state,
                node.availability,
                node.manager_status,
            )
            for node in found.nodes
        ]
        heading = (
            f"Swarm lab {found.status}: heartbeat {found.heartbeat_s:g} s, storage driver "
            f"{found.storage_driver}, state {found.state_file}"
        )
        columns = ("node", "role", "address", "daemon", "swarm", "availability", "manager")
        return StatusView([heading], columns, rows)

    def down(self) -> list[str]:
        return self.lab.down()

    def target_if_up(self) -> TargetSpec | None:
        state = self.lab.state()
        if state is None or state.status != "up":
            return None
        shape = LabSpec(nodes=len(state.nodes), managers=1 if state.managers == 1 else 3)
        return target_spec("swarm", lab=shape)

    def take_down_if_orphaned(self) -> list[str] | None:
        state = self.lab.state()
        return down_if_orphaned(state, lambda: state is not None and in_use(state), self.lab.down)


def in_use(state: LabState) -> bool:
    """Whether a live run still has services on the lab's manager."""
    try:
        client = connect(state.manager.url, 10)
        services = client.services.list(filters={"label": RUN_LABEL})
    except Exception:  # a manager that does not answer serves nobody
        return False
    return any(
        owner_alive(((s.attrs.get("Spec") or {}).get("Labels") or {}).get(OWNER_LABEL))
        for s in services
    )
