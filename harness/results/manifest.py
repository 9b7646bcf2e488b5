"""manifest.json: what a run was asked to do and how it ended, written by the runner as the
run goes and read by the analysis, cleanup and the reports.

Version 1 added `schema_version`; version 0 (no `schema_version`) is every manifest written
before, read with the settings' defaults where it lacks them and its statuses in today's words
(`interrupted` is `aborted`, `error` is `failed`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from pydantic import Field, field_validator

from harness.results import COMPLETED, normalized_status
from harness.results.records import Record, absent, read_versioned

MANIFEST_VERSION: Final = 1
# Defaults of runs whose manifest does not carry the settings (they match harness.scenario's).
DEFAULT_STABLE_FOR_S: Final = 2.0
DEFAULT_DETECTION_HORIZON_S: Final = 5.0
DEFAULT_BASELINE_MAX_ERROR_RATE: Final = 0.05
DEFAULT_CONFIDENCE: Final = 0.99
DEFAULT_WINDOW_S: Final = 10.0


class LoadWorker(Record):
    """One Locust worker as its master saw it (the master's workers.json): its clock's offset
    to the harness's, applied to its records' start_ns, and whether its last batch came."""

    name: str
    index: int
    host: str = ""
    offset_ns: int = 0
    rtt_ns: int = 0
    requests: int = 0
    lost_batches: int = 0
    complete: bool = False
    users: int = 0  # Locust's users on it at the end: its share of an open loop's rate


class LoadBlock(Record):
    """The load as planned, then as it went; the instants are None until it started/ended."""

    users: int | None = None
    spawn_rate: float | None = None
    duration_s: float | None = None
    workers: int | None = None
    # where the harness's workers run (local | nodes; None: written before placements)
    placement: str | None = Field(default=None, exclude_if=absent)
    master: str | None = Field(default=None, exclude_if=absent)  # bind of a master for others'
    # workers started outside the harness, waited for
    external_workers: int | None = Field(default=None, exclude_if=absent)
    locustfile: str | None = None
    mode: str = "closed"  # closed | open
    rate_per_s: float | None = None  # open loop: the intended arrival rate
    timeout_s: float | None = None
    routing: str | None = None  # per_instance | service (None: inferred from the data)
    connections: str | None = None
    # the bundled locustfile's connection policy in one sentence; the response header that
    # names the serving replica
    connection_policy: str | None = Field(default=None, exclude_if=absent)
    attribution_header: str | None = Field(default=None, exclude_if=absent)
    path: str | None = None  # what the load's path is on this target, once deployed
    host: str | None = None  # Locust's --host
    endpoints: list[str] = Field(default_factory=list)
    load_balancing: str | None = None
    started_at_ns: int | None = None
    ended_at_ns: int | None = None
    # each worker as its master saw it (distributed load only)
    workers_seen: list[LoadWorker] | None = Field(default=None, exclude_if=absent)

    @field_validator("endpoints", mode="before")
    @classmethod
    def _no_endpoints(cls, value: object) -> object:
        return [] if value is None else value


class AnalysisBlock(Record):
    """The scenario's `analysis` settings, defaults filled in."""

    stable_for_s: float = DEFAULT_STABLE_FOR_S
    detection_horizon_s: float = DEFAULT_DETECTION_HORIZON_S
    warmup_s: float | None = None  # None: users / spawn_rate, at least 1 s
    baseline_max_error_rate: float = DEFAULT_BASELINE_MAX_ERROR_RATE
    confidence: float = DEFAULT_CONFIDENCE
    window_s: float = DEFAULT_WINDOW_S  # each fault's comparison window after its duration


class SloBlock(Record):
    """The scenario's SLOs: every limit optional; a phase map is phase -> max."""

    ttr_s: float | None = None
    ttd_s: float | None = None
    availability: float | None = None
    error_rate: dict[str, float] | None = None
    p95_ms: dict[str, float] | None = None
    p99_ms: dict[str, float] | None = None
    allow_no_data: bool = False
    require_recovery: bool = True
    # slo.prometheus as asked (name, query, max | min, phase | fault, step); absent when none
    prometheus: list[dict[str, Any]] | None = Field(default=None, exclude_if=absent)

    @field_validator("prometheus", mode="before")
    @classmethod
    def _no_checks_absent(cls, value: object) -> object:
        return None if value == [] else value

    @field_validator("error_rate", "p95_ms", "p99_ms", mode="before")
    @classmethod
    def _unset_phases_dropped(cls, value: object) -> object:
        if isinstance(value, dict):  # a phase written as null has no limit
            return {k: v for k, v in value.items() if v is not None}
        return value


class AgentBlock(Record):
    """The fault agents of a run (harness.agent): where, and each one's clock offset."""

    where: str
    nodes: list[str] = Field(default_factory=list)
    # node -> offset_start_ms, offset_end_ms, uncertainty_ms (the agent's clock minus ours)
    clocks: dict[str, dict[str, float]] = Field(default_factory=dict)


class ProbesBlock(Record):
    """Where the run's probes came from (harness.agent.prober): asked, chosen, and why."""

    asked: str = "auto"  # probes.via
    via: str = "harness"  # harness | agent
    reason: str = ""
    nodes: list[str] = Field(default_factory=list)  # via agent: the agents that probed


class Manifest(Record):
    """manifest.json (see harness.results for the statuses)."""

    schema_version: int = MANIFEST_VERSION
    run_id: str
    scenario: str
    target: str
    seed: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    status: str = COMPLETED
    error: str | None = None
    started_at_ns: int | None = None
    ended_at_ns: int | None = None
    pid: int | None = None
    pid_start_ticks: int | None = None
    host: str | None = None
    platform: str | None = None
    argv: list[str] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict)
    load: LoadBlock = Field(default_factory=LoadBlock)
    analysis: AnalysisBlock = Field(default_factory=AnalysisBlock)
    slo: SloBlock = Field(default_factory=SloBlock)
    # written only when they happened: absent, not null, in the file
    abort: dict[str, Any] | None = Field(
        default=None, exclude_if=absent
    )  # signal, at_ns, phase, by
    failure: dict[str, Any] | None = Field(default=None, exclude_if=absent)  # at_ns, phase, ...
    signals_during_cleanup: list[str] | None = Field(default=None, exclude_if=absent)
    metrics_url: str | None = Field(default=None, exclude_if=absent)  # the run's /metrics
    agents: AgentBlock | None = Field(default=None, exclude_if=absent)  # host-side faults' agents
    probes: ProbesBlock | None = Field(default=None, exclude_if=absent)  # where probes came from

    @field_validator("load", "analysis", "slo", "labels", "versions", mode="before")
    @classmethod
    def _null_block_is_empty(cls, value: object) -> object:
        return {} if value is None else value

    @field_validator("versions", mode="before")
    @classmethod
    def _versions_as_text(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value

    @property
    def stable_for_s(self) -> float:
        return self.analysis.stable_for_s

    def warmup_s(self) -> float:
        """The ramp-up left out of the baseline: the manifest's, else users / spawn_rate."""
        if self.analysis.warmup_s is not None:
            return self.analysis.warmup_s
        users, spawn_rate = self.load.users, self.load.spawn_rate
        if users is None or not spawn_rate:
            return 1.0
        return max(1.0, users / spawn_rate)


def _from_unversioned(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 0 -> 1: the statuses in today's words, a missing status is a completed run."""
    return {**raw, "status": normalized_status(raw.get("status") or COMPLETED)}


def load_manifest(path: Path) -> Manifest:
    """manifest.json at `path` (a run directory or the file), any version this harness knows,
    as today's model; AnalysisError names what is wrong."""
    path = Path(path)
    file = path / "manifest.json" if path.is_dir() else path
    return read_versioned(file, Manifest, MANIFEST_VERSION, {0: _from_unversioned})
