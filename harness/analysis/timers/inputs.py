"""What the timer rules read: one fault's summary, the run's settings and the engine's events.

Settings come from the run first: the resolved `scenario.yaml` (restart policy, health check,
Swarm's restart delay, the Kubernetes lab's grace period and toleration) and the manifest's
`versions` (what the target reported: `restart_delay_s`, `lab_heartbeat_s`,
`lab_node_monitor_grace_period_s`...). A rule falls back to a published default only where
neither says, and says so (harness.analysis.timers.model.Setting).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.analysis.data import RunData
from harness.analysis.timers.model import PUBLISHED, SETTINGS, Prediction, Setting
from harness.results.summary import ClusterView, FaultSummary, OrchestratorTimeline

REVERT_LEAD_NS = 2_000_000_000  # a revert's start event may precede its fault_revert by this


@dataclass(frozen=True)
class EngineEvent:
    time_ns: int
    action: str
    instance: str | None
    container_id: str | None
    attributes: Mapping[str, object]

    def slack_s(self) -> float:
        """How late this event's time may be: a Kubernetes stamp known to the second is up to
        a second late (harness.targets.kubernetes.events: time_ns is the latest instant allowed)."""
        source = self.attributes.get("time_source")
        if source is None or source == "host":
            return 0.0
        earliest = _int(self.attributes.get("api_time_ns"))
        return 0.0 if earliest is None else max(0.0, (self.time_ns - earliest) / 1e9)


InstanceTimes = OrchestratorTimeline  # one entry of a fault's `orchestrator[]`
ClusterTimes = ClusterView  # a fault's `cluster` view (Swarm, Kubernetes)


@dataclass(frozen=True)
class FaultFacts:
    fault_id: str
    kind: str
    mode: str | None
    injected_at_ns: int
    reverted_at_ns: int | None
    targets: tuple[str, ...]
    restart_policy_applies: bool | None
    orchestrator: tuple[InstanceTimes, ...]
    cluster: ClusterTimes | None

    def started_by_revert(self, times: InstanceTimes) -> bool:
        """The start came with the fault's revert (container_stop's start), not the policy:
        the revert is recorded once its action returned, so its start comes a little before."""
        start, revert = times.start_at_ns, self.reverted_at_ns
        return start is not None and revert is not None and start >= revert - REVERT_LEAD_NS


@dataclass(frozen=True)
class TimerInputs:
    """Everything a target's rules read for one fault."""

    fault: FaultFacts
    scenario: Mapping[str, object]
    versions: Mapping[str, str]
    events: tuple[EngineEvent, ...]  # the engine's, in time order

    def of_instance(self, name: str) -> list[EngineEvent]:
        return [e for e in self.events if e.instance == name]

    def event_at(self, name: str, action: str, time_ns: int | None) -> EngineEvent | None:
        """The instance's `action` event stamped `time_ns` (the one a summary interval used)."""
        if time_ns is None:
            return None
        return next(
            (e for e in self.of_instance(name) if e.action == action and e.time_ns == time_ns),
            None,
        )

    def setting(self, path: str, published: float, published_where: str) -> Setting:
        """A scenario value (dotted path), else the published default."""
        value = _dig(self.scenario, path)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return Setting(float(value), SETTINGS, f"scenario.yaml {path}")
        return Setting(published, PUBLISHED, published_where)

    def reported(self, key: str, published: float, published_where: str) -> Setting:
        """A value the target reported in the manifest's versions, else the published default."""
        raw = self.versions.get(key)
        try:
            return Setting(float(str(raw)), SETTINGS, f"manifest versions.{key}")
        except ValueError:
            return Setting(published, PUBLISHED, published_where)

    def scenario_int(self, path: str) -> int | None:
        value = _dig(self.scenario, path)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def text(self, path: str) -> str | None:
        value = _dig(self.scenario, path)
        return None if value is None else str(value)


def timer_inputs(run: RunData, fault: FaultSummary | Mapping[str, object]) -> TimerInputs:
    """What the rules read for `fault` (one fault of summary.json: the model or decoded)."""
    return TimerInputs(
        fault=fault_facts(fault),
        scenario=read_scenario(run.run_dir),
        versions=run.manifest.versions,
        events=engine_events(run),
    )


def read_scenario(run_dir: Path) -> Mapping[str, object]:
    """The resolved scenario.yaml of a run ({} when absent or unreadable: defaults then)."""
    path = Path(run_dir) / "scenario.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def engine_events(run: RunData) -> tuple[EngineEvent, ...]:
    frame = run.events[run.events["source"] == "engine"]
    rows = zip(
        frame["time_ns"].tolist(),
        frame["action"].tolist(),
        frame["instance"].tolist(),
        frame["container_id"].tolist(),
        frame["attributes"].tolist(),
        strict=True,
    )
    return tuple(
        EngineEvent(int(t), str(a), _str(i), _str(c), attrs if isinstance(attrs, dict) else {})
        for t, a, i, c, attrs in rows
    )


def fault_facts(fault: FaultSummary | Mapping[str, object]) -> FaultFacts:
    model = fault if isinstance(fault, FaultSummary) else FaultSummary.model_validate(fault)
    return FaultFacts(
        fault_id=model.id,
        kind=model.kind,
        mode=model.mode,
        injected_at_ns=model.injected_at_ns or 0,
        reverted_at_ns=model.reverted_at_ns,
        targets=tuple(model.targets),
        restart_policy_applies=model.restart_policy_applies,
        orchestrator=tuple(model.orchestrator),
        cluster=model.cluster,
    )


def _dig(tree: Mapping[str, object], path: str) -> object:
    node: object = tree
    for key in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def _str(value: object) -> str | None:
    return None if value is None or (isinstance(value, float) and value != value) else str(value)


InstanceRule = Callable[["TimerInputs", InstanceTimes], list[Prediction]]


def per_instance(inputs: TimerInputs, *rules: InstanceRule) -> list[Prediction]:
    """Each rule's predictions for every instance the fault's orchestrator intervals name."""
    return [p for times in inputs.fault.orchestrator for rule in rules for p in rule(inputs, times)]
