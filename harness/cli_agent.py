"""`harness agent build`: the fault agent's image (thin command over harness.agent.image)."""

from __future__ import annotations

from typing import Annotated

import typer

from harness.cli_options import build_and_tag, sub_app

agent_app = sub_app(
    "Build the fault agent's image.\n\n"
    "The fault agent does host-side faults on nodes the harness does not run on, in an image "
    "of its own: a Debian root filesystem with the tools the faults use and the harness's own "
    "fault code. For a cluster of your own, build it, push it to your registry and name it in "
    "the scenario's target.agent.image."
)


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
    from harness.agent.image import agent_image

    build_and_tag(agent_image, tag)
