"""How the analysis scales: synthetic runs of 1, 10 and 30 million requests, analysed and reported.

    python -m bench.analysis_scale [--sizes 1,10,30] [--dir /var/tmp/scale] [--keep]

Each run is made like a real one (the same files and columns as the harness writes): three
replicas under 10,000 requests/s, a container kill every 60 s on the next replica (its requests
fail for 1.2 s, then it restarts), a 5 s partition every 180 s, probes every 100 ms per replica.
Each size is analysed in a fresh process (`analyze_run`, then `write_report`: summary.json,
figures, report.html), which reports its wall time per step and its peak resident memory
(getrusage). Target (issue 9): 10 million requests in under 20 s and 3 GiB, cost growing
linearly with the requests.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

RATE = 10_000  # requests per second
REPLICAS = ("web-1", "web-2", "web-3")
BASE_NS = 1_800_000_000_000_000_000
KILL_EVERY_S, KILL_OUTAGE_S, RESTART_S = 60.0, 1.2, 0.9
PARTITION_EVERY_S, PARTITION_S = 180.0, 5.0
PROBE_TIMEOUT_S = 1.0  # a failed probe completes when it times out


def ns(seconds: float) -> int:
    return BASE_NS + round(seconds * 1e9)


def fault_plan(duration_s: float) -> list[tuple[str, str, str, float, float | None]]:
    """(fault id, kind, target, at, revert at): kills every minute, partitions every 3."""
    faults = []
    kills = np.arange(30.0, duration_s - 20, KILL_EVERY_S)
    for i, at in enumerate(kills, start=1):
        faults.append((f"f1#{i}", "container_kill", REPLICAS[i % 3], float(at), None))
    partitions = np.arange(120.0, duration_s - 30, PARTITION_EVERY_S)
    for i, at in enumerate(partitions, start=1):
        target = REPLICAS[(i + 1) % 3]
        faults.append((f"f2#{i}", "network_partition", target, float(at), float(at) + PARTITION_S))
    return sorted(faults, key=lambda f: f[3])


def write_requests(path: Path, count: int, duration_s: float, faults: list, seed: int) -> None:
    rng = np.random.default_rng(seed)
    start_s = np.sort(rng.uniform(0.0, duration_s, count))
    endpoint = (np.arange(count) % 3).astype(np.int8)
    latency = rng.lognormal(np.log(4.0), 0.35, count)
    ok = np.ones(count, dtype=np.bool_)
    for _fid, kind, target, at, until in faults:
        code = REPLICAS.index(target)
        end = at + (KILL_OUTAGE_S if kind == "container_kill" else (until or at) - at)
        lo, hi = np.searchsorted(start_s, [at, end])
        hit = np.flatnonzero(endpoint[lo:hi] == code) + lo
        ok[hit] = False
        latency[hit] = 2000.0 if kind == "network_partition" else 0.5
    error = np.where(ok, -1, 0).astype(np.int8)
    table = pa.table(
        {
            "start_ns": pa.array(BASE_NS + np.round(start_s * 1e9).astype(np.int64)),
            "latency_ms": pa.array(latency),
            "ok": pa.array(ok),
            # plain strings, as the harness writes them (pandas' str columns)
            "name": pa.DictionaryArray.from_arrays(
                pa.array((np.arange(count) % 4 == 0).astype(np.int8)), pa.array(["/", "/work"])
            ).cast(pa.large_string()),
            "error": pa.DictionaryArray.from_arrays(
                pa.array(error, mask=error < 0), pa.array(["ConnectionRefusedError"])
            ).cast(pa.large_string()),
            "endpoint": pa.DictionaryArray.from_arrays(pa.array(endpoint), pa.array(REPLICAS)).cast(
                pa.large_string()
            ),
            "worker": pa.array(np.zeros(count, dtype=np.int64)),
        }
    )
    pq.write_table(table, path)


def write_probes(path: Path, duration_s: float, faults: list) -> None:
    steps = np.arange(0.0, duration_s, 0.1)
    start = np.repeat(steps, 3)
    instance = np.tile(np.arange(3, dtype=np.int8), steps.size)
    ok = np.ones(start.size, dtype=np.bool_)
    for _fid, kind, target, at, until in faults:
        end = at + (KILL_OUTAGE_S if kind == "container_kill" else (until or at) - at)
        ok[(instance == REPLICAS.index(target)) & (start >= at) & (start < end)] = False
    table = pa.table(
        {
            "start_ns": pa.array(BASE_NS + np.round(start * 1e9).astype(np.int64)),
            "latency_ms": pa.array(np.where(ok, 1.0, PROBE_TIMEOUT_S * 1000)),
            "ok": pa.array(ok),
            "instance": pa.DictionaryArray.from_arrays(pa.array(instance), pa.array(REPLICAS)),
            "error": pa.array([None if x else "timeout" for x in ok.tolist()], pa.string()),
        }
    )
    pq.write_table(table, path)


def events(duration_s: float, faults: list) -> list[dict[str, object]]:
    def event(at: float, source: str, action: str, instance: str | None, **attrs: object):
        return {"time_ns": ns(at), "source": source, "action": action, "instance": instance,
                "container_id": None if instance is None else f"c-{instance}",
                "attributes": attrs}  # fmt: skip

    lines = [event(-3.0, "engine", "start", r) for r in REPLICAS]
    lines.append(event(0.0, "harness", "load_start", None))
    for fid, kind, target, at, until in faults:
        entry, occurrence = fid.split("#")
        lines.append(event(at, "harness", "fault_inject", None, fault_id=fid, entry=entry,
                           occurrence=int(occurrence), kind=kind, targets=[target],
                           has_duration=until is not None,
                           restart_policy_applies=kind == "container_kill"))  # fmt: skip
        if until is not None:
            lines.append(event(until, "harness", "fault_revert", None, fault_id=fid, kind=kind))
        else:
            lines.append(event(at + 0.03, "engine", "die", target, exitCode="137"))
            lines.append(event(at + RESTART_S, "engine", "start", target))
            lines.append(event(at + RESTART_S + 1.0, "engine", "health_status", target,
                               health="healthy"))  # fmt: skip
    lines.append(event(duration_s, "harness", "load_stop", None))
    return sorted(lines, key=lambda e: int(str(e["time_ns"])))


def make_run(run_dir: Path, millions: float, seed: int = 1) -> Path:
    count = int(millions * 1_000_000)
    duration_s = count / RATE
    faults = fault_plan(duration_s)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_requests(run_dir / "requests.parquet", count, duration_s, faults, seed)
    write_probes(run_dir / "probes.parquet", duration_s, faults)
    (run_dir / "events.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in events(duration_s, faults))
    )
    manifest = {
        "run_id": run_dir.name, "scenario": "scale", "target": "docker", "seed": seed,
        "started_at_ns": ns(-5.0), "ended_at_ns": ns(duration_s + 3), "status": "completed",
        "error": None,
        "load": {"users": 200, "spawn_rate": 200, "duration_s": duration_s, "workers": 2,
                 "endpoints": list(REPLICAS), "load_balancing": "client-side round robin",
                 "started_at_ns": ns(0.0), "ended_at_ns": ns(duration_s)},
        "analysis": {"stable_for_s": 2.0},
        "slo": {"ttr_s": 10, "error_rate": {"baseline": 0.01}, "p95_ms": {"after": 250}},
        "versions": {"harness": "bench"}, "host": "bench",
    }  # fmt: skip
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


def measure(run_dir: Path) -> dict[str, float]:
    """In this process: load + analyse, then the report; times and peak memory."""
    from harness.analysis import load_run, summarize, write_summary
    from harness.analysis.report import write_report

    started = time.perf_counter()
    run = load_run(run_dir)
    loaded = time.perf_counter()
    summary = summarize(run)
    write_summary(run_dir, summary)
    analysed = time.perf_counter()
    write_report(run_dir, summary, run)
    reported = time.perf_counter()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "load_s": loaded - started,
        "analyse_s": analysed - loaded,
        "report_s": reported - analysed,
        "total_s": reported - started,
        "peak_gib": peak_kib / 2**20,
        "faults": float(len(summary["faults"])),  # type: ignore[arg-type]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,30", help="millions of requests")
    parser.add_argument("--dir", default="/var/tmp/chaos-harness-scale", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the synthetic runs")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    rows = []
    try:
        for size in [float(s) for s in args.sizes.split(",")]:
            started = time.perf_counter()
            run_dir = make_run(args.dir / f"scale-{size:g}M", size)
            made = time.perf_counter() - started
            done = subprocess.run(
                [sys.executable, "-m", "bench.analysis_scale", "--measure", str(run_dir)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append((size, made, figures))
            print(
                f"{size:>5g} M requests ({figures['faults']:.0f} faults): "
                f"load {figures['load_s']:.1f} s, analyse {figures['analyse_s']:.1f} s, "
                f"report {figures['report_s']:.1f} s = {figures['total_s']:.1f} s; "
                f"peak {figures['peak_gib']:.2f} GiB (generated in {made:.0f} s)",
                flush=True,
            )
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)
    if len(rows) > 1:
        (s0, _, f0), (s1, _, f1) = rows[0], rows[-1]
        growth = (f1["total_s"] / f0["total_s"]) / (s1 / s0)
        print(f"time per request, {s1:g} M vs {s0:g} M: {growth:.2f}x (1.00 = linear)")


if __name__ == "__main__":
    main()
