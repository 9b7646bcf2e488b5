"""harness.commands: one runner, one error that quotes the command and its stderr."""

from __future__ import annotations

import pytest

from harness import commands
from harness.errors import CommandError, HarnessError


def test_a_failed_command_raises_one_error_quoting_it_and_its_stderr() -> None:
    with pytest.raises(CommandError) as caught:
        commands.run(["sh", "-c", "echo partial; echo 'no such thing' >&2; exit 3"])
    error = caught.value
    assert isinstance(error, HarnessError)
    assert error.argv == ["sh", "-c", "echo partial; echo 'no such thing' >&2; exit 3"]
    assert error.returncode == 3 and error.stderr == "no such thing"
    message = str(error)
    assert message.startswith("'sh -c ") and "(exit 3): no such thing" in message
    assert "run it by hand" in message


def test_unchecked_commands_return_their_status_and_output() -> None:
    done = commands.run(["sh", "-c", "cat; echo err >&2; exit 1"], input="fed", check=False)
    assert (done.returncode, done.stdout, done.stderr, done.ok) == (1, "fed", "err\n", False)
    assert commands.output(["echo", "hi"]) == "hi\n"


def test_a_missing_tool_and_a_timeout_say_what_happened() -> None:
    with pytest.raises(CommandError, match="not installed") as missing:
        commands.run(["chaos-harness-no-such-tool", "--version"], check=False)
    assert missing.value.returncode is None
    with pytest.raises(CommandError, match=r"'sleep 5' did not finish within 0.2 s"):
        commands.run(["sleep", "5"], timeout_s=0.2)


def test_the_faults_and_labs_edges_translate_it() -> None:
    from harness.errors import FaultError, TargetError
    from harness.hostsys import run as fault_run
    from harness.labs.host import sh as lab_sh

    with pytest.raises(FaultError, match="'false' failed"):
        fault_run(["false"])
    with pytest.raises(TargetError, match="'false' failed"):
        lab_sh(["false"])
