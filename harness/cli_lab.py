"""`harness lab ...`: a multi-node Swarm on this machine (thin commands over harness.lab)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from harness.errors import HarnessError
from harness.units import parse_duration

lab_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="A multi-node Docker Swarm on this machine: one dockerd per node, each in its own "
    "network namespace on the bridge chlab0.",
)


def _fail(exc: HarnessError) -> typer.Exit:
    Console(stderr=True).print(f"[red]error[/red] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(exc.exit_code)


def _seconds(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@lab_app.command()
def up(
    nodes: Annotated[int, typer.Option(min=2, max=7, help="how many nodes")] = 3,
    managers: Annotated[int, typer.Option(help="Swarm managers: 1 or 3")] = 1,
    heartbeat: Annotated[
        str, typer.Option(help="Swarm's dispatcher heartbeat period (e.g. 5s, 1s)")
    ] = "5s",
    image: Annotated[
        list[str] | None,
        typer.Option(help="local image to copy to every node (repeatable; default: demo)"),
    ] = None,
) -> None:
    """Bring the lab up and copy images to every node; print the manager's address."""
    from harness.images import DEMO_IMAGE, build_demo_image
    from harness.lab import Lab
    from harness.targets.docker import connect

    if managers not in (1, 3):
        raise typer.BadParameter(f"--managers must be 1 or 3, got {managers}")
    try:
        if not image:
            build_demo_image(connect(None))
        images = image or [DEMO_IMAGE]
        info = Lab().up(nodes, managers, _seconds(heartbeat), images=images)
    except HarnessError as exc:
        raise _fail(exc) from exc
    for node in info.nodes:
        print(f"{node.name}\t{node.role}\t{node.address}\t{node.url}\t{node.node_id}")
    print(info.manager_url)


@lab_app.command()
def status() -> None:
    """Show the lab: each node's daemon and what the Swarm manager says of it."""
    from harness.lab import Lab

    try:
        found = Lab().status()
    except HarnessError as exc:
        raise _fail(exc) from exc
    if found is None:
        print("no lab")
        return
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
    console = Console()
    console.print(
        f"lab {found.status}: heartbeat {found.heartbeat_s:g} s, storage driver "
        f"{found.storage_driver}, state {found.state_file}",
        highlight=False,
    )
    console.print(table)


@lab_app.command()
def down() -> None:
    """Remove every daemon, namespace, bridge, rule, mount and file of the lab (idempotent)."""
    from harness.lab import Lab

    try:
        removed = Lab().down()
    except HarnessError as exc:
        raise _fail(exc) from exc
    for line in removed:
        print(line)
    print("lab down" if removed else "no lab")
