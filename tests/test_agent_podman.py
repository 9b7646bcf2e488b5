"""Podman as an engine the harness does not run on: under CHAOS_HARNESS_HOST_ACCESS=none the
run's kill, partition and disk fill go through the fault agent container on Podman, and
Podman's CLI and /proc (not the harness) show the agent there during the run, the killed
replica restarted, the partition's rule in the replica's namespace, the fill in its layer,
and nothing of the run after it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.hostsys import HOST_ACCESS_ENV
from tests.abort import REPO
from tests.helpers import Sampler, podman_leftovers

pytestmark = [
    pytest.mark.docker,  # the agent's image is built on Docker and loaded into Podman
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
]
NAME = "podman-far"


def _podman_ps() -> list[dict[str, Any]]:
    done = subprocess.run(
        ["podman", "ps", "-a", "--format", "json", "--filter", f"name=chaos-{NAME}-"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    found: list[dict[str, Any]] = json.loads(done.stdout or "[]") if done.returncode == 0 else []
    agents = subprocess.run(
        ["podman", "ps", "--format", "json", "--filter", f"name=chaos-agent-{NAME}-"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return found + (json.loads(agents.stdout or "[]") if agents.returncode == 0 else [])


def _rules_in(pid: int) -> str:
    done = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "iptables-save"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return done.stdout


class PodmanWatch(Sampler):
    """What Podman's CLI and the replicas' namespaces show every 0.5 s during the run."""

    def __init__(self) -> None:
        self.agent_seen = False
        self.restarts: dict[str, int] = {}
        self.partition_rules: dict[str, int] = {}
        self.fills: dict[str, int] = {}  # replica -> the largest fill file seen (bytes)
        super().__init__()

    def sample(self) -> None:
        for container in _podman_ps():
            name = container["Names"][0]
            if name.startswith(f"chaos-agent-{NAME}-"):
                self.agent_seen = True
                continue
            replica = name.rsplit("-", 2)[-2] + "-" + name.rsplit("-", 1)[-1]
            inspect = subprocess.run(
                ["podman", "inspect", name, "--format", "{{.RestartCount}} {{.State.Pid}}"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            ).stdout.split()
            if len(inspect) != 2:
                continue
            restarts, pid = int(inspect[0]), int(inspect[1])
            self.restarts[replica] = max(self.restarts.get(replica, 0), restarts)
            if pid > 0:
                self._read_fills(replica, pid)
                tagged = _rules_in(pid).count("chaos-harness")
                seen = self.partition_rules.get(replica, 0)
                self.partition_rules[replica] = max(seen, tagged)

    def _read_fills(self, replica: str, pid: int) -> None:
        tmp = Path(f"/proc/{pid}/root/tmp")
        try:
            sizes = [p.stat().st_size for p in tmp.glob("chaos-harness-fill-*")]
        except OSError:
            return
        if sizes:
            self.fills[replica] = max(self.fills.get(replica, 0), *sizes)


def _scenario(tmp_path: Path) -> Path:
    data = {
        "name": NAME,
        "target": {"kind": "podman"},
        "workload": {
            "image": "demo",
            "replicas": 2,
            "restart": "always",
            "health": {"path": "/health", "interval": "1s", "timeout": "1s", "retries": 3},
        },
        "load": {"users": 6, "duration": "32s", "routing": "per_instance", "timeout": "1s"},
        "probes": {"interval": "100ms"},
        "analysis": {"stable_for": "2s"},
        "faults": [
            {"kind": "container_kill", "name": "kill", "at": "6s", "select": {"names": ["web-1"]}},
            {
                "kind": "network_partition",
                "name": "cut",
                "at": "14s",
                "duration": "5s",
                "select": {"names": ["web-2"]},
            },
            {
                "kind": "disk_fill",
                "name": "fill",
                "at": "21s",
                "duration": "3s",
                "size": "8Mi",
                "select": {"names": ["web-2"]},
            },
        ],
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow  # a minute; the default suite keeps the agent on a remote Docker engine
def test_podman_elsewhere_gets_its_kill_and_partition_through_the_agent(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "harness", "run", str(_scenario(tmp_path))]
    env = {**os.environ, HOST_ACCESS_ENV: "none"}
    with PodmanWatch() as watch:
        done = subprocess.run(
            [*command, "--out", str(tmp_path / "runs")],
            capture_output=True,
            text=True,
            timeout=400,
            cwd=REPO,
            env=env,
        )
        time.sleep(0.5)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    injected = [e for e in events if e["action"] == "fault_inject"]
    assert len(injected) == 3, injected
    assert all(e["attributes"]["mechanism"].startswith("the fault agent on ") for e in injected)
    assert "podman" in manifest["agents"]["where"] and watch.agent_seen
    faults = {f["name"]: f for f in summary["faults"]}
    # Podman's word: web-1 restarted by its policy after the agent's SIGKILL
    assert watch.restarts.get("web-1", 0) >= 1, watch.restarts
    assert faults["kill"]["recovered"] is True
    # the partition's rules were in web-2's namespace while it lasted, and it cost requests
    assert watch.partition_rules.get("web-2", 0) >= 1, watch.partition_rules
    assert watch.partition_rules.get("web-1", 0) == 0
    assert faults["cut"]["failed_requests"] > 0
    # the fill: the file in web-2's layer at its full size while it lasted, gone after
    assert watch.fills.get("web-2") == 8 * 1024 * 1024 and "web-1" not in watch.fills
    assert podman_leftovers(manifest["run_id"]) == []
    assert _podman_ps() == []
    print(
        f"\npodman through the agent: kill ttr {faults['kill']['ttr_s']} s, apply "
        f"{[e['attributes']['apply_s'] for e in injected]} s; partition "
        f"{faults['cut']['failed_requests']} failed; clocks {manifest['agents']['clocks']}"
    )
