"""Load from inside the cluster (`load.placement: pods`): the objects (pure), the scenario's
refusals, and a whole run on the Kubernetes lab whose requests come from two worker pods that
kubectl (not the harness) saw running, their totals equal to Locust's own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.errors import LoadError, ScenarioError
from harness.labs.kubernetes import lab as kube_lab
from harness.load import RECORDER
from harness.load_pods import LOAD_RUN_LABEL, deployment_object, load_files, worker_argv
from harness.owners import RUN_LABEL
from harness.scenario import parse_scenario
from tests.abort import REPO, SCENARIOS
from tests.helpers import Sampler
from tests.kube_labs import module_lab

NS = 1_000_000_000


def test_the_worker_pods_are_not_the_runs_replicas_and_carry_the_load_files(
    tmp_path: Path,
) -> None:
    deployment = deployment_object("r1", "me", 2, "img:1", "Never", ["python3"])
    template = deployment.spec.template
    assert RUN_LABEL not in template.metadata.labels  # the pod tracker's selector misses them
    assert template.metadata.labels[LOAD_RUN_LABEL] == "r1" and deployment.spec.replicas == 2
    (env,) = [e for e in template.spec.containers[0].env if e.name == "CHAOS_HARNESS_WORKER_NAME"]
    assert env.value_from.field_ref.field_path == "metadata.name"
    assert {RECORDER.name, "chaos_shipping.py", "default_locustfile.py"} <= set(load_files(None))
    argv = worker_argv(None, "10.220.0.1", 5557)
    assert argv[-4:] == ["--master-host", "10.220.0.1", "--master-port", "5557"]
    mine = tmp_path / "recorder.py"
    mine.write_text("")
    with pytest.raises(LoadError, match="name of a bundled module"):
        load_files(mine)


def test_pods_placement_is_refused_where_it_cannot_work() -> None:
    for text, why in [
        ("target: docker\nload: {placement: pods, workers: 2}", "needs target: kubernetes"),
        (
            "target: {kind: kubernetes, kubeconfig: /k}\nload: {placement: pods, workers: 1}",
            "needs load.image .* and load.master.bind",
        ),
        ("target: kubernetes\nload: {placement: pods}", "give 1 or more"),
        (
            "target: kubernetes\nload: {placement: pods, workers: 1, routing: per_instance}",
            "per_instance",
        ),
    ]:
        with pytest.raises(ScenarioError, match=why):
            parse_scenario(f"name: s\n{text}\n")
    elsewhere = parse_scenario(
        "name: s\ntarget: {kind: kubernetes, kubeconfig: /k}\nload: {placement: pods, "
        "workers: 1, image: 'r.example/load:1', master: {bind: '0.0.0.0:5557'}}\n"
    )
    assert elsewhere.load.master is not None and elsewhere.load.master.expect_workers == 0


class WorkerPods(Sampler):
    """kubectl's view of the run's worker pods every 0.5 s: the names of those Running."""

    def __init__(self) -> None:
        super().__init__()
        self.running: set[str] = set()

    def sample(self) -> None:
        info = kube_lab.current()
        if info is None:
            return
        query = ("get", "pods", "-A", "-l", LOAD_RUN_LABEL, "-o", "json")
        done = subprocess.run(
            [info.kubectl, "--kubeconfig", info.kubeconfig, *query],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        if done.returncode != 0:
            return
        for pod in json.loads(done.stdout)["items"]:
            if pod["status"].get("phase") == "Running":
                self.running.add(pod["metadata"]["name"])


@pytest.fixture(scope="module")
def lab(demo_image: str) -> object:
    del demo_image
    yield from module_lab(nodes=2)


def _quickstart_run(
    tmp_path: Path, target: object, load: dict[str, object], faults: list[object] | None = None
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`harness run` of the quickstart with `target`, `load` over its load and `faults` (none
    by default), no SLO; the run directory (the run must exit 0) and the finished process."""
    data = yaml.safe_load((SCENARIOS / "quickstart.yaml").read_text())
    data["target"] = target
    data["load"].update(load)
    data["faults"], data["slo"] = faults or [], {}
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(data))
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(scenario), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return Path(done.stdout.strip().splitlines()[-1]), done


def _locust_total(run_dir: Path) -> int:
    """Locust's own count of the run's requests (its master's stats file)."""
    stats = json.loads((run_dir / "load" / "locust-stats.json").read_text())
    return sum(int(e["num_requests"]) for e in stats)


@pytest.mark.docker
def test_two_worker_pods_load_the_service_through_a_kill(tmp_path: Path, lab: object) -> None:
    crash = {"kind": "container_kill", "name": "crash", "at": "10s", "select": {"count": 1}}
    load = {"placement": "pods", "workers": 2, "users": 10, "duration": "26s"}
    with WorkerPods() as pods:
        run_dir, _ = _quickstart_run(tmp_path, "kubernetes", load, [crash])
    requests = pd.read_parquet(run_dir / "requests.parquet")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    # the requests came from the two pods kubectl saw running, and add up to Locust's totals
    workers = set(requests["worker_name"])
    assert len(workers) == 2 and workers == pods.running, (workers, pods.running)
    assert len(requests) == _locust_total(run_dir)
    assert requests.groupby("worker_name").size().min() > 0.25 * len(requests)
    # users inside the cluster: the Service's ClusterIP, through kube-proxy on each pod's node
    assert manifest["load"]["placement"] == "pods"
    assert manifest["load"]["path"].startswith("pods: 2 Locust worker(s)")
    # the summary's and the report's per-worker share: every request, each pod's own
    shares = {w["name"]: w for w in summary["load"]["per_worker"]}
    assert set(shares) == workers
    assert sum(w["requests"] for w in shares.values()) == len(requests)
    assert "<h2>Load workers</h2>" in (run_dir / "report.html").read_text()
    (crash,) = summary["faults"]
    assert crash["recovered"], crash
    print(
        f"\npods {sorted(workers)}: {len(requests)} requests (Locust: the same); crash ttr "
        f"{crash['ttr_s']} s, {crash['failed_requests']} failed; load at {manifest['load']['host']}"
    )


@pytest.mark.slow
@pytest.mark.docker
def test_node_workers_on_the_kubernetes_lab_load_the_cluster_ip(
    tmp_path: Path, lab: object
) -> None:
    load = {"placement": "nodes", "workers": 2, "users": 10, "duration": "20s"}
    run_dir, _ = _quickstart_run(tmp_path, "kubernetes", load)
    requests = pd.read_parquet(run_dir / "requests.parquet")
    state = kube_lab.load_state()
    assert state is not None
    assert set(requests["worker_name"]) == {n.netns for n in state.nodes}  # one per node
    assert len(requests) == _locust_total(run_dir)
    assert requests["ok"].mean() > 0.99
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["load"]["path"].startswith("nodes: 2 Locust worker(s)")


def test_a_pod_that_cannot_start_says_why() -> None:
    from kubernetes.client import V1Pod

    from harness.load_pods import _pod_state

    waiting = V1Pod.model_validate(
        {
            "metadata": {"name": "w-1"},
            "status": {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": "locust",
                        "image": "x",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": "ErrImageNeverPull", "message": "no x"}},
                    }
                ],
            },
        }
    )
    assert _pod_state(waiting) == "Pending, ErrImageNeverPull: no x"
    running = V1Pod.model_validate({"metadata": {"name": "w-2"}, "status": {"phase": "Running"}})
    assert _pod_state(running) == "Running"


@pytest.mark.slow
@pytest.mark.docker
def test_pods_on_a_cluster_given_by_its_kubeconfig_dial_load_master(
    tmp_path: Path, lab: object
) -> None:
    from harness.load import free_port
    from harness.load_pods import lab_master_bind
    from harness.worker_image import load_worker_image_into_lab

    info = kube_lab.current()
    assert info is not None
    image = load_worker_image_into_lab()  # as a user's registry would serve it
    bind = f"{lab_master_bind()}:{free_port(lab_master_bind())}"
    target = {"kind": "kubernetes", "kubeconfig": str(info.kubeconfig)}
    load = {"placement": "pods", "workers": 2, "users": 6, "duration": "18s"}
    load |= {"image": image, "master": {"bind": bind}}
    run_dir, done = _quickstart_run(tmp_path, target, load)
    requests = pd.read_parquet(run_dir / "requests.parquet")
    names = set(requests["worker_name"])
    assert len(names) == 2 and all(n.startswith("chaos-load-workers-") for n in names)
    assert len(requests) == _locust_total(run_dir)
    assert "harness worker --master" not in done.stderr  # no other machine was waited for
