"""Options that several commands share, declared once so their help reads the same."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JunitOption = Annotated[
    Path | None, typer.Option("--junit", help="write a JUnit XML file: one test case per SLO check")
]
MarkdownOption = Annotated[
    Path | None,
    typer.Option("--markdown", help="write a Markdown summary (PR comment, CI job summary)"),
]
