"""A Ctrl-C while the CLI is still loading ends it as the signal would, without a traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.abort import REPO


def test_a_ctrl_c_during_the_clis_imports_is_quiet() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "faults"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    time.sleep(0.4)  # past Python's own start, inside the CLI's imports (1.5-6 s here)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert "Traceback" not in stderr, stderr[-2000:]
    assert process.returncode in (-signal.SIGINT, 130), (process.returncode, stderr[-500:])
