"""probes.tsv and probes.parquet: the prober's log, appended one complete line per probe so a
killed harness keeps its probes, and the table built from it at the end of a run (or by
`harness cleanup` for a run that never reached its end)."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

PROBE_LOG_HEADER = "#chaos-harness-probes v1\tstart_ns\tlatency_ms\tok\tinstance\terror\n"
PROBE_COLUMNS = ("start_ns", "latency_ms", "ok", "instance", "error")


@dataclass(frozen=True)
class ProbeResult:
    start_ns: int
    latency_ms: float
    ok: bool
    instance: str
    error: str | None


def _clean(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ")


def probe_line(result: ProbeResult) -> str:
    return (
        f"{result.start_ns}\t{result.latency_ms:.3f}\t{int(result.ok)}\t"
        f"{_clean(result.instance)}\t{_clean(result.error or '')}\n"
    )


def probe_frame(rows: Sequence[ProbeResult]) -> pd.DataFrame:
    """The probes.parquet columns and dtypes of `rows`, by start time."""
    return pd.DataFrame(
        {
            "start_ns": pd.Series([r.start_ns for r in rows], dtype="int64"),
            "latency_ms": pd.Series([r.latency_ms for r in rows], dtype="float64"),
            "ok": pd.Series([r.ok for r in rows], dtype="bool"),
            "instance": pd.Series([r.instance for r in rows], dtype="string"),
            "error": pd.Series([r.error for r in rows], dtype="string"),
        }
    ).sort_values("start_ns", ignore_index=True)


def read_probe_log(path: Path) -> pd.DataFrame:
    """The probes of a probe log (a line torn by a kill is dropped); empty if there is none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return probe_frame([])
    rows = []
    text = data[: data.rfind(b"\n") + 1].decode("utf-8", errors="replace")
    for fields in csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE):
        if len(fields) != len(PROBE_COLUMNS) or fields[0].startswith("#"):
            continue
        with contextlib.suppress(ValueError):
            start_ns, latency_ms, ok = int(fields[0]), float(fields[1]), fields[2] == "1"
            rows.append(ProbeResult(start_ns, latency_ms, ok, fields[3], fields[4] or None))
    return probe_frame(rows)


def write_probes_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write probes.parquet atomically (a temporary name, then a rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        frame.loc[:, list(PROBE_COLUMNS)].to_parquet(tmp, index=False)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
