"""The Docker Swarm target: the workload as one replicated Swarm service.

Swarm mode: an engine not in a swarm is initialised (listening on 127.0.0.1 only) by deploy()
and left again by teardown() (with the docker_gwbridge Swarm made); one already in a swarm is
used and left as it was. The service runs on a private overlay network of the run, with
Swarm's restart policy, update config, the workload's healthcheck and limits; everything
carries the run label.

Instances are slots ("web-2"): a failed task is replaced by a NEW task (new container, PID
and host port) in the same slot. Container labels are not templated, so the slot is read from
Swarm's com.docker.swarm.task.name label.

Routing: without IPVS the ingress mesh does not answer, so ports are published in host mode.
Each slot gets a stable loopback address (127.X.Y.<slot>) that one iptables DNAT rule sends to
its current running task (SlotRouter, following the task watcher); its conntrack entries are
dropped when it moves. 127.X.Y.254 spreads over the running slots (harness.targets.service_vip).
Without iptables or root the tasks' published ports are used directly, and a replaced task is
not reached again. On the multi-node lab (harness.labs.swarm.lab) a task's container is acted
on through its node's engine, and a slot is DNAT-ed to <node address>:<published port>.
Swarm has no "manually stopped" state: an engine API kill is replaced like a crash.
Behaviours and measured figures: see docs/TARGETS.md, Swarm.
"""

from __future__ import annotations

import contextlib
import glob
import platform
import re
from collections.abc import Mapping, Sequence, Set
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.errors
from docker.models.containers import Container
from docker.types import EndpointSpec, Resources, RestartPolicy, ServiceMode, UpdateConfig

from harness.errors import DeployTimeout, TargetError
from harness.hostnet import remove_run_chains
from harness.http_probe import probe_once
from harness.images import DEMO_IMAGE, ensure_image
from harness.labs.swarm.lab import PREFIX as LAB_PREFIX
from harness.labs.swarm.lab import Lab, LabInfo
from harness.labs.swarm.lab import connect as lab_connect
from harness.specs import ScenarioBase, TargetSpec, WorkloadSpec
from harness.targets.base import (
    INSTANCE_LABEL,
    OWNER_LABEL,
    RUN_LABEL,
    SERVICE_LABEL,
    Instance,
    Target,
    owner_alive,
    owner_label_value,
)
from harness.targets.docker.engine import (
    ActsThroughEngine,
    ContainerActions,
    connect,
    data_root_at,
    describe_engine,
    engine_answers,
    engine_data_root,
    engine_identity,
    healthcheck,
    orphaned_run_ids,
    remove_labelled,
    remove_orphaned_runs,
    run_labels,
)
from harness.targets.docker.preflight import engine_preflight
from harness.targets.swarm.events import (
    SwarmEventStream,
    TaskView,
    TaskWatcher,
    service_name,
    task_view,
)
from harness.targets.swarm.preflight import swarm_port_check
from harness.targets.swarm.routes import SlotRouter
from harness.targets.swarm.spec import swarm_spec
from harness.waiting import wait_until

NS_PER_S = 1_000_000_000
GWBRIDGE = "docker_gwbridge"
# On a swarm the harness created: whether docker_gwbridge was created with it (to remove).
GWBRIDGE_LABEL = "chaos-harness.remove-gwbridge"
MANAGER_TIMEOUT_S = 30.0  # the lab manager: reads fail with DeadlineExceeded without a quorum
NODE_TIMEOUT_S = 5.0  # a lab node's own engine (container inspect, events, removal)
LAB_NETWORK_WAIT_S = 30.0  # until the workers have dropped their copy of the run's network
CONDITIONS = {"no": "none", "on-failure": "on-failure", "always": "any", "unless-stopped": "any"}


def routing_mesh() -> tuple[bool, str]:
    """Whether Swarm's ingress routing mesh can work here (it needs IPVS), and why."""
    if Path("/proc/net/ip_vs").exists():
        return True, "available (IPVS in the kernel)"
    modules = glob.glob(f"/lib/modules/{platform.release()}/**/ip_vs.ko*", recursive=True)
    if modules:
        return True, "available (ip_vs is a loadable module)"
    return False, "unavailable (no IPVS in the kernel)"


class SwarmTarget(ActsThroughEngine):
    """The workload as a replicated Swarm service on the local (or given) engine; the Docker
    engine's own work (labels, actions on a container, the engine's description) is done by
    harness.targets.docker.engine, on the engine of the instance's node."""

    api_stop_is_restarted = True  # Swarm has no "manually stopped": it schedules a new task

    kind = "swarm"

    def __init__(self, run_id: str, spec: TargetSpec, client: docker.DockerClient | None = None):
        self.settings = swarm_spec(spec)
        self.run_id = run_id
        self.spec = self.settings
        self.client = client or connect(self.settings.engine)
        self._owner = owner_label_value()
        self.actions = ContainerActions(self._container)
        self.host_client = self.client  # builds the images; the swarm's manager on a single node
        self.initialised_swarm = False
        self._gwbridge_existed = True
        self._router: SlotRouter | None = None
        self._watcher = TaskWatcher(self.client, run_id, self.settings.swarm.task_poll)
        self._watcher.subscribe(self._on_tasks)
        self._torn_down = False
        # the multi-node lab (target.lab): known once deploy() has ensured it
        self.lab: LabInfo | None = None
        self.lab_created = False
        self._lab_heartbeat_before: float | None = None  # a reused lab's, restored at teardown
        self._node_clients: dict[str, docker.DockerClient] = {}
        self._streams: list[SwarmEventStream] = []
        self._attached: set[int] = set()
        self._last_tasks: list[TaskView] | None = None
        self._inspected: dict[str, dict[str, Any]] = {}

    @classmethod
    def scenario_problems(cls, scenario: ScenarioBase) -> list[str]:
        """A node fault that names a node the lab will not have."""
        lab = swarm_spec(scenario.target).lab
        return [] if lab is None else _lab_node_problems(scenario, lab.nodes)

    @classmethod
    def data_root_of(cls, spec: TargetSpec) -> Path | None:
        """The host's engine's storage; a lab's nodes keep theirs in their own namespaces."""
        return None if swarm_spec(spec).lab is not None else data_root_at(swarm_spec(spec).engine)

    @classmethod
    def attach(cls, run_id: str, spec: TargetSpec) -> SwarmTarget:
        return cls(run_id, spec)

    @classmethod
    def preflight(cls, scenario: ScenarioBase) -> None:
        """The host's engine holds the image; on one engine, `swarm init`'s port is free."""
        spec = swarm_spec(scenario.target)
        if spec.lab is not None:
            engine_preflight(scenario, None)
            return
        engine_preflight(scenario, spec.engine, lambda client: swarm_port_check(spec, client))

    @classmethod
    def remove_orphans(cls, spec: TargetSpec, keep: Set[str]) -> list[str]:
        """Services of dead runs first (their tasks would come back), then what the Docker
        target removes, then a swarm a dead run created. With `spec.lab`: the lab that is up,
        through its manager (services) and every node's own engine (containers, networks)."""
        settings = swarm_spec(spec)
        if settings.lab is not None:
            return _remove_lab_orphans(keep)
        client = connect(settings.engine)
        removed = [
            f"{run_id}: removed {what}"
            for run_id in sorted(_orphaned_service_runs(client) - set(keep))
            for what in remove_services(client, run_id)
        ]
        removed += remove_orphaned_runs(client, keep)
        return removed + leave_orphaned_swarm(client)

    # --- description -------------------------------------------------------------------------

    def engine_info(self) -> Mapping[str, str]:
        """The engine's versions; with a lab, also its shape (the lab's daemons are the host's
        dockerd binary, so the version is the same; before deploy() the lab may not be up)."""
        info = describe_engine(self.client)
        swarm = self.client.info().get("Swarm") or {}
        _available, detail = routing_mesh()
        info.update(
            engine="docker-swarm",
            swarm_state=str(swarm.get("LocalNodeState", "")),
            swarm_nodes=str(swarm.get("Nodes") or ""),
            swarm_managers=str(swarm.get("Managers") or ""),
            routing_mesh=detail,
            publish_mode="host",
            restart_delay_s=f"{self._restart_delay_s():g}",
        )
        wanted = self.settings.lab
        if wanted is not None:
            info.update(
                lab_nodes=str(wanted.nodes),
                lab_managers=str(wanted.managers),
                lab_heartbeat_s=f"{wanted.heartbeat:g}",
                lab_manager=self.lab.manager_url if self.lab else "(brought up at deploy)",
                swarm_nodes=str(swarm.get("Nodes") or wanted.nodes),
                swarm_managers=str(swarm.get("Managers") or wanted.managers),
            )
        return info

    def load_balancing(self) -> str:
        available, _detail = routing_mesh()
        mesh = (
            "the ingress routing mesh is not used"
            if available
            else "the ingress routing mesh is unavailable here (no IPVS in the kernel)"
        )
        router = self._router
        if router is not None and not router.enabled:
            return (
                "client-side round robin across every task's host-mode published port, "
                f"taken once at the start (no per-slot routing: {router.reason}), so a "
                f"replaced task is not reached again by the running load; {mesh}"
            )
        where = " on its node's address" if self.settings.lab is not None else ""
        return (
            "client-side round robin across every task's host-mode published port, one stable "
            "loopback address per replica slot forwarded (iptables DNAT) to the slot's current "
            f"running task{where}, so a replacement task is reached once Swarm runs it; {mesh}"
        )

    def load_path(self, routing: str) -> str:
        router = self._router
        if router is None or not router.enabled:
            return self.load_balancing()
        count = self._workload.replicas if self._workload else 0
        port = router.port
        where = " on its node's address" if self.settings.lab is not None else ""
        poll = f"{self.settings.swarm.task_poll:g}"
        if routing == "per_instance":
            return (
                f"client-side round robin over the {count} replica slots' stable addresses "
                f"({router.address(1)}..{router.address(count)}:{port}), each DNAT-ed to its "
                f"slot's current running task's host-mode published port{where}: each "
                "request's slot is known, and a slot's share fails from its task's failure "
                "until Swarm runs its new task"
            )
        address = urlsplit(self.service_url()).netloc
        return (
            f"iptables virtual address {address} spread at random over the {count} replica "
            "slots whose task runs (kube-proxy style: Swarm's ingress routing mesh needs IPVS, "
            f"absent here), each DNAT-ed to its task's host-mode published port{where}; as "
            f"Swarm's mesh does, it follows the task states (polled every {poll} s): a slot "
            "leaves the spread when its task stops running and joins again when its new task "
            "runs; each new connection stays on its task"
        )

    def _restart_delay_s(self) -> float:
        return self.settings.swarm.restart_delay

    @property
    def service_name(self) -> str:
        workload = self._workload.name if self._workload else "web"
        return service_name(self.run_id, workload)

    # --- deploy ------------------------------------------------------------------------------

    def deploy(self, workload: WorkloadSpec) -> None:
        self._workload = workload
        if self.settings.lab is not None:
            self._use_lab(workload)
        else:
            self._join_swarm()
            ensure_image(self.client, workload.image)
        self._create_overlay()
        self._router = SlotRouter(self.run_id, workload.port, self._node_address)
        self._router.setup()
        self._create_service(workload)
        self._watcher.start()

    def _use_lab(self, workload: WorkloadSpec) -> None:
        """The lab of `target.lab` (brought up unless one of that shape is up) as the swarm.

        The lab's swarm is the lab's: it is neither initialised nor left here. The image is
        built on the host engine and copied to every node (there is no registry). A lab that
        was already up is used as it is (ensure() sets its heartbeat to the scenario's; teardown
        sets it back) and left up.
        """
        wanted = self.settings.lab
        assert wanted is not None
        ensure_image(self.host_client, workload.image)
        image = DEMO_IMAGE if workload.image == "demo" else workload.image
        existing = Lab().state()
        if existing is not None and existing.heartbeat_s != float(wanted.heartbeat):
            self._lab_heartbeat_before = existing.heartbeat_s
        info, created = Lab().ensure(
            wanted.nodes, wanted.managers, float(wanted.heartbeat), images=[image]
        )
        self.lab, self.lab_created = info, created
        self.client = lab_connect(info.manager_url, MANAGER_TIMEOUT_S)
        self._watcher.client = self.client
        self._watcher.tracker.node_names.update(
            {n.node_id: n.name for n in info.nodes if n.node_id}
        )
        for stream in self._streams:
            self._attach(stream)

    def _node_address(self, node_id: str) -> str:
        """Where a node's host-mode published ports answer, as seen from the host."""
        if self.lab is None or not node_id:
            return "127.0.0.1"
        try:
            return self.lab.node(node_id).address
        except TargetError:
            return "127.0.0.1"

    def _engine_for(self, node_id: str | None) -> docker.DockerClient:
        """The engine that runs a node's containers: the node's own on the lab."""
        if self.lab is None or not node_id:
            return self.client
        try:
            node = self.lab.node(node_id)
        except TargetError:
            return self.client
        if node.url not in self._node_clients:
            self._node_clients[node.url] = lab_connect(node.url, NODE_TIMEOUT_S)
        return self._node_clients[node.url]

    def _engines(self) -> list[docker.DockerClient]:
        if self.lab is None:
            return [self.client]
        return [self._engine_for(n.node_id or n.name) for n in self.lab.nodes]

    def data_root(self) -> Path | None:
        return engine_data_root(self.client)

    def engine_identity(self) -> str | None:
        return engine_identity(self.client)

    @property
    def network_name(self) -> str:
        return f"chaos-{self.run_id}"

    def _labels(self, **extra: str) -> dict[str, str]:
        return run_labels(self.run_id, self._owner, **extra)

    def engine_answers(self) -> bool:
        """The engine answers a ping; on the lab, any node's engine (node faults take single
        nodes down on purpose, the manager's included)."""
        if self.lab is None:
            return engine_answers(self.client)
        for node in self.lab.nodes:
            with contextlib.suppress(docker.errors.DockerException, OSError, TargetError):
                if self._engine_for(node.node_id or node.name).ping():
                    return True
        return False

    def _join_swarm(self) -> None:
        swarm = self.client.info().get("Swarm") or {}
        state = swarm.get("LocalNodeState")
        if state == "active":
            if not swarm.get("ControlAvailable"):
                raise TargetError("this engine is a swarm worker; give a manager's address")
            return
        if state != "inactive":
            raise TargetError(f"the engine's swarm state is {state!r}; expected inactive or active")
        self._gwbridge_existed = bool(self.client.networks.list(names=[GWBRIDGE]))
        address = self.settings.swarm.advertise_addr
        try:
            self.client.swarm.init(
                advertise_addr=address,
                listen_addr=f"{address}:2377",
                labels=self._labels(**{GWBRIDGE_LABEL: str(not self._gwbridge_existed)}),
            )
        except docker.errors.APIError as exc:
            raise TargetError(f"swarm init on {address} failed: {exc}") from exc
        self.initialised_swarm = True

    def _create_overlay(self) -> None:
        try:
            self.client.networks.create(
                self.network_name, driver="overlay", labels=self._labels(), attachable=True
            )
        except docker.errors.APIError as exc:
            raise TargetError(f"cannot create overlay network {self.network_name}: {exc}") from exc

    def _create_service(self, workload: WorkloadSpec) -> None:
        limits = workload.resources
        slot_name = f"{workload.name}-{{{{.Task.Slot}}}}"
        env = [f"{k}={v}" for k, v in workload.env.items()]
        try:
            self.client.services.create(  # type: ignore[no-untyped-call]
                DEMO_IMAGE if workload.image == "demo" else workload.image,
                args=workload.command,
                name=self.service_name,
                labels=self._labels(**{SERVICE_LABEL: workload.name}),
                container_labels=self._labels(**{SERVICE_LABEL: workload.name}),
                hostname=slot_name,
                env=[*env, f"CHAOS_HARNESS_INSTANCE={slot_name}"],
                healthcheck=healthcheck(workload),
                restart_policy=self._restart_policy(workload),
                update_config=self._update_config(),
                resources=Resources(
                    cpu_limit=int(limits.cpus * 1e9) if limits.cpus else None,
                    mem_limit=limits.memory,
                ),
                mode=ServiceMode("replicated", replicas=workload.replicas),
                networks=[self.network_name],
                endpoint_spec=EndpointSpec(ports=[_host_mode_port(workload.port)]),
            )
        except docker.errors.APIError as exc:
            raise TargetError(f"cannot create service {self.service_name}: {exc}") from exc

    def _restart_policy(self, workload: WorkloadSpec) -> RestartPolicy:
        condition = self.settings.swarm.restart_condition or CONDITIONS[workload.restart]
        attempts = self.settings.swarm.restart_max_attempts or 0
        window = self.settings.swarm.restart_window or 0.0
        return RestartPolicy(
            condition=condition,  # type: ignore[arg-type]  # from the scenario's Literal
            delay=int(self._restart_delay_s() * NS_PER_S),
            max_attempts=int(attempts),
            window=int(window * NS_PER_S),
        )

    def _update_config(self) -> UpdateConfig | None:
        update = self.settings.swarm.update
        if update is None:
            return None
        return UpdateConfig(
            parallelism=int(getattr(update, "parallelism", 1)),
            delay=int(float(getattr(update, "delay", 0.0)) * NS_PER_S),
            failure_action=getattr(update, "failure_action", "pause"),
            monitor=int(float(getattr(update, "monitor", 5.0)) * NS_PER_S),
            order=getattr(update, "order", "stop-first"),
        )

    # --- health ------------------------------------------------------------------------------

    def wait_healthy(self, timeout_s: float) -> list[Instance]:
        problems: list[str] = []

        def ready() -> bool:
            problems[:] = self._not_ready()
            return not problems

        def failure() -> str:
            return (
                f"service {self.service_name} not healthy after {timeout_s:g} s "
                f"({'; '.join(problems)})"
            )

        wait_until(ready, timeout_s, 0.2, failure, DeployTimeout)
        return self.instances()

    def _not_ready(self) -> list[str]:
        """What still stands between the service and 'every replica serves' (empty: ready)."""
        replicas = self._workload.replicas if self._workload else 0
        tasks = self._tasks()
        self._on_tasks(tasks, ())
        running = {t.slot: t for t in tasks if t.running}
        if len(running) < replicas:
            states = ", ".join(f"{t.slot}: {t.state} {t.error}".strip() for t in tasks)
            return [f"{len(running)}/{replicas} tasks running ({states or 'no tasks'})"]
        path = self._workload.health.path if self._workload and self._workload.health else "/"
        return [
            f"{i.name} at {i.url} does not answer"
            for i in self.instances()
            if not _answers(i.url + path)
        ]

    # --- tasks, instances, events ------------------------------------------------------------

    def _tasks(self) -> list[TaskView]:
        """The service's tasks; the last known ones while the manager cannot answer.

        Without a quorum even reads fail (DeadlineExceeded), and a manager whose node is
        partitioned may time out: the last view stands until the manager answers again.
        """
        try:
            raw = self.client.api.tasks(  # type: ignore[no-untyped-call]
                filters={"service": self.service_name}
            )
        except docker.errors.NotFound:
            return []
        except (docker.errors.DockerException, OSError) as exc:
            views = (self._last_tasks or [], self._watcher.latest or [])
            last = max(views, key=lambda ts: max((t.timestamp_ns for t in ts), default=0))
            if last:
                return list(last)
            raise TargetError(f"cannot list the tasks of {self.service_name}: {exc}") from exc
        tasks = [task_view(t, self.service_name) for t in raw]
        self._last_tasks = tasks
        return tasks

    def _on_tasks(self, tasks: Sequence[TaskView], _events: object) -> None:
        if self._router is not None:
            with contextlib.suppress(TargetError):
                self._router.sync(tasks)

    def _current(self, tasks: Sequence[TaskView]) -> dict[int, TaskView]:
        """Each slot's task: the one Swarm wants running, else the slot's latest task.

        Between a task's failure and its replacement's creation a slot has no task that
        Swarm wants running; it is still an instance (with pid 0), so it never vanishes.
        """
        replicas = self._workload.replicas if self._workload else 0
        current: dict[int, TaskView] = {}
        for task in sorted(tasks, key=lambda t: (t.desired_state == "running", t.timestamp_ns)):
            if task.desired_state == "running" or task.slot <= replicas:
                current[task.slot] = task
        return current

    def instances(self) -> list[Instance]:
        workload = self._workload.name if self._workload else "web"
        port = self._workload.port if self._workload else 8080
        found = []
        for slot, task in sorted(self._current(self._tasks()).items()):
            container = self._inspect(task)
            state = container.get("State") or {}
            name = f"{workload}-{slot}"
            found.append(
                Instance(
                    name=name,
                    service=workload,
                    container_id=task.container_id,
                    container_name=str(container.get("Name", "")).lstrip("/"),
                    pid=int(state.get("Pid") or 0) if state.get("Running") else 0,
                    url=self._url(slot, task, port),
                    labels={
                        **((container.get("Config") or {}).get("Labels") or self._labels()),
                        INSTANCE_LABEL: name,
                        "com.docker.swarm.task.id": task.task_id,
                        "chaos-harness.slot": str(slot),
                    },
                    node=task.node_id or None,
                    state=str(state.get("Status") or f"task {task.state}"),
                    address=self._overlay_address(container),
                    port=port,
                )
            )
        return found

    def _overlay_address(self, container: Mapping[str, Any]) -> str:
        """The task's own address on the run's overlay network (empty before it has one)."""
        networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
        return str((networks.get(self.network_name) or {}).get("IPAddress") or "")

    def service_url(self) -> str:
        if self._router is None:
            raise TargetError("service_url() needs the service deployed first")
        return self._router.service_url()

    def _inspect(self, task: TaskView) -> dict[str, Any]:
        """The task's container as its node's engine sees it; empty when it has none yet or
        Swarm removed it. When the node's engine does not answer (its daemon was killed: the
        container may live on), the last inspection of the container stands."""
        container_id = task.container_id
        if not container_id:
            return {}
        try:
            found = dict(self._engine_for(task.node_id).api.inspect_container(container_id))
        except docker.errors.NotFound:
            return {}
        except (docker.errors.DockerException, OSError) as exc:
            if container_id in self._inspected:
                return self._inspected[container_id]
            if self.lab is not None:
                return {}  # a node the harness cannot reach: the instance has no PID now
            raise TargetError(f"cannot inspect container {container_id[:12]}: {exc}") from exc
        self._inspected[container_id] = found
        return found

    def _container(self, instance: Instance) -> Container:
        """The instance's container on its node's engine (engine-side faults act there)."""
        try:
            container = self._engine_for(instance.node).containers.get(instance.container_id)
        except docker.errors.NotFound as exc:
            raise TargetError(f"{instance.name} no longer exists") from exc
        except (docker.errors.DockerException, OSError) as exc:
            raise TargetError(f"the engine of {instance.name} does not answer: {exc}") from exc
        if container.labels.get(RUN_LABEL) != self.run_id:
            raise TargetError(f"{instance.name} is not labelled with run {self.run_id}")
        return container

    def _container_ids(self) -> list[str]:
        """The run's containers on every engine, listed without inspecting each."""
        label = f"{RUN_LABEL}={self.run_id}"
        found = []
        for engine in self._engines():
            try:
                listed = engine.api.containers(all=True, filters={"label": label})
            except (docker.errors.DockerException, OSError) as exc:
                if self.lab is not None:
                    continue  # a node whose daemon is down: nothing to wait for there
                raise TargetError(f"cannot list the run's containers: {exc}") from exc
            found += [str(c["Id"]) for c in listed]
        return found

    def _url(self, slot: int, task: TaskView, port: int) -> str:
        if self._router is not None and self._router.enabled:
            return f"http://{self._router.address(slot)}:{port}"
        return f"http://{self._node_address(task.node_id)}:{task.published_port or 0}"

    def events(self, since_ns: int) -> SwarmEventStream:
        """Container events of every engine of the swarm, task events, and on a lab the
        manager's node events. A lab is up only after deploy(): its engines join the stream
        then (events from `since_ns` on are still delivered)."""
        stream = SwarmEventStream(self.run_id, since_ns, self._watcher)
        self._streams.append(stream)
        if self.settings.lab is None or self.lab is not None:
            self._attach(stream)
        self._watcher.start()
        return stream

    def _attach(self, stream: SwarmEventStream) -> None:
        if id(stream) in self._attached:
            return
        self._attached.add(id(stream))
        if self.lab is None:
            stream.add_engine(self.client)
            return
        for node in self.lab.nodes:
            stream.add_engine(self._engine_for(node.node_id or node.name), node.name)
        stream.add_node_events(self.client)

    # --- teardown ----------------------------------------------------------------------------

    def release(self) -> None:
        """Stop watching the service's tasks (the run's objects stay)."""
        self._watcher.stop()

    def teardown(self) -> None:
        """Remove the run's service, containers, network and routes; leave a swarm this target
        created, take down a lab it brought up. Every step runs even if one before failed."""
        try:
            self._remove_run()
        finally:
            self._watcher.stop()
            if self._router is not None:
                self._router.remove()
            remove_run_chains(self.run_id)  # routes a process of this run made, if any
            try:
                if self.initialised_swarm:
                    self._leave_swarm()
                elif self.lab is None:
                    self._leave_abandoned_swarm()
            finally:
                if self.lab_created:
                    Lab().down()
                    self.lab_created = False
                else:
                    self._restore_lab_heartbeat()

    def _restore_lab_heartbeat(self) -> None:
        """A lab this run did not create gets its own heartbeat back."""
        before, wanted = self._lab_heartbeat_before, self.settings.lab
        if before is None or wanted is None or Lab().state() is None:
            return
        Lab().ensure(wanted.nodes, wanted.managers, before)
        self._lab_heartbeat_before = None

    def _remove_run(self) -> None:
        self._remove_services()
        # Swarm would stop each task with its grace period (10 s: the demo's PID 1 ignores
        # SIGTERM); the run is over, so its containers are removed at once, as the Docker
        # target does, and only then is the network (busy until they are gone) removed.
        for engine in self._engines():
            try:
                remove_labelled(engine, self.run_id)
            except TargetError:
                if self.lab is None:
                    raise  # on the lab: a node whose daemon is down keeps nothing to remove
        self._wait_containers_gone(timeout_s=30)
        self._watcher.stop()
        self._remove_labelled()

    def _remove_services(self) -> None:
        remove_services(self.client, self.run_id)

    def _wait_containers_gone(self, timeout_s: float) -> None:
        wait_until(lambda: not self._container_ids(), timeout_s, 0.2)

    def _remove_labelled(self) -> None:
        """Remove leftovers; an overlay network may be busy for a moment after its service.

        On the lab, a worker keeps a local copy of the overlay network until its agent hears
        that the network is gone (measured: still there right after teardown on a node that
        had been partitioned), so every node's engine is waited for.
        """
        left: list[str] = []

        def removed() -> bool:
            remove_labelled(self.client, self.run_id)
            left[:] = self._labelled_networks()
            return not left

        timeout_s = 5.0 if self.lab is None else LAB_NETWORK_WAIT_S
        wait_until(
            removed, timeout_s, 0.2, lambda: f"still there after teardown: {', '.join(left)}"
        )

    def _labelled_networks(self) -> list[str]:
        """The run's networks on the manager and (on the lab) on every node that answers."""
        label = {"label": f"{RUN_LABEL}={self.run_id}"}
        found = [f"network {n.name}" for n in self.client.networks.list(filters=label)]
        if found or self.lab is None:
            return found
        for node in self.lab.nodes:
            engine = self._engine_for(node.node_id or node.name)
            with contextlib.suppress(docker.errors.DockerException, OSError):
                remove_labelled(engine, self.run_id)
                names = [n.name for n in engine.networks.list(filters=label)]
                found += [f"network {name} on {node.name}" for name in names]
        return found

    def _leave_swarm(self) -> None:
        """Leave the swarm this run created, unless another run's services still use it: then
        the last of those runs leaves it (`_leave_abandoned_swarm`), or `harness cleanup`."""
        others = []
        with contextlib.suppress(docker.errors.APIError):
            others = self.client.services.list()
        if others:
            self.initialised_swarm = False  # handed over to the runs still using it
            return
        try:
            self.client.swarm.leave(force=True)
        except docker.errors.APIError as exc:
            if "not part of a swarm" not in str(exc):
                raise TargetError(f"cannot leave the swarm: {exc}") from exc
        self.initialised_swarm = False
        if not self._gwbridge_existed:
            _remove_gwbridge(self.client)

    def _leave_abandoned_swarm(self) -> None:
        """A swarm another run created and left in place because this run still used it (runs
        side by side on one engine): the last run out leaves it, once nothing of the run that
        created it is left and no service remains."""
        try:
            labels = self.client.swarm.attrs.get("Spec", {}).get("Labels") or {}
        except docker.errors.APIError:
            return  # not a manager, or not in a swarm
        creator = labels.get(RUN_LABEL)
        if not creator or creator == self.run_id:
            return
        try:
            if self.client.services.list() or self.client.containers.list(
                all=True, filters={"label": f"{RUN_LABEL}={creator}"}
            ):
                return
            self.client.swarm.leave(force=True)
        except docker.errors.APIError:
            return  # still in use, or already left: nothing to do
        if labels.get(GWBRIDGE_LABEL) == "True":
            _remove_gwbridge(self.client)


def _remove_gwbridge(client: docker.DockerClient) -> None:
    for network in client.networks.list(names=[GWBRIDGE]):
        with contextlib.suppress(docker.errors.APIError):  # still in use: left alone
            network.remove()


def leave_orphaned_swarm(client: docker.DockerClient) -> list[str]:
    """For `harness cleanup`: leave a swarm a dead run created, once it has no services left."""
    try:
        labels = client.swarm.attrs.get("Spec", {}).get("Labels") or {}
        if not labels.get(RUN_LABEL) or owner_alive(labels.get(OWNER_LABEL)):
            return []
        if client.services.list():
            return []
        client.swarm.leave(force=True)
    except docker.errors.APIError:
        return []  # not a swarm manager, or not in a swarm: nothing of ours to leave
    if labels.get(GWBRIDGE_LABEL) == "True":
        _remove_gwbridge(client)
    return [f"left the swarm run {labels[RUN_LABEL]} created"]


def remove_services(client: docker.DockerClient, run_id: str) -> list[str]:
    """Remove the run's Swarm services (none when the engine is not a swarm manager)."""
    removed = []
    try:
        for service in client.services.list(filters={"label": f"{RUN_LABEL}={run_id}"}):
            with contextlib.suppress(docker.errors.NotFound):
                service.remove()  # type: ignore[no-untyped-call]
            removed.append(f"service {service.name}")
    except docker.errors.APIError as exc:
        if exc.status_code != 503:  # 503: not a swarm manager, so no services to remove
            raise TargetError(f"cannot remove the services of run {run_id}: {exc}") from exc
    return removed


def remove_swarm_leftovers(client: docker.DockerClient, run_id: str) -> list[str]:
    """What `harness cleanup` needs beyond remove_labelled: services, slot and service routes."""
    return remove_services(client, run_id) + remove_run_chains(run_id)


def _remove_lab_orphans(keep: Set[str]) -> list[str]:
    """What dead runs left on the Swarm lab: their services (through the manager), then their
    containers and networks on every node, until none is left (30 s at most).

    A node just back from a fault may not answer at once, Swarm's agent may be removing a
    task's container already, and a worker keeps its copy of a removed overlay network until
    its agent hears of the removal (it cannot be removed there): so each node is asked again
    until nothing of the dead runs is on it, as teardown waits for its own run."""
    info = Lab().info()
    if info is None:
        return []
    manager = lab_connect(info.manager_url, MANAGER_TIMEOUT_S)
    dead = _orphaned_service_runs(manager) - set(keep)
    removed = [
        f"{run_id}: removed {what} on the lab"
        for run_id in sorted(dead)
        for what in remove_services(manager, run_id)
    ]
    left: list[str] = []

    def swept() -> bool:
        left.clear()
        for node in info.nodes:
            try:
                engine = lab_connect(node.url, NODE_TIMEOUT_S)
                orphaned = orphaned_run_ids(engine) - set(keep)
                dead.update(orphaned)
                removed.extend(
                    f"{run_id}: removed {what} on {node.name}"
                    for run_id in sorted(orphaned)
                    for what in [*remove_run_chains(run_id), *remove_labelled(engine, run_id)]
                )
                left.extend(
                    f"{run_id}: {what} still on {node.name}"
                    for run_id in sorted(dead)
                    for what in _labelled_on(engine, run_id)
                )
            except (TargetError, docker.errors.DockerException) as exc:
                left.append(f"lab node {node.name} does not answer ({exc})")
        return not left

    wait_until(swept, LAB_NETWORK_WAIT_S, 0.5)
    return removed + left


def _labelled_on(engine: docker.DockerClient, run_id: str) -> list[str]:
    label: dict[str, str | list[str] | bool] = {"label": f"{RUN_LABEL}={run_id}"}
    return [
        *(f"container {c.name}" for c in engine.containers.list(all=True, filters=label)),
        *(f"network {n.name}" for n in engine.networks.list(filters=label)),
    ]


def _lab_node_problems(scenario: ScenarioBase, nodes: int) -> list[str]:
    """A node fault that names a node this lab will not have (another lab's, say), refused.

    A Swarm node ID is only known once the lab is up; a lab node's name is known now."""
    names = [f"{LAB_PREFIX}-n{i}" for i in range(1, nodes + 1)]
    problems = []
    for index, entry in enumerate(scenario.faults):
        node = entry.params_dict().get("node")
        if isinstance(node, str) and re.fullmatch(r"[a-z0-9]+-n\d+", node) and node not in names:
            problems.append(
                f"faults.{index} ({entry.kind}): node {node!r} is not a node of this "
                f"{nodes}-node Swarm lab ({', '.join(names)}); name one of them, or leave node "
                "out to take the selected instances' node"
            )
    return problems


def _orphaned_service_runs(client: docker.DockerClient) -> set[str]:
    """Run ids of labelled Swarm services whose owner is gone (none off a swarm manager)."""
    try:
        services = client.services.list(filters={"label": RUN_LABEL})
    except docker.errors.APIError:
        return set()
    dead = set()
    for service in services:
        labels = (service.attrs.get("Spec") or {}).get("Labels") or {}
        if labels.get(RUN_LABEL) and not owner_alive(labels.get(OWNER_LABEL)):
            dead.add(str(labels[RUN_LABEL]))
    return dead


def _host_mode_port(port: int) -> dict[str, Any]:
    """The workload's port published in host mode; no PublishedPort: the engine picks one."""
    return {"Protocol": "tcp", "TargetPort": port, "PublishMode": "host"}


def _answers(url: str, timeout_s: float = 1.0) -> bool:
    return probe_once(url, timeout_s)[0]


# mypy checks the class against the protocol here (make_target only sees the protocol)
_IS_A_TARGET: type[Target] = SwarmTarget
