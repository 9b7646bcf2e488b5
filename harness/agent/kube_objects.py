"""The Kubernetes objects of a run's fault agents: their namespace and DaemonSet (pure).

Why each field of the DaemonSet: docs/notes-agent-kube.md (the lead's docs/AGENT.md later).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from kubernetes.client import V1DaemonSet, V1Namespace

from harness.agent.protocol import STATE_DIR
from harness.agent.wire import NODE_ENV
from harness.owners import OWNER_LABEL, RUN_LABEL
from harness.targets.kubernetes.objects import MANAGED_BY, namespace_for
from harness.targets.kubernetes.target import OWNER_HOST

NAME = "chaos-agent"  # the DaemonSet and its container
ROLE_LABEL = ("app.kubernetes.io/component", "fault-agent")  # the agents' namespaces and pods
RUN_ENV = "CHAOS_AGENT_RUN_ID"
GRACE_S = 30  # terminationGracePeriodSeconds: time for the agent to revert on SIGTERM


def agent_namespace(run_id: str) -> str:
    """`chaos-agent-<run id>` as a DNS label (hashed when too long), as the target names its."""
    return namespace_for(f"agent-{run_id}")


def _metadata(name: str, run_id: str, owner: str) -> dict[str, Any]:
    return {
        "name": name,
        "labels": {RUN_LABEL: run_id, ROLE_LABEL[0]: ROLE_LABEL[1], MANAGED_BY[0]: MANAGED_BY[1]},
        "annotations": {OWNER_LABEL: owner, OWNER_HOST: socket.gethostname()},
    }


def namespace_object(name: str, run_id: str, owner: str) -> V1Namespace:
    return V1Namespace.model_validate(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _metadata(name, run_id, owner)}
    )


def daemonset_object(
    run_id: str, owner: str, image: str, pull_policy: str, command: Sequence[str]
) -> V1DaemonSet:
    selector = {ROLE_LABEL[0]: ROLE_LABEL[1], RUN_LABEL: run_id}
    metadata = _metadata(NAME, run_id, owner)
    return V1DaemonSet.model_validate(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": metadata,
            "spec": {
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {
                        "labels": metadata["labels"],
                        "annotations": metadata["annotations"],
                    },
                    "spec": _agent_pod_spec(run_id, image, pull_policy, command),
                },
            },
        }
    )


def _agent_pod_spec(
    run_id: str, image: str, pull_policy: str, command: Sequence[str]
) -> dict[str, Any]:
    container = {
        "name": NAME,
        "image": image,
        "imagePullPolicy": pull_policy,
        "command": list(command),
        "securityContext": {"privileged": True},
        "env": [
            {"name": NODE_ENV, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": RUN_ENV, "value": run_id},
        ],
        # requests and no limits: Burstable, so a memory fault's node pressure evicts the
        # workload (over its requests) before the agent that must revert it
        "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}},
        "volumeMounts": [
            {"name": "cgroup", "mountPath": "/sys/fs/cgroup"},
            {"name": "state", "mountPath": STATE_DIR},
        ],
    }
    return {
        "containers": [container],
        "hostPID": True,
        "hostNetwork": True,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "tolerations": [{"operator": "Exists"}],  # every taint, NoExecute included
        "terminationGracePeriodSeconds": GRACE_S,
        "automountServiceAccountToken": False,  # the agent never calls the API
        "enableServiceLinks": False,
        "volumes": [
            {"name": "cgroup", "hostPath": {"path": "/sys/fs/cgroup", "type": "Directory"}},
            {"name": "state", "emptyDir": {}},
        ],
    }
