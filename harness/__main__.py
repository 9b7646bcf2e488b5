"""`python -m harness` and the `harness` command.

Loading the CLI takes seconds on a busy machine (pandas, matplotlib, the clients). A Ctrl-C in
that window has nothing to clean up yet, so it ends the process as the signal would, quietly,
instead of a KeyboardInterrupt traceback from some import; the run installs its own handlers
from its first line.
"""

from __future__ import annotations

import signal


def run() -> None:
    quiet = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if quiet:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    from harness.cli import main

    if quiet:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    main()


if __name__ == "__main__":
    run()
