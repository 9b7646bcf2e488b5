"""The Kubernetes target: the workload as a Deployment and a NodePort Service, driven through the
official `kubernetes` client against any kubeconfig, by default the local lab's.

A run gets a namespace of its own (`chaos-<run id>`, labelled with the run id), deleted at
teardown, which waits until it is gone. The objects are built in .objects; what they cannot
express (a restart policy other than always, sub-second probes) is refused at validate time.

`load.routing: service` (the default) sends the load through the Service's NodePort, where
kube-proxy spreads new connections over the ready endpoints; `per_instance` round-robins over
the slots' addresses, which needs this host to reach the pods (refused on a remote cluster).

Instances are the live pods, named after stable slots ("web-2"); url = the slot's address,
which this host sends on to the slot's current pod (.routes); pid = the workload's main
process as this host sees it (.host), so the host-side faults work on pods unchanged.

Engine actions: kill_instance deletes the pod (grace 0 for SIGKILL, else the pod's own), which
its ReplicaSet answers with a NEW pod; delete_pod the same with a chosen grace; stop, start,
restart, pause and unpause are refused. Faults that need the host are refused on a cluster
whose API server is not on this machine. The long form: docs/TARGETS.md, Kubernetes.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Mapping, Sequence, Set
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import urllib3
from kubernetes.client import V1DeleteOptions, V1Pod, VersionApi
from kubernetes.client.exceptions import ApiException

from harness import capabilities as caps
from harness.errors import DeployTimeout, TargetError
from harness.hostnet import remove_run_chains
from harness.http_probe import probe_once
from harness.labs.kubernetes.session import (
    containerd_sockets,
    ensure_lab,
    lab_directory,
    lab_info,
    lab_kubeconfig,
    lab_settings,
    take_lab_down,
)
from harness.specs import ScenarioBase, TargetSpec, WorkloadSpec
from harness.targets.base import (
    OWNER_LABEL,
    RUN_LABEL,
    SERVICE_LABEL,
    EngineEvent,
    Instance,
    Target,
    owner_alive,
    owner_label_value,
)
from harness.targets.kubernetes import NOT_OFFERED
from harness.targets.kubernetes.cluster import Cluster, remote_cluster_of, resolve
from harness.targets.kubernetes.containerd import ContainerdExits
from harness.targets.kubernetes.events import (
    DeploymentTracker,
    EndpointTracker,
    NodeTracker,
    PodTracker,
    SlotBook,
)
from harness.targets.kubernetes.host import ContainerPids
from harness.targets.kubernetes.objects import (
    deployment_object,
    label_value_problem,
    namespace_for,
    namespace_object,
    run_selector,
    service_object,
    workload_problems,
)
from harness.targets.kubernetes.recorded import RecordedEventTracker, recorded_view
from harness.targets.kubernetes.routes import RouteFollower, SlotRoutes
from harness.targets.kubernetes.spec import kube_spec
from harness.targets.kubernetes.views import (
    PodView,
    deployment_view,
    node_view,
    pod_view,
    slice_view,
)
from harness.targets.kubernetes.watch import KubeEventStream, Resource
from harness.waiting import wait_until

OWNER_HOST = "chaos-harness.owner-host"  # cleanup judges only the owners of this machine
NAMESPACE_GONE_TIMEOUT_S = 120.0
POLL_S = 0.25
# what the refusal stubs below say (the fault kinds that need them are refused up front)
REFUSED_FAULTS = {
    "container_stop": NOT_OFFERED[caps.API_STOP],
    "container_start": "Kubernetes cannot start a stopped pod",
    "container_restart": NOT_OFFERED[caps.API_RESTART],
    "container_pause": NOT_OFFERED[caps.API_PAUSE],
}


class KubernetesTarget:
    """The workload as a Deployment and a Service on a Kubernetes cluster."""

    kind = "kubernetes"
    api_stop_is_restarted = True  # a deleted pod is replaced by its ReplicaSet

    def __init__(self, run_id: str, spec: TargetSpec) -> None:
        problem = label_value_problem("the run id", run_id)
        if problem is not None:
            raise TargetError(problem)
        self.run_id = run_id
        self.spec = kube_spec(spec)
        self.namespace = self.spec.namespace or namespace_for(run_id)
        self.owns_namespace = self.spec.namespace is None
        self._owner = owner_label_value()
        self._slots = SlotBook()
        self._pids = ContainerPids()
        self._instants = InstantSources()
        self._workload: WorkloadSpec | None = None
        self._cluster: Cluster | None = None
        self._streams: list[KubeEventStream] = []
        self._exits: ContainerdExits | None = None
        self._service_url: str | None = None
        self._node_port: int | None = None
        self._service_node: str | None = None  # the node whose NodePort the load uses
        self._routes: SlotRoutes | None = None
        self._follower: RouteFollower | None = None
        self.lab_created = False
        self._torn_down = False
        # teardown removes objects only of a run that deployed here, or was attached to
        self._has_objects = False

    # --- the cluster ---------------------------------------------------------------------------

    @property
    def cluster(self) -> Cluster:
        """The connection, made on first use (a lab brought up for the run exists only then)."""
        if self._cluster is None:
            ref = resolve(self.spec.kubeconfig, self.spec.context, self.spec.lab is not None)
            if ref is None:
                raise TargetError("the Kubernetes lab of this run is not up")
            self._cluster = Cluster(ref)
        return self._cluster

    @property
    def host_access(self) -> bool:
        return self.cluster.ref.host_access

    @classmethod
    def attach(cls, run_id: str, spec: TargetSpec) -> KubernetesTarget:
        """The target of an existing run (to revert its faults and remove its namespace)."""
        target = cls(run_id, spec)
        target._has_objects = True
        return target

    # --- validation ----------------------------------------------------------------------------

    @classmethod
    def scenario_problems(cls, scenario: ScenarioBase) -> list[str]:
        spec = kube_spec(scenario.target)
        problems = workload_problems(scenario.workload, spec.kubernetes.liveness)
        if spec.lab is not None and spec.kubeconfig is not None:
            problems.append(
                "target.lab brings up the local lab, target.kubeconfig names another cluster: "
                "give one of them"
            )
        remote = remote_cluster_of(spec)
        if remote is not None and scenario.load.routing == "per_instance":
            problems.append(
                f"load.routing per_instance sends the load to each pod's address, and the "
                f"cluster's API server {remote} is not on this machine (its pods are not "
                "reached from here); use routing: service (the Service's NodePort)"
            )
        return problems

    @classmethod
    def preflight(cls, scenario: ScenarioBase) -> None:
        """Nothing here: the target checks its cluster itself when it connects."""
        del scenario

    @classmethod
    def data_root_of(cls, spec: TargetSpec) -> Path | None:
        """The local lab keeps every node's container storage (containerd's root) under its
        directory, on this host; another cluster's storage is not here."""
        spec = kube_spec(spec)
        if spec.kubeconfig is not None and remote_cluster_of(spec) is not None:
            return None
        info = lab_info()
        if info is not None:
            return Path(info.lab_dir)
        return lab_directory() if spec.lab is not None else None

    # --- description ---------------------------------------------------------------------------

    def engine_info(self) -> Mapping[str, str]:
        info = {"engine": "kubernetes", "namespace": self.namespace}
        if self._cluster is None and self.spec.lab is not None and lab_kubeconfig() is None:
            info["cluster"] = "the local lab (brought up at deploy)"
            info["lab_nodes"] = str(self.spec.lab.nodes)
            return info
        cluster = self.cluster
        info.update(
            engine_version=cluster.version,
            cluster=cluster.ref.describe(),
            kubeconfig=str(cluster.ref.kubeconfig),
            context=cluster.ref.context or "",
            host_access=str(cluster.ref.host_access).lower(),
            service_type="NodePort",
            image_pull_policy=self._pull_policy(),
        )
        nodes = [node_view(n) for n in self._list_nodes()]
        info["nodes"] = str(len(nodes))
        info["node_names"] = ",".join(sorted(n.name for n in nodes))
        if nodes:
            info["container_runtime"] = nodes[0].runtime_version
            info["kubelet_version"] = nodes[0].kubelet_version
        info.update(self._lab_settings())
        return info

    def _lab_settings(self) -> dict[str, str]:
        """The lab's node-failure timing in force, when the cluster is the local lab."""
        return lab_settings() if self.cluster.ref.lab else {}

    def data_root(self) -> Path | None:
        if self._cluster is not None and not self._cluster.ref.lab:
            return None
        return self.data_root_of(self.spec)

    def load_balancing(self) -> str:
        where = f" at {self._service_url}" if self._service_url else ""
        return (
            f"through the Kubernetes Service (NodePort{where}): the node's kube-proxy "
            "(iptables mode) sends each new connection to one of the ready endpoints at "
            "random; a pod that is not ready, or is being deleted, leaves the EndpointSlice "
            "and then the rules, so its share of new connections moves to the others"
        )

    def load_path(self, routing: str) -> str:
        count = self._workload.replicas if self._workload is not None else 0
        if routing == "per_instance":
            return (
                f"client-side round robin over the {count} pod slots' addresses (each slot's "
                "first pod IP, which this host's iptables forward to the slot's current pod): "
                "the Service, kube-proxy and the endpoints are bypassed, so a dead pod's share "
                "fails until its slot has a running pod again"
            )
        address = urlsplit(self.service_url()).netloc
        return (
            f"NodePort {address} (node {self._service_node}) through kube-proxy (iptables "
            f"mode) to {count} pods: each new connection goes to one ready endpoint at random "
            "and stays there; a pod leaves the spread when it is not ready or is being deleted "
            "(its EndpointSlice), so what Kubernetes does to route around a failure is part "
            "of the recovery"
        )

    def service_url(self) -> str:
        if self._service_url is None:
            self._service_url = self._find_service_url()
        return self._service_url

    def _find_service_url(self) -> str:
        workload = self._require_workload()
        service = self.cluster.call(
            f"reading Service {workload.name}",
            self.cluster.core.read_namespaced_service,
            workload.name,
            self.namespace,
        )
        ports = service.spec.ports if service.spec is not None else None
        node_port = next((p.node_port for p in ports or [] if p.node_port), None)
        if node_port is None:
            raise TargetError(f"Service {workload.name} has no NodePort")
        self._node_port = node_port
        ready = [n for n in map(node_view, self._list_nodes()) if n.ready == "True"]
        addresses = sorted((n.name, n.internal_ip) for n in ready if n.internal_ip)
        if not addresses:
            raise TargetError("no Ready node with an InternalIP to reach the Service's NodePort")
        self._service_node = addresses[0][0]
        return f"http://{addresses[0][1]}:{node_port}"

    # --- deploy --------------------------------------------------------------------------------

    def workload_name(self) -> str:
        """The deployed workload's name (its Deployment's and Service's)."""
        return self._require_workload().name

    def pull_policy(self) -> str:
        """Never on the lab (its images are loaded into the nodes), else IfNotPresent."""
        return self._pull_policy()

    def _pull_policy(self) -> str:
        lab = self._cluster is not None and self._cluster.ref.lab
        return (
            "Never"
            if lab or (self._cluster is None and self.spec.kubeconfig is None)
            else ("IfNotPresent")
        )

    def _require_workload(self) -> WorkloadSpec:
        if self._workload is None:
            raise TargetError("nothing is deployed yet")
        return self._workload

    def deploy(self, workload: WorkloadSpec) -> None:
        self._workload = workload
        self._has_objects = True
        self._routes = SlotRoutes(self.run_id, self._owner, workload.port)
        self._ensure_lab(workload)
        cluster = self.cluster
        for stream in self._streams:
            if not stream.watchers:  # made before the lab was up
                self._follow(stream)
        if self.owns_namespace:
            self._create_namespace()
        deployment = deployment_object(
            workload,
            self.run_id,
            self._owner,
            pull_policy=self._pull_policy(),
            liveness=self.spec.kubernetes.liveness,
        )
        _annotate_host(deployment.metadata)
        cluster.call(
            f"creating Deployment {workload.name}",
            cluster.apps.create_namespaced_deployment,
            self.namespace,
            deployment,
        )
        service = service_object(workload, self.run_id, self._owner)
        _annotate_host(service.metadata)
        cluster.call(
            f"creating Service {workload.name}",
            cluster.core.create_namespaced_service,
            self.namespace,
            service,
        )

    def _ensure_lab(self, workload: WorkloadSpec) -> None:
        """Bring the local lab up for the run when the scenario asks for one, and load the
        workload's image into its nodes."""
        if self.spec.kubeconfig is not None and not self.cluster.ref.lab:
            return
        self.lab_created = ensure_lab(self.spec.lab, workload)

    def _create_namespace(self) -> None:
        body = namespace_object(self.namespace, self.run_id, self._owner)
        _annotate_host(body.metadata)
        created = self.cluster.call_unless(
            {409},
            f"creating namespace {self.namespace}",
            self.cluster.core.create_namespace,
            body,
        )
        if created is None:
            raise TargetError(
                f"namespace {self.namespace} already exists; a run id is used once "
                "(harness cleanup removes what dead runs left)"
            )

    def wait_healthy(self, timeout_s: float) -> list[Instance]:
        workload = self._require_workload()
        live: list[PodView] = []

        def serving() -> bool:
            live[:] = [p for p in self._pod_views() if p.live]
            ready = [p for p in live if p.ready]
            return len(ready) >= workload.replicas and self._answers(ready)

        def failure() -> str:
            detail = "; ".join(_pod_problem(p) for p in live) or "no pod was created"
            return (
                f"{sum(bool(p.ready) for p in live)} of {workload.replicas} pods ready after "
                f"{timeout_s:g} s in namespace {self.namespace} ({detail})"
            )

        wait_until(serving, timeout_s, POLL_S, failure, DeployTimeout)
        return self.instances()

    def _answers(self, ready: Sequence[PodView]) -> bool:
        """The Service answers through its NodePort, and (on this host) every pod answers."""
        workload = self._require_workload()
        path = workload.health.path if workload.health is not None else "/"
        try:
            url = self.service_url()
        except TargetError:
            return False
        if not probe_once(url + path, 1.0)[0]:
            return False
        if not self.host_access:
            return True
        return all(probe_once(f"http://{p.ip}:{workload.port}{path}", 1.0)[0] for p in ready)

    # --- instances and events ------------------------------------------------------------------

    def _pod_views(self) -> list[PodView]:
        pods = self.cluster.call(
            "listing the run's pods",
            self.cluster.core.list_namespaced_pod,
            self.namespace,
            label_selector=run_selector(self.run_id),
        )
        views = [pod_view(p) for p in pods.items]
        self._slots.observe(views)
        return views

    def instances(self) -> list[Instance]:
        port = self._workload.port if self._workload is not None else 8080
        live = [p for p in self._pod_views() if p.live]
        self._sync_routes([(self._slots.name_of(p), p) for p in live])
        return sorted((self._instance(p, port) for p in live), key=lambda i: i.name)

    def _sync_routes(self, live: Sequence[tuple[str, PodView]], wait: bool = True) -> None:
        """Point each slot's address at its current pod (one that runs, with an address);
        `wait` False: on the route thread (from a watch, which must not block)."""
        if self._routes is None or not self.host_access:
            return
        current = {
            name: pod.ip
            for name, pod in live
            if pod.ip and pod.container is not None and pod.container.running_since_ns
        }
        if wait:
            self._routes.sync(current)
            return
        if self._follower is None:
            self._follower = RouteFollower(self._routes)
        self._follower.submit(current)

    def _instance(self, pod: PodView, port: int) -> Instance:
        container = pod.container
        running = container is not None and container.running_since_ns is not None
        pid = 0
        if running and container is not None and self.host_access:
            pid = self._pids.pid_of(container.container_id)
        name = self._slots.name_of(pod)
        address = pod.ip
        if self._routes is not None and self.host_access and pod.ip:
            address = self._routes.address(name, pod.ip)
        return Instance(
            name=name,
            service=pod.labels.get(SERVICE_LABEL, ""),
            container_id=container.container_id if container is not None else "",
            container_name=pod.name,
            pid=pid,
            url=f"http://{address or '0.0.0.0'}:{port}",
            labels=dict(pod.labels),
            node=pod.node or None,
            state=_state_word(pod),
            address=pod.ip,
            port=port,
        )

    def events(self, since_ns: int) -> KubeEventStream:
        """The cluster's view of the run; a lab brought up for the run is followed from the
        moment deploy() has it (its events before that are the lab's own start)."""
        stream = KubeEventStream(since_ns)
        self._streams.append(stream)
        if self._cluster is not None or self._cluster_known():
            self._follow(stream)
        return stream

    def _cluster_known(self) -> bool:
        """Whether the cluster can be connected to now (not a lab still to be brought up)."""
        if self.spec.kubeconfig is not None or self.spec.lab is None:
            return True
        return lab_kubeconfig() is not None

    def _follow(self, stream: KubeEventStream) -> None:
        cluster = self.cluster
        selector = run_selector(self.run_id)
        namespace = self.namespace

        def namespaced(function: Any) -> Any:
            return lambda **kw: function(namespace, label_selector=selector, **kw)

        if self.host_access:
            self._instants.fallback(self._pids.started_ns, self._containerd_exits())
        pods = _RoutingPodTracker(
            self._slots,
            self._instants.started_at,
            lambda live: self._sync_routes(live, wait=False),
            self._instants.exited_at,
            lambda: self._instants.via,
        )
        stream.follow(
            Resource("pods", namespaced(cluster.core.list_namespaced_pod), _parse(V1Pod, pod_view)),
            pods,
        )
        stream.follow(
            Resource(
                "endpointslices",
                namespaced(cluster.discovery.list_namespaced_endpoint_slice),
                _parse_slice,
            ),
            EndpointTracker(self._slots),
        )
        stream.follow(
            Resource(
                "deployments",
                namespaced(cluster.apps.list_namespaced_deployment),
                _parse_deployment,
            ),
            DeploymentTracker(),
        )
        stream.follow(Resource("nodes", cluster.core.list_node, _parse_node), NodeTracker())
        self._follow_recorded_events(stream, cluster)

    def _follow_recorded_events(self, stream: KubeEventStream, cluster: Cluster) -> None:
        """Kubernetes' own Events: the run's namespace; the nodes' too on the local lab (a
        user's cluster may not let the run list events outside its namespace)."""
        namespace = self.namespace
        stream.follow(
            Resource(
                "events",
                lambda **kw: cluster.core.list_namespaced_event(namespace, **kw),
                recorded_view,
            ),
            RecordedEventTracker(self._slots),
        )
        if cluster.ref.lab:
            stream.follow(
                Resource(
                    "node-events",
                    lambda **kw: cluster.core.list_event_for_all_namespaces(
                        field_selector="involvedObject.kind=Node", **kw
                    ),
                    recorded_view,
                ),
                RecordedEventTracker(self._slots),
            )

    def take_instants(self, started_at: Instant, exited_at: Instant, via: str) -> None:
        """Container starts and exits read elsewhere (`via`: the fault agents on the nodes),
        for the pod trackers subscribed already and those to come."""
        self._instants.use(started_at, exited_at, via)

    def _containerd_exits(self) -> Callable[[str], int | None] | None:
        """On the local lab, container exits as each node's containerd stamps them (not with
        CHAOS_HARNESS_HOST_ACCESS=none: the lab then stands in for a cluster elsewhere)."""
        if not (self.cluster.ref.lab and self.host_access):
            return None
        if self._exits is None:
            sockets = containerd_sockets()
            if not sockets:
                return None
            self._exits = ContainerdExits(sockets).start()
        return self._exits.exited_ns

    def engine_identity(self) -> str | None:
        """A cluster has no one process whose restart the run could notice."""
        return None

    def engine_answers(self) -> bool:
        """The API server's sign of life (its /version), for the run's engine watch."""
        try:
            VersionApi(self.cluster.client).get_code(_request_timeout=(2, 5))
        except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError, TargetError):
            return False  # silence: the run's engine watch counts it
        return True

    def _list_nodes(self) -> list[Any]:
        nodes = self.cluster.call_unless(
            {403}, "listing the nodes", self.cluster.core.list_node
        )  # a namespace-scoped user may not see nodes
        return list(nodes.items) if nodes is not None else []

    # --- engine actions ------------------------------------------------------------------------

    def delete_pod(self, instance: Instance, grace_period_s: int | None) -> None:
        """Delete the instance's pod (grace None: the pod's own terminationGracePeriodSeconds)."""
        options = V1DeleteOptions(grace_period_seconds=grace_period_s)
        deleted = self.cluster.call_unless(
            {404},
            f"deleting pod {instance.container_name} ({instance.name})",
            self.cluster.core.delete_namespaced_pod,
            instance.container_name,
            self.namespace,
            body=options,
        )
        if deleted is None:
            raise TargetError(f"pod {instance.container_name} ({instance.name}) no longer exists")

    def kill_instance(self, instance: Instance, signal: str) -> None:
        self.delete_pod(instance, 0 if signal.upper().removeprefix("SIG") == "KILL" else None)

    def stop_instance(self, instance: Instance, timeout_s: float) -> None:
        raise TargetError(f"cannot stop {instance.name}: {REFUSED_FAULTS['container_stop']}")

    def start_instance(self, instance: Instance) -> None:
        raise TargetError(f"cannot start {instance.name}: {REFUSED_FAULTS['container_start']}")

    def restart_instance(self, instance: Instance, timeout_s: float) -> None:
        raise TargetError(f"cannot restart {instance.name}: {REFUSED_FAULTS['container_restart']}")

    def pause_instance(self, instance: Instance) -> None:
        raise TargetError(f"cannot pause {instance.name}: {REFUSED_FAULTS['container_pause']}")

    def unpause_instance(self, instance: Instance) -> None:
        raise TargetError(f"cannot unpause {instance.name}: {REFUSED_FAULTS['container_pause']}")

    # --- teardown ------------------------------------------------------------------------------

    def teardown(self) -> None:
        if self._torn_down:
            return
        try:
            self._stop_watching()
            if self._routes is not None:
                self._routes.remove()
            if self._has_objects:
                remove_run_chains(self.run_id)  # routes a dead process of this run made
                remove_run(self.cluster, self.namespace, self.run_id, self.owns_namespace)
        finally:
            self._torn_down = True
            self.release()
            if self.lab_created:
                take_lab_down()

    def _stop_watching(self) -> None:
        """The watches first (they move routes), then the route thread."""
        for stream in self._streams:
            stream.close()
        self._streams.clear()
        if self._follower is not None:
            self._follower.close()
            self._follower = None
        if self._exits is not None:
            self._exits.close()
            self._exits = None

    def release(self) -> None:
        self._stop_watching()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    @classmethod
    def remove_orphans(cls, spec: TargetSpec, keep: Set[str]) -> list[str]:
        """Delete the namespaces (and, in a namespace the harness did not make, the labelled
        Deployments and Services) of runs of this machine whose harness is gone."""
        spec = kube_spec(spec)
        try:
            ref = resolve(spec.kubeconfig, spec.context, lab_wanted=True)
        except TargetError:
            return []
        if ref is None:
            return []
        cluster = Cluster(ref)
        try:
            return _remove_orphans(cluster, keep)
        finally:
            cluster.close()


# --- helpers -----------------------------------------------------------------------------------


Instant = Callable[[str], "int | None"]


class InstantSources:
    """Where the pod trackers read container starts and exits: this host's (its /proc, the lab's
    containerds) or, set after the trackers subscribed, the fault agents' (which the runner
    starts after the event recorder). None: the API's stamps."""

    def __init__(self) -> None:
        self._started: Instant | None = None
        self._exited: Instant | None = None
        self.via: str | None = None  # who read them, when not this host

    def fallback(self, started_at: Instant, exited_at: Instant | None) -> None:
        """This host's, unless the agents' are set."""
        if self.via is None:
            self._started, self._exited = started_at, exited_at

    def use(self, started_at: Instant, exited_at: Instant, via: str) -> None:
        self._started, self._exited, self.via = started_at, exited_at, via

    def started_at(self, container_id: str) -> int | None:
        started = self._started
        return started(container_id) if started is not None else None

    def exited_at(self, container_id: str) -> int | None:
        exited = self._exited
        return exited(container_id) if exited is not None else None


class _RoutingPodTracker(PodTracker):
    """The pod tracker of the event stream, which also moves slot routes as pods change."""

    def __init__(
        self,
        slots: SlotBook,
        started_at: Instant | None,
        on_change: Callable[[Sequence[tuple[str, PodView]]], None],
        exited_at: Instant | None = None,
        host_via: Callable[[], str | None] | None = None,
    ) -> None:
        super().__init__(slots, started_at, exited_at, host_via)
        self._on_change = on_change

    def update(self, pod: PodView, received_ns: int) -> list[EngineEvent]:
        events = super().update(pod, received_ns)
        self._moved()
        return events

    def resync(self, pods: Sequence[PodView], received_ns: int) -> list[EngineEvent]:
        events = super().resync(pods, received_ns)
        self._moved()
        return events

    def _moved(self) -> None:
        with contextlib.suppress(TargetError):  # a route that fails is retried on the next change
            self._on_change(self.live_pods())


def _annotate_host(metadata: Any) -> None:
    if metadata is not None:
        metadata.annotations = {**(metadata.annotations or {}), OWNER_HOST: socket.gethostname()}


def _state_word(pod: PodView) -> str:
    """The pod's state in the engine's words (running, created, restarting, exited)."""
    container = pod.container
    if container is None:
        return "created"
    if container.running_since_ns is not None:
        return "running"
    if container.terminated is not None:
        return "exited"
    return "restarting" if container.restart_count > 0 else "created"


def _pod_problem(pod: PodView) -> str:
    container = pod.container
    if pod.ready:
        return f"{pod.name}: ready"
    if container is not None and container.waiting_reason:
        return f"{pod.name}: {container.waiting_reason}"
    if not pod.node:
        return f"{pod.name}: not scheduled ({pod.reason or 'pending'})"
    return f"{pod.name}: {pod.phase or 'pending'}, not ready"


def _parse(model: Any, view: Any) -> Any:
    def parse(raw: Mapping[str, Any]) -> Any:
        parsed = model.from_dict(dict(raw))
        return view(parsed) if parsed is not None else None

    return parse


def _parse_slice(raw: Mapping[str, Any]) -> Any:
    from kubernetes.client import V1EndpointSlice

    return _parse(V1EndpointSlice, slice_view)(raw)


def _parse_deployment(raw: Mapping[str, Any]) -> Any:
    from kubernetes.client import V1Deployment

    return _parse(V1Deployment, deployment_view)(raw)


def _parse_node(raw: Mapping[str, Any]) -> Any:
    from kubernetes.client import V1Node

    return _parse(V1Node, node_view)(raw)


def remove_run(cluster: Cluster, namespace: str, run_id: str, owns_namespace: bool) -> list[str]:
    """Delete the run's objects (its namespace, when it made one) and wait until they are gone."""
    selector = run_selector(run_id)
    removed = []
    # the pods with grace 0, right after their Deployment: the demo's httpd (PID 1) ignores
    # SIGTERM, so a graceful deletion would hold the namespace for the whole grace period
    for what, call, grace in (
        ("Deployments", cluster.apps.delete_collection_namespaced_deployment, None),
        ("Services", cluster.core.delete_collection_namespaced_service, None),
        ("pods", cluster.core.delete_collection_namespaced_pod, 0),
    ):
        done = cluster.call_unless(
            {404},
            f"deleting the run's {what} in {namespace}",
            call,
            namespace,
            label_selector=selector,
            grace_period_seconds=grace,
        )
        if done is not None:
            removed.append(f"{what} of run {run_id} in {namespace}")
    if owns_namespace:
        gone = cluster.call_unless(
            {404}, f"deleting namespace {namespace}", cluster.core.delete_namespace, namespace
        )
        if gone is not None:
            removed.append(f"namespace {namespace}")
        _wait_namespace_gone(cluster, namespace)
    return removed


def _wait_namespace_gone(cluster: Cluster, namespace: str) -> None:
    def gone() -> bool:
        found = cluster.call_unless(
            {404}, f"reading namespace {namespace}", cluster.core.read_namespace, namespace
        )
        if found is None:
            return True
        # pods the namespace controller deleted with their grace period: end them now
        cluster.call_unless(
            {404},
            f"deleting the pods left in {namespace}",
            cluster.core.delete_collection_namespaced_pod,
            namespace,
            grace_period_seconds=0,
        )
        return False

    wait_until(
        gone,
        NAMESPACE_GONE_TIMEOUT_S,
        0.5,
        f"namespace {namespace} still exists {NAMESPACE_GONE_TIMEOUT_S:g} s after its deletion "
        "(a finalizer, or a node that cannot confirm its pods' end); 'harness cleanup' tries "
        "again",
    )


def _orphaned(metadata: Any, keep: Set[str], host: str) -> str | None:
    """The run id of an object of a dead run of this host (None: keep it)."""
    if metadata is None or not metadata.name:
        return None
    run_id = str((metadata.labels or {}).get(RUN_LABEL, ""))
    annotations = metadata.annotations or {}
    if not run_id or run_id in keep or annotations.get(OWNER_HOST, host) != host:
        return None  # a live run, or another machine's: its owner cannot be judged here
    return None if owner_alive(annotations.get(OWNER_LABEL)) else run_id


def _remove_orphans(cluster: Cluster, keep: Set[str]) -> list[str]:
    host = socket.gethostname()
    removed = []
    namespaces = cluster.call(
        "listing run namespaces", cluster.core.list_namespace, label_selector=RUN_LABEL
    )
    ours = set()
    for namespace in namespaces.items:
        ours.add(namespace.metadata.name if namespace.metadata else None)
        run_id = _orphaned(namespace.metadata, keep, host)
        if run_id is not None and namespace.metadata is not None:
            for line in [
                *remove_run(cluster, str(namespace.metadata.name), run_id, True),
                *remove_run_chains(run_id),
            ]:
                removed.append(f"{line} (run {run_id})")
    # runs in a namespace the scenario named (not made by the harness): their Deployments
    deployments = cluster.call_unless(
        {403},
        "listing run Deployments",
        cluster.apps.list_deployment_for_all_namespaces,
        label_selector=RUN_LABEL,
    )
    for deployment in deployments.items if deployments is not None else []:
        meta = deployment.metadata
        run_id = _orphaned(meta, keep, host)
        if run_id is not None and meta is not None and meta.namespace not in ours:
            for line in remove_run(cluster, str(meta.namespace), run_id, False):
                removed.append(f"{line} (run {run_id})")
    return removed


# mypy checks the class against the protocol here, where a missing or mistyped member is
# reported against this module (make_target only sees the protocol)
_IS_A_TARGET: type[Target] = KubernetesTarget
