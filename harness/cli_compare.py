"""`harness compare RUN_DIR... [--by target|scenario|label] [--label KEY] [--out DIR]
[--fail-if-slower GROUP]`: the side-by-side report of several runs.

`compare_command` is the plain function (returns the exit code); `compare` is its Typer
wrapper, registered in harness/cli.py with `app.command("compare")(compare)`.

Exit codes: 0 the report was written (and, with --fail-if-slower, the group is not decisively
slower); 1 with --fail-if-slower GROUP when GROUP is significantly slower to recover than
another group on some fault, or failed to recover where the other did; 2 invalid input (no run
directory, a directory without summary.json nor data, an unknown --by or group); 3 a harness
error while writing the report.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from harness.errors import HarnessError, ScenarioError

EXIT_OK, EXIT_SLOWER, EXIT_INPUT = 0, 1, 2
DEFAULT_RESULTS = Path("results")


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def default_out_dir(results: Path = DEFAULT_RESULTS, now: datetime | None = None) -> Path:
    """results/compare-<YYYYmmdd-HHMMSS>/, with a -2, -3... suffix if that one exists."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    path = results / f"compare-{stamp}"
    suffix = 2
    while path.exists():
        path = results / f"compare-{stamp}-{suffix}"
        suffix += 1
    return path


def compare_command(
    run_dirs: list[Path],
    by: str,
    out: Path | None,
    label: str | None,
    fail_if_slower: str | None = None,
) -> int:
    """Compare the runs, write the report into `out` and return the exit code.

    Verdict sentences go to stderr; the path of compare.html is the last line on stdout."""
    from harness.analysis.compare import compare_runs, load_runs
    from harness.analysis.compare_report import write_compare_report

    try:
        runs = load_runs(run_dirs, by, label)
        comparison = compare_runs(runs, by, label)
        names = [g.name for g in comparison.groups]
        if fail_if_slower is not None and fail_if_slower not in names:
            raise ScenarioError(
                [f"--fail-if-slower {fail_if_slower!r}: no such group (groups: {names})"]
            )
        out_dir = out if out is not None else default_out_dir()
        report = write_compare_report(comparison, out_dir)
    except ScenarioError as exc:
        for problem in exc.problems:
            _err(f"error {problem}")
        return EXIT_INPUT
    except HarnessError as exc:
        _err(f"error {exc}")
        return exc.exit_code
    for sentence in comparison.sentences():
        _err(sentence)
    print(report)
    if fail_if_slower is None:
        return EXIT_OK
    losses = comparison.losses(fail_if_slower)
    for loss in losses:
        _err(f"--fail-if-slower {fail_if_slower}: {loss}")
    return EXIT_SLOWER if losses else EXIT_OK


def compare(
    run_dirs: Annotated[
        list[Path] | None, typer.Argument(help="run directories (results/<run-id>/)")
    ] = None,
    by: Annotated[
        str, typer.Option(help="group runs by: target, scenario, or label (with --label)")
    ] = "target",
    label: Annotated[
        str | None, typer.Option(help="with --by label: the manifest label key, e.g. variant")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="output directory [default: results/compare-<time>/]")
    ] = None,
    fail_if_slower: Annotated[
        str | None,
        typer.Option(
            "--fail-if-slower",
            help="exit 1 if this group is significantly slower to recover on any fault "
            "(or fails to recover where another group did)",
        ),
    ] = None,
) -> None:
    """Compare runs side by side: a table per fault, stacked timelines, recovery-time
    distributions, and which group recovered faster, by how much, and how sure that is."""
    raise typer.Exit(compare_command(list(run_dirs or []), by, out, label, fail_if_slower))
