"""One fault agent pod on Kubernetes, reached by exec through the API server.

`ExecChannel.run(argv, timeout_s)` is one `connect_get_namespaced_pod_exec` over the client's
WebSocket stream: stdout and stderr read apart, the exit status read from the error channel's
Status. The client's `stream` swaps its ApiClient's `call_api` while it connects, so a channel
has an ApiClient of its own (the run's watches keep theirs) and runs one command at a time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL, STDERR_CHANNEL, STDOUT_CHANNEL
from websocket import WebSocketException

from harness.errors import AgentError
from harness.targets.kubernetes.cluster import API_ERRORS, describe_api_error

CONNECT_TIMEOUT_S = 15.0  # the exec's WebSocket connect and handshake (one call's bound else)


class ExecStream(Protocol):
    """What is used of the client's (untyped) WSClient."""

    def is_open(self) -> bool: ...

    def update(self, timeout: float | None = 0) -> None: ...

    def read_channel(self, channel: int, timeout: float = 0) -> str: ...

    def close(self) -> None: ...


class ExecChannel:
    """One agent pod (its container `container`), an AgentChannel."""

    def __init__(
        self, client: ApiClient, namespace: str, pod: str, node: str, container: str
    ) -> None:
        self._configuration = client.configuration
        self._namespace, self._pod, self._node = namespace, pod, node
        self._container = container
        self._lock = threading.Lock()
        self._core: CoreV1Api | None = None

    @property
    def node(self) -> str:
        return self._node

    @property
    def pod(self) -> str:
        return self._pod

    def run(self, argv: Sequence[str], timeout_s: float) -> str:
        return self.run_timed(argv, timeout_s)[0]

    def run_timed(self, argv: Sequence[str], timeout_s: float) -> tuple[str, int | None]:
        """stdout, and when its first bytes arrived here (None: it printed nothing)."""
        with self._lock:
            where = f"agent pod {self._namespace}/{self._pod} on node {self._node}"
            connection = self._open_within(argv, where, min(timeout_s, CONNECT_TIMEOUT_S))
            try:
                stdout, stderr, status, first_ns = _collect(connection, timeout_s, where)
            finally:
                connection.close()
        code, problem = exit_status(status)
        if code != 0:
            said = stderr.strip() or "(nothing on stderr)"
            raise AgentError(f"{' '.join(argv)!r} in {where}: {problem}: {said}")
        return stdout, first_ns

    def _open_within(self, argv: Sequence[str], where: str, timeout_s: float) -> ExecStream:
        """The exec's stream, connected on a thread of its own: the client's WebSocket connect
        and handshake have no timeout. A connect given up on closes its stream if it comes
        late, and the next one uses a fresh ApiClient (the late one still holds this one's)."""
        core = self._core = self._core or CoreV1Api(ApiClient(self._configuration))
        outcome: list[ExecStream | Exception] = []
        late = threading.Lock()  # held while either side decides the connection's fate
        given_up = threading.Event()

        def connect() -> None:
            try:
                opened: ExecStream | Exception = self._open(core, argv, where)
            except Exception as exc:  # carried to the caller
                opened = exc
            with late:
                if not given_up.is_set():
                    outcome.append(opened)
                elif not isinstance(opened, Exception):
                    opened.close()

        thread = threading.Thread(target=connect, name=f"exec-connect-{self._pod}", daemon=True)
        thread.start()
        thread.join(timeout_s)
        with late:
            if not outcome:
                given_up.set()
                self._core = None
                raise AgentError(f"the exec in {where} did not connect within {timeout_s:g} s")
        if isinstance(outcome[0], Exception):
            raise outcome[0]
        return outcome[0]

    def _open(self, core: CoreV1Api, argv: Sequence[str], where: str) -> ExecStream:
        try:
            connection: ExecStream = stream(
                core.connect_get_namespaced_pod_exec,
                self._pod,
                self._namespace,
                command=list(argv),
                container=self._container,
                stdin=False,
                stdout=True,
                stderr=True,
                tty=False,
                _preload_content=False,
            )
        except API_ERRORS as exc:
            raise AgentError(f"cannot exec in {where}: {describe_api_error(exc)}") from exc
        return connection


def _collect(
    connection: ExecStream, timeout_s: float, where: str
) -> tuple[str, str, str, int | None]:
    """stdout, stderr and the error channel's status, read until the exec's stream closes, and
    when stdout's first bytes arrived (the update wakes as they do)."""
    deadline = time.monotonic() + timeout_s
    out: list[str] = []
    err: list[str] = []
    status: list[str] = []
    first_ns: int | None = None
    try:
        while connection.is_open():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AgentError(f"the command in {where} did not end within {timeout_s:g} s")
            connection.update(timeout=min(remaining, 1.0))
            arrived_ns = time.time_ns()
            for channel, kept in ((STDOUT_CHANNEL, out), (STDERR_CHANNEL, err)):
                kept.append(connection.read_channel(channel))
            if first_ns is None and out[-1]:
                first_ns = arrived_ns
            status.append(connection.read_channel(ERROR_CHANNEL))
    except (WebSocketException, OSError) as exc:
        raise AgentError(f"the exec stream of {where} broke: {exc}") from exc
    return "".join(out), "".join(err), "".join(status), first_ns


def exit_status(status: str) -> tuple[int | None, str]:
    """The exit code in the error channel's Status (None: the command did not run), and why."""
    if not status.strip():
        return None, "the exec ended without an exit status (the stream was cut)"
    try:
        parsed = json.loads(status)
    except json.JSONDecodeError:
        return None, f"an unreadable exec status: {status[:200]!r}"
    if parsed.get("status") == "Success":
        return 0, ""
    message = str(parsed.get("message") or parsed.get("reason") or "failed")
    for cause in (parsed.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode" and str(cause.get("message", "")).isdigit():
            return int(cause["message"]), f"exit status {cause['message']}"
    return None, message
