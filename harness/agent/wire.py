"""What the agent's program needs before it knows which request it serves, standard library only.

The protocol's version, the commands the harness runs in the agent's container, where the
agent keeps its files, the node's name. A probe read (once a second per node) is answered
with these and harness.agent.probe_log alone: without pydantic's import, a `call` costs a
fifth of the CPU (docs/AGENT.md).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

PROTOCOL_VERSION = 3
SERVE_ARGV = ("python3", "-m", "harness.agent", "serve")
CALL_ARGV = ("python3", "-m", "harness.agent", "call")
# the agent's clock, read by the lightest process there is (no site, no imports): its round
# trip bounds the offset's error, so the read must not wait for the agent's imports
CLOCK_ARGV = ("python3", "-S", "-c", "import time; print(time.time_ns())")
STATE_DIR = "/var/lib/chaos-agent"  # inside the agent's container: its undo log and run files
STATE_ENV = "CHAOS_AGENT_STATE"
NODE_ENV = "CHAOS_AGENT_NODE"  # the node's name, from the orchestrator (downward API)


def node_name() -> str:
    return os.environ.get(NODE_ENV) or socket.gethostname()


def state_dir() -> Path:
    return Path(os.environ.get(STATE_ENV) or STATE_DIR)


def safe_run_id(run_id: str) -> bool:
    """Whether `run_id` names one directory under the agent's runs/ (no path of its own)."""
    return run_id not in ("", ".", "..") and "/" not in run_id and "\0" not in run_id
