"""`harness agent build`: the fault agent's image (thin command over harness.agent.image)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from harness.errors import HarnessError

agent_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,  # Click renders the help: paragraphs rewrapped (harness/cli.py)
    help="The fault agent, which does host-side faults on nodes the harness does not run on.\n\n"
    "The agent runs in an image of its own: a Debian root filesystem with the tools the "
    "faults use and the harness's own fault code. Runs and labs build it when they need it; "
    "for a cluster of your own, build it, push it to your registry and name it in the "
    "scenario's target.agent.image.",
)


def _fail(exc: HarnessError) -> typer.Exit:
    """Print the error as plain text (a build log in it is not Rich markup)."""
    message = Text("error ", style="red") + Text(str(exc))
    Console(stderr=True).print(message, highlight=False, soft_wrap=True)
    return typer.Exit(exc.exit_code)


@agent_app.command()
def build(
    tag: Annotated[
        str | None,
        typer.Option(
            help="Also tag the image with this name, such as registry.example.com/chaos-agent:1 "
            "(then push it with `docker push`).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Build the agent's image on the local Docker engine.

    The first build makes a Debian root filesystem with debootstrap and installs the agent's
    Python packages with pip: a few minutes, needing Debian's mirror and PyPI; it is cached
    in ~/.cache/chaos-harness/agent. Later builds only add the harness's source: seconds.
    Progress goes to stderr; the last line printed is the image's name (the --tag one when
    given).

    Exit codes: 0 built (or already there); 3 the build failed (the reason is printed).
    """
    from harness.agent.image import agent_image, tag_image
    from harness.targets.docker.engine import connect

    try:
        client = connect(None)
        built = agent_image(client)
        if tag:
            tag_image(client, built, tag)
    except HarnessError as exc:
        raise _fail(exc) from exc
    print(tag or built, flush=True)
