"""The Kubernetes objects of one run, built from the scenario's workload (pure functions).

A run is a namespace of its own holding one Deployment and one Service:
- every object carries `chaos-harness.run-id=<run id>` (and `chaos-harness.service`); the
  owner (`pid:start ticks`, no legal label value) is the annotation `chaos-harness.owner`;
- the pods restart Always (the only policy a Deployment accepts); the workload's command is
  Kubernetes' `args` (Docker's command replaces CMD, not ENTRYPOINT); limits double as requests;
  the health check is an httpGet readiness probe (whole seconds: sub-second is refused);
- imagePullPolicy Never on the local lab (every image is loaded into every node, and a missing
  one fails at once), IfNotPresent on another cluster;
- the Service is a NodePort, spread over the ready pods by each node's kube-proxy.

Objects are validated by the client's own models (`model_validate` forbids unknown fields), so
a field the API does not have fails here, in a unit test, rather than on a cluster. The long
form: docs/TARGETS.md, Kubernetes objects.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any

from kubernetes.client import V1Deployment, V1Namespace, V1Service

from harness.images import DEMO_IMAGE
from harness.specs import HealthSpec, WorkloadSpec
from harness.targets.base import OWNER_LABEL, RUN_LABEL, SERVICE_LABEL

NAMESPACE_PREFIX = "chaos-"
MAX_NAME = 63  # a DNS-1123 label: namespaces, services
# what `kubectl get ns -l` shows, and the key cleanup lists namespaces by
MANAGED_BY = ("app.kubernetes.io/managed-by", "chaos-harness")
LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
DNS_LABEL = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
PORT_NAME = "http"


def label_value_problem(what: str, value: str) -> str | None:
    """Why `value` cannot be a Kubernetes label value, or None when it can."""
    if LABEL_VALUE.match(value):
        return None
    return (
        f"{what} {value!r} is not a legal Kubernetes label value (at most 63 characters: "
        "letters, digits, '-', '_', '.', beginning and ending with a letter or digit)"
    )


def namespace_for(run_id: str) -> str:
    """The run's namespace: 'chaos-' and the run id made a DNS label (hashed when too long)."""
    clean = re.sub(r"[^a-z0-9-]+", "-", run_id.lower()).strip("-") or "run"
    name = NAMESPACE_PREFIX + clean
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    keep = MAX_NAME - len(NAMESPACE_PREFIX) - len(digest) - 1
    return f"{NAMESPACE_PREFIX}{clean[:keep].rstrip('-')}-{digest}"


def run_labels(run_id: str, service: str | None = None) -> dict[str, str]:
    labels = {RUN_LABEL: run_id}
    if service is not None:
        labels[SERVICE_LABEL] = service
    return labels


def run_selector(run_id: str, service: str | None = None) -> str:
    """The label selector of the run's objects (of one service when named)."""
    return ",".join(f"{k}={v}" for k, v in run_labels(run_id, service).items())


def owner_annotations(owner: str) -> dict[str, str]:
    return {OWNER_LABEL: owner}


def image_of(workload: WorkloadSpec) -> str:
    return DEMO_IMAGE if workload.image == "demo" else workload.image


def namespace_object(name: str, run_id: str, owner: str) -> V1Namespace:
    return V1Namespace.model_validate(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {**run_labels(run_id), MANAGED_BY[0]: MANAGED_BY[1]},
                "annotations": owner_annotations(owner),
            },
        }
    )


def deployment_object(
    workload: WorkloadSpec,
    run_id: str,
    owner: str,
    *,
    pull_policy: str,
    liveness: bool = False,
) -> V1Deployment:
    labels = run_labels(run_id, workload.name)
    return V1Deployment.model_validate(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": workload.name,
                "labels": labels,
                "annotations": owner_annotations(owner),
            },
            "spec": {
                "replicas": workload.replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels, "annotations": owner_annotations(owner)},
                    "spec": _pod_spec(workload, pull_policy, liveness),
                },
            },
        }
    )


def _pod_spec(workload: WorkloadSpec, pull_policy: str, liveness: bool) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": workload.name,
        "image": image_of(workload),
        "imagePullPolicy": pull_policy,
        "ports": [{"name": PORT_NAME, "containerPort": workload.port, "protocol": "TCP"}],
        "env": [{"name": k, "value": v} for k, v in sorted(workload.env.items())],
    }
    if workload.command is not None:
        container["args"] = list(workload.command)
    limits = resource_limits(workload)
    if limits:
        container["resources"] = {"limits": limits}
    if workload.health is not None:
        container["readinessProbe"] = http_probe(workload.health, workload.port)
        if liveness:
            container["livenessProbe"] = http_probe(workload.health, workload.port)
    return {
        "containers": [container],
        "restartPolicy": "Always",
        # the pods need no API access and no service links; leaving them out keeps a pod
        # independent of the service-account token controller of a minimal cluster
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
    }


def resource_limits(workload: WorkloadSpec) -> dict[str, str]:
    limits = {}
    if workload.resources.cpus is not None:
        limits["cpu"] = f"{max(1, round(workload.resources.cpus * 1000))}m"
    if workload.resources.memory is not None:
        limits["memory"] = str(workload.resources.memory)
    return limits


def http_probe(health: HealthSpec, port: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": health.path, "port": port, "scheme": "HTTP"},
        "periodSeconds": max(1, round(health.interval)),
        "timeoutSeconds": max(1, round(health.timeout)),
        "failureThreshold": health.retries,
        "successThreshold": 1,
        "initialDelaySeconds": round(health.start_period),
    }


def service_object(workload: WorkloadSpec, run_id: str, owner: str) -> V1Service:
    labels = run_labels(run_id, workload.name)
    return V1Service.model_validate(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": workload.name,
                "labels": labels,
                "annotations": owner_annotations(owner),
            },
            "spec": {
                "type": "NodePort",
                "selector": labels,
                "ports": [
                    {
                        "name": PORT_NAME,
                        "port": workload.port,
                        "targetPort": workload.port,
                        "protocol": "TCP",
                    }
                ],
            },
        }
    )


# --- what a scenario's workload cannot mean on Kubernetes ----------------------------------


def workload_problems(workload: WorkloadSpec, liveness: bool = False) -> list[str]:
    """Workload fields with no Kubernetes meaning, each with the reason (for validate)."""
    problems = []
    if workload.restart != "always":
        problems.append(
            f"workload.restart: {workload.restart!r} has no meaning for a Deployment, whose "
            "pods always restart (restartPolicy Always is the only value it accepts); use "
            "'always'"
        )
    if not DNS_LABEL.match(workload.name):
        problems.append(
            f"workload.name: {workload.name!r} is not a legal name for a Kubernetes Service "
            "(a DNS label: lowercase letters, digits and '-', ending with a letter or digit)"
        )
    if workload.health is not None:
        problems += _health_problems(workload.health)
    elif liveness:
        problems.append("target.kubernetes.liveness needs workload.health (the check to run)")
    return problems


def _health_problems(health: HealthSpec) -> list[str]:
    problems = []
    whole: Mapping[str, tuple[float, float]] = {
        "interval": (health.interval, 1),
        "timeout": (health.timeout, 1),
        "start_period": (health.start_period, 0),
    }
    for name, (value, least) in whole.items():
        if value < least or not math.isclose(value, round(value)):
            problems.append(
                f"workload.health.{name}: {value:g} s; Kubernetes probes count whole seconds "
                f"({'at least 1' if least else '0 or more'}), so give e.g. "
                f"{max(least, round(value)):g}s"
            )
    return problems
