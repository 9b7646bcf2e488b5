"""`harness lab ...`: a multi-node cluster on this machine, of any registered lab kind (thin
commands over each kind's harness.labs.LabCommands)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from harness.cli_options import fail, sub_app
from harness.errors import HarnessError
from harness.hostsys import on_stop_signals
from harness.labs import LabCommands, LabRequest, StatusView, lab_kinds
from harness.units import parse_duration

lab_app = sub_app(
    "Bring a multi-node cluster up on this machine, or down.\n\n"
    "A lab lets node faults (node_down, node_partition, node_drain) act on real nodes "
    "without more machines. swarm: one dockerd per node, each in its own network namespace "
    "on the bridge chlab0. kubernetes: Kubernetes built from source (`harness lab build`), "
    "a control plane and nodes (containerd, kubelet, kube-proxy), each in its own namespaces "
    "on the bridge chk8s0.",
)


def _seconds(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _commands(kind: str) -> LabCommands:
    kinds = lab_kinds()
    if kind not in kinds:
        raise typer.BadParameter(f"--kind {kind}: one of {', '.join(kinds)}")
    return kinds[kind].lab_commands()


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
    commands = _commands(kind)
    try:
        built = commands.build(progress=_progress)
    except HarnessError as exc:
        raise fail(exc) from exc
    if built is None:
        raise typer.BadParameter(f"--kind {kind}: this lab needs no build")
    print(built)


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

    commands = _commands(kind)
    request = LabRequest(
        nodes=nodes,
        managers=managers,
        heartbeat_s=_seconds(heartbeat),
        control_plane_args=control_plane_args_of(control_plane_args),
        images=tuple(image or [DEMO_IMAGE]),
    )
    problems = commands.problems(request)
    if problems:
        raise typer.BadParameter("; ".join(problems))
    try:
        with stopped_once():
            if not image:
                build_demo_image(connect(None))
            for line in commands.up(request, progress=_progress):
                print(line, flush=True)
    except HarnessError as exc:
        raise fail(exc) from exc


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


@lab_app.command()
def status() -> None:
    """Show the labs that are up.

    For each node: its processes and what the cluster says of it (Ready, schedulable, role).
    """
    try:
        views = [k.lab_commands().status() for k in lab_kinds().values()]
    except HarnessError as exc:
        raise fail(exc) from exc
    shown = [view for view in views if view is not None]
    if not shown:
        print("no lab")
        return
    console = Console()
    for view in shown:
        console.print("\n".join(view.lines), highlight=False)
        console.print(_table(view))


def _table(view: StatusView) -> Table:
    table = Table(*view.columns)
    for row in view.rows:
        table.add_row(*row)
    return table


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
    chosen = [_commands(kind)] if kind else [k.lab_commands() for k in lab_kinds().values()]
    removed: list[str] = []
    try:
        for commands in chosen:
            removed += commands.down()
    except HarnessError as exc:
        raise fail(exc) from exc
    for line in removed:
        print(line)
    print("lab down" if removed else "no lab")
