"""Everything checked before a run deploys anything, each problem with what to do about it.

`preflight(scenario)` needs no engine (`harness validate` runs it too): what the target cannot
do, what this machine's kernel and tools cannot inject, a locustfile that does not compile.
`preflight_machine(scenario)` asks the machine the run will use (the runner calls it after
`preflight`): the engine answers, the workload's image is there, the ports the run must bind
are free. Invalid input is a ScenarioError (exit 2: a locustfile with a syntax error, an image
the engine does not have); a machine that cannot run it is a CapabilityError or TargetError
(exit 3: a kernel without the fault's mechanism, an engine that does not answer, a port in use).

What "a port in use" means, per target (decided here, from what each target binds on the host):
- docker, podman: nothing. Each replica listens on `workload.port` inside its own network
  namespace on the run's private bridge, and the service address is an iptables rule, not a
  socket; runs side by side use the same port without conflict.
- swarm, one engine: when the engine is not in a swarm yet, the run initialises one that
  listens on `target.swarm.advertise_addr`:2377 on the host, so that address must be free. The
  tasks' published ports are host-mode ports the engine picks itself (never a fixed one).
- swarm and kubernetes labs: every daemon listens inside the lab's own namespaces.
- kubernetes: NodePorts are chosen by the API server.
- the load: with `load.workers`, the Locust master binds a port chosen free at its start.
"""

from __future__ import annotations

import errno
import shutil
import socket
import subprocess
import tokenize
from pathlib import Path

import docker
import docker.errors

from faults.base import AnyFault
from harness.errors import CapabilityError, ScenarioError, TargetError
from harness.scenario import DEMO_LOCUSTFILE, ScenarioBase, TargetSpec, build_fault
from harness.targets import target_class
from harness.timeline import Occurrence, expand

ENGINE_CHECK_TIMEOUT_S = 10
SWARM_PORT = 2377
DEMO_IMAGES = ("demo",)


def preflight(scenario: ScenarioBase) -> list[tuple[Occurrence, AnyFault]]:
    """Build every fault and check this machine can inject it, before anything starts."""
    planned = [(o, build_fault(o.entry)) for o in expand(scenario.faults, scenario.load.duration)]
    unsupported = target_class(scenario.target.kind).scenario_problems(scenario)
    if unsupported:  # the scenario asks what this orchestrator does not have: invalid input
        raise ScenarioError([f"target {scenario.target.kind}: {p}" for p in unsupported])
    locustfile_problems(scenario)
    problems = [
        f"faults.{o.entry_index - 1} ({o.entry.kind}): {p}"
        for o, fault in planned
        for p in fault.check()
    ]
    if problems:
        raise CapabilityError(
            "this machine cannot run the scenario:\n  "
            + "\n  ".join(problems)
            + "\n`harness faults` lists what works here; choose another mechanism or kind"
        )
    return planned


def locustfile_problems(scenario: ScenarioBase) -> None:
    """A locustfile of the user's that does not compile: its file:line and the error."""
    name = scenario.load.locustfile
    if name == DEMO_LOCUSTFILE:
        return
    path = Path(name)
    try:
        with tokenize.open(path) as handle:  # honours a coding declaration, as Python does
            source = handle.read()
        compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f"{path}:{exc.lineno or 1}"
        raise ScenarioError(
            [
                f"{where}: load.locustfile does not compile: {exc.msg}; fix it "
                f"(python3 -m py_compile {path} shows the same error)"
            ]
        ) from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ScenarioError([f"{path}: load.locustfile cannot be read: {exc}"]) from exc


def late_fault_warnings(scenario: ScenarioBase) -> list[str]:
    """Occurrences whose action (a one-off's injection, else its revert) ends after
    load.duration - detection_horizon - stable_for: the load may end before their failures
    and a stable recovery can be seen, so their recovery is censored ("at least x s")."""
    load, analysis = scenario.load, scenario.analysis
    margin_s = analysis.detection_horizon + analysis.stable_for
    latest_s = load.duration - margin_s
    warnings = []
    for occurrence in expand(scenario.faults, load.duration):
        end_s = occurrence.revert_at_s if occurrence.revert_at_s is not None else occurrence.at_s
        if end_s <= latest_s:
            continue
        what = "is reverted" if occurrence.revert_at_s is not None else "happens"
        warnings.append(
            f"faults.{occurrence.entry_index - 1} ({occurrence.entry.kind}) {occurrence.fault_id}"
            f" {what} at {end_s:g} s, after {latest_s:g} s (load.duration {load.duration:g} s"
            f" - analysis.detection_horizon {analysis.detection_horizon:g} s - "
            f"analysis.stable_for {analysis.stable_for:g} s): the load may end before its "
            "recovery can be seen, and it would be censored (recovered in at least x s); "
            f"lengthen load.duration to at least {end_s + margin_s:g} s or move it earlier"
        )
    return warnings


# --- the machine the run will use ---------------------------------------------------------


def preflight_machine(scenario: ScenarioBase) -> None:
    """The engine answers, the image is there, the run's host ports are free."""
    spec = scenario.target
    if spec.kind == "kubernetes":
        return  # the Kubernetes target checks its cluster itself when it connects
    if spec.kind == "podman" and spec.engine is None:
        _podman_checks(scenario)
        return
    client = _engine(spec)
    try:
        _image_check(scenario, client, _where(spec))
        if spec.kind == "swarm" and spec.lab is None:
            _swarm_port_check(spec, client)
    finally:
        client.close()


def _where(spec: TargetSpec) -> str:
    return spec.engine or "DOCKER_HOST / unix:///var/run/docker.sock"


def _engine(spec: TargetSpec) -> docker.DockerClient:
    """The engine of the run (for a lab, the host's engine, which builds and holds images)."""
    from harness.targets.docker import connect

    engine = spec.engine if spec.lab is None else None
    try:
        return connect(engine, timeout_s=ENGINE_CHECK_TIMEOUT_S)
    except TargetError as exc:
        raise TargetError(
            f"{exc}\nthe {spec.kind} target needs a running engine: start the host's with "
            "`make setup` (it runs `harness engine up`), or point target.engine (or "
            "DOCKER_HOST) at an engine that runs; nothing was deployed"
        ) from exc


def _image_check(scenario: ScenarioBase, client: docker.DockerClient, where: str) -> None:
    image = scenario.workload.image
    if image in DEMO_IMAGES:
        return  # built locally on first use
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise ScenarioError(
            [
                f"workload.image: no image {image!r} on the engine at {where}, and no registry "
                "can be reached from here: build it locally (docker build -t "
                f"{image} .; docker load -i FILE for a saved one) or use image: demo"
            ]
        ) from None
    except docker.errors.APIError as exc:
        raise TargetError(f"cannot inspect image {image!r} on {where}: {exc}") from exc


def _podman_checks(scenario: ScenarioBase) -> None:
    podman = shutil.which("podman")
    if podman is None:
        raise CapabilityError(
            "target podman needs Podman: apt-get install -y podman containernetworking-plugins"
        )
    image = scenario.workload.image
    if image in DEMO_IMAGES:
        return
    try:
        done = subprocess.run(
            [podman, "image", "exists", image], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TargetError(f"cannot ask Podman for image {image!r}: {exc}") from exc
    if done.returncode == 1:
        raise ScenarioError(
            [
                f"workload.image: no image {image!r} in Podman's store, and no registry can be "
                f"reached from here: build it (podman build -t {image} .), copy it from Docker "
                f"(docker save {image} | podman load) or use image: demo"
            ]
        )


def _swarm_port_check(spec: TargetSpec, client: docker.DockerClient) -> None:
    """The address `swarm init` will listen on must be free when the run initialises one."""
    try:
        state = (client.info().get("Swarm") or {}).get("LocalNodeState")
    except docker.errors.APIError as exc:
        raise TargetError(f"cannot read the engine's swarm state: {exc}") from exc
    if state != "inactive":
        return  # already in a swarm: no port is bound for this run
    address = spec.swarm.advertise_addr
    if port_in_use(address, SWARM_PORT):
        raise TargetError(
            f"port {SWARM_PORT} on {address} is in use by another process, and the run must "
            f"initialise a swarm listening there: stop that process (ss -ltnp 'sport = "
            f":{SWARM_PORT}' names it) or set target.swarm.advertise_addr to another local "
            "address; nothing was deployed"
        )


def port_in_use(address: str, port: int) -> bool:
    """Whether binding `address:port` over TCP fails because something holds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as every server sets it: a port held only by closed connections is free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False
