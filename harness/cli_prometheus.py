"""`harness prometheus up/down/status`: a local Prometheus for labs and tests
(thin commands over harness.prometheus.server)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli_options import fail, sub_app
from harness.errors import HarnessError

prometheus_app = sub_app(
    "Start, check or stop a local Prometheus.\n\n"
    "Debian's prometheus package, on 127.0.0.1. It scrapes the run's own /metrics "
    "(observe.metrics, port 9464 by default), any --scrape "
    "URL, and the Kubernetes lab's kubelets and cAdvisor when that lab is up; a scenario "
    "reads it with observe.prometheus.url. Its config and data live in a state directory "
    "of their own ($CHAOS_HARNESS_PROMETHEUS_DIR, default /var/lib/chaos-harness/prometheus).",
)

StateDir = Annotated[
    Path | None,
    typer.Option("--dir", help="The state directory (config, data, PID).", show_default=False),
]


@prometheus_app.command()
def up(
    scrape: Annotated[
        list[str] | None,
        typer.Option(help="Another URL to scrape (repeatable), e.g. http://host:port/metrics."),
    ] = None,
    harness_metrics: Annotated[
        bool, typer.Option(help="Scrape the run's own /metrics at 127.0.0.1:9464.")
    ] = True,
    kube_lab: Annotated[
        bool, typer.Option(help="Scrape the Kubernetes lab's kubelets and cAdvisor, if up.")
    ] = True,
    port: Annotated[
        int | None, typer.Option(help="Listen on this port (default: a free one).")
    ] = None,
    directory: StateDir = None,
) -> None:
    """Start Prometheus, or retarget the running one.

    It listens on 127.0.0.1 (a free port unless --port) and scrapes every second. Prints
    what it scrapes, then its URL as the last line (give it as observe.prometheus.url).
    Exit codes: 0 it is ready; 3 it could not be started.
    """
    from harness.prometheus.server import HARNESS_METRICS, up, url_targets
    from harness.prometheus.targets import kube_lab_targets

    try:
        targets = url_targets(([HARNESS_METRICS] if harness_metrics else []) + (scrape or []))
        if kube_lab:
            targets += kube_lab_targets()
        state = up(targets, directory, port)
    except HarnessError as exc:
        raise fail(exc) from exc
    for target in state.targets:
        print(f"scrapes {target.job}: {target.url}")
    print(state.url, flush=True)


@prometheus_app.command()
def down(directory: StateDir = None) -> None:
    """Stop the Prometheus that `up` started.

    That process only (by its PID and start time); its config and data go with it."""
    from harness.prometheus.server import down as stop

    try:
        print(stop(directory))
    except HarnessError as exc:
        raise fail(exc) from exc


@prometheus_app.command()
def status(directory: StateDir = None) -> None:
    """Show whether the Prometheus `up` started runs.

    Also where it listens and what it scrapes. Exit code 1 when none runs."""
    from harness.prometheus.server import read_state, state_dir

    try:
        state = read_state(directory or state_dir())
    except HarnessError as exc:
        raise fail(exc) from exc
    if state is None or not state.alive():
        print("no Prometheus started by the harness is running")
        raise typer.Exit(1)
    print(f"running: pid {state.pid}, {state.url}")
    for target in state.targets:
        print(f"scrapes {target.job}: {target.url}")
