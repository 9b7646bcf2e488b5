"""The models of a scenario: frozen, strict, and the run's own immutable description too.

Nothing here knows the registries: each target package declares its settings as a subclass of
TargetSpec, each fault kind its parameters, and harness.scenario builds the Scenario model
(the unions of both) and reads files with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from harness.units import Bytes, PerSecond, Seconds, parse_duration, parse_rate
from harness.workload import DEMO, DEMO_ATTRIBUTION_HEADER


class StrictModel(BaseModel):
    """Unknown keys are errors; values are immutable once loaded; inf and nan are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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


class AgentSpec(StrictModel):
    """The fault agent (harness.agent): host-side faults done on the target's own nodes."""

    use: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="auto: when this machine cannot reach the target's processes (a cluster "
        "elsewhere, or CHAOS_HARNESS_HOST_ACCESS=none); always: even when it can (to compare "
        "both paths); never: host-side faults are refused there",
    )
    image: str | None = Field(
        default=None,
        description="the agent's image in your registry (`harness agent build` makes it); "
        "default: built on this machine and loaded into the lab's nodes",
    )


class TargetSpec(StrictModel):
    """The `target:` of a scenario: its kind, and the settings of that kind (a subclass per
    target package, registered in harness.targets)."""

    kind: str
    # The fields of LabSpec that mean something to this kind (none: it has no lab).
    lab_fields: ClassVar[frozenset[str]] = frozenset()

    def where(self) -> str:
        """The engine or cluster these settings reach, in a few words (for cleanup's report;
        two settings with the same kind and `where` reach the same objects)."""
        return "default engine"


def lab_problems(kind: str, lab: LabSpec | None, allowed: frozenset[str]) -> list[str]:
    """The lab fields set in `lab` that mean nothing to the target `kind`."""
    if lab is None:
        return []
    return [
        f"target.lab.{name} has no meaning for kind {kind}; remove it"
        for name in sorted(lab.model_fields_set - allowed)
    ]


PhaseName = Literal["baseline", "fault", "recovery", "after", "total"]
Routing = Literal["service", "per_instance"]
Connections = Literal["keep_alive", "per_request"]
DEMO_LOCUSTFILE = "default"
DEFAULT_TIMEOUT_S = 2.0
# Open loop: each user keeps one arrival every users / rate seconds; that interval must outlast
# a request's timeout (plus this slack), or a user stuck on a dead replica misses its turns.
OPEN_LOOP_SLACK_S = 1.0


class PathSpec(StrictModel):
    path: str = Field(pattern=r"^/")
    name: str | None = None
    weight: int = Field(default=1, ge=1)


def open_loop_users(rate_per_s: float, timeout_s: float) -> int:
    """Users enough to keep `rate_per_s` arrivals even when every request takes its timeout."""
    return max(1, math.ceil(rate_per_s * (timeout_s + OPEN_LOOP_SLACK_S)))


class LoadMasterSpec(StrictModel):
    """The Locust master as workers on other machines reach it (`harness worker`)."""

    bind: str = Field(
        default="0.0.0.0:5557",
        pattern=r"^(\*|[0-9A-Za-z.:\[\]-]+):[0-9]{1,5}$",
        description="HOST:PORT the master listens on for its workers",
    )
    expect_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="workers started outside the harness, waited for (0: only the "
        "harness's own, e.g. placement pods on a cluster whose pods reach `bind`)",
    )
    wait: Seconds = Field(default=120.0, gt=0, description="for every worker to connect, at most")

    @property
    def host(self) -> str:
        return self.bind.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.bind.rpartition(":")[2])

    @model_validator(mode="after")
    def _port_in_range(self) -> LoadMasterSpec:
        if not 0 < self.port < 65536:
            raise ValueError(f"load.master.bind: port {self.port} is out of range 1-65535")
        return self


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
    workers: int = Field(
        default=0,
        ge=0,
        le=16,
        description="Locust workers the harness starts (0: one process) where `placement` says",
    )
    placement: Literal["local", "nodes", "pods"] = Field(
        default="local",
        description="local: the workers run on the harness's host; nodes: one in each node's "
        "network namespace of the Swarm lab (a node's fault reaches its load generator too); "
        "pods: workers as pods of the run on the Kubernetes lab, loading the Service's ClusterIP",
    )
    image: str | None = Field(
        default=None,
        description="placement pods: the worker image (default: built on this machine and "
        "loaded into the lab's nodes)",
    )
    master: LoadMasterSpec | None = Field(
        default=None,
        description="workers on other machines: the master listens at `bind` and waits for "
        "`expect_workers` of them (`harness worker --master HOST:PORT`), besides `workers`",
    )
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

    host: str | None = Field(
        default=None,
        description="the URL users reach the workload at (an Ingress, a LoadBalancer, a "
        "NodePort: http[s]://host[:port]), for a cluster whose service address the harness "
        "cannot reach; default: the target's service address. Requires routing: service",
    )

    @field_validator("host")
    @classmethod
    def _host_is_a_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"load.host {value!r} is not a base URL: give http://host[:port] or "
                "https://host[:port] (an Ingress, a LoadBalancer or a NodePort)"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"load.host {value!r} has a query or fragment: give the base URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _host_is_a_service(self) -> LoadSpec:
        if self.host is not None and self.routing == "per_instance":
            raise ValueError(
                "load.host sends every request to one address, so routing: per_instance (each "
                "replica's own address) cannot apply: remove one of them"
            )
        return self

    @model_validator(mode="after")
    def _bundled_settings_only(self) -> LoadSpec:
        if "connections" in self.model_fields_set and self.locustfile != DEMO_LOCUSTFILE:
            raise ValueError(
                "load.connections sets the bundled locustfile's connections; a locustfile of "
                "your own opens its own: remove connections or use locustfile: default"
            )
        return self

    @model_validator(mode="after")
    def _nodes_placement(self) -> LoadSpec:
        if self.placement == "local":
            return self
        where = {"nodes": "on the lab's nodes", "pods": "as pods of the run"}[self.placement]
        problems = []
        if self.workers < 1:
            problems.append(
                f"load.placement {self.placement} starts load.workers {where}: give 1 or more"
            )
        if self.routing != "service":
            problems.append(
                f"load.placement {self.placement} sends to the service: routing per_instance "
                "is not supported"
            )
        if self.placement == "pods" and self.host is not None:
            problems.append(
                "load.placement pods loads the Service at its ClusterIP: remove load.host"
            )
        if problems:
            raise ValueError("; ".join(problems))
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
    via: Literal["auto", "harness", "agent"] = Field(
        default="auto",
        description="where the probes come from: harness (this machine), agent (the fault "
        "agent on each instance's node, for pod addresses this machine cannot reach; needs "
        "the run's agents), auto (one probe of each instance from here first: the agents "
        "when one does not answer and the run has agents)",
    )


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

    def start_times(self, load_duration_s: float) -> list[float]:
        """When each occurrence starts: `at`, or every `every` from it while the load runs
        (at most `times`)."""
        if self.every is None:
            return [self.at]
        starts: list[float] = []
        at_s = self.at
        while at_s < load_duration_s and (self.times is None or len(starts) < self.times):
            starts.append(at_s)
            at_s += self.every
        return starts

    def params_dict(self) -> dict[str, Any]:
        common = set(FaultEntry.model_fields)
        return {k: v for k, v in self.model_dump().items() if k not in common}


PROMETHEUS_CHECK_NAME = r"^[a-z][a-z0-9_]{0,40}$"
FAULT_ID = r"^f[1-9][0-9]*(#[1-9][0-9]*)?$"


class PrometheusCheckSpec(StrictModel):
    """One SLO read from Prometheus: `query` over a phase's interval or a fault's comparison
    window (range query, one point every `step`), its worst value against `max` or `min`."""

    name: str = Field(pattern=PROMETHEUS_CHECK_NAME, description="the check's name in reports")
    query: str = Field(min_length=1, description="PromQL, evaluated at every step")
    max: float | None = Field(default=None, description="fails when any point exceeds it")
    min: float | None = Field(default=None, description="fails when any point is below it")
    phase: PhaseName | None = Field(default=None, description="baseline, fault, recovery, ...")
    fault: str | None = Field(
        default=None, pattern=FAULT_ID, description="a fault id (f1, or f2#1 for a repeat)"
    )
    step: Seconds = Field(default=1.0, gt=0, description="the range query's resolution")

    @model_validator(mode="after")
    def _one_limit_one_subject(self) -> PrometheusCheckSpec:
        problems = []
        if (self.max is None) == (self.min is None):
            problems.append("give exactly one of max, min")
        if (self.phase is None) == (self.fault is None):
            problems.append("give exactly one of phase, fault")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def subject(self) -> str:
        return self.phase if self.phase is not None else str(self.fault)


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
    prometheus: list[PrometheusCheckSpec] = Field(
        default_factory=list, description="checks read from observe.prometheus after the run"
    )


class PrometheusSpec(StrictModel):
    url: str = Field(pattern=r"^https?://[^\s/]+", description="e.g. http://127.0.0.1:9090")


class MetricsSpec(StrictModel):
    """The run's own /metrics (prometheus-client), served while the run lasts."""

    port: int = Field(default=9464, ge=1, le=65535)
    host: str = Field(default="127.0.0.1", description="the address to listen on")


class ObserveSpec(StrictModel):
    prometheus: PrometheusSpec | None = Field(
        default=None, description="where slo.prometheus checks are read"
    )
    metrics: MetricsSpec | None = Field(
        default=None, description="serve the run's own metrics (default: off)"
    )


def occurrence_id(entry_index: int, repeat: int | None) -> str:
    """`f<n>` for the n-th entry, `f<n>#<k>` for the k-th occurrence of a repeated one."""
    return f"f{entry_index}" if repeat is None else f"f{entry_index}#{repeat}"


def _fault_ids(faults: Sequence[FaultEntry], load_duration_s: float) -> set[str]:
    """The ids a check may name: every entry's (a repeated one's: all its occurrences) and
    every occurrence's, numbered as harness.timeline numbers them."""
    ids = set()
    for index, entry in enumerate(faults, start=1):
        ids.add(occurrence_id(index, None))
        if entry.every is not None:
            starts = entry.start_times(load_duration_s)
            ids |= {occurrence_id(index, k) for k in range(1, len(starts) + 1)}
    return ids


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
    target: TargetSpec  # the registered kinds' union, default docker (harness.scenario)
    workload: WorkloadSpec = Field(default_factory=WorkloadSpec)
    load: LoadSpec = Field(default_factory=LoadSpec)
    probes: ProbeSpec = Field(default_factory=ProbeSpec)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    slo: SloSpec = Field(default_factory=SloSpec)
    observe: ObserveSpec = Field(default_factory=ObserveSpec)
    faults: Sequence[FaultEntry] = ()

    @model_validator(mode="after")
    def _prometheus_checks_fit(self) -> ScenarioBase:
        """Each problem at its own place (a ValidationError with its location, so the file's
        line is the check's): a fault id the scenario does not have, a check without server."""
        checks = self.slo.prometheus
        problems: list[tuple[tuple[str | int, ...], object, str]] = []
        if checks and self.observe.prometheus is None:
            why = "slo.prometheus needs observe.prometheus.url (the server its queries go to)"
            problems.append((("slo", "prometheus"), [], why))
        known = _fault_ids(self.faults, self.load.duration)
        seen: set[tuple[str, str]] = set()
        for i, check in enumerate(checks):
            if check.fault is not None and check.fault not in known:
                which = ", ".join(sorted(known)) or "none: the scenario has no fault"
                why = f"no such fault in this scenario (its fault ids: {which})"
                problems.append((("slo", "prometheus", i, "fault"), check.fault, why))
            if (check.name, check.subject) in seen:
                why = f"a second check of this name for {check.subject}: give it another name"
                problems.append((("slo", "prometheus", i, "name"), check.name, why))
            seen.add((check.name, check.subject))
        if problems:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("value_error", why), loc=loc, input=got
                    )
                    for loc, got, why in problems
                ],
            )
        return self

    @model_validator(mode="after")
    def _placement_fits_the_target(self) -> ScenarioBase:
        lab = getattr(self.target, "lab", None)
        elsewhere = getattr(self.target, "kubeconfig", None) is not None
        swarm_lab = self.target.kind == "swarm" and lab is not None
        kube_lab = self.target.kind == "kubernetes" and not elsewhere
        ready_elsewhere = self.load.image is not None and self.load.master is not None
        if self.load.placement == "nodes" and not (swarm_lab or kube_lab):
            raise ValueError(
                "load.placement nodes starts the workers in a lab's nodes: it needs target: "
                "{kind: swarm, lab: {...}} or kubernetes without a kubeconfig (the local lab); "
                "use placement local on this target"
            )
        master = self.load.master
        if master is not None and not master.expect_workers and self.load.placement != "pods":
            raise ValueError(
                "load.master.expect_workers is 0: no worker of another machine would join; "
                "give how many `harness worker` will (0 only with placement pods, whose pods "
                "dial load.master.bind)"
            )
        if self.load.placement == "pods" and self.target.kind != "kubernetes":
            raise ValueError(
                "load.placement pods starts the workers as pods of the run: it needs target: "
                "kubernetes; use placement local on this target"
            )
        if self.load.placement == "pods" and elsewhere and not ready_elsewhere:
            raise ValueError(
                "load.placement pods on a cluster other than the local lab needs load.image "
                "(the worker image in a registry the cluster pulls from: `harness worker-image "
                "--tag`) and load.master.bind (HOST:PORT on this machine that the cluster's "
                "pods reach)"
            )
        return self

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
