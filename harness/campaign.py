"""Several runs, one after another: the loop of every campaign (`harness matrix`, and trials,
`run --repeat`, which are a matrix of one; harness.matrix plans them).

A campaign is a list of cells (a scenario on a target, with its seed and labels, and where its
run directory goes). Each cell is one real run (harness.runner.Runner, a fresh deployment),
then its analysis and report. Decisions:

- A cell that fails (the runner's error, a failed preflight, even an unexpected exception) is
  recorded with its reason and the campaign goes on: one broken run must not cost the others.
- SIGINT or SIGTERM stops the campaign: during a run, the runner reverts its faults, tears
  down and returns `aborted`; between runs, the campaign's own handler stops before the next
  one. Either way the campaign returns what was done, marked interrupted, so its ledger and
  report are still written.
- The estimated time left is, for each pending cell, the mean duration of the finished cells
  of the same target (else of any target, else the load's duration plus SETUP_ESTIMATE_S),
  plus what remains of the current one.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

from harness.errors import HarnessError
from harness.hostsys import on_stop_signals
from harness.results import ABORTED, COMPLETED, FAILED
from harness.runner import HEALTH_TIMEOUT_S, Progress, RunAborted, Runner, RunOptions
from harness.scenario import ScenarioBase

SETUP_ESTIMATE_S = 20.0  # deploy, wait healthy, tear down, analyse: until a run has finished


@dataclass(frozen=True)
class Cell:
    """One planned run."""

    index: int  # 1-based, in execution order
    scenario: ScenarioBase
    scenario_file: str
    target: str
    repetition: int  # 1-based
    seed: int | None
    labels: Mapping[str, str]
    out_dir: Path

    @property
    def title(self) -> str:
        return f"{self.scenario.name} on {self.target} (repetition {self.repetition})"


@dataclass(frozen=True)
class CellResult:
    """How one cell ended. outcome: completed | aborted | failed (the runner's words,
    harness.results) | not_run."""

    cell: Cell
    outcome: str
    run_dir: Path | None
    error: str | None
    status: str | None  # the summary's status (passed, slo_violated...) when analysed
    duration_s: float
    signum: int | None = None


@dataclass
class CampaignProgress:
    """What a progress display shows; updated by the campaign, rendered by the CLI."""

    total: int
    done: int = 0
    failed: int = 0
    current: Cell | None = None
    current_started: float | None = None
    run: Progress | None = None
    eta_s: float | None = None
    last: CellResult | None = None
    notes: list[str] = field(default_factory=list)


ProgressCallback = Callable[[CampaignProgress], None]


class CampaignInterrupted(BaseException):
    """SIGINT or SIGTERM between runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _signals_stop() -> Iterator[None]:
    def handler(signum: int, _frame: FrameType | None) -> None:
        raise CampaignInterrupted(signum)

    with on_stop_signals(handler):
        yield


@dataclass(frozen=True)
class CampaignOutcome:
    results: tuple[CellResult, ...]
    interrupted: bool
    signum: int | None


AfterRun = Callable[[Path], str | None]  # analyse a run dir; its summary status (or None)
Recorder = Callable[[Sequence[CellResult]], None]  # the ledger, rewritten after every cell
WriteLedger = Callable[[Sequence[CellResult], bool], None]  # (results so far, interrupted)


def run_campaign(
    cells: Sequence[Cell],
    ledger: WriteLedger,
    after_run: AfterRun,
    on_progress: ProgressCallback | None = None,
) -> CampaignOutcome:
    """Run `cells` with their ledger written before the first, after each and at the end
    (marked interrupted when a signal stopped the campaign)."""
    ledger([], False)
    campaign = Campaign(
        cells,
        after_run=after_run,
        record=lambda results: ledger(results, False),
        on_progress=on_progress,
    )
    outcome = campaign.run()
    ledger(outcome.results, outcome.interrupted)
    return outcome


class Campaign:
    """Runs its cells in order; see the module docstring."""

    def __init__(
        self,
        cells: Sequence[Cell],
        after_run: AfterRun,
        record: Recorder,
        on_progress: ProgressCallback | None = None,
        health_timeout_s: float | None = None,
    ) -> None:
        self.cells = tuple(cells)
        self.after_run = after_run
        self.record = record
        self.progress = CampaignProgress(total=len(cells))
        self._on_progress = on_progress or (lambda _p: None)
        self._health_timeout_s = health_timeout_s
        self._results: list[CellResult] = []

    def run(self) -> CampaignOutcome:
        signum = None
        with _signals_stop():
            try:
                for cell in self.cells:
                    result = self._run_cell(cell)
                    self._finish(result)
                    if result.signum is not None:
                        signum = result.signum
                        break
            except CampaignInterrupted as exc:
                signum = exc.signum
        interrupted = signum is not None
        ran = {r.cell.index for r in self._results}
        self._results += [
            CellResult(c, "not_run", None, "the campaign was interrupted first", None, 0.0)
            for c in self.cells
            if c.index not in ran
        ]
        self.record(self._results)
        return CampaignOutcome(tuple(self._results), interrupted, signum)

    def _run_cell(self, cell: Cell) -> CellResult:
        started = time.monotonic()
        self.progress.current, self.progress.current_started = cell, started
        self.progress.run = None
        self._update()
        runner: Runner | None = None
        try:
            options = RunOptions(
                out_dir=cell.out_dir,
                seed=cell.seed,
                labels=cell.labels,
                health_timeout_s=self._health_timeout_s or HEALTH_TIMEOUT_S,
            )
            runner = Runner(cell.scenario, options, on_progress=self._run_progress)
            outcome = runner.run()
        except RunAborted as exc:  # a signal before the run had a directory
            result = self._failed(cell, runner, str(exc), started)
            return replace(result, outcome=ABORTED, signum=exc.signum)
        except HarnessError as exc:  # refused before anything was deployed
            return self._failed(cell, runner, str(exc), started)
        except Exception as exc:  # a bug in one run must not cost the campaign its other runs
            return self._failed(cell, runner, f"unexpected {type(exc).__name__}: {exc}", started)
        status, signum = None, outcome.signum
        if outcome.status != ABORTED:
            try:
                status = self.after_run(outcome.run_dir)
            except CampaignInterrupted as exc:  # the run is done: record it, then stop
                signum = exc.signum
            except Exception as exc:  # its data stays; `harness report` can try again
                self.progress.notes.append(f"{cell.title}: analysis failed: {exc}")
        return CellResult(
            cell,
            outcome.status,
            outcome.run_dir,
            outcome.error,
            status,
            time.monotonic() - started,
            signum,
        )

    @staticmethod
    def _failed(cell: Cell, runner: Runner | None, error: str, started: float) -> CellResult:
        run_dir = runner.dir.path if runner is not None and runner.dir.path.exists() else None
        return CellResult(cell, FAILED, run_dir, error, None, time.monotonic() - started)

    def _finish(self, result: CellResult) -> None:
        self._results.append(result)
        self.record(self._results)
        self.progress.done += 1
        failed = result.outcome != COMPLETED or result.status in (None, "baseline_broken")
        self.progress.failed += int(failed)
        self.progress.last, self.progress.current, self.progress.run = result, None, None
        self._update()

    def _run_progress(self, run: Progress) -> None:
        self.progress.run = run
        self._update()

    def _update(self) -> None:
        self.progress.eta_s = self.estimate_left()
        self._on_progress(self.progress)

    def estimate_left(self) -> float:
        """Seconds left: per pending cell, the mean duration of finished ones (module doc)."""
        finished = [r for r in self._results if r.outcome == COMPLETED]
        by_target: dict[str, list[float]] = {}
        for result in finished:
            by_target.setdefault(result.cell.target, []).append(result.duration_s)
        overall = [r.duration_s for r in finished]
        done = {r.cell.index for r in self._results}

        def estimate(cell: Cell) -> float:
            same = by_target.get(cell.target) or overall
            if same:
                return sum(same) / len(same)
            return cell.scenario.load.duration + SETUP_ESTIMATE_S

        left = sum(
            estimate(c)
            for c in self.cells
            if c.index not in done and c is not self.progress.current
        )
        current = self.progress.current
        if current is not None and self.progress.current_started is not None:
            spent = time.monotonic() - self.progress.current_started
            left += max(0.0, estimate(current) - spent)
        return left


def analyse_and_report(run_dir: Path) -> str | None:
    """summary.json and report.html of one run; its status, or None when it cannot be analysed."""
    from harness.analysis.report import report_run  # pandas and matplotlib: when needed

    try:
        summary, _report = report_run(run_dir)
    except HarnessError:
        return None
    return summary.status


def base_seed(given: int | None, scenario: ScenarioBase) -> int:
    """The campaign's first seed: the command line's, else the scenario's, else a random one."""
    if given is not None:
        return given
    if scenario.seed is not None:
        return scenario.seed
    return secrets.randbelow(2**31 - 1000)
