"""The Docker Engine target: replicas as containers on a private bridge network.

Load balancing: the engine has none of its own. With `load.routing: service` (the default)
the load goes to one virtual address spread over the replicas (below); with `per_instance` the
bundled locustfile spreads requests round-robin across the replicas' own addresses on the run's
private network (each replica gets a fixed address, so it keeps it across restarts). Either
way a dead replica's share of requests fails until it is back: nothing here follows health.

The engine address is a setting (`target.engine`, else DOCKER_HOST), so the same target can
drive Podman's Docker-compatible API as a second engine (`harness.targets.podman` adds what
Podman needs besides); `engine_info()` names the engine that answers, from its version's
components.

One address for the whole workload (`service_url()`, for a load generator's --host): a virtual
address in the run's own subnet (.254, never given to a replica), spread over every replica by
iptables in the host's nat OUTPUT chain (`harness.targets.service_vip`), made on first use and
removed at teardown. Its backends are fixed: a killed replica keeps its share of new
connections, which fail until the engine restarts it (tests/test_fault_matrix.py measures it).
"""

from __future__ import annotations

import ipaddress
import subprocess
import time
from collections.abc import Iterator, Mapping, Set
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.errors
import requests
from docker.models.containers import Container
from docker.types import EndpointConfig, Healthcheck, IPAMConfig, IPAMPool

from harness.errors import DeployTimeout, TargetError
from harness.hostsys import unix_socket_server
from harness.images import DEMO_IMAGE, ensure_image
from harness.scenario import ScenarioBase, TargetSpec, WorkloadSpec
from harness.targets.base import (
    INSTANCE_LABEL,
    OWNER_LABEL,
    RUN_LABEL,
    SERVICE_LABEL,
    EngineEvent,
    Instance,
    Target,
    kind_problems,
    owner_alive,
    owner_label_value,
    single_engine_problems,
    storage_problems,
)
from harness.targets.service_vip import VirtualService, remove_orphaned_chains, remove_run_chains

NS_PER_S = 1_000_000_000
# Every engine call times out after this (the SDK's default is 60 s); a run notices a silent
# engine sooner through its watch (harness.observe.EngineWatch).
ENGINE_TIMEOUT_S = 30
DEFAULT_ENGINE = "unix:///var/run/docker.sock"
RECORDED_ACTIONS = frozenset(
    {"create", "start", "restart", "die", "kill", "stop", "pause", "unpause", "oom", "destroy"}
)
# Candidate /24 subnets for a run's network; the first one free on the engine and on the host
# (another engine's bridges, a lab's) is used. From RFC 2544's benchmarking range, outside every
# engine's default pools (Docker: 172.17-31.0.0/16 and 192.168.0.0/16, Swarm: 10.0.0.0/8,
# Podman: 10.88-89): a network someone creates without a subnet takes a whole /16 of Docker's
# defaults, which left no /24 free when the pool sat inside them.
SUBNET_POOL = ipaddress.IPv4Network("198.18.0.0/16")
VIP_HOST = 254  # the service address's last octet in the run's /24: never a replica's


class EngineUnreachable(docker.errors.APIError):
    """The engine gave no answer: the connection failed or broke, or the call timed out.

    An APIError, so every handler that translates the engine's refusals into TargetError
    translates this too (the Docker SDK lets requests' own exceptions through unwrapped)."""


class _GuardedAPIClient(docker.APIClient):
    """The SDK's low-level client with every call bounded by its timeout and every failure
    to get an answer raised as EngineUnreachable."""

    def request(  # type: ignore[override]
        self, method: str, url: str, *args: Any, **kwargs: Any
    ) -> requests.Response:
        try:
            return super().request(method, url, *args, **kwargs)
        except requests.exceptions.RequestException as exc:
            path = urlsplit(str(url)).path
            raise EngineUnreachable(
                f"the engine gave no answer to {method} {path}: {type(exc).__name__}: {exc}"
            ) from exc


class EngineClient(docker.DockerClient):
    """docker.DockerClient over `_GuardedAPIClient` (from_env works as well); `engine_url` is
    the address it was given (the default socket when none)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("timeout", ENGINE_TIMEOUT_S)
        self.api = _GuardedAPIClient(*args, **kwargs)
        self.engine_url = str(kwargs.get("base_url") or DEFAULT_ENGINE)


def connect(engine: str | None, timeout_s: int = ENGINE_TIMEOUT_S) -> docker.DockerClient:
    """A client for the engine at `engine` (or the environment's DOCKER_HOST); every call
    through it times out after `timeout_s` (a stop's own timeout is added by the SDK)."""
    try:
        client = (
            EngineClient(base_url=engine, timeout=timeout_s)
            if engine
            else EngineClient.from_env(timeout=timeout_s)
        )
        client.ping()
    except docker.errors.DockerException as exc:
        where = engine or "DOCKER_HOST / the default socket"
        raise TargetError(f"cannot reach the Docker engine at {where}: {exc}") from exc
    return client


def engine_name_version(version: Mapping[str, Any]) -> tuple[str, str]:
    """The engine's real name and version from its /version answer's components.

    Docker names its server component "Engine"; Podman's Docker API names it "Podman Engine"
    (and reports its own version, 4.3.1, not a Docker one)."""
    for component in version.get("Components") or []:
        name = str(component.get("Name", ""))
        if "podman" in name.lower():
            return "podman", str(component.get("Version", ""))
        if name == "Engine":
            return "docker", str(component.get("Version", ""))
    return "docker", str(version.get("Version", ""))


def _engine_event(raw: Mapping[str, Any]) -> EngineEvent | None:
    action = str(raw.get("Action") or raw.get("status") or "")
    attributes = dict(raw.get("Actor", {}).get("Attributes", {}))
    if action.startswith("health_status"):
        # Docker: "health_status: healthy"; Podman: "health_status", HealthStatus beside it
        health = action.partition(":")[2].strip() or str(raw.get("HealthStatus") or "")
        attributes["health"] = health
        action = "health_status"
    exit_code = attributes.pop("containerExitCode", None)  # Podman's word, on every event
    if action == "die" and exit_code is not None:
        attributes.setdefault("exitCode", exit_code)
    if action not in RECORDED_ACTIONS and action != "health_status":
        return None
    return EngineEvent(
        time_ns=int(raw.get("timeNano") or int(raw.get("time", 0)) * NS_PER_S),
        action=action,
        instance=attributes.get(INSTANCE_LABEL) or attributes.get("name"),
        container_id=raw.get("Actor", {}).get("ID") or raw.get("id"),
        attributes={k: v for k, v in attributes.items() if not k.startswith("chaos-harness.")},
    )


class DockerEventStream:
    """The engine's event stream for one run, closable from another thread."""

    def __init__(self, client: docker.DockerClient, run_id: str, since_ns: int) -> None:
        self._since_ns = since_ns
        self._stream = client.events(
            since=since_ns // NS_PER_S,
            filters={"label": f"{RUN_LABEL}={run_id}", "type": "container"},
            decode=True,
        )

    def __iter__(self) -> Iterator[EngineEvent]:
        try:
            for raw in self._stream:
                event = _engine_event(raw)
                if event is not None and event.time_ns >= self._since_ns:
                    yield event
        except (docker.errors.DockerException, OSError, ValueError, AttributeError):
            return  # closed from another thread, or the engine went away

    def close(self) -> None:
        self._stream.close()


class DockerTarget:
    """Replicas as containers on the local (or given) Docker engine."""

    kind = "docker"
    api_stop_is_restarted = False

    def __init__(self, run_id: str, spec: TargetSpec, client: docker.DockerClient | None = None):
        self.run_id = run_id
        self.spec = spec
        self.client = client or connect(spec.engine)
        self._workload: WorkloadSpec | None = None
        self._addresses: dict[str, str] = {}
        self._subnet: ipaddress.IPv4Network | None = None
        self._vip: VirtualService | None = None
        self._owner = owner_label_value()

    @classmethod
    def scenario_problems(cls, scenario: ScenarioBase) -> list[str]:
        problems = kind_problems(scenario, cls.kind)
        problems += single_engine_problems(scenario, f"target {cls.kind}")
        return problems + storage_problems(scenario, cls.data_root_of(scenario.target))

    @classmethod
    def data_root_of(cls, spec: TargetSpec) -> Path | None:
        """The engine's storage root (docker info's DockerRootDir), or None if it is unreachable
        (validating without an engine: the run itself will say the engine is missing)."""
        try:
            return _data_root(connect(spec.engine).info())
        except (TargetError, docker.errors.DockerException, OSError):
            return None

    @classmethod
    def attach(cls, run_id: str, spec: TargetSpec) -> Target:
        return cls(run_id, spec)

    @classmethod
    def remove_orphans(cls, spec: TargetSpec, keep: Set[str]) -> list[str]:
        client = connect(spec.engine)
        orphaned = orphaned_run_ids(client) - set(keep)
        removed = [
            f"{run_id}: removed {what}"
            for run_id in sorted(orphaned)
            for what in [*remove_run_chains(run_id), *remove_labelled(client, run_id)]
        ]
        return removed + remove_orphaned_chains(keep, orphaned)

    # --- description -------------------------------------------------------------------------

    def engine_info(self) -> Mapping[str, str]:
        try:
            version = self.client.version()
            info = self.client.info()
        except docker.errors.APIError as exc:
            raise TargetError(f"cannot read the engine's version: {exc}") from exc
        name, engine_version = engine_name_version(version)
        return {
            "engine": name,
            "engine_version": engine_version,
            "api_version": str(version.get("ApiVersion", "")),
            "cgroup_version": str(info.get("CgroupVersion", "")),
            "cgroup_driver": str(info.get("CgroupDriver", "")),
            "storage_driver": str(info.get("Driver", "")),
            "data_root": str(info.get("DockerRootDir", "")),
            "kernel": str(info.get("KernelVersion", "")),
        }

    def data_root(self) -> Path | None:
        try:
            return _data_root(self.client.info())
        except (docker.errors.DockerException, OSError):
            return None

    def engine_identity(self) -> str | None:
        """The engine's process, "<pid>:<start ticks>", when it listens on a unix socket of
        this host (a restarted daemon is another process); None otherwise."""
        return unix_socket_server(str(getattr(self.client, "engine_url", "")))

    def engine_answers(self) -> bool:
        """Whether the engine answers a ping now (bounded by the client's timeout); the
        runner's engine watch asks this every few seconds."""
        try:
            return bool(self.client.ping())
        except (docker.errors.DockerException, OSError):
            return False

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
        return {RUN_LABEL: self.run_id, OWNER_LABEL: self._owner, **extra}

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
        image = DEMO_IMAGE if workload.image == "demo" else workload.image
        limits = workload.resources
        try:
            self.client.containers.run(  # type: ignore[call-overload]
                image,
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
                healthcheck=_healthcheck(workload),
                restart_policy=_restart_policy(workload.restart),
                nano_cpus=int(limits.cpus * 1e9) if limits.cpus else None,
                mem_limit=limits.memory,
            )
        except docker.errors.APIError as exc:
            raise TargetError(f"cannot start replica {name}: {exc}") from exc

    def wait_healthy(self, timeout_s: float) -> list[Instance]:
        deadline = time.monotonic() + timeout_s
        while True:
            containers = self._containers()
            states = {c.name: _readiness(c) for c in containers}
            if containers and all(state == "ready" for state in states.values()):
                return self.instances()
            if time.monotonic() > deadline:
                detail = ", ".join(f"{n}: {s}" for n, s in sorted(states.items()))
                raise DeployTimeout(
                    f"replicas not healthy after {timeout_s:g} s ({detail or 'none running'})"
                )
            time.sleep(0.2)

    # --- instances and events ----------------------------------------------------------------

    def _containers(self) -> list[Container]:
        try:
            return list(
                self.client.containers.list(
                    all=True,
                    filters={"label": f"{RUN_LABEL}={self.run_id}"},
                    ignore_removed=True,  # a container removed while listing is just gone
                )
            )
        except docker.errors.APIError as exc:
            raise TargetError(f"cannot list the run's containers: {exc}") from exc

    def instances(self) -> list[Instance]:
        port = self._workload.port if self._workload else 8080
        found = []
        for container in self._containers():
            labels = container.labels
            name = labels.get(INSTANCE_LABEL) or container.name or container.short_id
            address = self._addresses.get(name) or _address_on(container, self.network_name)
            found.append(
                Instance(
                    name=name,
                    service=labels.get(SERVICE_LABEL, ""),
                    container_id=container.id or "",
                    container_name=container.name or "",
                    pid=int(container.attrs.get("State", {}).get("Pid") or 0),
                    url=f"http://{address}:{port}",
                    labels=labels,
                    state=str(container.attrs.get("State", {}).get("Status", "unknown")),
                    address=address,
                    port=port,
                )
            )
        return sorted(found, key=lambda i: i.name)

    def events(self, since_ns: int) -> DockerEventStream:
        try:
            return DockerEventStream(self.client, self.run_id, since_ns)
        except docker.errors.APIError as exc:
            raise TargetError(f"cannot subscribe to the engine's events: {exc}") from exc

    # --- engine-side actions (faults use these) ----------------------------------------------

    def _container(self, instance: Instance) -> Container:
        try:
            container = self.client.containers.get(instance.container_id)
        except docker.errors.NotFound as exc:
            raise TargetError(f"{instance.name} no longer exists") from exc
        if container.labels.get(RUN_LABEL) != self.run_id:
            raise TargetError(f"{instance.name} is not labelled with run {self.run_id}")
        return container

    def _act(self, instance: Instance, action: str, **kwargs: Any) -> None:
        try:
            getattr(self._container(instance), action)(**kwargs)
        except docker.errors.APIError as exc:
            raise TargetError(f"{action} of {instance.name} failed: {exc}") from exc

    def kill_instance(self, instance: Instance, signal: str) -> None:
        self._act(instance, "kill", signal=f"SIG{signal}")

    def stop_instance(self, instance: Instance, timeout_s: float) -> None:
        self._act(instance, "stop", timeout=int(timeout_s))

    def start_instance(self, instance: Instance) -> None:
        self._act(instance, "start")

    def restart_instance(self, instance: Instance, timeout_s: float) -> None:
        self._act(instance, "restart", timeout=int(timeout_s))

    def pause_instance(self, instance: Instance) -> None:
        self._act(instance, "pause")

    def unpause_instance(self, instance: Instance) -> None:
        self._act(instance, "unpause")

    # --- one address for the workload -----------------------------------------------------

    def service_url(self) -> str:
        """The run's virtual address (.254 of its subnet), spread over every replica."""
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
            remove_run_chains(self.run_id)  # also a service address made by another process
            remove_labelled(self.client, self.run_id)
        finally:
            self.release()

    def release(self) -> None:
        """Nothing is held beyond the client: the engine is not ours to stop."""


def remove_labelled(client: docker.DockerClient, run_id: str) -> list[str]:
    """Remove every container, network and volume with the run's label; list what went.

    Each object is tried even if another fails; failures are listed, not raised.
    """
    label: dict[str, str | list[str] | bool] = {"label": f"{RUN_LABEL}={run_id}"}
    done = []
    try:
        containers = client.containers.list(all=True, filters=label, ignore_removed=True)
        done += [_remove(f"container {c.name}", c.remove, force=True, v=True) for c in containers]
        networks = client.networks.list(filters=label)
        done += [_remove(f"network {n.name}", n.remove) for n in networks]
        volumes = client.volumes.list(filters=label)
        done += [_remove(f"volume {v.name}", v.remove, force=True) for v in volumes]
    except docker.errors.APIError as exc:
        raise TargetError(f"cannot list the objects of run {run_id}: {exc}") from exc
    return done


def _remove(what: str, remove: Any, **kwargs: Any) -> str:
    try:
        remove(**kwargs)
    except docker.errors.NotFound:
        return f"{what} (already gone)"  # cleanup is idempotent
    except docker.errors.APIError as exc:
        return f"{what} NOT removed: {exc.explanation or exc}"
    return what


def orphaned_run_ids(client: docker.DockerClient) -> set[str]:
    """Run ids of labelled objects on the engine whose owning harness process is gone."""
    live: set[str] = set()
    seen: set[str] = set()
    try:
        objects: list[Any] = [
            *client.containers.list(all=True, filters={"label": RUN_LABEL}, ignore_removed=True),
            *client.networks.list(filters={"label": RUN_LABEL}),
            *client.volumes.list(filters={"label": RUN_LABEL}),
        ]
    except docker.errors.APIError as exc:
        raise TargetError(f"cannot list labelled objects: {exc}") from exc
    for obj in objects:
        attrs = obj.attrs
        labels = (
            attrs.get("Labels")
            or attrs.get("Config", {}).get("Labels")
            or attrs.get("Spec", {}).get("Labels")
            or {}
        )
        run_id = labels.get(RUN_LABEL)
        if run_id:
            seen.add(run_id)
            if owner_alive(labels.get(OWNER_LABEL)):
                live.add(run_id)
    return seen - live


def host_routes() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks the host routes now (another engine's bridges, a lab's...)."""
    try:
        done = subprocess.run(
            ["ip", "-4", "route", "show"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in done.stdout.splitlines():
        first = line.split(" ", 1)[0]
        if first == "default":
            continue
        try:
            found.append(ipaddress.IPv4Network(first, strict=False))
        except ValueError:
            continue
    return found


def _data_root(info: Mapping[str, Any]) -> Path | None:
    root = str(info.get("DockerRootDir") or "")
    return Path(root) if root else None


def _address_on(container: Container, network: str) -> str:
    networks = container.attrs.get("NetworkSettings", {}).get("Networks", {})
    return str((networks.get(network) or {}).get("IPAddress") or "0.0.0.0")


def _readiness(container: Container) -> str:
    state = container.attrs.get("State", {})
    if state.get("Status") != "running":
        return str(state.get("Status", "unknown"))
    health = (state.get("Health") or {}).get("Status")
    return "ready" if health in (None, "healthy") else f"health {health}"


def _healthcheck(workload: WorkloadSpec) -> Healthcheck | None:
    health = workload.health
    if health is None:
        return None
    url = f"http://127.0.0.1:{workload.port}{health.path}"
    return Healthcheck(
        test=["CMD-SHELL", f"wget -q -O /dev/null {url} || curl -fsS -o /dev/null {url}"],
        interval=int(health.interval * NS_PER_S),
        timeout=int(health.timeout * NS_PER_S),
        retries=health.retries,
        start_period=int(health.start_period * NS_PER_S),
    )


def _restart_policy(restart: str) -> dict[str, Any]:
    return {"Name": "" if restart == "no" else restart}
