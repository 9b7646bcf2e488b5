"""Progress on stderr: of one run (`harness run`) and of a campaign (`run --repeat`, `matrix`).

On a terminal a live view; elsewhere (CI logs, pipes) plain lines now and then, so a log
shows where a long campaign is without flooding.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from harness.campaign import CampaignProgress
from harness.runner import Progress

PLAIN_EVERY_S = 10.0


def _plain(console: Console, text: str) -> None:
    """Plain text, never parsed as Rich markup (names like ttr_s[f1] stay as they are)."""
    console.print(Text(text), highlight=False, soft_wrap=True)


def run_display(
    console: Console, live: Live, per_worker: bool = False
) -> Callable[[Progress], None]:
    """A live table on a terminal; elsewhere (CI logs, pipes) a plain line every 5 s. With
    `per_worker`, a row (a line) for each load worker as well."""
    if console.is_terminal:
        return lambda p: live.update(_run_table(p, per_worker))
    last: dict[str, object] = {}

    def line(progress: Progress) -> None:
        key = (progress.phase, int(progress.elapsed_s) // 5)
        if last.get("key") != key:
            last["key"] = key
            _plain(
                console,
                f"{progress.phase}: {progress.elapsed_s:.0f}/{progress.total_s:g} s, "
                + _counts_text(progress.requests, progress.failures, progress.elapsed_s),
            )
            for name, (requests, failures) in _workers(progress, per_worker):
                _plain(
                    console, f"  {name}: " + _counts_text(requests, failures, progress.elapsed_s)
                )

    return line


def _counts_text(requests: int, failures: int, elapsed_s: float) -> str:
    """Requests, errors and their share, and the rate so far (requests per second)."""
    share = failures / requests if requests else 0.0
    rate = requests / elapsed_s if elapsed_s > 0 else 0.0
    return f"{requests} requests ({rate:.0f}/s), {failures} errors ({share:.1%})"


def _workers(progress: Progress, per_worker: bool) -> list[tuple[str, tuple[int, int]]]:
    return sorted(progress.workers.items()) if per_worker else []


def _run_table(progress: Progress, per_worker: bool = False) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_row(
        f"[bold]{progress.phase}[/bold]",
        f"{progress.elapsed_s:5.1f} / {progress.total_s:g} s",
        _counts_text(progress.requests, progress.failures, progress.elapsed_s),
    )
    for name, (requests, failures) in _workers(progress, per_worker):
        table.add_row(f"  {name}", "", _counts_text(requests, failures, progress.elapsed_s))
    return table


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
            _plain(
                self.console,
                f"{self.what} [{last.cell.index}/{progress.total}] {last.cell.title}: "
                f"{last.outcome}, {status}, {last.duration_s:.0f} s{error} · {_counts(progress)}",
            )
        cell = progress.current
        if cell is None:
            return
        now = time.monotonic()
        if cell.index != self._last_cell:
            self._last_cell, self._last_line = cell.index, now
            _plain(self.console, f"{self.what} {_current(progress)}: started · {_counts(progress)}")
        elif now - self._last_line >= PLAIN_EVERY_S and progress.run is not None:
            self._last_line = now
            _plain(self.console, f"  {_current(progress)}")


@contextlib.contextmanager
def campaign_display(console: Console, what: str) -> Iterator[Callable[[CampaignProgress], None]]:
    """A live bar and the current run on a terminal; plain lines elsewhere (CI logs, pipes)."""
    if not console.is_terminal:
        yield PlainLines(console, what)
        return
    with Live(console=console, refresh_per_second=4, transient=True) as live:
        yield lambda progress: live.update(_rich_view(progress))
