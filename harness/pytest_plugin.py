"""pytest plugin: keep resilience checks beside your tests (entry point `pytest11`).

The `chaos_run` fixture runs a scenario for real (deploy, load, faults, revert, teardown,
analysis) and returns its summary to assert on:

    def test_checkout_survives_a_crash(chaos_run):
        summary = chaos_run(SCENARIO, overrides={"load": {"duration": "20s"}})
        assert summary.passed, summary.verdict
        assert summary.fault("f1").ttr_s < 5.0

`chaos_run(scenario, *, target=None, seed=None, overrides=None, labels=None)`: `scenario` is a
path or a mapping; `overrides` are merged into it before it is validated (mappings key by key,
anything else replaces); `target` replaces the target kind. A run that does not complete fails
the test with its error; Ctrl-C cleans up and stops the session. Each run's directory is the
test's user property `chaos_run_dir`. Options: `--chaos-out DIR`, `--chaos-target KIND`. The
long form: docs/RUNS.md, The pytest plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.results.summary import FaultSummary, PhaseSummary, SloCheck, Summary, as_summary

ScenarioInput = Path | str | Mapping[str, object]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos-harness")
    group.addoption("--chaos-out", default=None, help="keep chaos run directories here")
    group.addoption(
        "--chaos-target",
        default=None,
        help="run every chaos scenario on this target (docker, podman, swarm, kubernetes)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: runs a chaos-harness scenario (takes a while)")


@dataclass(frozen=True)
class FaultResult:
    """One fault of a run, as summary.json measured it (`model`: every field, typed;
    `fault["key"]`: the value as the file holds it)."""

    model: FaultSummary

    @property
    def id(self) -> str:
        return self.model.id

    @property
    def impact(self) -> str:
        """visible, none (no visible impact) or unmeasured."""
        return self.model.impact

    @property
    def recovered(self) -> bool:
        return self.model.recovered is True

    @property
    def ttr_s(self) -> float | None:
        return self.model.ttr_s

    @property
    def ttd_s(self) -> float | None:
        return self.model.ttd_s

    @property
    def availability(self) -> float | None:
        return self.model.availability

    @property
    def failed_requests(self) -> int:
        return self.model.failed_requests or 0

    @property
    def response(self) -> str | None:
        """What the orchestrator did: replaced, restarted_in_place, not_restarted,
        kept_running, unknown, mixed (harness.analysis.response)."""
        return None if self.model.response is None else self.model.response.action

    def __getitem__(self, key: str) -> object:
        return self.model[key]


@dataclass(frozen=True)
class PhaseResult:
    model: PhaseSummary

    @property
    def error_rate(self) -> float | None:
        return self.model.error_rate

    @property
    def throughput_rps(self) -> float | None:
        return self.model.throughput_rps

    def latency_ms(self, percentile: str = "p95") -> float | None:
        latency = self.model.latency_ms
        value = None if latency is None else getattr(latency, percentile, None)
        return value if isinstance(value, int | float) else None


@dataclass(frozen=True)
class RunSummary:
    """A run's summary with helpers for assertions; `model` is the whole summary, typed
    (harness.results.summary), `summary["key"]` a value as summary.json holds it. `data`:
    the summary as given (the model, or summary.json decoded)."""

    run_dir: Path
    data: Summary | Mapping[str, object]

    @property
    def model(self) -> Summary:
        return as_summary(self.data)

    @property
    def status(self) -> str:
        """passed, slo_violated, baseline_broken, aborted or failed."""
        return self.model.status

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def verdict(self) -> str:
        """Why the run did not pass, in words (for assertion messages)."""
        if self.passed:
            return "every SLO met"
        summary = self.model
        failed = [
            f"{c.name}={c.value} (limit {c.limit})"
            for c in summary.slo.checks
            if c.verdict != "pass"
        ]
        reason = summary.status_reason or summary.error or ""
        return f"{self.status}: {reason}" + (f" [{'; '.join(failed)}]" if failed else "")

    @property
    def faults(self) -> list[FaultResult]:
        return [FaultResult(f) for f in self.model.faults]

    def fault(self, fault_id: str) -> FaultResult:
        found = self.model.fault(fault_id)
        if found is None:
            known = ", ".join(f.id for f in self.model.faults) or "none"
            raise KeyError(f"no fault {fault_id!r} in run {self.run_dir.name} (faults: {known})")
        return FaultResult(found)

    def phase(self, name: str) -> PhaseResult:
        return PhaseResult(self.model.phases.get(name) or PhaseSummary())

    def check(self, name: str) -> SloCheck:
        """The SLO check named `name` (e.g. ttr_s[f1])."""
        for check in self.model.slo.checks:
            if check.name == name:
                return check
        raise KeyError(f"no SLO check {name!r} in run {self.run_dir.name}")

    def __getitem__(self, key: str) -> object:
        return self.model[key]


def merged(base: Mapping[str, object], overrides: Mapping[str, object]) -> dict[str, object]:
    """`base` with `overrides` merged in: mappings key by key, anything else replaced."""
    result = dict(base)
    for key, value in overrides.items():
        current = result.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            result[key] = merged(current, value)
        else:
            result[key] = value
    return result


def load_for_test(scenario: ScenarioInput, overrides: Mapping[str, object] | None) -> object:
    """The validated scenario (ScenarioBase) from a path or a mapping, overrides applied; a
    relative locustfile is found beside the scenario file, as `harness run` finds it."""
    import yaml

    from harness.scenario import parse_scenario

    if isinstance(scenario, Mapping):
        data, source, folder = dict(scenario), "<chaos_run scenario>", Path.cwd()
    else:
        path = Path(scenario)
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise pytest.UsageError(f"{path}: a scenario file holds a mapping")
        data, source, folder = loaded, str(path), path.resolve().parent
    data = merged(data, overrides or {})
    load = data.get("load")
    if isinstance(load, Mapping):
        locustfile = load.get("locustfile")
        if isinstance(locustfile, str) and locustfile != "default":
            data["load"] = {**load, "locustfile": str(folder / locustfile)}
    return parse_scenario(yaml.safe_dump(data, sort_keys=False), source)


RunFactory = Callable[..., RunSummary]


@pytest.fixture
def chaos_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunFactory]:
    """Run a scenario for real and return its summary (module docstring)."""
    out_option = request.config.getoption("--chaos-out")
    out = Path(out_option) if out_option else tmp_path_factory.mktemp("chaos-runs")
    target_option = request.config.getoption("--chaos-target")

    def run(
        scenario: ScenarioInput,
        *,
        target: str | None = None,
        seed: int | None = None,
        overrides: Mapping[str, object] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> RunSummary:
        return _run(request, out, scenario, target or target_option, seed, overrides, labels)

    yield run


def _run(
    request: pytest.FixtureRequest,
    out: Path,
    scenario: ScenarioInput,
    target: str | None,
    seed: int | None,
    overrides: Mapping[str, object] | None,
    labels: Mapping[str, str] | None,
) -> RunSummary:
    from harness.analysis.report import report_run
    from harness.results import ABORTED
    from harness.runner import Runner, RunOptions
    from harness.scenario import ScenarioBase, with_target

    loaded = load_for_test(scenario, overrides)
    assert isinstance(loaded, ScenarioBase)
    run_labels = {"pytest": request.node.nodeid, **(labels or {})}
    runner = Runner(with_target(loaded, target), RunOptions(out, seed, labels=run_labels))
    outcome = runner.run()
    request.node.user_properties.append(("chaos_run_dir", str(outcome.run_dir)))
    if outcome.status == ABORTED:
        pytest.exit(f"chaos run aborted ({outcome.error}); everything was cleaned up", 130)
    if outcome.status != "completed":
        pytest.fail(f"the chaos run did not complete: {outcome.error} ({outcome.run_dir})")
    summary, _report = report_run(outcome.run_dir)
    return RunSummary(outcome.run_dir, summary)
