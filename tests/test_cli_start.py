"""A Ctrl-C while the CLI is still loading ends it as the signal would, without a traceback."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.abort import REPO


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_a_ctrl_c_during_the_clis_imports_is_quiet() -> None:
    # -X importtime reports each import as it completes: the signal is sent once the CLI's
    # own modules load (past Python's start, whatever the machine's load), not after a guess
    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "harness", "faults"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        # as at a terminal: a suite started in the background (make under `cmd &`, CI)
        # hands its children SIGINT ignored, and then no Ctrl-C reaches the CLI at all
        preexec_fn=_sigint_default,
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if "| harness." in line:  # a module the CLI imports: harness.__main__ runs
            break
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=60)
    stderr = "".join(seen) + rest
    assert "Traceback" not in stderr, stderr[-2000:]
    assert process.returncode in (-signal.SIGINT, 130), (process.returncode, stderr[-500:])
