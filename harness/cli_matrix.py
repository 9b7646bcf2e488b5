"""`harness matrix SCENARIO... --targets docker,podman,swarm,kubernetes --repeat N`.

`matrix` is registered in harness/cli.py with `app.command("matrix")(matrix)`.

Exit codes (harness.verdict): 0 every run completed and the report was written (SLO verdicts
are in the report: a comparison is not a gate); 2 invalid input; 3 a run failed to run or this
machine cannot run the matrix; 130/143 interrupted by SIGINT/SIGTERM.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text

from harness.cli_options import JunitOption, MarkdownOption, parse_labels
from harness.cli_progress import campaign_display
from harness.errors import HarnessError, ScenarioError
from harness.verdict import EXIT_INPUT, matrix_exit_code, matrix_lines

if TYPE_CHECKING:
    from harness.matrix import MatrixResult


def _err(console: Console, text: str, prefix: str = "") -> None:
    console.print(Text(prefix, style="red") + Text(text), highlight=False, soft_wrap=True)


def matrix_command(
    scenarios: list[Path],
    targets: str,
    repeat: int,
    out: Path,
    seed: int | None,
    labels: list[str],
    junit: Path | None = None,
    markdown: Path | None = None,
) -> int:
    """Run the matrix and write its report; returns the exit code (module docstring)."""
    from harness.matrix import parse_targets, run_matrix
    from harness.scenario import load_scenario

    console = Console(stderr=True)
    try:
        if not scenarios:
            raise ScenarioError(["name at least one scenario file"])
        if repeat < 1:
            raise ScenarioError([f"--repeat: at least 1, got {repeat}"])
        names = parse_targets(targets)
        loaded = [(str(path), load_scenario(path)) for path in scenarios]
        label_map = parse_labels(labels)
        with campaign_display(console, "matrix") as show:
            result = run_matrix(loaded, names, repeat, out, seed, label_map, show)
    except ScenarioError as exc:
        for problem in exc.problems:
            _err(console, problem, "error ")
        return EXIT_INPUT
    except HarnessError as exc:
        _err(console, str(exc), "error ")
        return exc.exit_code
    _write_outputs(console, result, junit, markdown)
    for line in matrix_lines(result.matrix):
        console.print(Text(line), highlight=False, soft_wrap=True)
    print(result.report)
    return matrix_exit_code(result.outcome)


def _write_outputs(
    console: Console, result: MatrixResult, junit: Path | None, md: Path | None
) -> None:
    from harness.reporting.junit import matrix_junit, write_junit
    from harness.reporting.markdown import matrix_markdown, write_markdown

    if junit is not None:
        _err(console, f"junit: {write_junit(matrix_junit(result.matrix), junit)}")
    if md is not None:
        _err(console, f"markdown: {write_markdown(matrix_markdown(result.matrix), md)}")


def matrix(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario files (YAML).")],
    targets: Annotated[
        str, typer.Option(help="Targets, comma-separated: docker, podman, swarm, kubernetes.")
    ] = "docker,swarm",
    repeat: Annotated[
        int,
        typer.Option(
            help="Runs of every scenario on every target (4 or more to tell "
            "targets apart with significance)."
        ),
    ] = 3,
    out: Annotated[Path, typer.Option(help="Directory that receives the matrix directory.")] = Path(
        "results"
    ),
    seed: Annotated[
        int | None,
        typer.Option(help="The first repetition's seed (repetition r gets seed + r - 1)."),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE kept in every run's manifest (repeatable)."),
    ] = None,
    junit: JunitOption = None,
    markdown: MarkdownOption = None,
) -> None:
    """Run scenarios on several targets and rank them.

    Runs every scenario on every target N times, interleaved (a change in the machine's load
    falls on every target alike), then writes one report that ranks the targets per fault:
    which recovers faster, by how much, and how sure that is. SLO verdicts are in the report
    (and, with --junit, in the JUnit file): a comparison is not a gate. The last line on stdout
    is the report's path.

    \b
    Exit codes:
      0        every run completed and the report was written
      2        invalid input: a scenario, a target name, or a pair the target
               cannot run
      3        this machine cannot run the matrix, or a run failed (the others
               still ran and the report holds them)
      130/143  interrupted by SIGINT/SIGTERM: the run in progress cleaned up,
               and the report holds what was done
    """
    code = matrix_command(list(scenarios), targets, repeat, out, seed, label or [], junit, markdown)
    sys.stdout.flush()
    raise typer.Exit(code)
