"""scenarios/kube-prometheus.yaml end to end (slow: a two-node Kubernetes lab): a Prometheus
started by `harness prometheus up` scrapes the lab's kubelets and cAdvisor and the run's own
/metrics; the run's slo.prometheus checks read the memory and CPU of its pods from cAdvisor.
Take the machine's lab lock first (flock /tmp/chaos-kube-lab.lock).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness.prometheus import server
from harness.prometheus.client import PrometheusClient
from harness.targets.kubernetes.objects import namespace_for
from tests.helpers import harness_cli

REPO = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.slow,
    pytest.mark.docker,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="no prometheus (make setup)"),
]


def _harness(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return harness_cli(*args, env=env, timeout_s=600)


@pytest.fixture
def lab_and_prometheus(tmp_path: Path, demo_image: str) -> Iterator[str]:
    env = {**os.environ, server.DIR_ENV: str(tmp_path / "prometheus")}
    try:
        up = _harness("lab", "up", "--kind", "kubernetes", "--nodes", "2")
        assert up.returncode == 0, up.stderr
        started = _harness("prometheus", "up", env=env)
        assert started.returncode == 0, started.stderr
        yield started.stdout.strip().splitlines()[-1]
    finally:
        _harness("prometheus", "down", env=env)
        _harness("lab", "down")


def test_slos_from_cadvisor_on_the_kubernetes_lab(tmp_path: Path, lab_and_prometheus: str) -> None:
    url = lab_and_prometheus
    scenario = yaml.safe_load((REPO / "scenarios" / "kube-prometheus.yaml").read_text())
    scenario["observe"]["prometheus"]["url"] = url
    path = tmp_path / "kube-prometheus.yaml"
    path.write_text(yaml.safe_dump(scenario))

    done = _harness("run", str(path), "--out", str(tmp_path / "r"))
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert done.returncode == 0, (summary["status_reason"], done.stderr[-2000:])
    checks = {c["name"]: c for c in summary["prometheus"]["checks"]}
    memory, cpu = checks["workload_memory_bytes[f1]"], checks["workload_cpu_cores[after]"]
    assert memory["verdict"] == "pass" and memory["value"] > 1_000_000  # three pods' httpd
    assert cpu["verdict"] == "pass" and 0 < cpu["value"] < 1.5

    # Prometheus scraped every kubelet and cAdvisor, and saw the run's own pods there
    client = PrometheusClient(url)
    jobs = client.query("up")["result"]
    health = {r["metric"]["job"]: r["value"][1] for r in jobs}
    assert {j for j in health if j.startswith(("kubelet-", "cadvisor-"))} == {
        "kubelet-chk8s-n1", "kubelet-chk8s-n2", "cadvisor-chk8s-n1", "cadvisor-chk8s-n2",
    }  # fmt: skip
    assert all(health[j] == "1" for j in health if j.startswith(("kubelet-", "cadvisor-")))
    namespace = namespace_for(summary["run_id"])
    start_s = summary["load"]["started_at_ns"] / 1e9
    pods = client.query_range(
        f'container_memory_working_set_bytes{{namespace="{namespace}", container=""}}',
        start_s,
        summary["load"]["ended_at_ns"] / 1e9,
        2.0,
    )
    # three replicas and the one that replaced the deleted pod
    assert len({s.labels["pod"] for s in pods}) == 4
