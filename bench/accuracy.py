"""Accuracy of the harness's numbers against facts it did not record.

Runs the quickstart crash RUNS times (`harness run`, a host SIGKILL of web-2, one of 3
replicas) while bench.witness watches from outside: a pidfd on web-2's process (the kernel's
instant of death) and a packet capture on the run's bridge (web-2's last HTTP answer before
the death, its first after). Neither is the engine's event stream nor the load's request log,
which the harness itself records. Per run it prints, in milliseconds unless said:

- `t0 -> death`: from the harness's t0 (the fault's marked action) to the death the kernel
  reported: how early t0 is (the signal's delivery and the witness's wake-up included);
- `engine die - death`: how late the engine's `die` event is (the harness's kill_to_die_s and
  die_to_start_s inherit it);
- `detected - death`: how long after the death users saw the first failure;
- `outage on the wire s`: death -> web-2's first answer after it (the replica's real outage);
- `recovered - first answer`: users' recovery (recovered_at) after that first answer;
- `ttr s`, `ttr / outage`: users' time to recover, and how it compares with the outage.

    python -m bench.accuracy [--runs 3]     (from the repository's root, as root)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import docker
import yaml

from bench.runs import REPO
from bench.witness import Facts, RunWitness

MS, S = 1e6, 1e9


def _scenario(out: Path) -> Path:
    data = yaml.safe_load((REPO / "scenarios" / "quickstart.yaml").read_text())
    data["load"]["duration"] = "22s"
    data["faults"] = [{"kind": "container_kill", "at": "8s", "select": {"names": ["web-2"]}}]
    data["slo"] = {}
    scenario = out / "accuracy.yaml"
    scenario.write_text(yaml.safe_dump(data))
    return scenario


def run_once(out: Path, client: docker.DockerClient) -> dict[str, float]:
    witness = RunWitness(client, out, "web-2")
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", str(_scenario(out)), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        witness.attach(timeout_s=120)
        stdout, stderr = process.communicate(timeout=300)
        facts = witness.facts()
    finally:
        witness.close()
        if process.poll() is None:
            process.kill()
    if process.returncode not in (0, 1):
        raise RuntimeError(f"harness run exited {process.returncode}:\n{stderr[-2000:]}")
    run_dir = Path(stdout.strip().splitlines()[-1])
    (fault,) = json.loads((run_dir / "summary.json").read_text())["faults"]
    return _row(fault, facts)


def _row(fault: dict[str, Any], facts: Facts) -> dict[str, float]:
    died, served = facts.died_at_ns, facts.first_answer_after_ns
    if died is None or served is None:
        raise RuntimeError(f"the witnesses missed the crash: {facts}")
    (engine,) = fault["orchestrator"]
    t0, detected, recovered = (
        int(fault[k]) for k in ("injected_at_ns", "detected_at_ns", "recovered_at_ns")
    )
    outage = (served - died) / S
    ttr = (recovered - t0) / S
    return {
        "t0 -> death": (died - t0) / MS,
        "engine die - death": (int(engine["die_at_ns"]) - died) / MS,
        "detected - death": (detected - died) / MS,
        "outage on the wire s": outage,
        "recovered - first answer": (recovered - served) / MS,
        "ttr s": ttr,
        "ttr / outage": ttr / outage,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    client = docker.from_env()
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(1, args.runs + 1):
            out = Path(tmp) / f"run-{index}"
            out.mkdir()
            row = run_once(out, client)
            rows.append(row)
            print(f"run {index}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    print(
        "median: " + ", ".join(f"{k} {statistics.median(r[k] for r in rows):.3f}" for k in rows[0])
    )


if __name__ == "__main__":
    main()
