"""Overhead of the harness against bare Locust: the same locustfile, users and workload.

Alternates `harness run` (deploy, probes, engine events, per-request recording) and bare
`locust --headless` against an identical deployment, PAIRS times, and prints the median
ratio of requests per second (harness / bare). Target: >= 0.95.

    python -m bench.overhead [--pairs 5] [--users 20] [--seconds 15]   (from the repository's root)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from bench.runs import harness_run
from harness.load import DEFAULT_LOCUSTFILE, LoadPlan, plan_env
from harness.scenario import WorkloadSpec
from harness.targets import target_spec
from harness.targets.docker.target import DockerTarget

WORKLOAD = {"image": "demo", "replicas": 3, "resources": {"cpus": 0.5, "memory": "64Mi"}}


def bare_locust_rps(endpoints: list[tuple[str, str]], users: int, seconds: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        plan = LoadPlan(users, users, seconds, endpoints, Path(tmp))
        stats = Path(tmp) / "stats"
        subprocess.run(
            [
                *(sys.executable, "-m", "locust", "-f", str(DEFAULT_LOCUSTFILE)),
                *("--headless", "--only-summary", "--exit-code-on-error", "0"),
                *("-u", str(users), "-r", str(users), "-t", f"{seconds}s"),
                *("--json-file", str(stats)),
            ],
            env=plan_env(plan, os.environ),
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        entries = json.loads(stats.with_suffix(".json").read_text())
        return sum(e["num_requests"] for e in entries) / seconds


def harness_rps(users: int, seconds: int, out: Path) -> float:
    scenario = {
        "name": "overhead",
        "workload": WORKLOAD,
        "load": {"users": users, "spawn_rate": users, "duration": f"{seconds}s"},
    }
    path = out / "overhead.yaml"
    path.write_text(yaml.safe_dump(scenario))
    run_dir = harness_run(path, out)
    return len(pd.read_parquet(run_dir / "requests.parquet")) / seconds


def bare_run_rps(users: int, seconds: int) -> float:
    """Bare Locust against a fresh deployment of its own, removed right after.

    Each side has exactly its own three replicas while it runs: idle replicas left standing
    would still run their health checks (an exec every second each) and tax the other side.
    """
    target = DockerTarget(f"bench-{os.getpid()}-{time.monotonic_ns()}", target_spec("docker"))
    try:
        target.deploy(WorkloadSpec.model_validate(WORKLOAD))
        endpoints = [(i.name, i.url) for i in target.wait_healthy(60)]
        return bare_locust_rps(endpoints, users, seconds)
    finally:
        target.teardown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()

    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(1, args.pairs + 1):
            bare = bare_run_rps(args.users, args.seconds)
            harness = harness_rps(args.users, args.seconds, Path(tmp))
            ratios.append(harness / bare)
            print(
                f"pair {pair}: bare {bare:8.1f} req/s  harness {harness:8.1f} req/s  "
                f"ratio {harness / bare:.3f}",
                flush=True,
            )
    print(
        f"median ratio harness/bare over {len(ratios)} pairs: {statistics.median(ratios):.3f}"
        " (target >= 0.95)"
    )


if __name__ == "__main__":
    main()
