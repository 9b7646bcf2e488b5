"""The `harness` command line: thin Typer commands over the library; no logic lives here.

Exit codes: 0 every SLO met, 1 an SLO violated (a check without data counts, unless the scenario
allows it) or a broken baseline (not an experiment), 2 invalid input, 3 a target or harness
error, 130/143 interrupted by SIGINT/SIGTERM (everything is still cleaned up). With
`run --repeat N`: 0 every trial met its SLOs, 1 a trial violated one (or had a broken
baseline), 3 a trial failed to run (the others still ran and are summed up).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic.fields import FieldInfo
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from harness.analysis.jsonview import as_list, as_map, as_number
from harness.cli_compare import compare
from harness.cli_engine import engine_app
from harness.cli_lab import lab_app
from harness.cli_matrix import matrix
from harness.cli_options import JunitOption, MarkdownOption
from harness.errors import HarnessError, ScenarioError
from harness.results import ABORTED, COMPLETED
from harness.runner import Progress

if TYPE_CHECKING:
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
EXIT_OK, EXIT_SLO, EXIT_INPUT, EXIT_ERROR = 0, 1, 2, 3
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
def schema() -> None:
    """Print the JSON Schema of scenario files.

    Point your editor's YAML support at it to get completion and checks while you write a
    scenario.
    """
    from harness.scenario import scenario_model

    print(json.dumps(scenario_model().model_json_schema(), indent=2))


def _progress_display(console: Console, live: Live) -> Callable[[Progress], None]:
    """A live table on a terminal; elsewhere (CI logs, pipes) a plain line every 5 s."""
    if console.is_terminal:
        return lambda p: live.update(_progress_table(p))
    last: dict[str, object] = {}

    def line(progress: Progress) -> None:
        key = (progress.phase, int(progress.elapsed_s) // 5)
        if last.get("key") != key:
            last["key"] = key
            rate = progress.failures / progress.requests if progress.requests else 0.0
            _say(
                console,
                f"{progress.phase}: {progress.elapsed_s:.0f}/{progress.total_s:g} s, "
                f"{progress.requests} requests, {progress.failures} errors ({rate:.1%})",
            )

    return line


def _progress_table(progress: Progress) -> Table:
    table = Table.grid(padding=(0, 2))
    rate = progress.failures / progress.requests if progress.requests else 0.0
    table.add_row(
        f"[bold]{progress.phase}[/bold]",
        f"{progress.elapsed_s:5.1f} / {progress.total_s:g} s",
        f"requests {progress.requests}",
        f"errors {progress.failures} ({rate:.1%})",
    )
    return table


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
    from harness.analysis.report import analyze_and_report
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
                on_progress=_progress_display(console, live),
            )
            outcome = runner.run()
    except HarnessError as exc:
        raise _fail(exc) from exc
    summary = None
    try:
        summary, report = analyze_and_report(outcome.run_dir)
        _say(console, f"report: {report}")
    except HarnessError as exc:
        _say(console, str(exc), "analysis failed: ")
    if outcome.error:
        _say(console, outcome.error, f"run {outcome.status}: ")
    if summary is not None:
        _print_verdict(console, summary)
        _ci_outputs(console, summary, junit, markdown)
    print(outcome.run_dir)
    raise typer.Exit(_exit_code(outcome.status, outcome.signum, summary))


def _ci_outputs(
    console: Console, summary: Mapping[str, object], junit: Path | None, markdown: Path | None
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
    from harness.analysis.trials_report import fault_sentences
    from harness.cli_matrix import campaign_display
    from harness.reporting.junit import trials_junit, write_junit
    from harness.reporting.markdown import trials_markdown, write_markdown
    from harness.trials import run_trials

    with campaign_display(console, "trials") as show:
        result = run_trials(scenario, source, repeat, out, seed, labels, show)
    aggregate = result.aggregate
    _say(console, f"report: {result.report}")
    for sentence in fault_sentences(aggregate):
        _say(console, sentence)
    for trial in aggregate.trials:
        if not trial.included:
            _say(console, f"trial {trial.index}: {trial.status}: {trial.reason or ''} (left out)")
    if junit is not None:
        _say(console, f"junit: {write_junit(trials_junit(aggregate), junit)}")
    if markdown is not None:
        _say(console, f"markdown: {write_markdown(trials_markdown(aggregate), markdown)}")
    _say(console, f"trials {aggregate.status}: {len(aggregate.included)} of {repeat} summed up")
    print(result.root)
    if aggregate.status == ABORTED and result.signum is not None:
        return 128 + result.signum
    return {"passed": EXIT_OK, "slo_violated": EXIT_SLO}.get(aggregate.status, EXIT_ERROR)


def parse_labels(items: list[str]) -> dict[str, str]:
    """KEY=VALUE pairs from --label; a malformed one is invalid input (exit code 2)."""
    bad = [item for item in items if "=" not in item or item.startswith("=")]
    if bad:
        raise ScenarioError([f"--label: expected KEY=VALUE, got {item!r}" for item in bad])
    return dict(item.split("=", 1) for item in items)


def _exit_code(status: str, signum: int | None, summary: Mapping[str, object] | None) -> int:
    """0 passed; 1 an SLO violated, a check without data, or a broken baseline; 3 run error."""
    if status == ABORTED and signum is not None:
        return 128 + signum
    if status != COMPLETED or summary is None:
        return EXIT_ERROR
    verdict = summary.get("status")
    if verdict == "passed":
        return EXIT_OK
    return EXIT_SLO if verdict in ("slo_violated", "baseline_broken") else EXIT_ERROR


def _print_verdict(console: Console, summary: Mapping[str, object]) -> None:
    lines = verdict_lines(summary)
    for line in lines[:-1]:
        _say(console, line)
    final = lines[-1]
    if final == "SLOs met":
        _say(console, final)
    else:
        _say(console, final.partition(": ")[2], final.partition(": ")[0] + ": ")


def verdict_lines(summary: Mapping[str, object]) -> list[str]:
    """What `harness run` prints about a run: faults, SLO checks, and the verdict last."""
    lines: list[str] = []
    for raw in as_list(summary.get("faults")):
        lines += _fault_lines(as_map(raw))
    for raw in as_list(summary.get("fault_groups")):
        lines.append(_group_line(as_map(raw)))
    lines += [f"warning: {warning}" for warning in as_list(summary.get("warnings"))]
    slo = as_map(summary.get("slo"))
    for raw in as_list(slo.get("checks")):
        check = as_map(raw)
        line = f"  slo {_check_text(check)} -> {check.get('verdict')}"
        if check.get("verdict") != "pass" and check.get("reason"):
            line += f": {check.get('reason')}"
        lines.append(line)
    lines.append(_final_line(summary))
    return lines


def _check_text(check: Mapping[str, object]) -> str:
    """`ttr_s[f1]: 0.481 (limit 15)`; a check with no limit (recovered[f1]) shows no limit."""
    value, limit = check.get("value"), check.get("limit")
    shown = f"{value:.3f}" if isinstance(value, float) else str(value)
    text = f"{check.get('name')}: {shown}"
    return text if limit is None else f"{text} (limit {limit})"


def _fault_lines(fault: Mapping[str, object]) -> list[str]:
    targets = ", ".join(str(t) for t in as_list(fault.get("targets")))
    head = f"{fault.get('id')} {fault.get('kind')} on {targets}"
    impact, ttr = fault.get("impact", "visible"), as_number(fault.get("ttr_s"))
    if impact == "none":
        outcome = "no visible impact"
    elif impact == "unmeasured":
        outcome = "not measured"
    elif ttr is not None:
        outcome = f"recovered in {ttr:.3f} s"
    elif fault.get("censored"):
        outcome = f"recovered in at least {fault.get('ttr_at_least_s')} s (the data ended first)"
    else:
        outcome = "NOT recovered"
    if fault.get("impact_kind") in ("latency", "both"):
        outcome += f" ({fault.get('impact_kind')} impact)"
    own = as_map(fault.get("view_counts"))
    counts = f"all users: {fault.get('failed_requests')} of {fault.get('requests_in_window')}"
    if own and fault.get("view") == "instance":
        counts = (
            f"its own requests: {own.get('failed_requests')} of {own.get('requests')} failed; "
            f"{counts}"
        )
    lines = [f"{head}: {outcome}; {counts} failed in its window"]
    if fault.get("observed"):
        lines.append(f"  measured on {fault.get('observed')}")
    if fault.get("reason"):
        lines.append(f"  why: {fault.get('reason')}")
    overlapped = [str(x) for x in as_list(fault.get("overlapped_with"))]
    if overlapped:
        shared = [str(x) for x in as_list(fault.get("shared_observations_with"))]
        note = f"; shares its observations with {', '.join(shared)}" if shared else ""
        lines.append(f"  overlapped with {', '.join(overlapped)}{note}")
    cluster = fault.get("cluster")
    if isinstance(cluster, Mapping):
        steps = [
            f"{label} +{cluster[key]:.3f} s"
            for key, label in (
                ("to_node_down_s", "node down"),
                ("to_degraded_s", "degraded"),
                ("to_full_strength_s", "full strength"),
            )
            if cluster.get(key) is not None
        ]
        lines.append("  orchestrator: " + ", ".join(steps or ["no cluster events"]))
    return lines


def _group_line(group: Mapping[str, object]) -> str:
    ttr = as_map(group.get("ttr_s"))
    parts = [f"{len(as_list(group.get('occurrences')))} occurrences"]
    if ttr.get("n"):
        parts.append(f"ttr median {ttr.get('median')} s, max {ttr.get('max')} s (n={ttr['n']})")
    if group.get("no_impact"):
        parts.append(f"{group.get('no_impact')} without visible impact")
    unrecovered = as_list(group.get("unrecovered"))
    if unrecovered:
        parts.append(f"never recovered: {', '.join(str(u) for u in unrecovered)}")
    return f"{group.get('id')} {group.get('kind')} (all occurrences): " + ", ".join(parts)


def _final_line(summary: Mapping[str, object]) -> str:
    status, reason = summary.get("status"), summary.get("status_reason")
    if status == "passed":
        return "SLOs met"
    if status == "baseline_broken":
        return f"not an experiment: {reason}"
    if status == "slo_violated":
        return f"SLO violated: {reason}"
    return f"run {status}: no SLO verdict (the run did not complete)"


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
app.add_typer(lab_app, name="lab")
app.add_typer(engine_app, name="engine")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
