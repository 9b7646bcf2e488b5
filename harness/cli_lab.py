"""`harness lab ...`: a multi-node Swarm or Kubernetes cluster on this machine (thin commands
over harness.labs.swarm.lab and harness.labs.kubernetes.lab)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.errors import HarnessError
from harness.hostsys import on_stop_signals
from harness.units import parse_duration

KINDS = ("swarm", "kubernetes")

lab_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,  # Click renders the help: paragraphs rewrapped (harness/cli.py)
    help="Bring a multi-node cluster up on this machine, or down.\n\n"
    "A lab lets node faults (node_down, node_partition, node_drain) act on real nodes "
    "without more machines. swarm: one dockerd per node, each in its own network namespace "
    "on the bridge chlab0. kubernetes: Kubernetes built from source (`harness lab build`), "
    "a control plane and nodes (containerd, kubelet, kube-proxy), each in its own namespaces "
    "on the bridge chk8s0.",
)


def _fail(exc: HarnessError) -> typer.Exit:
    """Print the error as plain text (log lines in it are not Rich markup)."""
    message = Text("error ", style="red") + Text(str(exc))
    Console(stderr=True).print(message, highlight=False, soft_wrap=True)
    return typer.Exit(exc.exit_code)


def _seconds(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _kind(value: str) -> str:
    if value not in KINDS:
        raise typer.BadParameter(f"--kind {value}: one of {', '.join(KINDS)}")
    return value


def _progress(line: str) -> None:
    print(line, flush=True)


def control_plane_args(values: list[str]) -> dict[str, tuple[str, ...]]:
    """`COMPONENT:--flag=value` items grouped by component, in the order given."""
    grouped: dict[str, list[str]] = {}
    for value in values:
        component, sep, flag = value.partition(":")
        if not sep or not flag.startswith("--"):
            raise typer.BadParameter(
                f"--control-plane-args {value!r}: write COMPONENT:--flag=value, e.g. "
                "kube-controller-manager:--node-monitor-grace-period=20s"
            )
        grouped.setdefault(component, []).append(flag)
    return {k: tuple(v) for k, v in grouped.items()}


@lab_app.command()
def build(
    kind: Annotated[str, typer.Option(help="What to build: kubernetes.")] = "kubernetes",
) -> None:
    """Build Kubernetes for the lab.

    Builds Kubernetes from its Go module into ~/.cache/chaos-harness/kubernetes: about 7
    minutes the first time on 2 cores, about a second once cached. `harness lab up --kind
    kubernetes` needs it. Prints the directory of the binaries.
    """
    from harness.labs.kubernetes.build import ensure_built

    if kind != "kubernetes":
        raise typer.BadParameter(f"--kind {kind}: only kubernetes is built (Swarm needs no build)")
    try:
        built = ensure_built(progress=_progress)
    except HarnessError as exc:
        raise _fail(exc) from exc
    print(built.bin_dir)


@lab_app.command()
def up(
    kind: Annotated[str, typer.Option(help="The kind of lab: swarm or kubernetes.")] = "swarm",
    nodes: Annotated[
        int, typer.Option(min=1, max=7, help="How many nodes (a Swarm lab needs 2 or more).")
    ] = 3,
    managers: Annotated[int, typer.Option(help="Swarm: how many managers, 1 or 3.")] = 1,
    heartbeat: Annotated[
        str,
        typer.Option(
            help="Swarm: the dispatcher's heartbeat period, such as 5s or 1s (a shorter one "
            "notices a lost node sooner)."
        ),
    ] = "5s",
    control_plane_args: Annotated[
        list[str] | None,
        typer.Option(
            "--control-plane-args",
            help="Kubernetes: an extra flag for a control-plane component, written "
            "COMPONENT:--flag=value (repeatable; see the example above).",
        ),
    ] = None,
    image: Annotated[
        list[str] | None,
        typer.Option(
            help="A local image to copy to every node (repeatable) [default: the demo image]."
        ),
    ] = None,
) -> None:
    """Bring a lab up.

    Starts the nodes, copies the images to every node, and prints each node and how to reach
    the cluster. The last line is what a scenario's target needs: the Swarm manager's address,
    or the path of the Kubernetes kubeconfig. Ctrl-C removes what was made so far. Take the lab
    down with `harness lab down`.

    \b
    Example, a lab that calls a silent node lost after 20 s:
      harness lab up --kind kubernetes --control-plane-args \\
        kube-controller-manager:--node-monitor-grace-period=20s

    Exit codes: 0 the lab is up; 2 an invalid option; 3 the lab could not be brought up
    (nothing of it is left).
    """
    from harness.images import DEMO_IMAGE, build_demo_image
    from harness.targets.docker.engine import connect

    kind = _kind(kind)
    if kind == "swarm" and nodes < 2:
        raise typer.BadParameter("a Swarm lab has 2 nodes or more")
    if managers not in (1, 3):
        raise typer.BadParameter(f"--managers must be 1 or 3, got {managers}")
    if kind == "swarm" and control_plane_args:
        raise typer.BadParameter("--control-plane-args is for --kind kubernetes")
    try:
        with stopped_once():
            if not image:
                build_demo_image(connect(None))
            images = image or [DEMO_IMAGE]
            if kind == "kubernetes":
                _up_kubernetes(nodes, control_plane_args_of(control_plane_args), images)
            else:
                _up_swarm(nodes, managers, _seconds(heartbeat), images)
    except HarnessError as exc:
        raise _fail(exc) from exc


@contextlib.contextmanager
def stopped_once() -> Iterator[None]:
    """SIGINT and SIGTERM stop `lab up` once: the first raises (SystemExit(128 + signal)), so
    the lab's own `up` removes what it made so far; later ones are noted, never obeyed, so the
    removal runs to its end (SIGKILL still can cut it: `harness lab down` works from the state
    file alone)."""
    stopping: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stopping:
            print(f"{signal.Signals(signum).name} noted: removing what was made", flush=True)
            return
        stopping.append(signum)
        raise SystemExit(128 + signum)

    with on_stop_signals(handler):
        yield


def control_plane_args_of(values: list[str] | None) -> dict[str, tuple[str, ...]]:
    return control_plane_args(values or [])


def _up_swarm(nodes: int, managers: int, heartbeat_s: float, images: list[str]) -> None:
    from harness.labs.swarm.lab import Lab

    info = Lab().up(nodes, managers, heartbeat_s, images=images)
    for node in info.nodes:
        print(f"{node.name}\t{node.role}\t{node.address}\t{node.url}\t{node.node_id}")
    print(info.manager_url)


def _up_kubernetes(nodes: int, args: dict[str, tuple[str, ...]], images: list[str]) -> None:
    from harness.labs.kubernetes.lab import KubeLab

    info = KubeLab().up(nodes, args, images, progress=_progress)
    for node in info.nodes:
        print(f"{node.name}\t{node.address}\tpods {node.pod_cidr}\t{node.containerd_socket}")
    print(f"kubectl: {info.kubectl} --kubeconfig {info.kubeconfig}")
    print(info.kubeconfig)


@lab_app.command()
def status() -> None:
    """Show the labs that are up.

    For each node: its processes and what the cluster says of it (Ready, schedulable, role).
    """
    from harness.labs.kubernetes.lab import KubeLab
    from harness.labs.swarm.lab import Lab

    try:
        swarm, kube = Lab().status(), KubeLab().status()
    except HarnessError as exc:
        raise _fail(exc) from exc
    if swarm is None and kube is None:
        print("no lab")
        return
    console = Console()
    if swarm is not None:
        _print_swarm(console, swarm)
    if kube is not None:
        _print_kube(console, kube)


def _print_swarm(console: Console, found: object) -> None:
    from harness.labs.swarm.lab import LabStatus

    assert isinstance(found, LabStatus)
    table = Table("node", "role", "address", "daemon", "swarm", "availability", "manager")
    for node in found.nodes:
        daemon = f"pid {node.daemon_pid}" if node.daemon_pid else "[red]not running[/red]"
        table.add_row(
            node.name,
            node.role,
            node.address,
            daemon,
            node.swarm_state,
            node.availability,
            node.manager_status,
        )
    console.print(
        f"Swarm lab {found.status}: heartbeat {found.heartbeat_s:g} s, storage driver "
        f"{found.storage_driver}, state {found.state_file}",
        highlight=False,
    )
    console.print(table)


def _pid(pid: int | None) -> str:
    return f"{pid}" if pid else "[red]down[/red]"


def _print_kube(console: Console, found: object) -> None:
    from harness.labs.kubernetes.lab import KubeLabStatus

    assert isinstance(found, KubeLabStatus)
    settings = found.settings
    console.print(
        f"Kubernetes lab {found.status}: {found.server}, kubeconfig {found.kubeconfig}, "
        f"state {found.state_file}\n"
        f"node-monitor-grace-period {settings.node_monitor_grace_period_s:g} s, not-ready / "
        f"unreachable tolerations {settings.not_ready_toleration_s} / "
        f"{settings.unreachable_toleration_s} s",
        highlight=False,
    )
    console.print(
        "control plane: " + ", ".join(f"{p.component} {_pid(p.pid)}" for p in found.control_plane),
        highlight=False,
    )
    columns = ("node", "address", "pods", "containerd", "kubelet", "kube-proxy", "Ready", "sched")
    table = Table(*columns)
    for node in found.nodes:
        pids = [_pid(p.pid) for p in node.processes]
        table.add_row(node.name, node.address, node.pod_cidr, *pids, node.ready, node.schedulable)
    console.print(table)


@lab_app.command()
def down(
    kind: Annotated[
        str | None,
        typer.Option(help="The lab to take down: swarm or kubernetes [default: every lab]."),
    ] = None,
) -> None:
    """Take a lab down.

    Removes every process, namespace, bridge, rule, mount and file of the lab. Safe to run
    again, and works after a `lab up` that was killed.
    """
    from harness.labs.kubernetes.lab import KubeLab
    from harness.labs.swarm.lab import Lab

    kinds = [_kind(kind)] if kind else list(KINDS)
    removed: list[str] = []
    try:
        if "swarm" in kinds:
            removed += Lab().down()
        if "kubernetes" in kinds:
            removed += KubeLab().down()
    except HarnessError as exc:
        raise _fail(exc) from exc
    for line in removed:
        print(line)
    print("lab down" if removed else "no lab")
