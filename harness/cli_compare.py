"""`harness compare RUN_DIR... [--by target|scenario|label] [--label KEY] [--out DIR]
[--fail-if-slower GROUP] [--threshold METRIC[SUBJECT]=AMOUNT]... [--baseline GROUP]
[--fail-on-regression] [--junit FILE] [--markdown FILE]`: the side-by-side report of runs.

A RUN_DIR may also be a trials directory (`run --repeat`) or a matrix directory: its runs that
completed with a healthy baseline are taken, the others left out.

`compare_command` is the plain function (returns the exit code); `compare` is its Typer
wrapper, registered in harness/cli.py with `app.command("compare")(compare)`.

Before and after (harness.analysis.thresholds): each --threshold gives a verdict per metric
and subject, better / worse / no detectable difference, of every other group against the
reference group (--baseline, default the first group given: the runs "before").

Exit codes: 0 the report was written (and, with --fail-if-slower, the group is not decisively
slower; with --fail-on-regression, no metric is worse beyond its threshold with significance);
1 with --fail-if-slower GROUP when GROUP is significantly slower to recover than another group
on some fault, or failed to recover where the other did, or with --fail-on-regression when a
metric regressed; 2 invalid input (no run directory, a directory without summary.json nor
data, an unknown --by, group or threshold, --fail-on-regression without --threshold); 3 a
harness error while writing the report.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from harness.cli_options import MarkdownOption
from harness.errors import HarnessError, ScenarioError
from harness.verdict import EXIT_INPUT, compare_gates

if TYPE_CHECKING:
    from harness.analysis.compare import Comparison
    from harness.analysis.thresholds import Check

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


@dataclass(frozen=True)
class Gates:
    """What the comparison is asked to decide, beyond the report."""

    fail_if_slower: str | None = None
    thresholds: tuple[str, ...] = ()
    baseline: str | None = None
    fail_on_regression: bool = False
    junit: Path | None = None
    markdown: Path | None = None


def compare_command(
    run_dirs: list[Path],
    by: str,
    out: Path | None,
    label: str | None,
    fail_if_slower: str | None = None,
    gates: Gates | None = None,
) -> int:
    """Compare the runs, write the report into `out` and return the exit code.

    Verdict sentences go to stderr; the path of compare.html is the last line on stdout."""
    from harness.analysis.compare import compare_runs, expand_run_dirs, load_runs
    from harness.analysis.compare_report import write_compare_report
    from harness.analysis.thresholds import parse_thresholds, regression_checks

    gates = gates or Gates(fail_if_slower=fail_if_slower)
    try:
        thresholds = parse_thresholds(gates.thresholds)
        if gates.fail_on_regression and not thresholds:
            raise ScenarioError(
                ["--fail-on-regression needs at least one --threshold, e.g. --threshold ttr_s=10%"]
            )
        runs = load_runs(expand_run_dirs(run_dirs), by, label)
        comparison = compare_runs(runs, by, label)
        names = [g.name for g in comparison.groups]
        _check_group(names, "--fail-if-slower", gates.fail_if_slower)
        _check_group(names, "--baseline", gates.baseline)
        reference = gates.baseline or (names[0] if names else "")
        checks = regression_checks(comparison, thresholds, reference) if thresholds else []
        out_dir = out if out is not None else default_out_dir()
        report = write_compare_report(comparison, out_dir, checks)
        _ci_outputs(comparison, checks, gates)
    except ScenarioError as exc:
        for problem in exc.problems:
            _err(f"error {problem}")
        return EXIT_INPUT
    except HarnessError as exc:
        _err(f"error {exc}")
        return exc.exit_code
    for sentence in comparison.sentences():
        _err(sentence)
    for check in checks:
        _err(check.sentence)
    print(report)
    code, lines = compare_gates(comparison, checks, gates.fail_if_slower, gates.fail_on_regression)
    for line in lines:
        _err(line)
    return code


def _check_group(names: list[str], option: str, group: str | None) -> None:
    if group is not None and group not in names:
        raise ScenarioError([f"{option} {group!r}: no such group (groups: {names})"])


def _ci_outputs(comparison: Comparison, checks: list[Check], gates: Gates) -> None:
    from harness.reporting.junit import regression_suites, write_junit
    from harness.reporting.markdown import compare_markdown, write_markdown

    if gates.junit is not None:
        _err(f"junit: {write_junit(regression_suites(checks), gates.junit)}")
    if gates.markdown is not None:
        _err(f"markdown: {write_markdown(compare_markdown(comparison, checks), gates.markdown)}")


def compare(
    run_dirs: Annotated[
        list[Path] | None,
        typer.Argument(help="Run directories (results/<run-id>/), trials or matrix directories."),
    ] = None,
    by: Annotated[
        str, typer.Option(help="Group the runs by target, scenario, or label (with --label).")
    ] = "target",
    label: Annotated[
        str | None,
        typer.Option(help="With --by label: the label's key, such as variant (run --label)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Where the report goes [default: results/compare-<time>/]."),
    ] = None,
    fail_if_slower: Annotated[
        str | None,
        typer.Option(
            "--fail-if-slower",
            help="Exit 1 if this group is significantly slower to recover on any fault (or "
            "fails to recover where another group did): a gate for CI.",
        ),
    ] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option(
            help="METRIC[SUBJECT]=AMOUNT, the smallest change that matters, such as "
            "ttr_s=10% or p95_ms[after]=5% (repeatable): a verdict of better, worse or no "
            "detectable difference per metric."
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="The group the others are held against for --threshold "
            "[default: the first group given]."
        ),
    ] = None,
    fail_on_regression: Annotated[
        bool,
        typer.Option(
            "--fail-on-regression",
            help="Exit 1 when a metric is worse than the baseline's beyond its threshold, "
            "with significance: a gate for CI.",
        ),
    ] = False,
    junit: Annotated[
        Path | None,
        typer.Option(help="Also write a JUnit XML file there: one test case per --threshold."),
    ] = None,
    markdown: MarkdownOption = None,
) -> None:
    """Compare runs side by side.

    Groups the runs (by target, scenario or a label) and writes compare.html: a table per
    fault, stacked timelines, recovery-time distributions, and which group recovered faster, by
    how much and how sure that is. With --threshold, every metric gets a before/after verdict
    against the --baseline group: better, worse or no detectable difference. A trials directory
    (`run --repeat`) or a matrix directory stands for its runs that completed with a healthy
    baseline. The verdicts go to stderr; the last line on stdout is the path of compare.html.

    \b
    Exit codes:
      0  the report was written, and no gate below failed
      1  with --fail-if-slower GROUP: GROUP is significantly slower to recover
         than another group on some fault, or did not recover where it did;
         with --fail-on-regression: a metric is worse beyond its threshold
      2  invalid input: no run directory, a directory without results, an
         unknown --by, group or threshold, --fail-on-regression alone
      3  the harness failed while writing the report
    """
    gates = Gates(
        fail_if_slower=fail_if_slower,
        thresholds=tuple(threshold or ()),
        baseline=baseline,
        fail_on_regression=fail_on_regression,
        junit=junit,
        markdown=markdown,
    )
    raise typer.Exit(compare_command(list(run_dirs or []), by, out, label, gates=gates))
