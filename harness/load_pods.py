"""Load from inside the cluster (`load.placement: pods`): Locust workers as pods of the run.

A Deployment of `load.workers` pods in the run's namespace, each one Locust worker dialling
the run's master on the harness's host (on the Kubernetes lab: the host's address on the lab
bridge, which every pod reaches through its node), named by its pod (the downward API), its
records shipped to the master through Locust's messages (harness/locust/chaos_shipping.py).
The run's load files (the bundled recorder, the locustfile) travel in a ConfigMap mounted at
LOAD_DIR, so the image (harness.worker_image: Debian's Python and Locust) never changes with
the harness. Users load the Service at its ClusterIP, as in-cluster clients do, so kube-proxy
on each pod's node spreads the load.

The worker pods carry the run's label under their own key (LOAD_RUN_LABEL), not the run's
RUN_LABEL: the target's pod tracker would otherwise take them for replicas. They go with the
run's namespace at teardown; `close()` removes them earlier, when the load is done.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kubernetes.client import V1ConfigMap, V1Deployment

from harness.errors import LoadError, TargetError
from harness.labs.kubernetes.state import BRIDGE_ADDRESS
from harness.load import DEFAULT_LOCUSTFILE, LOCUST_DIR, RECORDER
from harness.owners import OWNER_LABEL, owner_label_value
from harness.targets.base import Target
from harness.targets.kubernetes.objects import MANAGED_BY
from harness.targets.kubernetes.target import OWNER_HOST, KubernetesTarget

NAME = "chaos-load-workers"  # the Deployment, its ConfigMap and its container
LOAD_DIR = "/load"
LOAD_RUN_LABEL = "chaos-harness.load-run"
ROLE_LABEL = ("app.kubernetes.io/component", "load-worker")
GRACE_S = 15  # a worker sends its last batch on SIGTERM (Locust's quit)


def load_files(locustfile: Path | None) -> dict[str, str]:
    """The ConfigMap's files: the bundled modules Locust loads beside the locustfile, and the
    locustfile (the user's single file, or the bundled one)."""
    files = {
        p.name: p.read_text() for p in sorted(LOCUST_DIR.glob("*.py")) if p.name != "__init__.py"
    }
    if locustfile is not None:
        if locustfile.name in files:
            raise LoadError(
                f"load.locustfile {locustfile.name!r} has the name of a bundled module: rename "
                "it for placement pods"
            )
        files[locustfile.name] = locustfile.read_text()
    return files


def worker_argv(locustfile: Path | None, master_host: str, master_port: int) -> list[str]:
    """A pod's command: one Locust worker with the bundled recorder, from the ConfigMap."""
    name = (locustfile or DEFAULT_LOCUSTFILE).name
    files = f"{LOAD_DIR}/{name},{LOAD_DIR}/{RECORDER.name}"
    return [
        *("python3", "-m", "locust", "-f", files, "--exit-code-on-error", "0"),
        *("--worker", "--master-host", master_host, "--master-port", str(master_port)),
    ]


def _metadata(run_id: str, owner: str) -> dict[str, Any]:
    return {
        "name": NAME,
        "labels": {
            LOAD_RUN_LABEL: run_id,
            ROLE_LABEL[0]: ROLE_LABEL[1],
            MANAGED_BY[0]: MANAGED_BY[1],
        },
        "annotations": {OWNER_LABEL: owner, OWNER_HOST: socket.gethostname()},
    }


def config_map_object(run_id: str, owner: str, files: Mapping[str, str]) -> V1ConfigMap:
    return V1ConfigMap.model_validate(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _metadata(run_id, owner),
            "data": dict(files),
        }
    )


def deployment_object(
    run_id: str, owner: str, replicas: int, image: str, pull_policy: str, command: Sequence[str]
) -> V1Deployment:
    metadata = _metadata(run_id, owner)
    selector = {LOAD_RUN_LABEL: run_id, ROLE_LABEL[0]: ROLE_LABEL[1]}
    container = {
        "name": "locust",
        "image": image,
        "imagePullPolicy": pull_policy,
        "command": list(command),
        "env": [
            {
                "name": "CHAOS_HARNESS_WORKER_NAME",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
            },
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "volumeMounts": [{"name": "load", "mountPath": LOAD_DIR, "readOnly": True}],
    }
    return V1Deployment.model_validate(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata,
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {
                        "labels": metadata["labels"],
                        "annotations": metadata["annotations"],
                    },
                    "spec": {
                        "containers": [container],
                        "volumes": [{"name": "load", "configMap": {"name": NAME}}],
                        "terminationGracePeriodSeconds": GRACE_S,
                        "enableServiceLinks": False,
                    },
                },
            },
        }
    )


def lab_master_bind() -> str:
    """Where the master listens for pod workers on the Kubernetes lab: the host's address on
    the lab bridge (each node routes its pods' traffic there)."""
    return BRIDGE_ADDRESS


def cluster_ip_url(target: Target) -> str:
    """The workload's Service at its ClusterIP, as a client inside the cluster (a pod, or a
    process on a node, whose kube-proxy DNATs it) reaches it."""
    if not isinstance(target, KubernetesTarget):
        raise LoadError(f"a ClusterIP needs the Kubernetes target, not {target.kind}")
    workload = target.workload_name()
    service = target.cluster.call(
        f"reading Service {workload}",
        target.cluster.core.read_namespaced_service,
        workload,
        target.namespace,
    )
    spec = service.spec
    ports = spec.ports if spec is not None else None
    if spec is None or not spec.cluster_ip or spec.cluster_ip == "None" or not ports:
        raise LoadError(f"Service {workload} has no ClusterIP to load from inside the cluster")
    return f"http://{spec.cluster_ip}:{ports[0].port}"


class PodWorkers:
    """The run's worker pods on `target`'s cluster: `open` once the master listens."""

    def __init__(self, target: KubernetesTarget, owner: str) -> None:
        self.target = target
        self.owner = owner
        self._opened = False

    @classmethod
    def on(cls, target: Target) -> PodWorkers:
        """The worker pods of a run on `target`, which must be the Kubernetes target."""
        if not isinstance(target, KubernetesTarget):
            raise LoadError(f"load.placement pods needs the Kubernetes target, not {target.kind}")
        return cls(target, owner_label_value())

    def cluster_ip_url(self) -> str:
        return cluster_ip_url(self.target)

    def open(
        self,
        replicas: int,
        image: str,
        locustfile: Path | None,
        master: tuple[str, int],
    ) -> None:
        """The ConfigMap and the Deployment; the master waits for the pods to connect."""
        cluster, namespace = self.target.cluster, self.target.namespace
        run_id = self.target.run_id
        files = config_map_object(run_id, self.owner, load_files(locustfile))
        command = worker_argv(locustfile, *master)
        deployment = deployment_object(
            run_id, self.owner, replicas, image, self.target.pull_policy(), command
        )
        try:
            cluster.call(
                "creating the load workers' ConfigMap",
                cluster.core.create_namespaced_config_map,
                namespace,
                files,
            )
            self._opened = True
            cluster.call(
                "creating the load workers' Deployment",
                cluster.apps.create_namespaced_deployment,
                namespace,
                deployment,
            )
        except TargetError as exc:
            raise LoadError(f"placement pods: {exc}") from exc

    def describe(self) -> str:
        """The worker pods' states in a line (why a master waited for them in vain)."""
        cluster, namespace = self.target.cluster, self.target.namespace
        try:
            pods = cluster.call(
                "listing the load workers",
                cluster.core.list_namespaced_pod,
                namespace,
                label_selector=f"{LOAD_RUN_LABEL}={self.target.run_id}",
            )
        except TargetError as exc:
            return f"cannot list them: {exc}"
        states = [
            f"{p.metadata.name if p.metadata else '?'}: {_pod_state(p)}" for p in pods.items or []
        ]
        return "; ".join(states) or "none was created"

    def close(self) -> None:
        """Remove the workers (the namespace's teardown would, later); never raises."""
        if not self._opened:
            return
        cluster, namespace = self.target.cluster, self.target.namespace
        for what, delete in (
            ("Deployment", cluster.apps.delete_namespaced_deployment),
            ("ConfigMap", cluster.core.delete_namespaced_config_map),
        ):
            try:
                cluster.call_unless(
                    {404}, f"deleting the load workers' {what}", delete, NAME, namespace
                )
            except TargetError:
                continue  # the namespace goes at teardown with everything in it
        self._opened = False


def _pod_state(pod: Any) -> str:
    """A pod's phase, and its container's waiting reason when it has one (ImagePullBackOff)."""
    status = pod.status
    phase = (status.phase if status is not None else None) or "unknown"
    for container in (status.container_statuses if status is not None else None) or []:
        waiting = container.state.waiting if container.state is not None else None
        if waiting is not None and waiting.reason:
            return f"{phase}, {waiting.reason}: {waiting.message or ''}".rstrip(": ")
    return phase
