"""What the harness and the agent say to each other: one JSON request, one JSON reply.

A request is passed as the argument of `python -m harness.agent call` (no stdin: an exec
through the API server or a Docker engine needs nothing else), the reply is the one line the
call prints. Both sides validate with these models, so a version skew is a clear error.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PROTOCOL_VERSION = 1
SERVE_ARGV = ("python3", "-m", "harness.agent", "serve")
CALL_ARGV = ("python3", "-m", "harness.agent", "call")
STATE_DIR = "/var/lib/chaos-agent"  # inside the agent's container: its undo log and run files


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentInstance(_Model):
    """One instance as the harness sees it; the agent finds its PID on its own node."""

    name: str
    service: str = ""
    container_id: str
    container_name: str = ""
    url: str
    address: str = ""
    port: int = 0
    node: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class InfoRequest(_Model):
    op: Literal["info"] = "info"


class ApplyRequest(_Model):
    """Apply `record` (a RevertRecord's JSON) of fault `kind` with `params` on this node."""

    op: Literal["apply"] = "apply"
    run_id: str
    kind: str
    params: dict[str, Any]
    record: dict[str, Any]
    instances: list[AgentInstance]
    lease_s: float | None = None  # revert by itself this long after applying (None: one-off)


class RevertRequest(_Model):
    op: Literal["revert"] = "revert"
    run_id: str
    kind: str
    record: dict[str, Any]
    instances: list[AgentInstance]


class Request(_Model):
    version: int = PROTOCOL_VERSION
    body: InfoRequest | ApplyRequest | RevertRequest = Field(discriminator="op")


class Reply(_Model):
    """ok, or the error (a FaultError's message); times are the agent's clock, in ns."""

    version: int = PROTOCOL_VERSION
    ok: bool
    error: str = ""
    node: str = ""
    time_ns: int = 0  # when the agent answered (info: for the clock offset)
    action_ns: int | None = None  # the fault's first action (apply), or its revert's
    outstanding: list[str] = Field(default_factory=list)  # fault ids it still holds
