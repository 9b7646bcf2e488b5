"""`harness matrix SCENARIO... --targets docker,podman,swarm,kubernetes --repeat N`, and the
progress display of every campaign (the matrix, `harness run --repeat N`).

`matrix` is registered in harness/cli.py with `app.command("matrix")(matrix)`.

Exit codes: 0 every run completed and the report was written (SLO verdicts are in the report
and, with --junit, in the JUnit file: a comparison is not a gate); 2 invalid input (a scenario,
a target name, a pair the target cannot run); 3 a run failed to run (the others still ran and
the report holds them) or this machine cannot run the matrix; 130/143 interrupted by
SIGINT/SIGTERM: the run in progress cleaned up, and the report holds what was done.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from harness.campaign import CampaignProgress
from harness.cli_options import JunitOption, MarkdownOption
from harness.errors import HarnessError, ScenarioError
from harness.results import FAILED

if TYPE_CHECKING:
    from harness.analysis.matrix import Matrix
    from harness.matrix import MatrixResult

EXIT_OK, EXIT_INPUT, EXIT_ERROR = 0, 2, 3
PLAIN_EVERY_S = 10.0


def duration_text(seconds: float | None) -> str:
    """'about 4 min 10 s left' style durations: '4 min 10 s', '35 s'."""
    if seconds is None:
        return "unknown"
    seconds = max(0, round(seconds))
    minutes, rest = divmod(seconds, 60)
    if minutes >= 60:
        hours, minutes = divmod(minutes, 60)
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def _counts(progress: CampaignProgress) -> str:
    text = f"{progress.done}/{progress.total} runs done"
    if progress.failed:
        text += f", {progress.failed} failed"
    return f"{text} · about {duration_text(progress.eta_s)} left"


def _current(progress: CampaignProgress) -> str:
    cell, run = progress.current, progress.run
    if cell is None:
        return ""
    text = f"[{cell.index}/{progress.total}] {cell.title}"
    if run is not None:
        rate = run.failures / run.requests if run.requests else 0.0
        text += (
            f": {run.phase}, {run.elapsed_s:.0f}/{run.total_s:g} s, {run.requests} requests, "
            f"{run.failures} errors ({rate:.1%})"
        )
    return text


def _rich_view(progress: CampaignProgress) -> Group:
    bar = ProgressBar(total=max(progress.total, 1), completed=progress.done, width=30)
    head = Table.grid(padding=(0, 1))
    head.add_row(bar, Text(_counts(progress)))
    return Group(head, Text(_current(progress)))


class PlainLines:
    """A line when a run starts or ends, and every PLAIN_EVERY_S seconds during one."""

    def __init__(self, console: Console, what: str) -> None:
        self.console, self.what = console, what
        self._last_cell: int | None = None
        self._last_done = 0
        self._last_line = 0.0

    def __call__(self, progress: CampaignProgress) -> None:
        if progress.done != self._last_done and progress.last is not None:
            self._last_done = progress.done
            last = progress.last
            status = last.status or last.outcome
            error = f": {last.error}" if last.error and last.outcome != "completed" else ""
            self._say(
                f"{self.what} [{last.cell.index}/{progress.total}] {last.cell.title}: "
                f"{last.outcome}, {status}, {last.duration_s:.0f} s{error} · {_counts(progress)}"
            )
        cell = progress.current
        if cell is None:
            return
        now = time.monotonic()
        if cell.index != self._last_cell:
            self._last_cell, self._last_line = cell.index, now
            self._say(f"{self.what} {_current(progress)}: started · {_counts(progress)}")
        elif now - self._last_line >= PLAIN_EVERY_S and progress.run is not None:
            self._last_line = now
            self._say(f"  {_current(progress)}")

    def _say(self, text: str) -> None:
        self.console.print(Text(text), highlight=False, soft_wrap=True)


@contextlib.contextmanager
def campaign_display(console: Console, what: str) -> Iterator[Callable[[CampaignProgress], None]]:
    """A live bar and the current run on a terminal; plain lines elsewhere (CI logs, pipes)."""
    if not console.is_terminal:
        yield PlainLines(console, what)
        return
    with Live(console=console, refresh_per_second=4, transient=True) as live:
        yield lambda progress: live.update(_rich_view(progress))


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
    from harness.cli import parse_labels
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
    if result.outcome.interrupted and result.outcome.signum is not None:
        return 128 + result.outcome.signum
    failed = [r for r in result.outcome.results if r.outcome == FAILED]
    return EXIT_ERROR if failed else EXIT_OK


def _write_outputs(
    console: Console, result: MatrixResult, junit: Path | None, md: Path | None
) -> None:
    from harness.reporting.junit import matrix_junit, write_junit
    from harness.reporting.markdown import matrix_markdown, write_markdown

    if junit is not None:
        _err(console, f"junit: {write_junit(matrix_junit(result.matrix), junit)}")
    if md is not None:
        _err(console, f"markdown: {write_markdown(matrix_markdown(result.matrix), md)}")


def matrix_lines(matrix: Matrix) -> list[str]:
    """The headline of every ranking, for the terminal."""
    from harness.analysis.matrix_words import headline

    lines = [f"{s.scenario}: {headline(r)}" for s in matrix.scenarios for r in s.rankings]
    lines += [
        f"left out: run {r.index} {r.scenario} on {r.target}: {r.status}"
        + (f" ({r.reason})" if r.reason else "")
        for r in matrix.excluded
    ]
    return lines


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
