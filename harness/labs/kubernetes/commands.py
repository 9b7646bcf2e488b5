"""What `harness lab` and `harness cleanup` ask of the Kubernetes lab
(harness.labs.LabCommands)."""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError
from harness.labs import LabRequest, Progress, StatusView, down_if_orphaned
from harness.labs.kubernetes.build import ensure_built
from harness.labs.kubernetes.lab import KubeLab, KubeLabStatus, core_api
from harness.labs.kubernetes.state import KubeLabState
from harness.specs import TargetSpec
from harness.targets import target_spec
from harness.targets.base import OWNER_LABEL, RUN_LABEL, owner_alive


class KubeLabCommands:
    def __init__(self, lab: KubeLab | None = None) -> None:
        self.lab = lab or KubeLab()

    def build(self, progress: Progress) -> Path | None:
        return ensure_built(progress=progress).bin_dir

    def problems(self, request: LabRequest) -> list[str]:
        if request.managers != 1:
            return ["--managers is for --kind swarm (the lab has one control plane)"]
        return []

    def up(self, request: LabRequest, progress: Progress) -> list[str]:
        args = dict(request.control_plane_args)
        info = self.lab.up(request.nodes, args, request.images, progress=progress)
        lines = [
            f"{node.name}\t{node.address}\tpods {node.pod_cidr}\t{node.containerd_socket}"
            for node in info.nodes
        ]
        lines.append(f"kubectl: {info.kubectl} --kubeconfig {info.kubeconfig}")
        return [*lines, str(info.kubeconfig)]

    def status(self) -> StatusView | None:
        found = self.lab.status()
        return None if found is None else status_view(found)

    def down(self) -> list[str]:
        return self.lab.down()

    def target_if_up(self) -> TargetSpec | None:
        state = self.lab.state()
        return target_spec("kubernetes") if state is not None and state.status == "up" else None

    def take_down_if_orphaned(self) -> list[str] | None:
        state = self.lab.state()
        return down_if_orphaned(state, lambda: state is not None and in_use(state), self.lab.down)


def _pid(pid: int | None) -> str:
    return f"{pid}" if pid else "[red]down[/red]"


def status_view(found: KubeLabStatus) -> StatusView:
    settings = found.settings
    lines = [
        f"Kubernetes lab {found.status}: {found.server}, kubeconfig {found.kubeconfig}, "
        f"state {found.state_file}",
        f"node-monitor-grace-period {settings.node_monitor_grace_period_s:g} s, not-ready / "
        f"unreachable tolerations {settings.not_ready_toleration_s} / "
        f"{settings.unreachable_toleration_s} s",
        "control plane: " + ", ".join(f"{p.component} {_pid(p.pid)}" for p in found.control_plane),
    ]
    columns = ("node", "address", "pods", "containerd", "kubelet", "kube-proxy", "Ready", "sched")
    rows = [
        (
            n.name,
            n.address,
            n.pod_cidr,
            *(_pid(p.pid) for p in n.processes),
            n.ready,
            n.schedulable,
        )
        for n in found.nodes
    ]
    return StatusView(lines, columns, rows)


def in_use(state: KubeLabState) -> bool:
    """Whether a live run still has a namespace on the lab (its owner annotation)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        found = core_api(state).list_namespace(label_selector=RUN_LABEL, _request_timeout=10)
    except (ApiException, HTTPError, OSError, HarnessError):  # an API that does not answer
        return False  # serves nobody
    return any(
        owner_alive((item.metadata.annotations or {}).get(OWNER_LABEL)) for item in found.items
    )
