"""`python -m harness.agent serve` (the container's main process), `call REQUEST` (one action)
and `probe DIR` (the probe process a probe_start spawns, harness.agent.probing).

serve: reverts each held fault at its lease's deadline, and everything it holds when it is
stopped (SIGTERM: the pod deleted, the container removed), stops every probe process, exits.
call: runs one request and prints the reply as one JSON line; exit 0 whenever a reply was
printed, even one that says the fault failed, or that the request's protocol is not ours.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from harness.agent import actions, probing
from harness.agent.protocol import (
    PROTOCOL_VERSION,
    STATE_DIR,
    ApplyRequest,
    Body,
    InfoRequest,
    ProbeReadRequest,
    ProbeStartRequest,
    ProbeStopRequest,
    Reply,
    Request,
)
from harness.agent.undo import UndoLog
from harness.errors import HarnessError

STATE_ENV = "CHAOS_AGENT_STATE"
POLL_S = 0.25
USAGE = "usage: python -m harness.agent serve | call REQUEST_JSON | probe DIR"


def state_dir() -> Path:
    return Path(os.environ.get(STATE_ENV) or STATE_DIR)


def _say(message: str) -> None:
    print(f"chaos-agent {actions.node_name()}: {message}", file=sys.stderr, flush=True)


def _revert_due(log: UndoLog, directory: Path, everything: bool) -> None:
    now = time.time_ns()
    with log.locked():
        for held in log.held():
            due = held.deadline_ns is not None and now >= held.deadline_ns
            if not (everything or due):
                continue
            try:
                actions.revert_held(held, directory, log)
                _say(f"reverted {held.run_id}/{held.record.fault_id} ({held.kind}) by itself")
            except (HarnessError, OSError, KeyError) as exc:
                _say(f"could not revert {held.record.fault_id}: {exc}")


def serve() -> int:
    directory = state_dir()
    log = UndoLog(directory)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    _say(f"ready, state in {directory}")
    while not stop.wait(POLL_S):
        _revert_due(log, directory, everything=False)
    _revert_due(log, directory, everything=True)
    for run_id in probing.stop_all(directory):
        _say(f"stopped the probes of {run_id}")
    _say("stopped")
    return 0


def _answer(body: Body, directory: Path) -> Reply:
    try:
        if isinstance(body, ProbeStartRequest):
            return probing.start(body, directory, actions.node_name())
        if isinstance(body, ProbeReadRequest):
            return probing.read(body, directory, actions.node_name())
        if isinstance(body, ProbeStopRequest):
            return probing.stop(body, directory, actions.node_name())
        log = UndoLog(directory)
        if isinstance(body, InfoRequest):
            return actions.info(body, log)
        if isinstance(body, ApplyRequest):
            return actions.apply(body, directory, log)
        return actions.revert(body, directory, log)
    except (HarnessError, OSError, KeyError) as exc:
        return actions.failed(exc)


def _version_of(raw: str) -> object:
    """The request's `version` (none said: ours, the model's default), read before the rest:
    another version's body may not parse."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return PROTOCOL_VERSION  # not JSON: the model's parse says so
    return parsed.get("version", PROTOCOL_VERSION) if isinstance(parsed, dict) else None


def call(raw: str) -> int:
    version = _version_of(raw)
    if version != PROTOCOL_VERSION:
        reply = Reply(
            ok=False,
            error=f"the harness speaks protocol {version}, this agent {PROTOCOL_VERSION}: "
            "use an agent image built from the harness's own version (`harness agent build`)",
        )
    else:
        try:
            request = Request.model_validate_json(raw)
        except ValidationError as exc:
            reply = Reply(ok=False, error=f"not a request this agent understands: {exc}")
        else:
            reply = _answer(request.body, state_dir())
    print(reply.model_dump_json(), flush=True)
    return 0


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["serve"] and len(argv) == 1:
        return serve()
    if argv[:1] == ["call"] and len(argv) == 2:
        return call(argv[1])
    if argv[:1] == ["probe"] and len(argv) == 2:
        return probing.run_probes(Path(argv[1]))
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
