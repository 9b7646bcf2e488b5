"""`harness engine ...`: the host's Docker Engine (thin commands over harness.engines.dockerd)."""

from __future__ import annotations

import typer
from rich.console import Console

from harness.errors import HarnessError

engine_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The host's Docker Engine: use the one that answers, or install and start one.",
)


def _fail(exc: HarnessError) -> typer.Exit:
    Console(stderr=True).print(f"[red]error[/red] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(exc.exit_code)


@engine_app.command()
def up() -> None:
    """Make sure a Docker engine answers: start one (installing docker.io) when none does."""
    from harness.engines.dockerd import ensure_engine

    try:
        print(ensure_engine(), flush=True)
    except HarnessError as exc:
        raise _fail(exc) from exc


@engine_app.command()
def status() -> None:
    """Whether an engine answers, and whether this project started it."""
    from harness.engines.dockerd import status as engine_status

    state = engine_status()
    answer = f"answers (Docker {state.version})" if state.answers else "does not answer"
    print(f"engine at {state.address}: {answer}")
    started = state.started_here
    if started is None:
        print("not started by this project")
    else:
        print(f"started by this project: pid {started.pid}, log {started.log}")
        print(f"storage driver {started.storage_driver}: {started.storage_reason}")


@engine_app.command()
def stop() -> None:
    """Stop the dockerd this project started (never an engine it did not start)."""
    from harness.engines.dockerd import stop_started

    print(stop_started())
