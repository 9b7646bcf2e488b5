"""The Docker target: the workload as containers on one Docker engine.

`spec` holds its scenario settings, `engine` the engine helpers other targets compose
(Swarm, a plugin's), `remote` what changes on an engine the harness does not run on, `target`
the Target itself (imported when a run needs it).
"""

from __future__ import annotations

from harness import capabilities as caps
from harness.hostsys import HOST_ACCESS_ENV, host_access_allowed
from harness.specs import TargetSpec
from harness.targets.base import TargetKind
from harness.targets.docker.engine import connect
from harness.targets.docker.remote import elsewhere, engine_address
from harness.targets.docker.spec import AgentEngineSpec, DockerSpec, engine_spec

THROUGH_THE_API = frozenset({caps.API_KILL, caps.API_STOP, caps.API_RESTART, caps.API_PAUSE})
THROUGH_THE_AGENT = frozenset({caps.HOST_PROCESS, caps.NETNS})  # harness.agent.docker


def capabilities(spec: TargetSpec) -> caps.Capabilities:
    return engine_capabilities(spec, "target docker")


def engine_capabilities(spec: TargetSpec, label: str) -> caps.Capabilities:
    """An engine on this machine offers everything one engine has; one elsewhere (or any
    engine under CHAOS_HARNESS_HOST_ACCESS=none) its API, and through the fault agent
    (unless `target.agent.use: never`) the containers' processes and namespaces."""
    local = caps.one_engine(label)
    engine = engine_spec(spec).engine
    if not elsewhere(engine) and host_access_allowed():
        return local
    where = (
        f"the engine at {engine_address(engine)} is not on this machine"
        if elsewhere(engine)
        else f"{HOST_ACCESS_ENV}=none"
    )
    reasons = {
        **local.reasons,
        caps.NODES: f"acts on whole nodes of a lab, and {where}: the target is one engine",
    }
    if isinstance(spec, AgentEngineSpec) and spec.agent.use != "never":
        return caps.Capabilities(
            THROUGH_THE_AGENT | THROUGH_THE_API, reasons, through_agent=THROUGH_THE_AGENT
        )
    host_side = (
        "acts from this machine's side (a process, its network namespace or cgroups), and "
        f"{where}, and target.agent.use is never; with the fault agent (use: auto) it works"
    )
    reasons |= {caps.HOST_PROCESS: host_side, caps.NETNS: host_side}
    return caps.Capabilities(THROUGH_THE_API, reasons)


TARGET = TargetKind(
    name="docker",
    spec=DockerSpec,
    target="harness.targets.docker.target:DockerTarget",
    capabilities=capabilities,
    may_provide=caps.ENGINE_ON_THIS_HOST,
    unit="container",
    timers="harness.analysis.timers.docker:predict",
    agents="harness.agent.docker:AGENTS",
)

__all__ = ["TARGET", "DockerSpec", "connect", "engine_capabilities"]
