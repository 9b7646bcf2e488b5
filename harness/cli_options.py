"""Options that several commands share, declared once so their help reads the same, the
parsing of their values, and what every sub-command group shares (its settings, its errors)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text

from harness.errors import HarnessError, ScenarioError

if TYPE_CHECKING:
    import docker


def sub_app(help_text: str) -> typer.Typer:
    """A command group (`harness lab`, `engine`, ...) with the settings they all share."""
    return typer.Typer(
        add_completion=False,
        no_args_is_help=True,
        rich_markup_mode=None,  # Click renders the help: paragraphs rewrapped (harness/cli.py)
        help=help_text,
    )


def fail(exc: HarnessError) -> typer.Exit:
    """Print the error on stderr as plain text (log lines in it are not Rich markup); the exit
    to raise, with the error's code."""
    Console(stderr=True).print(
        Text("error ", style="red") + Text(str(exc)), highlight=False, soft_wrap=True
    )
    return typer.Exit(exc.exit_code)


JunitOption = Annotated[
    Path | None,
    typer.Option("--junit", help="Also write a JUnit XML file there: one test case per SLO check."),
]
MarkdownOption = Annotated[
    Path | None,
    typer.Option(
        "--markdown",
        help="Also write a Markdown summary there (for a PR comment or a CI job summary).",
    ),
]


def parse_labels(items: list[str]) -> dict[str, str]:
    """KEY=VALUE pairs from --label; a malformed one is invalid input (exit code 2)."""
    bad = [item for item in items if "=" not in item or item.startswith("=")]
    if bad:
        raise ScenarioError([f"--label: expected KEY=VALUE, got {item!r}" for item in bad])
    return dict(item.split("=", 1) for item in items)


def build_and_tag(build: Callable[[docker.DockerClient], str], tag: str | None) -> None:
    """An image built on the local engine by `build`, also named `tag` when given; its name
    (the tag's) printed last; a failure is exit 3 with the reason."""
    from harness.agent.image import tag_image
    from harness.targets.docker.engine import connect

    try:
        client = connect(None)
        built = build(client)
        if tag:
            tag_image(client, built, tag)
    except HarnessError as exc:
        raise fail(exc) from exc
    print(tag or built, flush=True)
