"""The Kubernetes target's side of the local lab (.lab): find it, bring it up for a
run that asks for one, load the workload's image into its nodes, take it down again.

The lab is shared by whoever uses the machine: a lab that was up before the run is used as it
is (only the image is loaded) and left up; one brought up for the run (`target.lab`) is taken
down at teardown.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

from harness.errors import TargetError
from harness.labs.kubernetes import lab as kube_lab
from harness.specs import LabSpec, WorkloadSpec
from harness.targets.kubernetes.objects import image_of


def lab_info() -> kube_lab.KubeLabInfo | None:
    """The lab that is up on this machine, or None (a damaged state file is no lab)."""
    try:
        return kube_lab.current()
    except TargetError:
        return None


def lab_directory() -> Path:
    """Where the lab lives (or will): its state, and every node's container storage."""
    return kube_lab.lab_dir()


def lab_kubeconfig() -> Path | None:
    info = lab_info()
    if info is None:
        return None
    path = Path(info.kubeconfig)
    return path if path.is_file() else None


def containerd_sockets() -> list[str]:
    """The containerd socket of every node of the lab that is up (none: no lab)."""
    try:
        state = kube_lab.load_state()
    except TargetError:
        return []
    if state is None or state.status != "up":
        return []
    return [node.containerd_socket for node in state.nodes]


def control_plane_args(spec: LabSpec | None) -> dict[str, tuple[str, ...]]:
    """The control plane's flags a scenario's lab asks for (Kubernetes' defaults else)."""
    args: dict[str, tuple[str, ...]] = {}
    if spec is None:
        return args
    if spec.node_monitor_grace_period is not None:
        grace = f"{spec.node_monitor_grace_period:g}s"
        args["kube-controller-manager"] = (f"--node-monitor-grace-period={grace}",)
    if spec.unreachable_toleration is not None:
        seconds = spec.unreachable_toleration
        args["kube-apiserver"] = (
            f"--default-not-ready-toleration-seconds={seconds}",
            f"--default-unreachable-toleration-seconds={seconds}",
        )
    return args


def _progress(line: str) -> None:
    print(f"kubernetes lab: {line}", file=sys.stderr, flush=True)


def ensure_lab(spec: LabSpec | None, workload: WorkloadSpec) -> bool:
    """The lab up, with the workload's image on every node; True when this call made it.

    Without `spec` the lab must already be up (it is the default cluster); with one, a lab of
    that shape is reused or brought up.
    """
    from harness.images import ensure_image
    from harness.targets.docker.engine import connect

    image = image_of(workload)
    ensure_image(connect(None), workload.image)  # built on the host engine, copied from there
    lab = kube_lab.KubeLab()
    if spec is None:
        state = lab.state()
        if state is None or state.status != "up":
            raise TargetError(
                "the local Kubernetes lab is not up: run 'harness lab up --kind kubernetes "
                "--nodes 1', or give target.lab (brought up for the run)"
            )
        lab.ensure(len(state.nodes), state.control_plane_args, [image], _progress)
        return False
    _info, created = lab.ensure(spec.nodes, control_plane_args(spec), [image], _progress)
    return created


def take_lab_down() -> list[str]:
    return kube_lab.KubeLab().down()


def lab_settings() -> dict[str, str]:
    """The node-failure timing in force on the lab, for the manifest."""
    info = lab_info()
    if info is None:
        return {}
    return {f"lab_{name}": f"{value:g}" for name, value in asdict(info.settings).items()}
