"""Running `harness run` from a benchmark, as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def harness_run(scenario: Path, out: Path) -> Path:
    """Run the scenario with the harness's CLI; its run directory (the output's last line)."""
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(scenario), "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return Path(done.stdout.strip().splitlines()[-1])
