"""The `harness` command line: thin Typer commands over the library; no logic lives here.

Commands parse their input, call the library and print what it returns; the exit codes and
the verdict lines are decided in harness.verdict.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic.fields import FieldInfo
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from harness.cli_agent import agent_app
from harness.cli_compare import compare
from harness.cli_engine import engine_app
from harness.cli_lab import lab_app
from harness.cli_matrix import matrix
from harness.cli_options import JunitOption, MarkdownOption, parse_labels
from harness.cli_progress import campaign_display, run_display
from harness.cli_prometheus import prometheus_app
from harness.cli_schema import schema
from harness.cli_worker import worker, worker_image
from harness.errors import HarnessError, ScenarioError
from harness.verdict import (
    final_line,
    run_exit_code,
    trials_exit_code,
    trials_final_line,
    trials_lines,
    verdict_lines,
)

if TYPE_CHECKING:
    from harness.results.summary import Summary
    from harness.scenario import ScenarioBase

# Help is rendered by Click (rich_markup_mode=None): it rewraps every paragraph to the
# terminal's width, so a docstring's hard line breaks never break a sentence in the output, and
# text such as [default: ...] or <run-id> is shown as written (Rich markup would eat it). A
# paragraph that must keep its lines (a list of exit codes) starts with Click's \b marker.
APP_HELP = """Chaos experiments on container orchestrators: deploy a workload on Docker, Podman,
Docker Swarm or Kubernetes, put load on it with Locust, inject faults, and measure how the
service recovers (time to recover, availability, latency).

Start with `harness run scenarios/quickstart.yaml`. Every command explains itself with
`harness COMMAND --help`.

\b
Exit codes of run (matrix and compare say their own):
  0        every SLO met
  1        an SLO violated, or the baseline was broken (not an experiment)
  2        invalid input: nothing was run
  3        the target or the harness failed
  130/143  interrupted by SIGINT/SIGTERM (everything is still cleaned up)
"""

app = typer.Typer(add_completion=False, no_args_is_help=True, help=APP_HELP, rich_markup_mode=None)
ScenarioArgument = Annotated[Path, typer.Argument(help="The scenario file (YAML).")]


def _stderr() -> Console:
    return Console(stderr=True)


def _say(console: Console, text: str, red_prefix: str = "") -> None:
    """Print plain text (never parsed as Rich markup: names like ttr_s[f1] stay as they are)."""
    console.print(Text(red_prefix, style="red") + Text(text), highlight=False, soft_wrap=True)


def _fail(exc: HarnessError) -> typer.Exit:
    console = _stderr()
    if isinstance(exc, ScenarioError):
        for problem in exc.problems:
            _say(console, problem, "error ")
        _say(console, f"{len(exc.problems)} problem(s); nothing was run.")
    else:
        _say(console, str(exc), "error ")
    return typer.Exit(exc.exit_code)


@app.command()
def validate(scenario: ScenarioArgument) -> None:
    """Check a scenario file without running anything.

    Prints every problem with its file and line, and warnings worth knowing (such as a fault
    that ends too late in the run to be measured). Nothing is deployed and no engine is needed:
    use it while writing a scenario, or in CI on every scenario file.

    Exit codes: 0 the scenario is valid (warnings allowed); 2 it is not; 3 this machine cannot
    inject one of its faults.
    """
    from harness.preflight import late_fault_warnings, preflight
    from harness.scenario import load_scenario

    try:
        loaded = load_scenario(scenario)
        preflight(loaded)
    except HarnessError as exc:
        raise _fail(exc) from exc
    for warning in late_fault_warnings(loaded):  # worth knowing, not invalid: exit 0
        print(f"{scenario}: warning: {warning}", file=sys.stderr)
    print(f"{scenario}: ok ({len(loaded.faults)} fault(s), target {loaded.target.kind})")


@app.command()
def run(
    scenario: ScenarioArgument,
    out: Annotated[Path, typer.Option(help="Directory that receives the run directory.")] = Path(
        "results"
    ),
    seed: Annotated[
        int | None,
        typer.Option(
            help="Seed for the random choices (which replica a fault hits), to replay a run."
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="Run on this target instead of the scenario's: docker, podman, swarm or "
            "kubernetes."
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(
            help="KEY=VALUE kept in the run's manifest, to group runs with `compare --by "
            "label` (repeatable)."
        ),
    ] = None,
    repeat: Annotated[
        int | None,
        typer.Option(
            help="Run N trials, each on a fresh deployment, summed up in one directory "
            "[default: the scenario's repeat, else 1].",
            min=1,
            max=100,
        ),
    ] = None,
    junit: JunitOption = None,
    markdown: MarkdownOption = None,
    per_worker: Annotated[
        bool,
        typer.Option(help="Progress of each Locust worker too (distributed load)."),
    ] = False,
) -> None:
    """Run a scenario end to end.

    Deploys the workload, puts load on it, injects the scenario's faults, analyzes what was
    recorded and cleans up. Progress goes to stderr; then the faults' recovery, the SLO checks
    and the verdict. The last line on stdout is the run directory (with --repeat, the trials
    directory), which holds report.html, summary.json and the recorded requests.

    \b
    Exit codes:
      0        every SLO met (with --repeat: in every trial)
      1        an SLO violated, a check without data (unless the scenario allows
               it), or a broken baseline (not an experiment)
      2        invalid input: nothing was deployed
      3        the target or the harness failed (with --repeat: a trial failed to
               run; the others still ran and are summed up)
      130/143  interrupted by SIGINT/SIGTERM; everything is still cleaned up
    """
    from harness.analysis.report import report_run
    from harness.runner import Runner, RunOptions
    from harness.scenario import load_scenario, with_target

    console = _stderr()
    try:
        loaded = with_target(load_scenario(scenario), target)
        labels = parse_labels(label or [])
        trials = repeat if repeat is not None else loaded.repeat
        if trials > 1:
            raise typer.Exit(
                _run_trials(
                    console, loaded, str(scenario), trials, out, seed, labels, junit, markdown
                )
            )
        with Live(console=console, refresh_per_second=4, transient=True) as live:
            runner = Runner(
                loaded,
                RunOptions(out_dir=out, seed=seed, labels=labels),
                on_progress=run_display(console, live, per_worker),
            )
            outcome = runner.run()
    except HarnessError as exc:
        raise _fail(exc) from exc
    summary = None
    try:
        summary, report = report_run(outcome.run_dir)
        _say(console, f"report: {report}")
    except HarnessError as exc:
        _say(console, str(exc), "analysis failed: ")
    if outcome.error:
        _say(console, outcome.error, f"run {outcome.status}: ")
    if summary is not None:
        _print_verdict(console, summary)
        _ci_outputs(console, summary, junit, markdown)
    print(outcome.run_dir)
    raise typer.Exit(run_exit_code(outcome.status, outcome.signum, summary))


def _print_verdict(console: Console, summary: Summary) -> None:
    """Every line plain, the verdict's head in red unless the SLOs were met."""
    for line in verdict_lines(summary)[:-1]:
        _say(console, line)
    final = final_line(summary)
    if final == "SLOs met":
        _say(console, final)
    else:
        head, _, why = final.partition(": ")
        _say(console, why, head + ": ")


def _ci_outputs(
    console: Console, summary: Summary, junit: Path | None, markdown: Path | None
) -> None:
    from harness.reporting.junit import run_junit, write_junit
    from harness.reporting.markdown import run_markdown, write_markdown

    if junit is not None:
        _say(console, f"junit: {write_junit(run_junit(summary), junit)}")
    if markdown is not None:
        _say(console, f"markdown: {write_markdown(run_markdown(summary), markdown)}")


def _run_trials(
    console: Console,
    scenario: ScenarioBase,
    source: str,
    repeat: int,
    out: Path,
    seed: int | None,
    labels: dict[str, str],
    junit: Path | None,
    markdown: Path | None,
) -> int:
    """`run --repeat N`: the trials, their aggregate and report; the exit code of the set."""
    from harness.reporting.junit import trials_junit, write_junit
    from harness.reporting.markdown import trials_markdown, write_markdown
    from harness.trials import run_trials

    with campaign_display(console, "trials") as show:
        result = run_trials(scenario, source, repeat, out, seed, labels, show)
    aggregate = result.aggregate
    _say(console, f"report: {result.report}")
    for line in trials_lines(aggregate):
        _say(console, line)
    if junit is not None:
        _say(console, f"junit: {write_junit(trials_junit(aggregate), junit)}")
    if markdown is not None:
        _say(console, f"markdown: {write_markdown(trials_markdown(aggregate), markdown)}")
    _say(console, trials_final_line(aggregate))
    print(result.root)
    return trials_exit_code(aggregate.status, result.signum)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (results/<run-id>/).")],
) -> None:
    """Rebuild a run's report from its stored data.

    Writes summary.json, the figures and report.html again from the run directory alone. Needs
    no engine: use it after upgrading the harness, or on a run directory copied from
    another machine. Prints the report's path.
    """
    from harness.analysis.report import write_report

    try:
        path = write_report(run_dir)
    except HarnessError as exc:
        raise _fail(exc) from exc
    print(path)


@app.command()
def cleanup(
    results: Annotated[Path, typer.Option(help="Directory that holds the run directories.")] = Path(
        "results"
    ),
) -> None:
    """Undo what killed runs left behind.

    Reverts every fault and removes every container, network, rule and process that a run
    which did not finish (killed, or its machine rebooted) left on this machine; runs still
    in progress are left alone. Safe to run at any time. Prints what it removed.
    """
    from harness.cleanup import cleanup_all

    try:
        for line in cleanup_all(results):
            print(line)
    except HarnessError as exc:
        raise _fail(exc) from exc


def _describe_param(name: str, info: FieldInfo) -> str:
    key = info.serialization_alias or info.alias or name  # the key as written in YAML
    default = (
        "required"
        if info.is_required()
        else f"default {info.get_default(call_default_factory=True)!r}"
    )
    return f"{key}: {info.description or ''} ({default})"


@app.command("faults")
def list_faults() -> None:
    """List the fault kinds you can put in a scenario.

    For each: whether it lasts a duration or happens once, its parameters with their defaults,
    and which of its mechanisms work on this machine (a ✗ says why not).
    """
    from faults.registry import fault_kinds

    console = Console()
    table = Table("kind", "duration", "parameters", "mechanisms here", show_lines=True)
    for kind, cls in sorted(fault_kinds().items()):
        params = "\n".join(
            _describe_param(name, info) for name, info in cls.params_model.model_fields.items()
        )
        mechanisms = "\n".join(
            f"{'✓' if m.available else '✗'} {m.name}{': ' + m.detail if m.detail else ''}"
            for m in cls.mechanisms()
        )
        table.add_row(kind, "yes" if cls.has_duration else "one-off", params or "-", mechanisms)
    console.print(table)


@app.command("build-images")
def build_images() -> None:
    """Build the demo workload's image.

    Builds the bundled demo workload's image on the local Docker engine. Runs and labs build it
    when it is missing; build it beforehand to keep that time out of a run. Prints the image's
    name.
    """
    from harness.images import build_demo_image
    from harness.targets.docker import connect

    try:
        print(build_demo_image(connect(None)))
    except HarnessError as exc:
        raise _fail(exc) from exc


app.command("compare")(compare)
app.command("matrix")(matrix)
app.command("schema")(schema)
app.command("worker")(worker)
app.command("worker-image")(worker_image)
app.add_typer(lab_app, name="lab")
app.add_typer(engine_app, name="engine")
app.add_typer(prometheus_app, name="prometheus")
app.add_typer(agent_app, name="agent")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
