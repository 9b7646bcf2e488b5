"""Load scale: the request rate Locust achieves with 1, 2 and 4 workers, per placement.

    python -m bench.load_scale [--workers 1,2,4] [--seconds 8] [--users 32]
                               [--placements local,nodes]

Closed loop (every user sends its next request when the last one ended) against busybox httpd
(`index.html`, a few bytes), one server process per core; the harness's recorder ships every
request to the master (harness/locust/chaos_shipping.py). `local`: the workers on this host,
the servers on loopback. `nodes`: the workers in the Swarm lab's nodes' network namespaces
(`harness lab up --kind swarm` first; skipped when no lab is up), the servers on the host's
bridge address, so every request crosses a node's veth and the bridge. Each line: the
achieved rate over the run, the share of failed requests, and whether the merged records equal
Locust's totals. Load generator and server share this machine's cores: a rate that stops
growing with workers is where the machine saturates, not Locust.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from harness.load import LoadPlan, LoadRun, collect_requests, free_port


def _servers(host: str, count: int, www: Path) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    procs, urls = [], []
    for _ in range(count):
        port = free_port(host)
        argv = ["busybox", "httpd", "-f", "-p", f"{host}:{port}", "-h", str(www)]
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        urls.append(f"http://{host}:{port}")
    time.sleep(0.3)
    return procs, urls


def _one(placement: str, workers: int, args: argparse.Namespace, root: Path) -> str:
    host, places = "127.0.0.1", ()
    bind = "127.0.0.1"
    if placement == "nodes":
        from harness.load_nodes import lab_master_bind, lab_worker_places

        host = bind = lab_master_bind()
        places = tuple(lab_worker_places(workers))
    www = root / "www"
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text("hello\n")
    procs, urls = _servers(host, os.cpu_count() or 1, www)
    try:
        plan = LoadPlan(
            users=args.users, spawn_rate=1000, duration_s=args.seconds,
            record_dir=root / f"{placement}-{workers}",
            endpoints=[(f"s{i}", url) for i, url in enumerate(urls)], workers=workers,
            master_bind=bind, places=places, connections="per_request",
        )  # fmt: skip
        with LoadRun(plan) as run:
            run.wait(timeout=args.seconds + 60)
        requests = collect_requests(plan.record_dir)
        totals = run.locust_totals()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(5)
    span_s = (requests["start_ns"].max() - requests["start_ns"].min()) / 1e9
    rate = len(requests) / span_s if span_s > 0 else 0.0
    failed = float((~requests["ok"]).mean()) if len(requests) else 0.0
    locust = totals.requests if totals is not None else None
    same = "=" if locust == len(requests) else "!="
    return (
        f"{placement:6} workers {workers}: {rate:7.0f} requests/s, {failed:6.2%} failed, "
        f"{len(requests)} records {same} Locust's {locust}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--placements", default="local,nodes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="load-scale-") as tmp:
        for placement in args.placements.split(","):
            if placement == "nodes":
                from harness.labs.swarm.lab import load_state

                state = load_state()
                if state is None or state.status != "up":
                    print("nodes: skipped (no Swarm lab up: harness lab up --kind swarm)")
                    continue
            for workers in (int(w) for w in args.workers.split(",")):
                print(_one(placement, workers, args, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
