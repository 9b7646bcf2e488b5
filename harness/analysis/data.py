"""Read a run directory into tidy DataFrames and its manifest (harness.results.manifest).

`load_run(run_dir)` is the only entry point. Every table gets the columns of the contract in
docs/ARCHITECTURE.md with fixed dtypes, even when it is empty, plus `end_ns` on requests and
probes: a request is placed in time by its completion (start + latency). The text columns of
requests and probes (name, error, endpoint, instance) are pandas categoricals (compare them
with == as strings; fill their nulls after `.astype(object)`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.errors import AnalysisError
from harness.results.manifest import Manifest, load_manifest

REQUEST_COLUMNS = ("start_ns", "latency_ms", "ok", "name", "error", "endpoint", "worker")
# read when present: runs recorded before attribution have no served_by column, before
# shipped records no worker_name (the worker's identity: its host, node or given name)
OPTIONAL_REQUEST_COLUMNS = ("served_by", "worker_name")
PROBE_COLUMNS = ("start_ns", "latency_ms", "ok", "instance", "error")
EVENT_COLUMNS = ("time_ns", "source", "action", "instance", "container_id", "attributes")


@dataclass(frozen=True, eq=False)
class RunData:
    """One run directory, loaded. Tables are sorted by their time column."""

    run_dir: Path
    manifest: Manifest
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
        manifest=load_manifest(run_dir / "manifest.json"),
        requests=_read_observations(
            run_dir / "requests.parquet", REQUEST_COLUMNS, OPTIONAL_REQUEST_COLUMNS
        ),
        probes=_read_observations(run_dir / "probes.parquet", PROBE_COLUMNS),
        events=_read_events(run_dir / "events.jsonl"),
    )


# -- tables -----------------------------------------------------------------------------------


def _require(path: Path) -> None:
    if not path.is_file():
        raise AnalysisError(f"{path.name} not found in run directory {path.parent}")


def _read_observations(
    path: Path, columns: tuple[str, ...], optional: tuple[str, ...] = ()
) -> pd.DataFrame:
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
        columns = columns + tuple(c for c in optional if c in schema.names)
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
