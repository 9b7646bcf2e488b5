"""The harness's exception tree. Engine and library errors are translated at the edge.

HarnessError                  base of everything the harness raises on purpose
├── ScenarioError             invalid input (exit code 2); carries every problem found
├── CapabilityError           this machine lacks a kernel feature, tool or privilege
├── CommandError              a host command could not run, timed out or failed
├── TargetError               the orchestrator failed or refused (exit code 3)
│   └── DeployTimeout         the workload did not become healthy in time
├── FaultError                a fault could not be injected or reverted
│   └── AgentError            the fault agent could not be deployed, reached or answered
├── LoadError                 the load generator failed
├── PrometheusError           Prometheus did not answer, or refused a query
│   └── PrometheusQueryError  it refused the query itself (its syntax, its types)
└── AnalysisError             the run directory is missing data the analysis needs
"""

from __future__ import annotations

from collections.abc import Sequence


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""

    exit_code = 3


class ScenarioError(HarnessError):
    """The scenario file (or a command-line value) is invalid; `problems` lists every one."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class CapabilityError(HarnessError):
    """A kernel feature, tool or privilege this run needs is missing on this machine."""


class CommandError(HarnessError):
    """A host command could not run, timed out, or exited non-zero (harness.commands).

    `argv`, `returncode` (None when it never finished) and `stderr` say what happened; the
    message quotes the command and says what to try. A layer with an error of its own (a
    fault, a target) translates it at its edge.
    """

    def __init__(
        self, argv: Sequence[str], message: str, returncode: int | None = None, stderr: str = ""
    ) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(message)


class TargetError(HarnessError):
    """The orchestrator failed, refused, or could not be reached."""


class DeployTimeout(TargetError):
    """The workload did not become healthy within the deadline."""


class FaultError(HarnessError):
    """A fault could not be injected or reverted."""


class AgentError(FaultError):
    """The fault agent (harness.agent) could not be deployed, reached, or answered."""


class LoadError(HarnessError):
    """The load generator failed."""


class PrometheusError(HarnessError):
    """Prometheus did not answer, or refused a query (its own message carried)."""


class PrometheusQueryError(PrometheusError):
    """Prometheus refused the query itself (bad_data: syntax, types)."""


class AnalysisError(HarnessError):
    """A run directory lacks data the analysis needs."""
