"""The fault agent on a Docker-API engine the harness does not run on: one container of the run.

`AGENTS` is the Docker target kind's agent support (TargetKind.agents). `open()`, on a remote
engine (harness.targets.docker.remote) or with `target.agent.use: always`, starts
`chaos-agent-<run id>` on the run's engine: privileged, with the engine host's PID and network
namespaces and its /sys/fs/cgroup, so `nsenter`, iptables and stress-ng act on the replicas as
they do from the harness's host; it carries the run's, its owner's and the agent role's
labels. Its image (`target.agent.image`, else the one built on this machine) is loaded into
the engine from this machine's engine when missing. Each action is one `exec` (stdout and
stderr apart; a non-zero exit is an AgentError with its stderr); `remove()` stops it with a
grace, in which it reverts whatever it still holds, then removes it. `remove_orphans()`
(harness cleanup) stops dead runs' agents with the same grace before the target's sweep
removes their containers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence, Set

import docker
import docker.errors
from docker.models.containers import Container

from harness.agent.fleet import AgentFleet, AgentSupport
from harness.agent.image import agent_image
from harness.agent.protocol import SERVE_ARGV, STATE_DIR
from harness.agent.relay import CALL_TIMEOUT_S
from harness.errors import AgentError, TargetError
from harness.owners import owner_label_value
from harness.specs import TargetSpec
from harness.targets.base import Target
from harness.targets.docker.engine import (
    AGENT_GRACE_S,
    AGENT_ROLE,
    ROLE_LABEL,
    connect,
    copy_image,
    orphaned_run_ids,
    run_labels,
    stop_agents,
)
from harness.targets.docker.remote import engine_address
from harness.targets.docker.spec import AgentEngineSpec, engine_spec
from harness.targets.docker.target import DockerTarget
from harness.waiting import wait_until

NODE_ENV = "CHAOS_AGENT_NODE"
LOAD_TIMEOUT_S = 600  # a save streamed into a load of the agent's image
POLL_S = 0.2
# An engine that runs inside a container of its own may lack a capability of its host (this
# machine's bounding set has no CAP_SYS_RESOURCE), and Docker 20.10 then refuses to start any
# privileged container with this; the agent then gets the capabilities its tools use: setns
# and cgroups, /proc of other processes, iptables and tc, signals, stress-ng's priorities.
CAPS_REFUSED = "unable to apply caps"
CAPABILITIES: tuple[str, ...] = ("SYS_ADMIN", "SYS_PTRACE", "NET_ADMIN", "NET_RAW", "KILL")
CAPABILITIES += ("DAC_OVERRIDE", "DAC_READ_SEARCH", "SYS_NICE", "IPC_LOCK")
UNCONFINED = ("seccomp=unconfined", "apparmor=unconfined")


def agent_name(run_id: str) -> str:
    return f"chaos-agent-{run_id}"


class DockerAgentSupport:
    """The Docker target kind's agents (TargetKind.agents): one container per run."""

    def open(self, target: Target, spec: TargetSpec, run_id: str) -> AgentFleet | None:
        """The run's agent on its engine when host-side faults must go through one."""
        if not isinstance(target, DockerTarget) or not isinstance(spec, AgentEngineSpec):
            return None
        use = spec.agent.use
        if use == "never" or (use == "auto" and not target.remote):
            return None
        address = target.engine_address()
        engine = connect(address, timeout_s=int(CALL_TIMEOUT_S))
        agents = DockerAgents(engine, run_id, engine_address(address))
        agents.deploy(spec.agent.image or built_image())
        return agents

    def remove_orphans(self, spec: TargetSpec, keep: Set[str]) -> list[str]:
        """Stop the agents of dead runs with their grace (each reverts what it holds); the
        target's own sweep removes them with the rest of their runs."""
        client = connect(engine_spec(spec).engine)
        try:
            orphaned = orphaned_run_ids(client) - set(keep)
            return [
                f"{run_id}: {line}"
                for run_id in sorted(orphaned)
                for line in stop_agents(client, run_id)
            ]
        finally:
            client.close()


AGENTS = DockerAgentSupport()


def built_image() -> str:
    """The agent's image built on this machine's engine (harness.agent.image)."""
    return agent_image(connect(None))


class ExecChannel:
    """The agent container, reached by one exec through the engine per command."""

    def __init__(self, container: Container, node: str) -> None:
        self._container = container
        self._node = node
        self._lock = threading.Lock()  # one command at a time, as on Kubernetes

    @property
    def node(self) -> str:
        return self._node

    def run(self, argv: Sequence[str], timeout_s: float) -> str:
        """stdout of `argv` run in the agent; the engine client's timeout bounds it."""
        del timeout_s  # the client was made with the call's timeout (open_agents)
        where = f"agent container {self._container.name} on {self._node}"
        try:
            with self._lock:
                result = self._container.exec_run(list(argv), demux=True)
        except docker.errors.APIError as exc:
            raise AgentError(f"cannot exec in {where}: {exc}") from exc
        stdout, stderr = _demuxed(result.output)
        if result.exit_code != 0:
            said = stderr.strip() or "(nothing on stderr)"
            raise AgentError(
                f"{' '.join(argv)!r} in {where}: exit status {result.exit_code}: {said[-800:]}"
            )
        return stdout

    def run_timed(self, argv: Sequence[str], timeout_s: float) -> tuple[str, int | None]:
        """Like `run`, read as a stream: with the instant stdout's first bytes arrived (an
        exec_run's output comes only at its end, a round trip's length after the reading)."""
        del timeout_s  # as in run
        where = f"agent container {self._container.name} on {self._node}"
        client = self._container.client
        if client is None:  # a container model made without its client: never ours
            raise AgentError(f"no engine client for the {where}")
        api = client.api
        out: list[bytes] = []
        err: list[bytes] = []
        first_ns: int | None = None
        try:
            with self._lock:
                made = api.exec_create(self._container.id, list(argv), stdout=True, stderr=True)
                for stdout, stderr in api.exec_start(made["Id"], stream=True, demux=True):
                    if stdout and first_ns is None:
                        first_ns = time.time_ns()
                    out.append(stdout or b"")
                    err.append(stderr or b"")
                code = api.exec_inspect(made["Id"]).get("ExitCode")
        except docker.errors.APIError as exc:
            raise AgentError(f"cannot exec in {where}: {exc}") from exc
        if code != 0:
            said = b"".join(err).decode(errors="replace").strip() or "(nothing on stderr)"
            raise AgentError(f"{' '.join(argv)!r} in {where}: exit status {code}: {said[-800:]}")
        return b"".join(out).decode(errors="replace"), first_ns


def _demuxed(output: object) -> tuple[str, str]:
    """stdout and stderr of a demultiplexed exec (either may be None: nothing written)."""
    if not isinstance(output, tuple) or len(output) != 2:
        raise AgentError(f"the engine gave no separate stdout and stderr: {output!r:.200}")
    out, err = output
    return (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")


class DockerAgents:
    """The fault agent of one run on one engine: deploy, wait, reach, remove."""

    def __init__(self, client: docker.DockerClient, run_id: str, where: str) -> None:
        self.client = client
        self.run_id = run_id
        self.where = where
        self.name = agent_name(run_id)
        self._container: Container | None = None
        self._node = ""
        self.privileged = True

    def deploy(self, image: str) -> None:
        """Load the image if the engine lacks it, and start the agent (not waited for)."""
        self._load(image)
        self._node = self._engine_name()
        try:
            self._container = self._run(image, privileged=True)
        except docker.errors.APIError as exc:
            if CAPS_REFUSED not in str(exc):
                raise AgentError(f"cannot start the fault agent on {self.where}: {exc}") from exc
            self._forget_failed()
            self.privileged = False
            try:
                self._container = self._run(image, privileged=False)
            except docker.errors.APIError as again:
                raise AgentError(
                    f"cannot start the fault agent on {self.where}: {again}"
                ) from again

    def _run(self, image: str, privileged: bool) -> Container:
        """The agent's container: privileged, or (where the engine cannot grant every
        capability) with the ones its tools use and no seccomp or AppArmor profile."""
        access: dict[str, object] = {"privileged": True}
        if not privileged:
            access = {"cap_add": list(CAPABILITIES), "security_opt": list(UNCONFINED)}
        labels = run_labels(self.run_id, owner_label_value(), **{ROLE_LABEL: AGENT_ROLE})
        started: Container = self.client.containers.run(  # type: ignore[call-overload]
            image,
            command=list(SERVE_ARGV),
            name=self.name,
            detach=True,
            pid_mode="host",
            network_mode="host",
            volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
            tmpfs={STATE_DIR: ""},  # its undo log: gone with the container
            environment={NODE_ENV: self._node},
            labels=labels,
            stop_signal="SIGTERM",
            **access,
        )
        return started

    def _forget_failed(self) -> None:
        """The container the engine created but could not start."""
        try:
            self.client.containers.get(self.name).remove(force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            raise AgentError(f"cannot remove the agent that did not start: {exc}") from exc

    def _load(self, image: str) -> None:
        """The image from this machine's engine into the run's, unless it is there."""
        host = connect(None, timeout_s=LOAD_TIMEOUT_S)
        engine = connect(self.where, timeout_s=LOAD_TIMEOUT_S)
        try:
            copy_image(host, engine, image)
        except TargetError as exc:
            raise AgentError(f"the fault agent's image: {exc}") from exc
        finally:
            host.close()
            engine.close()

    def _engine_name(self) -> str:
        try:
            return str(self.client.info().get("Name") or self.where)
        except docker.errors.APIError:
            return self.where

    def wait_ready(self, timeout_s: float) -> None:
        """Until the agent's `serve` runs; an AgentError with its log if it stopped."""
        container = self._require()

        def running() -> bool:
            try:
                container.reload()
                state = container.attrs.get("State", {})
                log = container.logs(tail=50).decode(errors="replace")
            except docker.errors.APIError as exc:
                raise AgentError(f"cannot read the fault agent on {self.where}: {exc}") from exc
            if state.get("Status") in ("exited", "dead"):
                raise AgentError(
                    f"the fault agent on {self.where} exited ({state.get('ExitCode')}): {log}"
                )
            return bool(state.get("Running")) and "ready" in log

        wait_until(
            running,
            timeout_s,
            POLL_S,
            lambda: f"the fault agent on {self.where} did not start within {timeout_s:g} s",
            AgentError,
        )

    def channels(self) -> Mapping[str, ExecChannel]:
        return {self._node: ExecChannel(self._require(), self._node)}

    def describe(self) -> str:
        access = "privileged" if self.privileged else f"capabilities {', '.join(CAPABILITIES)}"
        return (
            f"container {self.name} ({access}, the host's PID and network namespaces) on "
            f"the engine at {self.where}, reached by exec through its API"
        )

    def remove(self) -> None:
        """Stop with a grace (the agent reverts what it holds), then remove; safe twice."""
        try:
            container = self.client.containers.get(self.name)
            container.stop(timeout=AGENT_GRACE_S)
            container.remove(force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            raise AgentError(f"cannot remove the fault agent on {self.where}: {exc}") from exc

    def _require(self) -> Container:
        if self._container is None:
            raise AgentError("the fault agent was not started")
        return self._container


# mypy checks the classes against the protocols here
_IS_A_FLEET: type[AgentFleet] = DockerAgents
_IS_SUPPORT: AgentSupport = AGENTS
