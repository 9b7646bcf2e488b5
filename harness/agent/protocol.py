"""What the harness and the agent say to each other: one JSON request, one JSON reply.

A request is passed as the argument of `python -m harness.agent call` (no stdin: an exec
through the API server or a Docker engine needs nothing else), the reply is the one line the
call prints. Both sides validate with these models, so a version skew is a clear error: each
side reads the other's `version` before anything else (version 2 added the probe requests and
the reply's probes, version 3 the container instants).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from harness.agent.wire import CALL_ARGV as CALL_ARGV
from harness.agent.wire import CLOCK_ARGV as CLOCK_ARGV
from harness.agent.wire import PROTOCOL_VERSION as PROTOCOL_VERSION
from harness.agent.wire import SERVE_ARGV as SERVE_ARGV
from harness.agent.wire import STATE_DIR as STATE_DIR
from harness.agent.wire import safe_run_id


def _one_directory(run_id: str) -> str:
    if not safe_run_id(run_id):
        raise ValueError(f"a run id names one directory, not {run_id!r}")
    return run_id


# the probe files are under STATE_DIR/runs/<run id>/: never a path of the request's
RunId = Annotated[str, AfterValidator(_one_directory)]
# one word of the agent's watch file (a runtime's id: hex, or its own word characters)
ContainerId = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z_.-]{1,128}$")]


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
    """Plan and apply fault `kind` with `params` on `targets`, this node's share of them.

    The agent plans (a plan reads the target's cgroups and PIDs, which are the node's), keeps
    the record in its own undo log before the change, and applies it; `instances` are all the
    run's instances (a partition needs the others' addresses)."""

    op: Literal["apply"] = "apply"
    run_id: str
    fault_id: str
    kind: str
    params: dict[str, Any]
    targets: list[str]
    instances: list[AgentInstance]
    seed: int = 0
    lease_s: float | None = None  # revert by itself this long after applying (None: one-off)


class RevertRequest(_Model):
    """Revert `fault_id` from the agent's own undo log (done already: ok)."""

    op: Literal["revert"] = "revert"
    run_id: str
    fault_id: str
    instances: list[AgentInstance]


class ProbeTarget(_Model):
    """One instance to probe from the agent's node: its name and the URL the node reaches."""

    name: str
    url: str


class ProbeStartRequest(_Model):
    """Start the run's probe process on this node (replacing one already running): a GET of
    each target every `interval_s`; it stops by itself `idle_s` after the last read, so a
    harness that died leaves no prober behind. The reply: its pid and the log's size."""

    op: Literal["probe_start"] = "probe_start"
    run_id: RunId
    targets: list[ProbeTarget]
    interval_s: float = Field(gt=0)
    timeout_s: float = Field(gt=0)
    idle_s: float = Field(default=60.0, gt=0)


class ProbeReadRequest(_Model):
    """The probes completed since byte `offset` of the run's probe log (whole lines only);
    the reply's `next_offset` is where the next read starts, its `pid` the prober's (None:
    not running)."""

    op: Literal["probe_read"] = "probe_read"
    run_id: RunId
    offset: int = Field(default=0, ge=0)


class ProbeStopRequest(_Model):
    """Stop the run's probe process (not running: ok); its log stays to be read."""

    op: Literal["probe_stop"] = "probe_stop"
    run_id: RunId


class InstantsRequest(_Model):
    """When each container started and exited, as the agent's node saw them (harness.agent.
    watching); with `watch`, the agent's `serve` watches those of its node for their exit from
    now on (the reply comes once it does)."""

    op: Literal["instants"] = "instants"
    run_id: RunId
    container_ids: list[ContainerId]
    watch: bool = False


Body = (
    InfoRequest
    | ApplyRequest
    | RevertRequest
    | ProbeStartRequest
    | ProbeReadRequest
    | ProbeStopRequest
    | InstantsRequest
)


class Request(_Model):
    version: int = PROTOCOL_VERSION
    body: Body = Field(discriminator="op")


class AgentProbe(_Model):
    """One probe as the agent did it; `start_ns` is the agent's clock."""

    instance: str
    start_ns: int
    latency_ms: float
    ok: bool
    error: str | None = None


class ContainerInstants(_Model):
    """One container as the agent's node saw it, on the agent's clock (None: not seen there).
    `started_ns`: its init process's start (10 ms ticks); `exited_ns`: that process's exit."""

    container_id: str
    started_ns: int | None = None
    exited_ns: int | None = None
    watching: bool = False  # serve holds its process, to see its exit


class Reply(_Model):
    """ok, or the error (a FaultError's message); times are the agent's clock, in ns."""

    version: int = PROTOCOL_VERSION
    ok: bool
    error: str = ""
    node: str = ""
    time_ns: int = 0  # when the agent answered (info: for the clock offset)
    action_ns: int | None = None  # the fault's first action (apply), or its revert's
    mechanism: str = ""  # what the agent did (the record's mechanism)
    outstanding: list[str] = Field(default_factory=list)  # fault ids it still holds
    pid: int | None = None  # probe_*: the probe process, while it runs
    probes: list[AgentProbe] = Field(default_factory=list)  # probe_read: the new ones
    next_offset: int = 0  # probe_start / probe_read: where the next read starts
    instants: list[ContainerInstants] = Field(default_factory=list)  # instants: one a container
