"""`harness worker --master HOST:PORT`: one Locust worker of a run, on any machine.

The worker loads the bundled recorder, which ships every request to the run's master through
Locust's own messages (harness/locust/chaos_shipping.py) and takes the run's settings from it
(chaos_settings.py), so this machine needs the harness installed and nothing else of the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from harness.cli_options import fail
from harness.errors import ScenarioError
from harness.load import worker_command


def _master_address(master: str) -> tuple[str, int]:
    host, sep, port = master.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ScenarioError([f"--master must be HOST:PORT, got {master!r}"])
    return host.strip("[]"), int(port)


def worker(
    master: Annotated[str, typer.Option("--master", help="HOST:PORT of the run's master.")],
    name: Annotated[
        str | None,
        typer.Option(help="This worker's name in the records (default: this host's name)."),
    ] = None,
    locustfile: Annotated[
        Path | None,
        typer.Option(help="The run's own locustfile, when it has one (default: the bundled)."),
    ] = None,
) -> None:
    """Run one Locust worker for a run on another machine.

    The run waits for it at MASTER (its `load.master`); the harness prints this command, with
    the address, when it waits. The worker's requests go to the run's records; it ends when
    the run does. Exit codes: Locust's; 2 for a bad address.
    """
    try:
        host, port = _master_address(master)
    except ScenarioError as exc:
        raise fail(exc) from exc
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    if name:
        env["CHAOS_HARNESS_WORKER_NAME"] = name
    argv = worker_command(sys.executable, host, port, locustfile)
    # its own session: a Ctrl-C reaches it once, forwarded, and Locust quits in order
    proc = subprocess.Popen(argv, env=env, start_new_session=True)

    def forward(signum: int, _frame: FrameType | None) -> None:
        proc.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    raise typer.Exit(proc.wait())


def worker_image(
    tag: Annotated[
        str | None,
        typer.Option(
            help="Also tag the image with this name, such as registry.example.com/load:1 (then "
            "push it with `docker push`).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Build the image of load workers run as pods.

    It is built on the local Docker engine, for load.placement pods.

    Debian's Python with this environment's Locust, made like the fault agent's base (a few
    minutes the first time, cached in ~/.cache/chaos-harness/agent). The Kubernetes lab gets
    it by itself; for a cluster of your own, push it and name it in load.image. The last line
    printed is the image's name (the --tag one when given).

    Exit codes: 0 built (or already there); 3 the build failed (the reason is printed).
    """
    from harness.cli_options import build_and_tag
    from harness.worker_image import worker_image as build

    build_and_tag(build, tag)
