"""scenarios/kube-node-partition.yaml end to end (slow: the run brings up a three-node lab with
a 20 s grace period and a 10 s unreachable toleration, and takes it down again): the cut node
is reported down, its pod evicted and replaced on a node that answers, and users' recovery
measured on the Service's stream; checked against kubectl's view, polled while the run goes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.labs.kubernetes import lab as kube_lab
from harness.targets.base import RUN_LABEL
from tests.helpers import Sampler

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.docker]
CUT_NODE = "chk8s-n3"


class PodWatcher(Sampler):
    """kubectl's view of the run's pods, once a second, while the run goes: which nodes ran
    a ready pod of the run, and when."""

    interval_s = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[float, str, str, bool]] = []  # (t, pod, node, ready)

    def sample(self) -> None:
        info = kube_lab.current()
        if info is None:
            return
        query = ("get", "pods", "-A", "-l", RUN_LABEL, "-o", "json")
        done = subprocess.run(
            [info.kubectl, "--kubeconfig", info.kubeconfig, *query],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        if done.returncode != 0:
            return
        now = time.monotonic()
        for pod in json.loads(done.stdout)["items"]:
            conditions = pod["status"].get("conditions", [])
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
            node = pod["spec"].get("nodeName", "")
            self.seen.append((now, pod["metadata"]["name"], node, ready))


def test_a_cut_node_is_reported_down_and_its_pod_replaced_on_another(tmp_path: Path) -> None:
    if kube_lab.current() is not None:
        pytest.skip("a Kubernetes lab is up: the scenario brings up its own (20 s grace)")
    with PodWatcher() as watcher:
        scenario = REPO / "scenarios/kube-node-partition.yaml"
        done = subprocess.run(
            [sys.executable, "-m", "harness", "run", str(scenario), "--out", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            cwd=REPO,
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert kube_lab.current() is None  # the lab the run brought up is down again
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    fault = json.loads((run_dir / "summary.json").read_text())["faults"][0]

    # kubectl saw it: a ready pod on the cut node, then three ready pods on the other nodes
    on_cut = [pod for _t, pod, node, ready in watcher.seen if node == CUT_NODE and ready]
    assert on_cut, "kubectl never saw a ready pod on the node to be cut"
    elsewhere = {pod for _t, pod, node, ready in watcher.seen if node != CUT_NODE and ready}
    assert len(elsewhere) >= 3, f"no replacement seen by kubectl: {watcher.seen[-6:]}"

    cluster, response = fault["cluster"], fault["response"]
    assert cluster["node"] == CUT_NODE
    # lease renewed every 10 s, 20 s grace: the node is lost 10-20 s after the cut (+ slack)
    assert 8.0 <= cluster["to_node_down_s"] <= 30.0
    # then 10 s of toleration before the eviction, and the replacement's start
    assert cluster["to_node_down_s"] + 8.0 <= cluster["to_full_strength_s"] <= 60.0
    assert cluster["to_node_down_s"] < cluster["to_replacement_running_s"] <= 60.0
    assert response["action"] == "replaced" and response["unit"] == "pod"
    assert fault["view"] == "service" and fault["impact"] == "visible"
    print(
        f"\nnode down +{cluster['to_node_down_s']} s, full strength "
        f"+{cluster['to_full_strength_s']} s; users: ttd {fault['ttd_s']} s, "
        f"ttr {fault['ttr_s']} s, availability {fault['availability']}"
    )
