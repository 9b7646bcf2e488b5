"""The exec channel's connect has a bound: an API server that takes the TCP connection but never
answers the WebSocket handshake (a listening socket this test never reads) is an AgentError
within the call's timeout, not a harness that waits forever."""

from __future__ import annotations

import socket
import time

import pytest
from kubernetes.client import ApiClient, Configuration

from harness.agent.kube_exec import ExecChannel
from harness.errors import AgentError


def test_an_exec_whose_connect_never_completes_fails_within_its_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts the TCP connection; nobody answers it
        configuration = Configuration(host=f"http://127.0.0.1:{silent.getsockname()[1]}")
        channel = ExecChannel(ApiClient(configuration), "ns", "agent-pod", "n1", "agent")
        began = time.monotonic()
        with pytest.raises(AgentError, match="did not connect within 1 s"):
            channel.run(["true"], timeout_s=1.0)
        assert time.monotonic() - began < 3.0
