"""What serving the run's /metrics and having Prometheus scrape it costs a run.

Alternates the same short run (no fault, a closed loop) without `observe.metrics` and with it
while a Prometheus started here scrapes it every second, PAIRS times, and prints per pair and
as medians the ratio (with / without) of the achieved request rate, of the CPU time (the
harness and its Locust processes, their rusage, plus Prometheus' own during the run with it)
and of the CPU time per request; and how many scrapes of the run succeeded (Prometheus' `up`).

    python -m bench.prometheus_overhead [--pairs 3] [--users 20] [--seconds 15]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from bench.runs import harness_run
from harness.load import free_port
from harness.prometheus import server
from harness.prometheus.client import PrometheusClient

WORKLOAD = {"image": "demo", "replicas": 3, "resources": {"cpus": 0.5, "memory": "64Mi"}}
TICKS = os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def one_run(out: Path, users: int, seconds: int, metrics_port: int | None) -> tuple[float, float]:
    """(requests per second, CPU seconds of the harness and its children) of one run."""
    scenario: dict[str, object] = {
        "name": "prom-overhead",
        "workload": WORKLOAD,
        "load": {"users": users, "spawn_rate": users, "duration": f"{seconds}s"},
    }
    if metrics_port is not None:
        scenario["observe"] = {"metrics": {"port": metrics_port}}
    path = out / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario))
    before = children_cpu_s()
    run_dir = harness_run(path, out)
    cpu_s = children_cpu_s() - before
    return len(pd.read_parquet(run_dir / "requests.parquet")) / seconds, cpu_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()

    port = free_port()
    rate_ratios, cpu_ratios, per_request = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "prometheus"
        state = server.up(server.url_targets([f"http://127.0.0.1:{port}/metrics"]), directory)
        try:
            for pair in range(1, args.pairs + 1):
                rate_without, cpu_without = one_run(Path(tmp), args.users, args.seconds, None)
                scraper_before = process_cpu_s(state.pid)
                rate_with, cpu_with = one_run(Path(tmp), args.users, args.seconds, port)
                scraper_s = process_cpu_s(state.pid) - scraper_before
                scrapes = successful_scrapes(state.url, args.seconds + 30)
                rate_ratios.append(rate_with / rate_without)
                cpu_ratios.append((cpu_with + scraper_s) / cpu_without)
                per_request.append(cpu_ratios[-1] / rate_ratios[-1])
                print(
                    f"pair {pair}: without {rate_without:7.1f} req/s {cpu_without:6.1f} CPU s; "
                    f"with {rate_with:7.1f} req/s {cpu_with:6.1f} + Prometheus "
                    f"{scraper_s:5.2f} CPU s; ratios {rate_ratios[-1]:.3f} rate, "
                    f"{cpu_ratios[-1]:.3f} CPU, {per_request[-1]:.3f} CPU per request; "
                    f"{scrapes:.0f} scrapes of the run",
                    flush=True,
                )
        finally:
            server.down(directory)
    print(
        f"median over {args.pairs} pairs (with /metrics and scraping / without): request rate "
        f"{statistics.median(rate_ratios):.3f}, CPU time {statistics.median(cpu_ratios):.3f}, "
        f"CPU time per request {statistics.median(per_request):.3f}"
    )


def successful_scrapes(url: str, within_s: int) -> float:
    """Scrapes of the run's /metrics that succeeded in the last `within_s` (Prometheus' up)."""
    data = PrometheusClient(url).query(f"sum_over_time(up[{within_s}s])")
    return sum(float(r["value"][1]) for r in data.get("result", []))


if __name__ == "__main__":
    main()
