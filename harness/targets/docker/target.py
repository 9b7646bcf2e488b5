"""The Docker Engine target: replicas as containers on a private bridge network.

Load balancing: the engine has none of its own. With `load.routing: service` (the default)
the load goes to one virtual address spread over the replicas (below); with `per_instance` the
bundled locustfile spreads requests round-robin across the replicas' own addresses on the run's
private network (each replica gets a fixed address, so it keeps it across restarts). Either
way a dead replica's share of requests fails until it is back: nothing here follows health.

The engine address is a setting (`target.engine`, else DOCKER_HOST), so the same target can
drive Podman's Docker-compatible API as a second engine (`harness.targets.podman.target` adds what
Podman needs besides); `engine_info()` names the engine that answers, from its version's
components.

One address for the whole workload (`service_url()`, for a load generator's --host): a virtual
address in the run's own subnet (.254, never given to a replica), spread over every replica by
iptables in the host's nat OUTPUT chain (`harness.targets.service_vip`), made on first use and
removed at teardown. Its backends are fixed: a killed replica keeps its share of new
connections, which fail until the engine restarts it (tests/test_fault_matrix.py measures it).

On an engine the harness does not run on (harness.targets.docker.remote) each replica's port
is published on the engine's host and reached there; no PID or cgroup of this host is read
(Instance.pid 0), no iptables rule is written here, and host-side faults go through the fault
agent (harness.agent.docker). There is no virtual address there: `load.routing: per_instance`.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping, Set
from pathlib import Path
from urllib.parse import urlsplit

import docker
import docker.errors
from docker.models.containers import Container
from docker.types import EndpointConfig, IPAMConfig, IPAMPool

from harness.errors import DeployTimeout, TargetError
from harness.hostnet import remove_run_chains
from harness.images import DEMO_IMAGE, ensure_image
from harness.specs import ScenarioBase, TargetSpec, WorkloadSpec
from harness.targets.base import (
    INSTANCE_LABEL,
    RUN_LABEL,
    SERVICE_LABEL,
    Instance,
    Target,
    owner_label_value,
)
from harness.targets.docker.engine import (
    AGENT_ROLE,
    ROLE_LABEL,
    SUBNET_POOL,
    VIP_HOST,
    ActsThroughEngine,
    ContainerActions,
    DockerEventStream,
    address_on,
    connect,
    data_root_at,
    describe_engine,
    engine_answers,
    engine_data_root,
    engine_identity,
    healthcheck,
    host_routes,
    published_port,
    readiness,
    remove_labelled,
    remove_orphaned_runs,
    restart_policy,
    run_container,
    run_labels,
)
from harness.targets.docker.preflight import engine_preflight
from harness.targets.docker.remote import (
    engine_address,
    engine_host,
    is_remote,
    port_candidates,
    port_taken,
    publish_address,
)
from harness.targets.docker.spec import AgentEngineSpec, EngineSpec, engine_spec
from harness.targets.service_vip import VirtualService
from harness.waiting import wait_until


class DockerTarget(ActsThroughEngine):
    """Replicas as containers on the local (or given) Docker engine."""

    kind = "docker"
    api_stop_is_restarted = False

    def __init__(self, run_id: str, spec: TargetSpec, client: docker.DockerClient | None = None):
        self.run_id = run_id
        self.spec = engine_spec(spec)
        self.client = client or connect(self.spec.engine)
        self._workload: WorkloadSpec | None = None
        self._addresses: dict[str, str] = {}
        self._subnet: ipaddress.IPv4Network | None = None
        self._vip: VirtualService | None = None
        self._owner = owner_label_value()
        self.actions = ContainerActions(lambda i: run_container(self.client, self.run_id, i))
        self.remote = self.remote_engine(self.spec)
        self._published: dict[str, int] = {}  # instance name -> its port on the engine's host

    @classmethod
    def remote_engine(cls, spec: EngineSpec) -> bool:
        """Whether the engine is one the harness does not run on (harness.targets.docker.remote)."""
        return is_remote(spec.engine)

    def engine_address(self) -> str | None:
        """The engine's address for another client of it (None: DOCKER_HOST's or the default)."""
        return self.spec.engine

    @classmethod
    def scenario_problems(cls, scenario: ScenarioBase) -> list[str]:
        """On a remote engine: the load goes to each replica (there is no virtual address),
        and a disk fill needs the agent (it checks the free space on the engine's host, at
        plan time: there is no checking it from here before the run)."""
        spec = engine_spec(scenario.target)
        if not cls.remote_engine(spec):
            return []
        where = f"the engine at {engine_address(spec.engine)} is not one this machine runs on"
        problems = []
        if scenario.load.routing == "service":
            problems.append(
                "load.routing: service needs one address for the workload: the engine has no "
                "load balancer, and the harness's virtual address is an iptables rule of this "
                f"host in front of this host's bridges ({where}): use load.routing: "
                "per_instance (each replica at its port published on the engine's host)"
            )
        if isinstance(spec, AgentEngineSpec) and spec.agent.use != "never":
            return problems
        problems += [
            f"faults.{index} (disk_fill): fills the container's layer from the engine's host, "
            f"and {where} while target.agent.use is never: let the agent do it (use: auto)"
            for index, entry in enumerate(scenario.faults)
            if entry.kind == "disk_fill"
        ]
        return problems

    @classmethod
    def preflight(cls, scenario: ScenarioBase) -> None:
        engine_preflight(scenario, engine_spec(scenario.target).engine)

    @classmethod
    def data_root_of(cls, spec: TargetSpec) -> Path | None:
        """The engine's storage root (docker info's DockerRootDir), None when unreachable or
        not on this host."""
        engine = engine_spec(spec)
        return None if cls.remote_engine(engine) else data_root_at(engine.engine)

    @classmethod
    def attach(cls, run_id: str, spec: TargetSpec) -> Target:
        return cls(run_id, spec)

    @classmethod
    def remove_orphans(cls, spec: TargetSpec, keep: Set[str]) -> list[str]:
        return remove_orphaned_runs(connect(engine_spec(spec).engine), keep)

    # --- description -------------------------------------------------------------------------

    def engine_info(self) -> Mapping[str, str]:
        return describe_engine(self.client)

    def data_root(self) -> Path | None:
        return engine_data_root(self.client)

    def engine_identity(self) -> str | None:
        return engine_identity(self.client)

    def engine_answers(self) -> bool:
        """Whether the engine answers a ping now; the runner's engine watch asks this."""
        return engine_answers(self.client)

    def load_balancing(self) -> str:
        return (
            "none of the engine's own: the harness spreads new connections to a virtual "
            "address over every replica with iptables (kube-proxy style, routing: service), "
            "or the load generator round-robins over the replicas' addresses (per_instance); "
            "either way a dead replica's share of requests fails until it is back"
        )

    def load_path(self, routing: str) -> str:
        port = self._workload.port if self._workload else 8080
        count = len(self._addresses)
        if self.remote:
            published = ", ".join(str(p) for _, p in sorted(self._published.items()))
            return (
                f"client-side round robin over the {count} replicas' ports published on the "
                f"remote engine's host {engine_host(self.spec.engine)} ({published}): each "
                "request's replica is known, and the engine's port mapping stands in between"
            )
        if routing == "per_instance":
            addresses = ", ".join(sorted(self._addresses.values(), key=ipaddress.ip_address))
            return (
                f"client-side round robin over the {count} replicas' own addresses "
                f"({addresses}, port {port}) on the run's bridge: each request's replica is "
                "known and nothing stands in between, so a dead replica's share fails until "
                "it is back"
            )
        where = urlsplit(self.service_url()).netloc
        return (
            f"iptables virtual address {where} spread at random over {count} replicas "
            "(kube-proxy style, the host's nat OUTPUT chain: the engine has no load "
            "balancer); each new connection is sent to one replica and stays there; the "
            "spread does not follow health, so a dead replica keeps its share of new "
            "connections, which fail until it is back"
        )

    @property
    def network_name(self) -> str:
        return f"chaos-{self.run_id}"

    def _labels(self, **extra: str) -> dict[str, str]:
        return run_labels(self.run_id, self._owner, **extra)

    # --- deploy ------------------------------------------------------------------------------

    def deploy(self, workload: WorkloadSpec) -> None:
        self._workload = workload
        ensure_image(self.client, workload.image)
        subnet = self._create_network()
        self._subnet = subnet
        hosts = subnet.hosts()
        next(hosts)  # the gateway
        for index in range(1, workload.replicas + 1):
            name = f"{workload.name}-{index}"
            address = str(next(hosts))
            self._addresses[name] = address
            self._create_container(workload, name, address)

    subnet_pool: ipaddress.IPv4Network = SUBNET_POOL

    def _create_network(self) -> ipaddress.IPv4Network:
        taken = self._subnets_in_use() + host_routes()
        for subnet in self.subnet_pool.subnets(new_prefix=24):
            if any(subnet.overlaps(t) for t in taken):
                continue
            try:
                self._create_network_on(subnet)
            except docker.errors.APIError as exc:
                if "overlap" in str(exc).lower():
                    continue
                raise TargetError(f"cannot create network {self.network_name}: {exc}") from exc
            return ipaddress.IPv4Network(subnet)
        blocking = sorted({str(t) for t in taken if t.overlaps(self.subnet_pool)})[:5]
        raise TargetError(
            f"no free /24 subnet left in {self.subnet_pool} for the run's network "
            f"(taken by networks or host routes: {', '.join(blocking) or 'none seen'})"
        )

    def _create_network_on(self, subnet: ipaddress.IPv4Network, attempts: int = 5) -> None:
        """Create the run's bridge network on `subnet`.

        Podman lists the host's interfaces to check the subnet, and fails with "route ip+net:
        no such network interface" when one vanishes meanwhile (another run's veth going away,
        seen here with runs side by side): that is tried again, a few times."""
        pool = IPAMPool(subnet=str(subnet), gateway=str(next(subnet.hosts())))
        for attempt in range(attempts):
            try:
                self.client.networks.create(
                    self.network_name,
                    driver="bridge",
                    ipam=IPAMConfig(pool_configs=[pool]),
                    labels=self._labels(),
                )
                return
            except docker.errors.APIError as exc:
                if "no such network interface" not in str(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.2)

    def _subnets_in_use(self) -> list[ipaddress.IPv4Network]:
        subnets = []
        for network in self.client.networks.list():
            for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
                try:
                    subnets.append(ipaddress.ip_network(config.get("Subnet", ""), strict=False))
                except ValueError:
                    continue
        return [s for s in subnets if isinstance(s, ipaddress.IPv4Network)]

    def _create_container(self, workload: WorkloadSpec, name: str, address: str) -> None:
        if not self.remote:
            self._run_container(workload, name, address, None)
            return
        ports = port_candidates(self.run_id, set(self._published.values()))
        for port in ports:
            try:
                self._run_container(workload, name, address, port)
            except TargetError as exc:
                if not port_taken(str(exc)):
                    raise
                self._remove_named(f"chaos-{self.run_id}-{name}")
                continue
            self._published[name] = port
            return
        raise TargetError(
            f"cannot publish {name}'s port on the engine's host {engine_host(self.spec.engine)}: "
            "every port tried was in use"
        )

    def _remove_named(self, container: str) -> None:
        """A replica's container that was created but could not start (its port was taken)."""
        try:
            self.client.containers.get(container).remove(force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            raise TargetError(f"cannot remove {container} to try another port: {exc}") from exc

    def _run_container(
        self, workload: WorkloadSpec, name: str, address: str, published: int | None
    ) -> None:
        image = DEMO_IMAGE if workload.image == "demo" else workload.image
        limits = workload.resources
        # on a remote engine: the workload's port on the engine's host, all its addresses
        ports = None
        if published is not None:
            ports = {f"{workload.port}/tcp": (publish_address(self.spec.engine), published)}
        try:
            self.client.containers.run(  # type: ignore[call-overload,misc]
                image,
                ports=ports,
                command=workload.command,
                name=f"chaos-{self.run_id}-{name}",
                hostname=name,
                detach=True,
                environment=workload.env,
                labels=self._labels(**{SERVICE_LABEL: workload.name, INSTANCE_LABEL: name}),
                network=self.network_name,
                networking_config={
                    self.network_name: EndpointConfig(
                        self.client.api.api_version, ipv4_address=address
                    )
                },
                healthcheck=healthcheck(workload),
                restart_policy=restart_policy(workload.restart),
                nano_cpus=int(limits.cpus * 1e9) if limits.cpus else None,
                mem_limit=limits.memory,
            )
        except docker.errors.APIError as exc:
            raise TargetError(f"cannot start replica {name}: {exc}") from exc

    def wait_healthy(self, timeout_s: float) -> list[Instance]:
        states: dict[str, str] = {}

        def all_ready() -> bool:
            states.clear()
            states.update({str(c.name): readiness(c) for c in self._containers()})
            return bool(states) and all(state == "ready" for state in states.values())

        def failure() -> str:
            detail = ", ".join(f"{n}: {s}" for n, s in sorted(states.items()))
            return f"replicas not healthy after {timeout_s:g} s ({detail or 'none running'})"

        wait_until(all_ready, timeout_s, 0.2, failure, DeployTimeout)
        return self.instances()

    # --- instances and events ----------------------------------------------------------------

    def _containers(self) -> list[Container]:
        """The run's replicas (its fault agent, labelled with the run too, is not one)."""
        try:
            found = self.client.containers.list(
                all=True,
                filters={"label": f"{RUN_LABEL}={self.run_id}"},
                ignore_removed=True,  # a container removed while listing is just gone
            )
        except docker.errors.APIError as exc:
            raise TargetError(f"cannot list the run's containers: {exc}") from exc
        return [c for c in found if c.labels.get(ROLE_LABEL) != AGENT_ROLE]

    def instances(self) -> list[Instance]:
        port = self._workload.port if self._workload else 8080
        found = []
        for container in self._containers():
            labels = container.labels
            name = labels.get(INSTANCE_LABEL) or container.name or container.short_id
            address = self._addresses.get(name) or address_on(container, self.network_name)
            found.append(
                Instance(
                    name=name,
                    service=labels.get(SERVICE_LABEL, ""),
                    container_id=container.id or "",
                    container_name=container.name or "",
                    pid=0 if self.remote else int(container.attrs.get("State", {}).get("Pid") or 0),
                    url=self._url_of(container, name, address, port),
                    labels=labels,
                    state=str(container.attrs.get("State", {}).get("Status", "unknown")),
                    address=address,
                    port=port,
                )
            )
        return sorted(found, key=lambda i: i.name)

    def _url_of(self, container: Container, name: str, address: str, port: int) -> str:
        """Where the load and the probes reach a replica: its own address on this host's
        bridge, or its port published on a remote engine's host."""
        if not self.remote:
            return f"http://{address}:{port}"
        published = self._published.get(name) or published_port(container, port)
        return f"http://{engine_host(self.spec.engine)}:{published}"

    def events(self, since_ns: int) -> DockerEventStream:
        try:
            return DockerEventStream(self.client, self.run_id, since_ns)
        except docker.errors.APIError as exc:
            raise TargetError(f"cannot subscribe to the engine's events: {exc}") from exc

    # --- engine-side actions (faults use these): ActsThroughEngine -------------------------------

    # --- one address for the workload -----------------------------------------------------

    def service_url(self) -> str:
        """The run's virtual address (.254 of its subnet), spread over every replica; on a
        remote engine (routing per_instance: scenario_problems) the first replica's address,
        Locust's --host only."""
        if self.remote:
            found = self.instances()
            if not found:
                raise TargetError("service_url() needs the workload deployed first")
            return found[0].url
        if self._vip is not None and self._vip.enabled:
            return self._vip.url
        if self._workload is None or self._subnet is None:
            raise TargetError("service_url() needs the workload deployed first")
        backends = [(address, self._workload.port) for address in self._addresses.values()]
        address = str(self._subnet.network_address + VIP_HOST)
        self._vip = VirtualService(self.run_id, self._owner, address, self._workload.port)
        self._vip.setup(sorted(backends, key=lambda b: ipaddress.ip_address(b[0])))
        return self._vip.url

    def teardown(self) -> None:
        try:
            if self._vip is not None:
                self._vip.remove()
            if not self.remote:  # nothing was written on this host for a remote engine
                remove_run_chains(self.run_id)  # also a service address made by another process
            remove_labelled(self.client, self.run_id)
        finally:
            self.release()

    def release(self) -> None:
        """Nothing is held beyond the client: the engine is not ours to stop."""


# mypy checks the class against the protocol here, where a missing or mistyped member is
# reported against this module (make_target only sees the protocol)
_IS_A_TARGET: type[Target] = DockerTarget
