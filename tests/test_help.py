"""`harness ... --help` is written for users and reads as paragraphs in an 80-column terminal.

Click renders the help (rich_markup_mode=None in harness/cli.py): it rewraps each paragraph to
the terminal, so a hard line break in a docstring cannot cut a sentence, except in a paragraph
marked to keep its lines (Click's \\b, used for lists of exit codes). The check below reads the
rendered text: a line that ends without closing punctuation, followed by a line of the same
text that starts with a lower-case word that would have fitted on it, was cut by a hard line
break in the source (a wrapper never leaves a word off a line it fits on).
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from harness.cli import app

COLUMNS = 80
WRAP = COLUMNS - 2  # Click wraps help at the terminal's width less 2
# Notes to maintainers that were once in the help (the CLI module's docstring and the like).
MAINTAINER_NOTES = ("Typer", "no logic", "thin command", "over the library", "registered in")


def command_paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command, as the words typed after `harness` (a group has
    `commands`; Typer may bring its own copy of Click, so no isinstance)."""
    paths = [prefix]
    for name, sub in getattr(command, "commands", {}).items():
        paths += command_paths(sub, (*prefix, name))
    return paths


def render_help(cli: typer.Typer, path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"], env={"COLUMNS": str(COLUMNS)})
    assert result.exit_code == 0, result.output
    return result.output


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def hard_breaks(text: str) -> list[str]:
    """Pairs of lines where a sentence was cut although its next word fitted on the line."""
    lines = text.splitlines()
    found = []
    for line, following in itertools.pairwise(lines):
        words = following.split()
        if not line.strip() or not words or line.rstrip()[-1] in ".:;!?":
            continue
        same_text = _indent(following) >= _indent(line)
        continues = re.match(r"[a-z]", words[0]) is not None
        fitted = len(line.rstrip()) + 1 + len(words[0]) <= WRAP
        if same_text and continues and fitted:
            found.append(f"{line.rstrip()!r} / {following.strip()!r}")
    return found


def help_problems(text: str) -> list[str]:
    problems = [f"hard line break: {pair}" for pair in hard_breaks(text)]
    problems += [f"maintainer note {note!r}" for note in MAINTAINER_NOTES if note in text]
    problems += [f"wider than {COLUMNS}: {ln!r}" for ln in text.splitlines() if len(ln) > COLUMNS]
    listed = [ln for ln in text.splitlines() if re.match(r"  [a-z][\w-]*  +\S", ln)]
    problems += [f"cut short: {ln.strip()!r}" for ln in listed if ln.endswith("...")]
    return problems


PATHS = command_paths(get_command(app))


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) or "harness" for p in PATHS])
def test_help_reads_as_paragraphs_at_80_columns(path: tuple[str, ...]) -> None:
    text = render_help(app, path)
    assert help_problems(text) == [], text


def test_every_command_is_checked() -> None:
    # harness, its 15 commands (lab, engine, prometheus and agent among them), lab's 4, engine's
    # 3, prometheus' 3 and agent's 1: 1 + 15 + 11
    assert len(PATHS) == 27
    assert ("lab", "up") in PATHS and ("engine", "stop") in PATHS


def test_the_check_finds_what_the_old_help_had() -> None:
    """Rich markup mode (Typer's default) keeps a docstring's hard line breaks: the old help."""
    old = typer.Typer(rich_markup_mode="rich", add_completion=False)

    @old.command()
    def run() -> None:
        """The `harness` command line: thin Typer commands over the library; no logic lives here.

        Exit codes: 0 every SLO met, 1 an SLO violated (a check without data counts, unless the
        scenario allows it)."""

    @old.command()
    def other() -> None:
        """A second command, so that `run` is a sub-command."""

    problems = help_problems(render_help(old, ("run",)))
    assert "maintainer note 'Typer'" in problems and "maintainer note 'no logic'" in problems
    assert any(p.startswith("hard line break:") and "'scenario allows it)." in p for p in problems)
