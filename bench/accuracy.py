"""Accuracy of the harness's recovery numbers against the engine's own timestamps.

Runs the quickstart crash RUNS times (`harness run`, a host SIGKILL of one of 3 replicas)
while this script holds its own subscription to the engine's events, then prints per run:
- the error of the harness's orchestrator intervals (kill -> die, die -> start,
  start -> healthy) against the same intervals from the engine's own timestamps (ms);
- users' time to recover (ttr_s) against the engine's restart (die -> start): how much
  longer users suffered than the engine took, as a ratio.

    python -m bench.accuracy [--runs 3]     (from the repository's root)
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import docker
import yaml

from bench.engine_watch import EngineWatch
from bench.runs import REPO, harness_run

NS = 1e9


def run_once(out: Path, watch: EngineWatch) -> dict[str, float]:
    data = yaml.safe_load((REPO / "scenarios" / "quickstart.yaml").read_text())
    data["load"]["duration"] = "22s"
    data["faults"][0]["at"] = "8s"
    scenario = out / "accuracy.yaml"
    scenario.write_text(yaml.safe_dump(data))
    run_dir = harness_run(scenario, out)
    (fault,) = json.loads((run_dir / "summary.json").read_text())["faults"]
    (measured,) = fault["orchestrator"]
    instance, t0 = measured["instance"], fault["injected_at_ns"]
    die = watch.first("die", instance, t0)
    start = watch.first("start", instance, die)
    healthy = watch.first("health_status: healthy", instance, start)
    engine = {
        "kill_to_die_s": (die - t0) / NS,
        "die_to_start_s": (start - die) / NS,
        "start_to_healthy_s": (healthy - start) / NS,
    }
    errors = {f"{k} error ms": abs(measured[k] - v) * 1000 for k, v in engine.items()}
    return {
        **errors,
        "engine restart s": (start - t0) / NS,
        "users ttr s": float(fault["ttr_s"]),
        "ttr / engine restart": float(fault["ttr_s"]) / ((start - t0) / NS),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    watch = EngineWatch(docker.from_env())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for index in range(1, args.runs + 1):
                row = run_once(Path(tmp), watch)
                rows.append(row)
                print(f"run {index}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    finally:
        watch.close()
    print(
        "median: " + ", ".join(f"{k} {statistics.median(r[k] for r in rows):.3f}" for k in rows[0])
    )


if __name__ == "__main__":
    main()
