"""One way to run a one-shot host command: a timeout, optional stdin, and one error.

Every failure is a CommandError that quotes the command, its exit status and stderr, and says
what to try; callers that speak of faults or targets translate it at their edge. Long-lived
processes (daemons, the load generator, followers) are started with subprocess.Popen where
they are needed: they are not one-shot commands.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import CommandError


@dataclass(frozen=True)
class Done:
    """A command that ran to its end: its exit status and output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def quote(argv: Sequence[str]) -> str:
    """The command as a shell would take it (for messages)."""
    return shlex.join(argv)


def run(
    argv: Sequence[str],
    *,
    timeout_s: float = 15.0,
    check: bool = True,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
) -> Done:
    """Run `argv` to its end; CommandError when it cannot run or times out, and (with
    `check`) when it exits non-zero."""
    args = [str(a) for a in argv]
    try:
        done = subprocess.run(
            args,
            input=input,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
            env=None if env is None else dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL if input is None else None,
        )
    except FileNotFoundError as exc:
        message = f"'{quote(args)}' could not run: {args[0]} is not installed (or not on PATH)"
        raise CommandError(args, message) from exc
    except OSError as exc:
        message = f"'{quote(args)}' could not run: {exc.strerror or exc} (check the permissions)"
        raise CommandError(args, message) from exc
    except subprocess.TimeoutExpired as exc:
        message = (
            f"'{quote(args)}' did not finish within {timeout_s:g} s; run it by hand to see why"
        )
        raise CommandError(args, message) from exc
    result = Done(tuple(args), done.returncode, done.stdout, done.stderr)
    if check and not result.ok:
        raise failed(result)
    return result


def failed(done: Done) -> CommandError:
    """The error for a command that exited non-zero, quoting its last lines of stderr."""
    stderr = done.stderr.strip()
    tail = "\n".join(stderr.splitlines()[-5:]) or "(no stderr)"
    message = (
        f"'{quote(done.argv)}' failed (exit {done.returncode}): {tail}; "
        "run it by hand to see its whole output"
    )
    return CommandError(done.argv, message, done.returncode, stderr)


def output(argv: Sequence[str], *, timeout_s: float = 15.0, check: bool = True) -> str:
    """The command's stdout (see run)."""
    return run(argv, timeout_s=timeout_s, check=check).stdout
