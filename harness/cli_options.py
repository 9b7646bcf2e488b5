"""Options that several commands share, declared once so their help reads the same, and the
parsing of their values."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.errors import ScenarioError

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
