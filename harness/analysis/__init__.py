"""Analysis of a run directory: tidy data, metrics, SLOs, summary.json (report: .report).

`analyze_run(run_dir)` loads the run, measures it and writes `run_dir/summary.json`; it returns
the same dict. Times are wall-clock nanoseconds (`*_ns`), durations seconds (`*_s`), latencies
milliseconds (`*_ms`, 3 decimals), rates fractions in [0, 1]. A value that cannot be measured
is null, never NaN. Fields:

- `run_id`, `scenario`, `target`: from the manifest.
- `status`: `interrupted` or `error` when the run was; else `passed`, or `slo_violated` when an
  SLO check failed.
- `error`: the run's error message, or null.
- `started_at_ns`, `ended_at_ns`, `duration_s`: the run, from the manifest.
- `load`: `users`, `spawn_rate`, `workers`, `endpoints` (instance names the clients spread the
  load over), `load_balancing` (how: client-side, so a dead replica's share fails),
  `started_at_ns`, `ended_at_ns`, `duration_s` (the load window every phase lies in).
- `analysis`: `stable_for_s` (the stability window of the recovery rule) and
  `baseline_failure_rate` (failed / all requests and probes completed in the baseline).
- `totals`: `requests`, `failures`, `error_rate`, `throughput_rps` (over the load window),
  `probes`, `probe_failures`.
- `endpoints`: per endpoint, `requests`, `failures`, `error_rate`, `throughput_rps`.
- `phases`: `baseline`, `fault`, `recovery`, `after`, each `start_ns`, `end_ns`,
  `duration_s`, `requests` and `failures` (completed in the phase), `error_rate`,
  `throughput_rps`, `latency_ms` {`p50`, `p95`, `p99`, `max`} over requests that started in
  the phase (null if none). An empty phase has `duration_s` 0 and null rates.
- `faults`: one object per injected fault, in injection order:
  `id`, `kind`, `mode`, `mechanism`, `restart_policy_applies` (false: a kill through the
  engine's API is a manual stop, the restart policy does not apply), `targets`,
  `injected_at_ns`, `reverted_at_ns` (null for an instantaneous fault), `detected_at_ns`
  (completion of the first failed request or probe at/after injection; null: no failure),
  `recovered_at_ns` (see harness.analysis.metrics; null when it never recovered), `ttd_s`,
  `ttr_s`, `recovered`, `reason` (why it did not recover, or "no user-visible failures"),
  `failed_requests`, `requests_in_window`, `availability` (requests only, in
  [injected, recovered], to the end of the data when unrecovered; 1.0 with no impact),
  `probes_failed`, `probes_in_window`, and `orchestrator`: per target instance
  {`instance`, `die_at_ns`, `start_at_ns`, `healthy_at_ns`, `kill_to_die_s`,
  `die_to_start_s`, `start_to_healthy_s`, `restarted`}, each interval from its own start.
- `slo`: `passed` and `checks` [{`name`, `limit`, `value`, `verdict`: pass|fail|no_data}].
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.analysis.data import RunData, load_run
from harness.analysis.metrics import Context, fault_metrics
from harness.analysis.phases import (
    PHASE_NAMES,
    endpoint_stats,
    phase_bounds,
    phase_stats,
    totals,
)
from harness.analysis.slo import evaluate_slo

__all__ = ["RunData", "analyze_run", "load_run", "summarize", "write_summary"]

SUMMARY_FILE = "summary.json"


def analyze_run(run_dir: Path) -> dict[str, object]:
    """Load `run_dir`, measure it, write summary.json there and return the summary."""
    summary = summarize(load_run(Path(run_dir)))
    write_summary(Path(run_dir), summary)
    return summary


def write_summary(run_dir: Path, summary: dict[str, object]) -> Path:
    """Write summary.json (strict JSON: NaN is refused)."""
    path = Path(run_dir) / SUMMARY_FILE
    path.write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def summarize(run: RunData) -> dict[str, object]:
    """The summary dict of a loaded run (fields in this module's docstring)."""
    faults, context = fault_metrics(run)
    load = context.load
    phases = phase_stats(run.requests, phase_bounds(faults, load))
    by_name = {p.phase.name: p for p in phases}
    total = totals(run.requests, load)
    slo = evaluate_slo(run.manifest.slo, faults, by_name, total)
    manifest = run.manifest
    return {
        "run_id": manifest.run_id,
        "scenario": manifest.scenario,
        "status": _status(manifest.status, slo.passed),
        "target": manifest.target,
        "started_at_ns": manifest.started_at_ns,
        "ended_at_ns": manifest.ended_at_ns,
        "duration_s": _duration(manifest.started_at_ns, manifest.ended_at_ns),
        "load": _load(run, context),
        "analysis": {
            "stable_for_s": manifest.stable_for_s,
            "baseline_failure_rate": round(context.baseline_failure_rate, 6),
        },
        "totals": {**total.to_dict(), **_probe_totals(run)},
        "endpoints": {k: v.to_dict() for k, v in endpoint_stats(run.requests, load).items()},
        "phases": {name: by_name[name].to_dict() for name in PHASE_NAMES},
        "faults": [f.to_dict() for f in faults],
        "slo": slo.to_dict(),
        "error": manifest.error,
    }


def _status(manifest_status: str, slo_passed: bool) -> str:
    if manifest_status in ("interrupted", "error"):
        return manifest_status
    return "passed" if slo_passed else "slo_violated"


def _duration(start_ns: int | None, end_ns: int | None) -> float | None:
    return None if start_ns is None or end_ns is None else round((end_ns - start_ns) / 1e9, 3)


def _load(run: RunData, context: Context) -> dict[str, object]:
    load = run.manifest.load
    return {
        "users": load.users,
        "spawn_rate": load.spawn_rate,
        "workers": load.workers,
        "endpoints": list(load.endpoints),
        "load_balancing": load.load_balancing,
        "started_at_ns": context.load.start_ns,
        "ended_at_ns": context.load.end_ns,
        "duration_s": _duration(context.load.start_ns, context.load.end_ns),
    }


def _probe_totals(run: RunData) -> dict[str, int]:
    return {"probes": len(run.probes), "probe_failures": int((~run.probes["ok"]).sum())}
