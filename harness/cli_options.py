"""Options that several commands share, declared once so their help reads the same."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
