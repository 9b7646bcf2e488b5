"""Scenario files: pydantic models of the YAML, and loading with every error at once.

The models are frozen, so they also serve as the run's internal, immutable description (a
second set of dataclasses would only repeat them). The fault entries are a discriminated
union built from the fault table, so a plugin's parameters are validated like the built-ins'.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from yaml.constructor import SafeConstructor

from faults.base import AnyFault
from faults.registry import fault_kinds
from harness.errors import ScenarioError
from harness.units import Bytes, PerSecond, Seconds, parse_duration, parse_rate
from harness.workload import DEMO, DEMO_ATTRIBUTION_HEADER

PhaseName = Literal["baseline", "fault", "recovery", "after", "total"]
Routing = Literal["service", "per_instance"]
Connections = Literal["keep_alive", "per_request"]
TARGET_KINDS = ("docker", "podman", "swarm", "kubernetes")
DEMO_LOCUSTFILE = "default"
DEFAULT_TIMEOUT_S = 2.0
# Open loop: each user keeps one arrival every users / rate seconds; that interval must outlast
# a request's timeout (plus this slack), or a user stuck on a dead replica misses its turns.
OPEN_LOOP_SLACK_S = 1.0


class StrictModel(BaseModel):
    """Unknown keys are errors; values are immutable once loaded; inf and nan are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SwarmUpdateSpec(StrictModel):
    parallelism: int = Field(default=1, ge=0)
    delay: Seconds = 0.0
    monitor: Seconds = 5.0
    failure_action: Literal["pause", "continue", "rollback"] = "pause"
    order: Literal["stop-first", "start-first"] = "stop-first"


class SwarmSpec(StrictModel):
    """Swarm service settings; Swarm's own defaults when the scenario says nothing."""

    restart_condition: Literal["any", "on-failure", "none"] | None = Field(
        default=None, description="default: from workload.restart (always -> any)"
    )
    restart_delay: Seconds = Field(default=5.0, description="Swarm's default is 5 s")
    restart_max_attempts: int | None = Field(default=None, ge=0)
    restart_window: Seconds | None = None
    update: SwarmUpdateSpec | None = None
    task_poll: Seconds = Field(default=0.1, gt=0, description="how often task states are read")
    advertise_addr: str = "127.0.0.1"


class KubernetesSpec(StrictModel):
    """Kubernetes workload settings; Kubernetes' own defaults when the scenario says nothing."""

    liveness: bool = Field(
        default=False,
        description="the workload's health check also as a liveness probe: the kubelet "
        "restarts a container that fails it (default: a readiness probe only)",
    )


class LabSpec(StrictModel):
    """A multi-node cluster built on this machine for the run (see `harness lab`)."""

    nodes: int = Field(default=3, ge=1, le=7, description="Swarm: 2 or more")
    managers: Literal[1, 3] = Field(default=1, description="Swarm only")
    heartbeat: Seconds = Field(default=5.0, gt=0, description="Swarm only: dispatcher heartbeat")
    node_monitor_grace_period: Seconds | None = Field(
        default=None,
        gt=0,
        description="Kubernetes only: the controller manager's --node-monitor-grace-period "
        "(default: Kubernetes' own)",
    )
    unreachable_toleration: int | None = Field(
        default=None,
        ge=0,
        le=86400,
        description="Kubernetes only: seconds a pod stays bound to a not-ready or unreachable "
        "node before it is evicted and replaced (kube-apiserver's "
        "--default-not-ready-toleration-seconds and --default-unreachable-toleration-seconds; "
        "default: Kubernetes' 300)",
    )


# Which target fields mean something to which kind; a field set for another kind is an error.
TARGET_FIELDS: dict[str, frozenset[str]] = {
    "docker": frozenset({"engine"}),
    "podman": frozenset({"engine"}),
    "swarm": frozenset({"engine", "swarm", "lab"}),
    "kubernetes": frozenset({"lab", "kubeconfig", "context", "namespace", "kubernetes"}),
}
LAB_FIELDS: dict[str, frozenset[str]] = {
    "swarm": frozenset({"nodes", "managers", "heartbeat"}),
    "kubernetes": frozenset({"nodes", "node_monitor_grace_period", "unreachable_toleration"}),
}


class TargetSpec(StrictModel):
    kind: Literal["docker", "podman", "swarm", "kubernetes"] = "docker"
    engine: str | None = Field(
        default=None,
        description="engine address like DOCKER_HOST (docker: default the environment's; "
        "podman: default a Podman API service started for the run)",
    )
    swarm: SwarmSpec = Field(default_factory=SwarmSpec)
    kubernetes: KubernetesSpec = Field(default_factory=KubernetesSpec)
    lab: LabSpec | None = None
    kubeconfig: str | None = Field(
        default=None, description="Kubernetes: kubeconfig file (default: the local lab's)"
    )
    context: str | None = Field(default=None, description="Kubernetes: kubeconfig context")
    namespace: str | None = Field(
        default=None, description="Kubernetes: namespace (default: one made for the run)"
    )

    @model_validator(mode="after")
    def _fields_of_the_kind(self) -> TargetSpec:
        problems = [
            f"target.{name} has no meaning for kind {self.kind}; remove it"
            for name in sorted(self.model_fields_set - {"kind"} - TARGET_FIELDS[self.kind])
        ]
        if self.lab is not None and self.kind in LAB_FIELDS:
            problems += [
                f"target.lab.{name} has no meaning for kind {self.kind}; remove it"
                for name in sorted(self.lab.model_fields_set - LAB_FIELDS[self.kind])
            ]
            if self.kind == "swarm" and self.lab.nodes < 2:
                problems.append("target.lab.nodes: a Swarm lab has 2 nodes or more")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class HealthSpec(StrictModel):
    path: str = "/health"
    interval: Seconds = 1.0
    timeout: Seconds = 1.0
    retries: int = Field(default=3, ge=1)
    start_period: Seconds = 0.0


class ResourcesSpec(StrictModel):
    cpus: float | None = Field(default=None, gt=0)
    memory: Bytes | None = Field(default=None, ge=6 * 1024 * 1024)


class WorkloadSpec(StrictModel):
    name: str = Field(default="web", pattern=r"^[a-z][a-z0-9-]{0,30}$")
    image: str = Field(default="demo", description="'demo' (built locally) or a local image")
    replicas: int = Field(default=3, ge=1, le=50)
    port: int = Field(default=8080, ge=1, le=65535)
    env: dict[str, str] = Field(default_factory=dict)
    command: list[str] | None = None
    restart: Literal["no", "always", "on-failure", "unless-stopped"] = "always"
    health: HealthSpec | None = Field(default_factory=HealthSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)

    @field_validator("command", mode="before")
    @classmethod
    def _split_command(cls, value: object) -> object:
        return value.split() if isinstance(value, str) else value


class PathSpec(StrictModel):
    path: str = Field(pattern=r"^/")
    name: str | None = None
    weight: int = Field(default=1, ge=1)


def open_loop_users(rate_per_s: float, timeout_s: float) -> int:
    """Users enough to keep `rate_per_s` arrivals even when every request takes its timeout."""
    return max(1, math.ceil(rate_per_s * (timeout_s + OPEN_LOOP_SLACK_S)))


class LoadSpec(StrictModel):
    """Closed loop (default): `users` each send a request as soon as the last one completed
    (plus `wait`). Open loop (`rate`): a fixed arrival schedule of `rate` requests per second,
    kept by enough users that none is still waiting on a request when its next turn comes (as
    wrk2 and k6's arrival-rate executors do); `users` then defaults to
    ceil(rate x (timeout + 1 s)) and `spawn_rate` to `users` (all started within a second)."""

    users: int = Field(default=10, ge=1, le=10_000)
    spawn_rate: float = Field(default=10.0, gt=0)
    duration: Seconds = Field(default=60.0, gt=0)
    locustfile: str = Field(
        default=DEMO_LOCUSTFILE,
        description="'default' or a path (relative to the scenario file); Locust's --host is "
        "the target's service address",
    )
    workers: int = Field(default=0, ge=0, le=16)
    paths: list[PathSpec] = Field(default_factory=lambda: [PathSpec(path="/")])
    wait: Seconds = Field(default=0.0, description="pause between a user's requests")
    timeout: Seconds = Field(default=DEFAULT_TIMEOUT_S, gt=0, description="per-request timeout")
    rate: PerSecond | None = Field(
        default=None,
        description="open loop: requests per second on a fixed schedule, e.g. 200/s "
        "(default: closed loop)",
    )
    connections: Connections = Field(
        default="keep_alive",
        description="the bundled locustfile's connections: keep_alive (each user keeps one "
        "open while the server allows it, and opens a fresh one after any error) or "
        "per_request (a new connection for every request, 'Connection: close')",
    )
    attribution_header: str | None = Field(
        default=None,
        pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
        description="the response header in which the workload names the replica that served "
        "a request (recorded per request, for any locustfile); default: none, X-Served-By for "
        "the demo workload",
    )
    routing: Routing = Field(
        default="service",
        description="service: every request to the target's service address (Locust's "
        "--host), so the orchestrator's routing around a failure is part of its recovery; "
        "per_instance: the bundled locustfile spreads requests round-robin over each "
        "replica's own address, so each request's replica is known",
    )

    @model_validator(mode="before")
    @classmethod
    def _open_loop_defaults(cls, data: object) -> object:
        if not isinstance(data, Mapping) or data.get("rate") is None:
            return data
        try:
            rate = parse_rate(data["rate"])
            timeout = parse_duration(data.get("timeout", DEFAULT_TIMEOUT_S))
        except ValueError:
            return data  # the fields' own validation reports it, with its line
        filled = dict(data)
        if "users" not in filled:
            filled["users"] = min(open_loop_users(rate, timeout), 10_000)
        if "spawn_rate" not in filled and isinstance(filled["users"], int):
            filled["spawn_rate"] = float(filled["users"])
        return filled

    def attribution_header_for(self, image: str) -> str | None:
        """The header naming a request's server: the scenario's, else the demo's own."""
        if self.attribution_header is not None:
            return self.attribution_header
        return DEMO_ATTRIBUTION_HEADER if image == DEMO else None

    @model_validator(mode="after")
    def _bundled_settings_only(self) -> LoadSpec:
        if "connections" in self.model_fields_set and self.locustfile != DEMO_LOCUSTFILE:
            raise ValueError(
                "load.connections sets the bundled locustfile's connections; a locustfile of "
                "your own opens its own: remove connections or use locustfile: default"
            )
        return self

    @model_validator(mode="after")
    def _open_loop_is_kept(self) -> LoadSpec:
        if self.rate is None:
            return self
        problems = []
        if self.locustfile != DEMO_LOCUSTFILE:
            problems.append(
                "load.rate paces the bundled locustfile only; a locustfile of your own sets its "
                "own wait_time (Locust's constant_pacing): remove rate or use locustfile: default"
            )
        if self.wait:
            problems.append("load.wait and load.rate exclude each other: remove wait")
        if self.users / self.rate < self.timeout:
            needed = math.ceil(self.rate * self.timeout)
            problems.append(
                f"load.users {self.users} cannot keep load.rate {self.rate:g}/s when a request "
                f"may take load.timeout {self.timeout:g} s: give at least {needed} users, or "
                "leave users out to get enough"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def open_loop(self) -> bool:
        return self.rate is not None


class ProbeSpec(StrictModel):
    enabled: bool = True
    interval: Seconds = Field(default=0.1, gt=0)
    path: str = "/health"
    timeout: Seconds = Field(default=1.0, gt=0)


class SelectorSpec(StrictModel):
    """Which instances a fault hits: by count or percent (random, seeded) or by name/label."""

    count: int | None = Field(default=None, ge=1)
    percent: float | None = Field(default=None, gt=0, le=100)
    names: list[str] | None = None
    labels: dict[str, str] | None = None
    service: str | None = None

    @model_validator(mode="after")
    def _one_way_to_count(self) -> SelectorSpec:
        chosen = [k for k in ("count", "percent", "names") if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise ValueError(f"give only one of count, percent, names (got {', '.join(chosen)})")
        return self


class FaultEntry(StrictModel):
    """The timing and selection every fault has; kind-specific parameters sit beside them."""

    kind: str
    name: str | None = Field(default=None, description="a label for reports")
    at: Seconds = Field(description="offset from the start of the load")
    duration: Seconds | None = None
    every: Seconds | None = Field(default=None, gt=0, description="repeat with this period")
    times: int | None = Field(default=None, ge=1, description="how many repeats (with every)")
    select: SelectorSpec = Field(default_factory=lambda: SelectorSpec(count=1))

    def params_dict(self) -> dict[str, Any]:
        common = set(FaultEntry.model_fields)
        return {k: v for k, v in self.model_dump().items() if k not in common}


class SloSpec(StrictModel):
    ttr_s: float | None = Field(default=None, gt=0, description="max time to recover, per fault")
    ttd_s: float | None = Field(default=None, gt=0, description="max time to detect, per fault")
    availability: float | None = Field(default=None, ge=0, le=1, description="min, per fault")
    error_rate: dict[PhaseName, float] = Field(default_factory=dict)
    p95_ms: dict[PhaseName, float] = Field(default_factory=dict)
    p99_ms: dict[PhaseName, float] = Field(default_factory=dict)
    allow_no_data: bool = Field(
        default=False,
        description="true: a check without data (an empty phase, a fault without visible "
        "impact) does not fail the run",
    )
    require_recovery: bool = Field(
        default=True,
        description="a fault with a visible impact that never recovered fails the run "
        "(check recovered[<id>]), whatever the other limits",
    )


class AnalysisSpec(StrictModel):
    stable_for: Seconds = Field(
        default=2.0, gt=0, description="how long failures must stay at the baseline rate"
    )
    detection_horizon: Seconds = Field(
        default=5.0,
        gt=0,
        description="a failure later than this after the fault's action (its injection; its "
        "revert for a fault with a duration) is not its impact",
    )
    warmup: Seconds | None = Field(
        default=None,
        description="ramp-up left out of the baseline; default users / spawn_rate, at least 1 s",
    )
    baseline_max_error_rate: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="above this share of failed requests (or probes) in the steady baseline the "
        "run is not an experiment: status baseline_broken, exit code 1",
    )
    confidence: float = Field(
        default=0.99,
        gt=0.5,
        lt=1,
        description="a stability window may hold as many failures as this quantile of "
        "Binomial(observations, baseline rate)",
    )
    window: Seconds = Field(
        default=10.0,
        gt=0,
        description="availability, failed and lost requests of a fault are counted over "
        "[its action, + its duration + window], the same for every run compared",
    )

    def warmup_s(self, load: LoadSpec) -> float:
        """The warm-up in force: the given one, else the time Locust takes to start every user."""
        if self.warmup is not None:
            return self.warmup
        return max(1.0, load.users / load.spawn_rate)


class ScenarioBase(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$")
    description: str = ""
    seed: int | None = None
    repeat: int = Field(
        default=1, ge=1, le=100, description="trials, each on a fresh deployment (--repeat)"
    )
    target: TargetSpec = Field(default_factory=TargetSpec)
    workload: WorkloadSpec = Field(default_factory=WorkloadSpec)
    load: LoadSpec = Field(default_factory=LoadSpec)
    probes: ProbeSpec = Field(default_factory=ProbeSpec)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    slo: SloSpec = Field(default_factory=SloSpec)
    faults: Sequence[FaultEntry] = ()

    @field_validator("target", mode="before")
    @classmethod
    def _target_shorthand(cls, value: object) -> object:
        return {"kind": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _faults_fit_the_load(self) -> ScenarioBase:
        problems = [
            f"faults.{i}.at: {entry.at:g} s is not before the end of the load "
            f"({self.load.duration:g} s); move it earlier or lengthen load.duration"
            for i, entry in enumerate(self.faults)
            if entry.at >= self.load.duration
        ]
        horizon = self.analysis.detection_horizon
        if horizon <= self.load.timeout:
            problems.append(
                f"analysis.detection_horizon ({horizon:g} s) must exceed load.timeout "
                f"({self.load.timeout:g} s): a request caught by a fault fails only when it "
                "times out; lengthen the horizon or shorten the timeout"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _fault_entry_model(kind: str, fault: type[AnyFault]) -> type[FaultEntry]:
    params = {
        name: (info.annotation, info) for name, info in fault.params_model.model_fields.items()
    }

    def _timing_rules(entry: FaultEntry) -> FaultEntry:
        if fault.has_duration and entry.duration is None:
            raise ValueError(f"{kind} lasts a while: give it a duration (e.g. duration: 10s)")
        if not fault.has_duration and entry.duration is not None:
            raise ValueError(f"{kind} is a one-off event: remove duration")
        if entry.times is not None and entry.every is None:
            raise ValueError("times needs every (the repeat period)")
        return entry

    return create_model(  # type: ignore[call-overload,no-any-return]
        f"{''.join(p.title() for p in kind.split('_'))}Fault",
        __base__=FaultEntry,
        __doc__=fault.summary,
        __validators__={"_timing_rules": model_validator(mode="after")(_timing_rules)},
        kind=(Literal[kind], ...),
        **params,
    )


def scenario_model(kinds: Mapping[str, type[AnyFault]] | None = None) -> type[ScenarioBase]:
    """The Scenario model for the installed fault kinds (built once per set of kinds)."""
    kinds = fault_kinds() if kinds is None else kinds
    return _scenario_model(tuple(sorted(kinds.items())))


@functools.lru_cache(maxsize=8)
def _scenario_model(kinds: tuple[tuple[str, type[AnyFault]], ...]) -> type[ScenarioBase]:
    entries = tuple(_fault_entry_model(kind, cls) for kind, cls in kinds)
    entry_type: Any = (
        Annotated[Union[entries], Field(discriminator="kind")]  # noqa: UP007
        if len(entries) > 1
        else entries[0]
    )
    return create_model(  # type: ignore[call-overload,no-any-return]
        "Scenario",
        __base__=ScenarioBase,
        faults=(list[entry_type], Field(default_factory=list)),
    )


def fault_class(entry: FaultEntry) -> type[AnyFault]:
    return fault_kinds()[entry.kind]


def build_fault(entry: FaultEntry) -> AnyFault:
    """The fault object of one scenario entry, its params validated by the kind's model."""
    cls = fault_class(entry)
    return cls(cls.params_model.model_validate(entry.params_dict()))


# --- loading with file:line ------------------------------------------------------------------


def _line_of(node: yaml.Node | None, path: Sequence[str | int]) -> int | None:
    """The 1-based line of the YAML node at `path`, or of its deepest existing parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in path:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == key), None)
            if match is None:
                key_node = next((k for k, _ in node.value if k.value == key), None)
                return key_node.start_mark.line + 1 if key_node else line
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            if key >= len(node.value):
                return line
            node = node.value[key]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def _data_path(loc: Sequence[str | int], data: object, tags: set[str]) -> list[str | int]:
    """Drop pydantic's union-tag segments (the fault kind) so the path matches the YAML."""
    path: list[str | int] = []
    for key in loc:
        if isinstance(data, Mapping) and key in tags and key not in data:
            continue
        path.append(key)
        if isinstance(data, Mapping):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and key < len(data):
            data = data[key]
        else:
            data = None
    return path


def _describe(error: Mapping[str, Any], kinds: Mapping[str, type[AnyFault]], data: object) -> str:
    message = str(error["msg"])
    if error["type"] == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag", "")
        message = f"unknown fault kind {_short(tag)}; allowed: {', '.join(sorted(kinds))}"
    elif error["type"] == "union_tag_not_found":
        message = f"a fault needs a kind; allowed: {', '.join(sorted(kinds))}"
    elif error["type"] == "extra_forbidden":
        message = f"unknown key {_short(error['loc'][-1])}"
        allowed = allowed_keys(error["loc"][:-1], data, kinds)
        if allowed:
            message += f"; allowed here: {', '.join(allowed)}"
    elif error["type"] == "missing":
        message = "required field is missing"
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return message


def _got(error: Mapping[str, Any], message: str) -> str:
    value = error.get("input")
    if error["type"] in {"missing", "extra_forbidden"} or isinstance(value, Mapping | list):
        return ""
    if "got " in message:
        return ""  # the message quotes the value already
    return f" (got {_short(value)})"


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-2:]}"


def _segment(key: str | int) -> str:
    """One step of a field's path as written: a plain key as is, any other quoted."""
    text = str(key)
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else _short(text, 40)


def _format_errors(
    source: str, root: yaml.Node | None, data: object, exc: ValidationError
) -> list[str]:
    kinds = fault_kinds()
    problems = []
    for error in exc.errors():
        path = _data_path(error["loc"], data, set(kinds))
        where = ".".join(_segment(p) for p in path) or "(top level)"
        line = _line_of(root, path) or 1
        message = _describe(error, kinds, data)
        problems.append(f"{source}:{line}: {where}: {message}{_got(error, message)}")
    return problems


# libyaml's parser where PyYAML has it (ten times faster; the same nodes, marks and errors)
YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_SCENARIO_BYTES = 1_000_000
MAX_SCENARIO_NODES = 100_000  # values in the document once YAML aliases are expanded


def parse_scenario(text: str, source: str = "<scenario>") -> ScenarioBase:
    """Validate scenario YAML text; raise ScenarioError listing every problem with file:line."""
    if len(text) > MAX_SCENARIO_BYTES:
        raise ScenarioError(
            [f"{source}:1: a scenario file holds at most {MAX_SCENARIO_BYTES:,} characters"]
        )
    root, data = _read_yaml(text, source)
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ScenarioError(
            [f"{source}:1: a scenario is a mapping with at least 'name' (got {got})"]
        )
    try:
        return scenario_model().model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_format_errors(source, root, data, exc)) from exc


def _read_yaml(text: str, source: str) -> tuple[yaml.Node | None, object]:
    """The document's node tree (for lines) and its data; every failure a ScenarioError."""
    try:
        root = yaml.compose(text, Loader=YAML_LOADER)
        size = _expanded_size(root, {})
        if size > MAX_SCENARIO_NODES:
            raise ScenarioError(
                [
                    f"{source}:1: the document expands to {size:,} values through its aliases "
                    f"(at most {MAX_SCENARIO_NODES:,}): write the values out, or fewer aliases"
                ]
            )
        return root, None if root is None else SafeConstructor().construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError([f"{source}:{line}: not valid YAML: {problem}"]) from exc
    except RecursionError:
        raise ScenarioError(
            [f"{source}:1: the document is nested too deeply to read; a scenario is a few levels"]
        ) from None


def _expanded_size(node: yaml.Node | None, memo: dict[int, int]) -> int:
    """How many values `node` holds once aliases are expanded (a shared node counts each time
    it is used), without expanding them."""
    if node is None:
        return 0
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a cycle counts once
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[id(node)] = total
    return total


def load_scenario(path: Path) -> ScenarioBase:
    """Read and validate a scenario file; a relative locustfile is found beside the file."""
    try:
        if path.stat().st_size > MAX_SCENARIO_BYTES:
            raise ScenarioError(
                [f"{path}: a scenario file holds at most {MAX_SCENARIO_BYTES:,} bytes"]
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ScenarioError([f"{path}: cannot read the scenario file: {reason}"]) from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            [
                f"{path}:{text_line_at(path, exc.start)}: not UTF-8 text (byte {exc.start}): "
                "a scenario is a YAML text file"
            ]
        ) from exc
    except ValueError as exc:  # a path with a NUL byte
        raise ScenarioError([f"{path!r}: not a usable file name: {exc}"]) from exc
    scenario = parse_scenario(text, str(path))
    return _with_locustfile_beside(scenario, path, text)


def text_line_at(path: Path, offset: int) -> int:
    """The 1-based line of byte `offset` in the file."""
    try:
        return path.read_bytes()[:offset].count(b"\n") + 1
    except OSError:
        return 1


def allowed_keys(
    loc: Sequence[str | int], data: object, kinds: Mapping[str, type[AnyFault]]
) -> list[str]:
    """The keys a mapping at `loc` (a pydantic error location) may hold, as written in YAML."""
    annotation: Any = scenario_model(kinds)
    node = data
    for key in loc:
        if isinstance(key, int):
            annotation = _item_type(annotation)
            node = node[key] if isinstance(node, list) and key < len(node) else None
            continue
        if isinstance(node, Mapping) and key not in node and key in kinds:
            continue  # pydantic's union tag (the fault kind) is no key of the YAML
        model = _model_in(annotation, node, kinds)
        fields = getattr(model, "model_fields", {})
        info = next((f for n, f in fields.items() if key in (n, f.alias)), None)
        annotation = info.annotation if info is not None else None
        node = node.get(key) if isinstance(node, Mapping) else None
    fields = getattr(_model_in(annotation, node, kinds), "model_fields", None)
    if not fields:
        return []
    return [info.serialization_alias or info.alias or name for name, info in fields.items()]


def _item_type(annotation: object) -> object:
    """X of list[X] or Sequence[X] (through Optional)."""
    for arg in getattr(annotation, "__args__", ()) or ():
        if arg is not type(None):
            return arg
    return None


def _model_in(annotation: object, node: object, kinds: Mapping[str, type[AnyFault]]) -> Any:
    """The pydantic model a value of `annotation` is (through Optional, Annotated and unions;
    a fault entry's by the node's kind)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    options = (
        [getattr(annotation, "__origin__", None)] if hasattr(annotation, "__metadata__") else []
    )
    options += list(getattr(annotation, "__args__", ()) or ())
    models = [m for m in (_model_in(o, node, kinds) for o in options if o is not None) if m]
    kind = node.get("kind") if isinstance(node, Mapping) else None
    if any(issubclass(m, FaultEntry) for m in models):
        return (
            _fault_entry_model(kind, kinds[kind])
            if isinstance(kind, str) and kind in kinds
            else FaultEntry
        )
    return models[0] if models else None


def _with_locustfile_beside(scenario: ScenarioBase, path: Path, text: str = "") -> ScenarioBase:
    """A relative locustfile path is relative to the scenario file (as compose files do)."""
    name = scenario.load.locustfile
    if name == DEMO_LOCUSTFILE:
        return scenario
    where = f"{path}:{_line_in(text, ['load', 'locustfile'])}: load.locustfile"
    try:
        locustfile = Path(name)
        if not locustfile.is_absolute():
            locustfile = (path.parent / locustfile).resolve()
        found = locustfile.is_file()
    except (OSError, ValueError) as exc:
        raise ScenarioError([f"{where}: not a usable path {_short(name)}: {exc}"]) from exc
    if not found:
        raise ScenarioError(
            [
                f"{where}: no such file {_short(str(locustfile))} (a relative path is "
                "relative to the scenario file)"
            ]
        )
    load = scenario.load.model_copy(update={"locustfile": str(locustfile)})
    return scenario.model_copy(update={"load": load})


def _line_in(text: str, path: Sequence[str | int]) -> int:
    """The line of the value at `path` in YAML `text` that was already read once (1 if none)."""
    try:
        return _line_of(yaml.compose(text, Loader=YAML_LOADER), path) or 1
    except (yaml.YAMLError, RecursionError):
        return 1


def resolved_yaml(scenario: ScenarioBase) -> str:
    """The scenario with every default filled in, as YAML (kept in the run directory)."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)


def with_target(scenario: ScenarioBase, kind: str | None) -> ScenarioBase:
    """The scenario with its target kind replaced (the command line's --target)."""
    if kind is None:
        return scenario
    if kind not in TARGET_KINDS:
        raise ScenarioError(
            [f"--target: unknown target {kind!r}; allowed: {', '.join(TARGET_KINDS)}"]
        )
    if kind == scenario.target.kind:
        return scenario
    # Only the scenario's portable settings travel to another kind: a Swarm lab's shape
    # means nothing to Docker, so kind-specific fields are dropped, not silently misapplied.
    kept = {
        name: value
        for name, value in scenario.target.model_dump(exclude_unset=True).items()
        if name in TARGET_FIELDS[kind] and name != "lab"
    }
    lab = scenario.target.lab
    if lab is not None and kind in LAB_FIELDS:  # a lab's shape carries over, Swarm <-> Kubernetes
        kept["lab"] = lab.model_dump(include=set(LAB_FIELDS[kind]) & lab.model_fields_set)
    try:
        target = TargetSpec.model_validate({**kept, "kind": kind})
    except ValidationError as exc:
        raise ScenarioError([f"--target {kind}: {e['msg']}" for e in exc.errors()]) from exc
    return scenario.model_copy(update={"target": target})
