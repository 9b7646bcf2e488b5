"""Read a run directory into tidy DataFrames and a typed manifest.

`load_run(run_dir)` is the only entry point. Every table gets the columns of the contract in
docs/ARCHITECTURE.md with fixed dtypes, even when it is empty, plus `end_ns` on requests and
probes: a request is placed in time by its completion (start + latency). The text columns of
requests and probes (name, error, endpoint, instance) are pandas categoricals (compare them
with == as strings; fill their nulls after `.astype(object)`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.errors import AnalysisError

REQUEST_COLUMNS = ("start_ns", "latency_ms", "ok", "name", "error", "endpoint", "worker")
PROBE_COLUMNS = ("start_ns", "latency_ms", "ok", "instance", "error")
EVENT_COLUMNS = ("time_ns", "source", "action", "instance", "container_id", "attributes")
# Defaults for manifests that do not carry the settings (they match harness.scenario's).
DEFAULT_STABLE_FOR_S = 2.0
DEFAULT_DETECTION_HORIZON_S = 5.0
DEFAULT_BASELINE_MAX_ERROR_RATE = 0.05
DEFAULT_CONFIDENCE = 0.99
DEFAULT_WINDOW_S = 10.0  # analysis.window_s: runs whose manifest does not carry it


@dataclass(frozen=True)
class LoadSettings:
    """The manifest's `load` block; the instants are None when the load never started."""

    users: int | None
    spawn_rate: float | None
    duration_s: float | None
    workers: int | None
    endpoints: tuple[str, ...]
    load_balancing: str | None
    started_at_ns: int | None
    ended_at_ns: int | None
    mode: str = "closed"  # closed | open
    rate_per_s: float | None = None  # open loop: the intended arrival rate
    routing: str | None = None  # per_instance | service (None: infer from the data)
    host: str | None = None  # Locust's --host


@dataclass(frozen=True)
class AnalysisSettings:
    """The manifest's `analysis` block (scenario `analysis`), defaults filled in."""

    stable_for_s: float = DEFAULT_STABLE_FOR_S
    detection_horizon_s: float = DEFAULT_DETECTION_HORIZON_S
    warmup_s: float | None = None  # None: users / spawn_rate, at least 1 s
    baseline_max_error_rate: float = DEFAULT_BASELINE_MAX_ERROR_RATE
    confidence: float = DEFAULT_CONFIDENCE
    window_s: float = DEFAULT_WINDOW_S  # each fault's comparison window after its duration


@dataclass(frozen=True)
class SloSpec:
    """The manifest's `slo` block: every limit is optional; phase maps are phase -> max."""

    ttr_s: float | None = None
    ttd_s: float | None = None
    availability: float | None = None
    error_rate: Mapping[str, float] | None = None
    p95_ms: Mapping[str, float] | None = None
    p99_ms: Mapping[str, float] | None = None
    allow_no_data: bool = False
    require_recovery: bool = True


@dataclass(frozen=True)
class RunManifest:
    """The keys of manifest.json the analysis relies on."""

    run_id: str
    scenario: str
    target: str
    seed: int | None
    started_at_ns: int | None
    ended_at_ns: int | None
    status: str
    error: str | None
    load: LoadSettings
    analysis: AnalysisSettings
    slo: SloSpec
    versions: Mapping[str, str]
    host: str | None

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


@dataclass(frozen=True, eq=False)
class RunData:
    """One run directory, loaded. Tables are sorted by their time column."""

    run_dir: Path
    manifest: RunManifest
    requests: pd.DataFrame
    probes: pd.DataFrame
    events: pd.DataFrame


def load_run(run_dir: Path) -> RunData:
    """Load manifest.json, requests.parquet, probes.parquet and events.jsonl from `run_dir`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AnalysisError(f"run directory not found: {run_dir}")
    return RunData(
        run_dir=run_dir,
        manifest=parse_manifest(read_json_object(run_dir / "manifest.json")),
        requests=_read_observations(run_dir / "requests.parquet", REQUEST_COLUMNS),
        probes=_read_observations(run_dir / "probes.parquet", PROBE_COLUMNS),
        events=_read_events(run_dir / "events.jsonl"),
    )


# -- manifest ---------------------------------------------------------------------------------


def read_json_object(path: Path) -> Mapping[str, object]:
    """A JSON object from a run-directory file, or AnalysisError naming the file."""
    _require(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AnalysisError(f"{path.name}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise AnalysisError(f"{path.name}: expected a JSON object")
    return data


def parse_manifest(raw: Mapping[str, object]) -> RunManifest:
    """Build a `RunManifest` from the decoded manifest.json, checking the types it uses."""
    versions = _section(raw, "versions")
    return RunManifest(
        run_id=_req_str(raw, "run_id"),
        scenario=_req_str(raw, "scenario"),
        target=_req_str(raw, "target"),
        seed=_opt_int(raw, "seed", ""),
        started_at_ns=_opt_int(raw, "started_at_ns", ""),
        ended_at_ns=_opt_int(raw, "ended_at_ns", ""),
        status=_opt_str(raw, "status", "") or "completed",
        error=_opt_str(raw, "error", ""),
        load=_parse_load(_section(raw, "load")),
        analysis=_parse_analysis(_section(raw, "analysis")),
        slo=_parse_slo(_section(raw, "slo")),
        versions={str(k): str(v) for k, v in versions.items()},
        host=None if raw.get("host") is None else str(raw.get("host")),
    )


def _parse_load(load: Mapping[str, object]) -> LoadSettings:
    endpoints = load.get("endpoints") or []
    if not isinstance(endpoints, list):
        raise AnalysisError(f"manifest.json: load.endpoints must be a list, got {endpoints!r}")
    return LoadSettings(
        users=_opt_int(load, "users", "load"),
        spawn_rate=_opt_float(load, "spawn_rate", "load"),
        duration_s=_opt_float(load, "duration_s", "load"),
        workers=_opt_int(load, "workers", "load"),
        endpoints=tuple(str(e) for e in endpoints),
        load_balancing=_opt_str(load, "load_balancing", "load"),
        started_at_ns=_opt_int(load, "started_at_ns", "load"),
        ended_at_ns=_opt_int(load, "ended_at_ns", "load"),
        mode=_opt_str(load, "mode", "load") or "closed",
        rate_per_s=_opt_float(load, "rate_per_s", "load"),
        routing=_opt_str(load, "routing", "load"),
        host=_opt_str(load, "host", "load"),
    )


def _parse_analysis(analysis: Mapping[str, object]) -> AnalysisSettings:
    def value(key: str, default: float) -> float:
        found = _opt_float(analysis, key, "analysis")
        return default if found is None else found

    return AnalysisSettings(
        stable_for_s=value("stable_for_s", DEFAULT_STABLE_FOR_S),
        detection_horizon_s=value("detection_horizon_s", DEFAULT_DETECTION_HORIZON_S),
        warmup_s=_opt_float(analysis, "warmup_s", "analysis"),
        baseline_max_error_rate=value("baseline_max_error_rate", DEFAULT_BASELINE_MAX_ERROR_RATE),
        confidence=value("confidence", DEFAULT_CONFIDENCE),
        window_s=value("window_s", DEFAULT_WINDOW_S),
    )


def _opt_bool(raw: Mapping[str, object], key: str, section: str, default: bool) -> bool:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise AnalysisError(
            f"manifest.json: {_where(section, key)} must be true or false: {value!r}"
        )
    return value


def _parse_slo(slo: Mapping[str, object]) -> SloSpec:
    return SloSpec(
        ttr_s=_opt_float(slo, "ttr_s", "slo"),
        ttd_s=_opt_float(slo, "ttd_s", "slo"),
        availability=_opt_float(slo, "availability", "slo"),
        error_rate=_phase_limits(slo, "error_rate"),
        p95_ms=_phase_limits(slo, "p95_ms"),
        p99_ms=_phase_limits(slo, "p99_ms"),
        allow_no_data=_opt_bool(slo, "allow_no_data", "slo", False),
        require_recovery=_opt_bool(slo, "require_recovery", "slo", True),
    )


def _phase_limits(slo: Mapping[str, object], key: str) -> Mapping[str, float] | None:
    section = slo.get(key)
    if section is None:
        return None
    if not isinstance(section, dict):
        raise AnalysisError(f"manifest.json: slo.{key} must be an object, got {section!r}")
    limits = {str(phase): _opt_float(section, phase, f"slo.{key}") for phase in section}
    return {phase: limit for phase, limit in limits.items() if limit is not None}


def _section(raw: Mapping[str, object], key: str) -> Mapping[str, object]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AnalysisError(f"manifest.json: {key} must be an object, got {value!r}")
    return value


def _where(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _req_str(raw: Mapping[str, object], key: str) -> str:
    value = raw.get(key)
    if value is None:
        raise AnalysisError(f"manifest.json: missing {key!r}")
    return str(value)


def _opt_str(raw: Mapping[str, object], key: str, section: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise AnalysisError(f"manifest.json: {_where(section, key)} must be a string: {value!r}")
    return value


def _opt_int(raw: Mapping[str, object], key: str, section: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise AnalysisError(f"manifest.json: {_where(section, key)} must be an int: {value!r}")
    return value


def _opt_float(raw: Mapping[str, object], key: str, section: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AnalysisError(f"manifest.json: {_where(section, key)} must be a number: {value!r}")
    return float(value)


# -- tables -----------------------------------------------------------------------------------


def _require(path: Path) -> None:
    if not path.is_file():
        raise AnalysisError(f"{path.name} not found in run directory {path.parent}")


def _read_observations(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read a request or probe table, fix dtypes, add `end_ns`, sort by completion.

    Text columns (name, error, endpoint, instance) come back as pandas categoricals, read
    dictionary-encoded: a handful of distinct values over millions of rows costs one byte or
    two per row, and sorting them moves integer codes, not strings (tens of millions of rows
    analysed in seconds, harness.analysis docs and bench/analysis_scale.py)."""
    _require(path)
    try:
        schema = pq.read_schema(path)
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise AnalysisError(f"{path.name}: missing columns {missing}")
        text = [c for c in columns if pa.types.is_string(schema.field(c).type)
                or pa.types.is_large_string(schema.field(c).type)]  # fmt: skip
        table = pq.read_table(path, columns=list(columns), read_dictionary=text)
        frame: pd.DataFrame = table.to_pandas(self_destruct=True, split_blocks=True)
        del table
    except AnalysisError:
        raise
    except Exception as exc:  # pyarrow raises several unrelated types
        raise AnalysisError(f"{path.name}: cannot read: {exc}") from exc
    start = frame["start_ns"].to_numpy(dtype=np.int64, na_value=0)
    latency = frame["latency_ms"].to_numpy(dtype=np.float64, na_value=0.0)
    latency = np.nan_to_num(latency, nan=0.0)
    frame["start_ns"] = start
    frame["latency_ms"] = latency
    frame["ok"] = frame["ok"].fillna(False).astype("bool")
    end = start + np.rint(latency * 1e6).astype(np.int64)
    frame["end_ns"] = end
    if end.size > 1 and bool(np.any(end[1:] < end[:-1])):
        frame = frame.take(np.argsort(end, kind="stable"))
    return frame.reset_index(drop=True)


def _read_events(path: Path) -> pd.DataFrame:
    """Read events.jsonl; a torn last line (a crash mid-write) is ignored."""
    _require(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    records: list[dict[str, object]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            if number == len(lines):
                break
            raise AnalysisError(f"{path.name}:{number}: not JSON: {exc}") from exc
        records.append(_event_record(record, path.name, number))
    frame = pd.DataFrame.from_records(records, columns=list(EVENT_COLUMNS))
    frame["time_ns"] = frame["time_ns"].astype("int64")
    return frame.sort_values("time_ns", kind="stable").reset_index(drop=True)


def _event_record(record: object, name: str, number: int) -> dict[str, object]:
    if not isinstance(record, dict) or not isinstance(record.get("time_ns"), int):
        raise AnalysisError(f"{name}:{number}: an event needs an integer time_ns")
    attributes = record.get("attributes")
    return {
        "time_ns": record["time_ns"],
        "source": str(record.get("source") or ""),
        "action": str(record.get("action") or ""),
        "instance": record.get("instance"),
        "container_id": record.get("container_id"),
        "attributes": attributes if isinstance(attributes, dict) else {},
    }
