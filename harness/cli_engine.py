"""`harness engine ...`: the host's Docker Engine (thin commands over harness.engines.dockerd)."""

from __future__ import annotations

from harness.cli_options import fail, sub_app
from harness.errors import HarnessError

engine_app = sub_app(
    "Start, check or stop the host's Docker engine.\n\n"
    "Runs use the engine that answers at DOCKER_HOST (else /var/run/docker.sock). On a "
    "machine without one, `harness engine up` installs docker.io and starts dockerd; "
    "`harness engine stop` stops only a dockerd this project started.",
)


@engine_app.command()
def up() -> None:
    """Make sure a Docker engine answers.

    Uses the engine that answers as it is; when none does, installs docker.io (when absent) and
    starts dockerd, choosing a storage driver that works on this machine. Safe to run again.
    Prints the engine's address.

    Exit codes: 0 an engine answers; 3 none could be started (the reason is printed).
    """
    from harness.engines.dockerd import ensure_engine

    try:
        print(ensure_engine(), flush=True)
    except HarnessError as exc:
        raise fail(exc) from exc


@engine_app.command()
def status() -> None:
    """Show whether an engine answers.

    Also whether this project started it and, if it did, its process, its log and why it uses
    its storage driver.
    """
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
    """Stop the dockerd that `harness engine up` started.

    An engine this project did not start is never stopped.
    """
    from harness.engines.dockerd import stop_started

    print(stop_started())
