"""The run's progress lines: the whole load, and each worker's on demand (`--per-worker`)."""

from __future__ import annotations

import io

from rich.console import Console
from rich.live import Live

from harness.cli_progress import run_display
from harness.runner import Progress


def _lines(per_worker: bool) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    progress = Progress(phase="baseline", elapsed_s=10.0, total_s=40.0, requests=1200, failures=6)
    progress.workers = {"pod-b": (500, 6), "pod-a": (700, 0)}
    with Live(console=console, transient=True) as live:
        run_display(console, live, per_worker)(progress)
    return out.getvalue().splitlines()


def test_the_whole_load_then_each_worker_when_asked() -> None:
    assert _lines(per_worker=False) == ["baseline: 10/40 s, 1200 requests (120/s), 6 errors (0.5%)"]
    assert _lines(per_worker=True) == [
        "baseline: 10/40 s, 1200 requests (120/s), 6 errors (0.5%)",
        "  pod-a: 700 requests (70/s), 0 errors (0.0%)",
        "  pod-b: 500 requests (50/s), 6 errors (1.2%)",
    ]
