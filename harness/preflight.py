"""Everything checked before a run deploys anything, each problem with what to do about it.

`preflight(scenario)` needs no engine (`harness validate` runs it too): what the target cannot
do, what this machine's kernel and tools cannot inject, a locustfile that does not compile.
`preflight_machine(scenario)` asks the machine the run will use (the runner calls it after
`preflight`): the engine answers, the workload's image is there, the ports the run must bind
are free. Invalid input is a ScenarioError (exit 2: a locustfile with a syntax error, an image
the engine does not have); a machine that cannot run it is a CapabilityError or TargetError
(exit 3: a kernel without the fault's mechanism, an engine that does not answer, a port in use).

What "a port in use" means, per target (its Target.preflight decides, from what it binds here):
- docker, podman: nothing. Each replica listens on `workload.port` inside its own network
  namespace on the run's private bridge, and the service address is an iptables rule, not a
  socket; runs side by side use the same port without conflict.
- swarm, one engine: when the engine is not in a swarm yet, the run initialises one that
  listens on `target.swarm.advertise_addr`:2377 on the host, so that address must be free. The
  tasks' published ports are host-mode ports the engine picks itself (never a fixed one).
- swarm and kubernetes labs: every daemon listens inside the lab's own namespaces.
- kubernetes: NodePorts are chosen by the API server.
- the load: with `load.workers`, the Locust master binds a port chosen free at its start.
"""

from __future__ import annotations

import tokenize
from pathlib import Path

from faults.base import AnyFault
from harness.capabilities import HOST_PROCESS, NETNS, Capabilities
from harness.errors import CapabilityError, ScenarioError
from harness.prometheus.client import check_server
from harness.scenario import DEMO_LOCUSTFILE, ScenarioBase, build_fault
from harness.specs import AgentSpec
from harness.targets import target_class, target_kind
from harness.targets.checks import target_problems
from harness.targets.swarm.preflight import port_in_use
from harness.timeline import Occurrence, expand

__all__ = ["late_fault_warnings", "locustfile_problems", "port_in_use", "preflight"]


def preflight(scenario: ScenarioBase) -> list[tuple[Occurrence, AnyFault]]:
    """Build every fault and check this machine can inject it, before anything starts."""
    planned = [(o, build_fault(o.entry)) for o in expand(scenario.faults, scenario.load.duration)]
    unsupported = target_problems(scenario)
    if unsupported:  # the scenario asks what this orchestrator does not have: invalid input
        raise ScenarioError([f"target {scenario.target.kind}: {p}" for p in unsupported])
    locustfile_problems(scenario)
    spec = scenario.target
    capabilities = target_kind(spec.kind).capabilities(spec)
    problems = [
        f"faults.{o.entry_index - 1} ({o.entry.kind}): {p}"
        for o, fault in planned
        # a fault the agent does uses the agent image's tools, not this host's
        if not capabilities.relayed(fault.needs())
        for p in fault.check()
    ]
    if not _agents_can_probe(scenario, capabilities, [fault for _, fault in planned]):
        raise ScenarioError(
            [
                "probes.via: agent needs the run's fault agents, and this run has none (they "
                "come with a host-side fault on a target the harness does not run, or "
                "target.agent.use: always); use probes.via: auto or harness"
            ]
        )
    if problems:
        raise CapabilityError(
            "this machine cannot run the scenario:\n  "
            + "\n  ".join(problems)
            + "\n`harness faults` lists what works here; choose another mechanism or kind"
        )
    return planned


def _agents_can_probe(
    scenario: ScenarioBase, capabilities: Capabilities, faults: list[AnyFault]
) -> bool:
    """False when probes.via is agent and no fault of the run will bring agents."""
    if not scenario.probes.enabled or scenario.probes.via != "agent":
        return True
    agent = getattr(scenario.target, "agent", None)
    always = isinstance(agent, AgentSpec) and agent.use == "always"
    host_side = {HOST_PROCESS, NETNS}
    return any(
        capabilities.relayed(fault.needs())
        or (always and any(need in host_side for need in fault.needs()))
        for fault in faults
    )


def locustfile_problems(scenario: ScenarioBase) -> None:
    """A locustfile of the user's that does not compile: its file:line and the error."""
    name = scenario.load.locustfile
    if name == DEMO_LOCUSTFILE:
        return
    path = Path(name)
    try:
        with tokenize.open(path) as handle:  # honours a coding declaration, as Python does
            source = handle.read()
        compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f"{path}:{exc.lineno or 1}"
        raise ScenarioError(
            [
                f"{where}: load.locustfile does not compile: {exc.msg}; fix it "
                f"(python3 -m py_compile {path} shows the same error)"
            ]
        ) from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ScenarioError([f"{path}: load.locustfile cannot be read: {exc}"]) from exc


def late_fault_warnings(scenario: ScenarioBase) -> list[str]:
    """Occurrences whose action (a one-off's injection, else its revert) ends after
    load.duration - detection_horizon - stable_for: the load may end before their failures
    and a stable recovery can be seen, so their recovery is censored ("at least x s")."""
    load, analysis = scenario.load, scenario.analysis
    margin_s = analysis.detection_horizon + analysis.stable_for
    latest_s = load.duration - margin_s
    warnings = []
    for occurrence in expand(scenario.faults, load.duration):
        end_s = occurrence.revert_at_s if occurrence.revert_at_s is not None else occurrence.at_s
        if end_s <= latest_s:
            continue
        what = "is reverted" if occurrence.revert_at_s is not None else "happens"
        warnings.append(
            f"faults.{occurrence.entry_index - 1} ({occurrence.entry.kind}) {occurrence.fault_id}"
            f" {what} at {end_s:g} s, after {latest_s:g} s (load.duration {load.duration:g} s"
            f" - analysis.detection_horizon {analysis.detection_horizon:g} s - "
            f"analysis.stable_for {analysis.stable_for:g} s): the load may end before its "
            "recovery can be seen, and it would be censored (recovered in at least x s); "
            f"lengthen load.duration to at least {end_s + margin_s:g} s or move it earlier"
        )
    return warnings


# --- the machine the run will use ---------------------------------------------------------


def preflight_machine(scenario: ScenarioBase) -> None:
    """What the target's own preflight asks the machine (Target.preflight): the engine
    answers, the image is there, the ports the run must bind are free; and the Prometheus
    of slo.prometheus answers and accepts every query."""
    target_class(scenario.target.kind).preflight(scenario)
    prometheus_preflight(scenario)


def prometheus_preflight(scenario: ScenarioBase) -> None:
    """observe.metrics' port is free; observe.prometheus answers /-/ready (else
    PrometheusError, exit 3); a query it refuses is invalid input (ScenarioError, exit 2), with
    Prometheus' own message."""
    metrics = scenario.observe.metrics
    if metrics is not None and port_in_use(metrics.host, metrics.port):
        raise CapabilityError(
            f"observe.metrics.port {metrics.port} on {metrics.host} is in use: free it or "
            "choose another port (the Prometheus that scrapes the run must be told it too)"
        )
    server, checks = scenario.observe.prometheus, scenario.slo.prometheus
    if server is None or not checks:
        return
    refused = check_server(server.url, [c.query for c in checks])
    if refused:
        raise ScenarioError([f"slo.prometheus.{i}.query: {why}" for i, why in refused])
