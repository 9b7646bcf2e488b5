"""The Docker engine's helpers, public so that other targets compose them (Swarm, Podman, a
plugin's): connecting with timeouts, the events of a run, its labelled objects and their
removal, the workload's healthcheck and restart policy in the engine's terms."""

from __future__ import annotations

import ipaddress
import tempfile
from collections.abc import Callable, Iterator, Mapping, Set
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.errors
import requests
from docker.models.containers import Container
from docker.types import Healthcheck

from harness import commands
from harness.errors import CommandError, TargetError
from harness.hostnet import remove_orphaned_chains, remove_run_chains
from harness.hostsys import unix_socket_server
from harness.specs import WorkloadSpec
from harness.targets.base import (
    INSTANCE_LABEL,
    OWNER_LABEL,
    RUN_LABEL,
    EngineEvent,
    Instance,
    owner_alive,
)

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
# A run's fault agent container (harness.agent.docker) carries this label besides the run's:
# it is stopped with a grace (it reverts what it holds on SIGTERM) before it is removed.
ROLE_LABEL = "chaos-harness.role"
AGENT_ROLE = "fault-agent"
AGENT_GRACE_S = 30


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


def engine_event(raw: Mapping[str, Any]) -> EngineEvent | None:
    action = str(raw.get("Action") or raw.get("status") or "")
    attributes = dict(raw.get("Actor", {}).get("Attributes", {}))
    if attributes.get(ROLE_LABEL) == AGENT_ROLE:
        return None  # the run's fault agent is not one of its instances
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
                event = engine_event(raw)
                if event is not None and event.time_ns >= self._since_ns:
                    yield event
        except (docker.errors.DockerException, OSError, ValueError, AttributeError):
            return  # closed from another thread, or the engine went away

    def close(self) -> None:
        self._stream.close()


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


def stop_agents(client: docker.DockerClient, run_id: str) -> list[str]:
    """Stop the run's fault agents with their grace (each reverts what it holds), so that
    removing the run's objects afterwards does not cut a revert short; what was stopped."""
    filters: dict[str, str | list[str] | bool] = {
        "label": [f"{RUN_LABEL}={run_id}", f"{ROLE_LABEL}={AGENT_ROLE}"]
    }
    try:
        agents = client.containers.list(filters=filters, ignore_removed=True)
    except docker.errors.APIError as exc:
        raise TargetError(f"cannot list the fault agents of run {run_id}: {exc}") from exc
    return [
        _remove(f"fault agent {agent.name} stopped", agent.stop, timeout=AGENT_GRACE_S)
        for agent in agents
    ]


def copy_image(source: docker.DockerClient, into: docker.DockerClient, image: str) -> bool:
    """`image` from the `source` engine into the engine `into` (a save streamed into a load:
    no registry); False when `into` has it already."""
    try:
        wanted = str(source.images.get(image).id)
    except docker.errors.ImageNotFound as exc:
        raise TargetError(f"image {image!r} is not on this machine's engine") from exc
    except docker.errors.APIError as exc:
        raise TargetError(f"cannot inspect {image!r} on this machine's engine: {exc}") from exc
    try:
        if str(into.images.get(image).id) == wanted:
            return False
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as exc:
        raise TargetError(f"cannot inspect {image!r} on the engine: {exc}") from exc
    with tempfile.TemporaryFile(prefix="chaos-harness-image-") as archive:
        try:
            for chunk in source.images.get(image).save(named=True):
                archive.write(chunk)
            archive.seek(0)
            into.images.load(archive)
        except docker.errors.APIError as exc:
            raise TargetError(f"cannot copy {image!r} into the engine: {exc}") from exc
    return True


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
        done = commands.run(["ip", "-4", "route", "show"], timeout_s=10, check=False)
    except CommandError:
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


def data_root_in(info: Mapping[str, Any]) -> Path | None:
    root = str(info.get("DockerRootDir") or "")
    return Path(root) if root else None


def address_on(container: Container, network: str) -> str:
    networks = container.attrs.get("NetworkSettings", {}).get("Networks", {})
    return str((networks.get(network) or {}).get("IPAddress") or "0.0.0.0")


def published_port(container: Container, port: int) -> int:
    """The host port the engine published the container's `port` on (0: none)."""
    bindings = container.attrs.get("NetworkSettings", {}).get("Ports") or {}
    for binding in bindings.get(f"{port}/tcp") or []:
        if str(binding.get("HostPort") or "").isdigit():
            return int(binding["HostPort"])
    return 0


def readiness(container: Container) -> str:
    state = container.attrs.get("State", {})
    if state.get("Status") != "running":
        return str(state.get("Status", "unknown"))
    health = (state.get("Health") or {}).get("Status")
    return "ready" if health in (None, "healthy") else f"health {health}"


def healthcheck(workload: WorkloadSpec) -> Healthcheck | None:
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


def restart_policy(restart: str) -> dict[str, Any]:
    return {"Name": "" if restart == "no" else restart}


# --- one run on one engine: what the Docker target and the Swarm target both do --------------


def run_labels(run_id: str, owner: str, **extra: str) -> dict[str, str]:
    """The labels of every object a run makes: its id and its owner (cleanup reads them)."""
    return {RUN_LABEL: run_id, OWNER_LABEL: owner, **extra}


def describe_engine(client: docker.DockerClient) -> dict[str, str]:
    """The engine's name, version and settings, for the manifest."""
    try:
        version = client.version()
        info = client.info()
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


def data_root_at(engine: str | None) -> Path | None:
    """The storage root of the engine at `engine`, or None if it is unreachable (validating
    without an engine: the run itself will say the engine is missing)."""
    try:
        return data_root_in(connect(engine).info())
    except (TargetError, docker.errors.DockerException, OSError):
        return None


def engine_data_root(client: docker.DockerClient) -> Path | None:
    """Where the engine keeps container storage (None when it does not answer)."""
    try:
        return data_root_in(client.info())
    except (docker.errors.DockerException, OSError):
        return None


def engine_identity(client: docker.DockerClient) -> str | None:
    """The engine's process, "<pid>:<start ticks>", when it listens on a unix socket of this
    host (a restarted daemon is another process); None otherwise."""
    return unix_socket_server(str(getattr(client, "engine_url", "")))


def engine_answers(client: docker.DockerClient) -> bool:
    """Whether the engine answers a ping now (bounded by the client's timeout)."""
    try:
        return bool(client.ping())
    except (docker.errors.DockerException, OSError):
        return False


def run_container(client: docker.DockerClient, run_id: str, instance: Instance) -> Container:
    """The instance's container, refused unless it carries the run's label."""
    try:
        container = client.containers.get(instance.container_id)
    except docker.errors.NotFound as exc:
        raise TargetError(f"{instance.name} no longer exists") from exc
    if container.labels.get(RUN_LABEL) != run_id:
        raise TargetError(f"{instance.name} is not labelled with run {run_id}")
    return container


class ContainerActions:
    """The Target protocol's actions on one instance through the engine's API, on the
    container `find` returns (the run's engine, or the engine of the instance's node)."""

    def __init__(self, find: Callable[[Instance], Container]) -> None:
        self._find = find

    def act(self, instance: Instance, action: str, **kwargs: Any) -> None:
        try:
            getattr(self._find(instance), action)(**kwargs)
        except docker.errors.APIError as exc:
            raise TargetError(f"{action} of {instance.name} failed: {exc}") from exc

    def kill(self, instance: Instance, signal: str) -> None:
        self.act(instance, "kill", signal=f"SIG{signal}")

    def stop(self, instance: Instance, timeout_s: float) -> None:
        self.act(instance, "stop", timeout=int(timeout_s))

    def start(self, instance: Instance) -> None:
        self.act(instance, "start")

    def restart(self, instance: Instance, timeout_s: float) -> None:
        self.act(instance, "restart", timeout=int(timeout_s))

    def pause(self, instance: Instance) -> None:
        self.act(instance, "pause")

    def unpause(self, instance: Instance) -> None:
        self.act(instance, "unpause")


def remove_orphaned_runs(client: docker.DockerClient, keep: Set[str]) -> list[str]:
    """Every labelled object (and iptables chain) of runs whose harness is gone, but `keep`
    (their fault agents were stopped before, with their grace: harness.agent.docker)."""
    orphaned = orphaned_run_ids(client) - set(keep)
    removed = [
        f"{run_id}: removed {what}"
        for run_id in sorted(orphaned)
        for what in [*remove_run_chains(run_id), *remove_labelled(client, run_id)]
    ]
    return removed + remove_orphaned_chains(keep, orphaned)


class ActsThroughEngine:
    """The Target protocol's six instance actions, done by `self.actions` (mixed into the
    targets whose instances are containers of Docker engines: Docker, Podman, Swarm)."""

    actions: ContainerActions

    def kill_instance(self, instance: Instance, signal: str) -> None:
        self.actions.kill(instance, signal)

    def stop_instance(self, instance: Instance, timeout_s: float) -> None:
        self.actions.stop(instance, timeout_s)

    def start_instance(self, instance: Instance) -> None:
        self.actions.start(instance)

    def restart_instance(self, instance: Instance, timeout_s: float) -> None:
        self.actions.restart(instance, timeout_s)

    def pause_instance(self, instance: Instance) -> None:
        self.actions.pause(instance)

    def unpause_instance(self, instance: Instance) -> None:
        self.actions.unpause(instance)
