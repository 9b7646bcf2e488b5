"""The fault agent on Kubernetes: a DaemonSet of the run's own, reached through exec.

`KubeAgents`, for one run on one cluster (an ApiClient):
- `check_permissions()`: a SelfSubjectAccessReview for every action the agent path takes,
  before anything is deployed; each missing one named with the ClusterRole rule granting it;
- `deploy(image, pull_policy)`: the namespace `chaos-agent-<run id>` (labelled and annotated
  as the target's run namespaces, so the target's `remove_orphans` finds it too) holding the
  DaemonSet `chaos-agent`: privileged, the node's PID and network namespaces, every taint
  tolerated, the node's /sys/fs/cgroup at /sys/fs/cgroup, its undo log on an emptyDir (kept
  across a container restart, gone with the pod), 30 s to revert on SIGTERM;
- `wait_ready(timeout_s)`: one Ready agent per Ready node, or an error naming each node
  without one and why (image missing, crash, unschedulable);
- `channels()`: an `AgentChannel` per node, one exec through the API server per command;
- `remove()`: the namespace deleted gracefully (the agents revert on SIGTERM), waited for.

`remove_orphan_agents` is for `harness cleanup` (the agents of dead runs, gracefully);
`load_into_lab` imports an image archive into every node of the local lab (pull policy Never
there: nothing is pulled). The objects are built in .kube_objects, the exec is .kube_exec.
Figures and design notes: docs/notes-agent-kube.md.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kubernetes.client import (
    ApiClient,
    AppsV1Api,
    AuthorizationV1Api,
    CoreV1Api,
    V1Pod,
    V1SelfSubjectAccessReview,
)

from harness.agent.channel import AgentChannel
from harness.agent.fleet import AgentFleet
from harness.agent.kube_exec import ExecChannel
from harness.agent.kube_objects import (
    GRACE_S,
    NAME,
    ROLE_LABEL,
    agent_namespace,
    daemonset_object,
    namespace_object,
)
from harness.agent.protocol import SERVE_ARGV
from harness.errors import AgentError, TargetError
from harness.labs.kubernetes import images as lab_images
from harness.labs.kubernetes import lab as kube_lab
from harness.owners import OWNER_LABEL, RUN_LABEL, owner_alive, owner_label_value
from harness.targets.kubernetes.cluster import api_call, api_call_unless
from harness.targets.kubernetes.target import OWNER_HOST
from harness.waiting import wait_until

REMOVE_TIMEOUT_S = 120.0
FORCE_AFTER_S = GRACE_S + 15.0  # then pods still terminating are deleted with grace 0
POLL_S = 0.5
READY_HOLD_S = 2.0  # an agent counts as up once Ready this long (the kubelet relists every 1 s)
LAB_PULL_POLICY = "Never"  # every image is imported into the lab's nodes
# a pod in one of these states will not become Ready by waiting
HOPELESS = {
    "ErrImageNeverPull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}

T = TypeVar("T")


# --- permissions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Permission:
    """One action of the agent path, and the RBAC rule that allows it."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespaced: bool = True

    def attributes(self, namespace: str) -> dict[str, str]:
        found = {"verb": self.verb, "resource": self.resource, "group": self.group}
        if self.subresource:
            found["subresource"] = self.subresource
        if self.namespaced:
            found["namespace"] = namespace
        return found

    def describe(self, namespace: str) -> str:
        what = self.resource + (f"/{self.subresource}" if self.subresource else "")
        what += f".{self.group}" if self.group else ""
        where = f" in namespace {namespace}" if self.namespaced else " (cluster-wide)"
        resource = self.resource + (f"/{self.subresource}" if self.subresource else "")
        rule = f'{{apiGroups: ["{self.group}"], resources: ["{resource}"], verbs: ["{self.verb}"]}}'
        return f"{self.verb} {what}{where}: a ClusterRole rule {rule}"


# The namespace does not exist before the run, so only a ClusterRole (bound cluster-wide) can
# grant the namespaced ones. pods/exec: `get` is what a WebSocket upgrade is authorized as up
# to Kubernetes 1.34, `create` from 1.35 (and for SPDY): both are asked for.
PERMISSIONS = (
    Permission("create", "namespaces", namespaced=False),
    Permission("get", "namespaces", namespaced=False),
    Permission("list", "namespaces", namespaced=False),
    Permission("delete", "namespaces", namespaced=False),
    Permission("list", "nodes", namespaced=False),
    Permission("create", "daemonsets", "apps"),
    Permission("list", "pods"),
    Permission("get", "pods"),
    Permission("deletecollection", "pods"),
    Permission("create", "pods", subresource="exec"),
    Permission("get", "pods", subresource="exec"),
)


# --- the agents of one run ---------------------------------------------------------------------


class KubeAgents:
    """The fault agents of one run on one cluster: deploy, wait, reach, remove."""

    def __init__(self, client: ApiClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.namespace = agent_namespace(run_id)
        self._core = CoreV1Api(client)
        self._apps = AppsV1Api(client)
        self._owner = owner_label_value()
        self.placed: dict[str, str] = {}  # node -> agent pod, once Ready

    def check_permissions(self) -> list[str]:
        """Every permission the agent path needs and this client lacks (empty: all there)."""
        auth = AuthorizationV1Api(self.client)
        missing = []
        for permission in PERMISSIONS:
            review = V1SelfSubjectAccessReview.model_validate(
                {"spec": {"resourceAttributes": permission.attributes(self.namespace)}}
            )
            answer = _call(
                "asking the API server what this account may do",
                auth.create_self_subject_access_review,
                review,
            )
            if answer.status is None or not answer.status.allowed:
                missing.append(permission.describe(self.namespace))
        return missing

    def deploy(self, image: str, pull_policy: str, command: Sequence[str] = SERVE_ARGV) -> None:
        """The namespace and the DaemonSet; an AgentError when the namespace exists already."""
        created = _call_unless(
            {409},
            f"creating namespace {self.namespace}",
            self._core.create_namespace,
            namespace_object(self.namespace, self.run_id, self._owner),
        )
        if created is None:
            raise AgentError(
                f"namespace {self.namespace} already exists: a run id is used once "
                "('harness cleanup' removes the agents of dead runs)"
            )
        body = daemonset_object(self.run_id, self._owner, image, pull_policy, command)
        _call(
            f"creating the agent DaemonSet in {self.namespace}",
            self._apps.create_namespaced_daemon_set,
            self.namespace,
            body,
        )

    def wait_ready(self, timeout_s: float) -> None:
        """Until every Ready node has an agent Ready for READY_HOLD_S (`placed`: node -> pod);
        an AgentError naming each node without one (at once when its pod cannot start: no
        image, a crash).

        Without a readiness probe, Ready means the container started: an agent that dies at
        once can be seen Ready for a moment, so readiness must hold, seen from here (no clock
        of the cluster's is compared), with no restart in between."""
        found: dict[str, V1Pod] = {}
        nodes: list[str] = []
        since: dict[tuple[str, int], float] = {}  # (pod, restarts) -> first seen Ready

        def settled(node: str) -> bool:
            pod = found.get(node)
            if pod is None or not _is_ready(pod):
                return False
            first = since.setdefault((_name(pod), _restarts(pod)), time.monotonic())
            return time.monotonic() - first >= READY_HOLD_S

        def ready() -> bool:
            nodes[:] = self._ready_nodes()
            found.clear()
            found.update(self._pods_by_node())
            waiting = [n for n in nodes if not settled(n)]
            if any(n in found and _hopeless(found[n]) for n in waiting):
                raise AgentError(self._not_ready("cannot start", waiting, found))
            return bool(nodes) and not waiting

        def failure() -> str:
            waiting = [n for n in nodes if not settled(n)]
            what = f"are not all Ready after {timeout_s:g} s"
            return (
                self._not_ready(what, waiting, found) if nodes else "the cluster has no Ready node"
            )

        wait_until(ready, timeout_s, POLL_S, failure, error=AgentError)
        self.placed = {n: _name(found[n]) for n in nodes}

    def channels(self) -> dict[str, AgentChannel]:
        """A channel to each Ready agent, by node."""
        pods = {n: p for n, p in self._pods_by_node().items() if _is_ready(p)}
        if not pods:
            raise AgentError(f"no Ready fault agent in namespace {self.namespace}")
        return {
            n: ExecChannel(self.client, self.namespace, _name(p), n, NAME) for n, p in pods.items()
        }

    def describe(self) -> str:
        server = self.client.configuration.host
        return (
            f"a DaemonSet in namespace {self.namespace} ({len(self.placed)} node(s)), reached "
            f"by exec through the API server {server}"
        )

    def remove(self) -> None:
        """Delete the namespace and wait until it is gone (safe twice)."""
        remove_namespace(self._core, self.namespace, REMOVE_TIMEOUT_S)

    def _ready_nodes(self) -> list[str]:
        listed = _call("listing the nodes", self._core.list_node)
        return sorted(_name(n) for n in listed.items if _node_ready(n))

    def _pods_by_node(self) -> dict[str, V1Pod]:
        listed = _call(
            f"listing the agent pods in {self.namespace}",
            self._core.list_namespaced_pod,
            self.namespace,
            label_selector=f"{ROLE_LABEL[0]}={ROLE_LABEL[1]}",
        )
        pods: dict[str, V1Pod] = {}
        for pod in listed.items:
            node = _node_of(pod)
            live = pod.metadata is None or pod.metadata.deletion_timestamp is None
            if node and live and (node not in pods or _is_ready(pod)):
                pods[node] = pod
        return pods

    def _not_ready(self, what: str, nodes: Sequence[str], pods: dict[str, V1Pod]) -> str:
        each = [
            f"node {n}: {_pod_problem(pods[n]) if n in pods else 'no agent pod'}" for n in nodes
        ]
        return f"the fault agents in namespace {self.namespace} {what}: " + "; ".join(each)


# --- pods and nodes, read --------------------------------------------------------------------


def _name(obj: Any) -> str:
    return str(obj.metadata.name) if obj.metadata is not None else ""


def _node_ready(node: Any) -> bool:
    conditions = (node.status.conditions if node.status is not None else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _node_of(pod: V1Pod) -> str:
    """The pod's node, or the one the DaemonSet meant it for (its node affinity) if unplaced."""
    if pod.spec is None:
        return ""
    if pod.spec.node_name:
        return str(pod.spec.node_name)
    affinity = pod.spec.affinity.node_affinity if pod.spec.affinity else None
    required = affinity.required_during_scheduling_ignored_during_execution if affinity else None
    for term in required.node_selector_terms if required else []:
        for field in term.match_fields or []:
            if field.key == "metadata.name" and field.values:
                return str(field.values[0])
    return ""


def _is_ready(pod: V1Pod) -> bool:
    conditions = (pod.status.conditions if pod.status is not None else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _restarts(pod: V1Pod) -> int:
    status = _container_status(pod)
    return int(status.restart_count or 0) if status is not None else 0


def _container_status(pod: V1Pod) -> Any:
    statuses = (pod.status.container_statuses if pod.status is not None else None) or []
    return statuses[0] if statuses else None


def _hopeless(pod: V1Pod) -> bool:
    """Whether waiting cannot help: a reason in HOPELESS, or an agent that already ended (it
    never ends by itself; the kubelet's back-off would only say so after a second crash)."""
    status = _container_status(pod)
    if status is None or status.state is None:
        return False
    if status.state.terminated is not None or _restarts(pod) > 0:
        return True
    return status.state.waiting is not None and status.state.waiting.reason in HOPELESS


def _pod_problem(pod: V1Pod) -> str:
    """Why the pod is not Ready, in the kubelet's and the scheduler's words."""
    name = _name(pod)
    status = _container_status(pod)
    state = status.state if status is not None else None
    if state is not None and state.waiting is not None and state.waiting.reason:
        last = status.last_state.terminated if status.last_state is not None else None
        died = f" (last exit {last.exit_code}: {last.reason or 'Error'})" if last else ""
        return f"pod {name}: {state.waiting.reason}: {state.waiting.message or ''}{died}".strip()
    if state is not None and state.terminated is not None:
        return f"pod {name}: exited {state.terminated.exit_code} ({state.terminated.reason})"
    conditions = (pod.status.conditions if pod.status is not None else None) or []
    for condition in conditions:
        if condition.type == "PodScheduled" and condition.status != "True":
            return f"pod {name}: not scheduled: {condition.reason}: {condition.message or ''}"
    phase = pod.status.phase if pod.status is not None else None
    return f"pod {name}: {phase or 'Pending'}, not Ready"


# --- removal and cleanup ---------------------------------------------------------------------


def remove_namespace(core: CoreV1Api, namespace: str, timeout_s: float) -> bool:
    """Delete `namespace` and wait until it is gone; the agents get their grace to revert,
    then pods still terminating (a node that cannot confirm) are deleted with grace 0."""
    deleted = _call_unless(
        {404}, f"deleting namespace {namespace}", core.delete_namespace, namespace
    )
    started = time.monotonic()

    def gone() -> bool:
        found = _call_unless(
            {404}, f"reading namespace {namespace}", core.read_namespace, namespace
        )
        if found is not None and time.monotonic() - started > FORCE_AFTER_S:
            _call_unless(
                {404},
                f"deleting the pods left in {namespace}",
                core.delete_collection_namespaced_pod,
                namespace,
                grace_period_seconds=0,
            )
        return found is None

    wait_until(
        gone,
        timeout_s,
        POLL_S,
        f"namespace {namespace} still exists {timeout_s:g} s after its deletion (a finalizer, "
        "or a node that cannot confirm its pods' end); 'harness cleanup' tries again",
        error=AgentError,
    )
    return deleted is not None


def remove_orphan_agents(client: ApiClient, keep: Set[str]) -> list[str]:
    """Remove the agent namespaces of this machine's dead runs (not in `keep`), gracefully.

    The Kubernetes target's `remove_orphans` finds them too (run label, owner annotations) but
    deletes their pods with grace 0; run before it, this gives each agent its time to revert."""
    core = CoreV1Api(client)
    listed = _call(
        "listing the fault agents' namespaces",
        core.list_namespace,
        label_selector=f"{ROLE_LABEL[0]}={ROLE_LABEL[1]},{RUN_LABEL}",
    )
    host = socket.gethostname()
    removed = []
    for namespace in listed.items:
        run_id = _dead_run(namespace.metadata, keep, host)
        if run_id is not None and remove_namespace(core, _name(namespace), REMOVE_TIMEOUT_S):
            removed.append(f"fault agents' namespace {_name(namespace)} (run {run_id})")
    return removed


def _dead_run(metadata: Any, keep: Set[str], host: str) -> str | None:
    """The run id of a dead run of this machine (as the target judges its namespaces)."""
    if metadata is None:
        return None
    run_id = str((metadata.labels or {}).get(RUN_LABEL, ""))
    annotations = metadata.annotations or {}
    if not run_id or run_id in keep or annotations.get(OWNER_HOST) != host:
        return None
    return None if owner_alive(annotations.get(OWNER_LABEL)) else run_id


# --- the lab -----------------------------------------------------------------------------------


def load_into_lab(archive: Path) -> list[str]:
    """Import a `docker save` archive into every node of the local lab; the nodes' names."""
    try:
        state = kube_lab.load_state()
    except TargetError as exc:
        raise AgentError(f"cannot read the Kubernetes lab's state: {exc}") from exc
    if state is None or state.status != "up":
        raise AgentError("the local Kubernetes lab is not up: no node to load the agent into")
    for node in state.nodes:
        try:
            lab_images.import_archive(state, node, archive)
        except TargetError as exc:
            raise AgentError(f"loading {archive} into lab node {node.name} failed: {exc}") from exc
    return [node.name for node in state.nodes]


# --- API calls as AgentErrors -------------------------------------------------------------------


def _call(what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return api_call(AgentError, what, function, *args, **kwargs)


def _call_unless(
    statuses: Set[int], what: str, function: Callable[..., T], *args: Any, **kwargs: Any
) -> T | None:
    return api_call_unless(AgentError, statuses, what, function, *args, **kwargs)


# mypy checks the class against the fleet's protocol here, where a mismatch is reported
_IS_A_FLEET: type[AgentFleet] = KubeAgents
