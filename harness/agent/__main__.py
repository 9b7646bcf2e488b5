"""`python -m harness.agent serve` (the container's main process), `call REQUEST` (one action)
and `probe DIR` (the probe process a probe_start spawns, harness.agent.probing).

serve: reverts each held fault at its lease's deadline, and everything it holds when it is
stopped (SIGTERM: the pod deleted, the container removed), stops every probe process, exits;
on a thread of its own it watches the containers it was asked to for their exit
(harness.agent.watching).
call: runs one request and prints the reply as one JSON line; exit 0 whenever a reply was
printed, even one that says the fault failed, or that the request's protocol is not ours.
A probe read (once a second per node) is answered before pydantic and the fault modules are
imported (harness.agent.wire says why); everything else imports what it needs when it runs.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.agent import probe_log
from harness.agent.wire import PROTOCOL_VERSION, node_name, state_dir

if TYPE_CHECKING:
    from harness.agent.protocol import Body, Reply
    from harness.agent.undo import UndoLog

POLL_S = 0.25
USAGE = "usage: python -m harness.agent serve | call REQUEST_JSON | probe DIR"


def _say(message: str) -> None:
    print(f"chaos-agent {node_name()}: {message}", file=sys.stderr, flush=True)


def _revert_due(log: UndoLog, directory: Path, everything: bool) -> None:
    from harness.agent import actions
    from harness.errors import HarnessError

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
    from harness.agent import probing
    from harness.agent.undo import UndoLog
    from harness.agent.watching import Watcher

    directory = state_dir()
    log = UndoLog(directory)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    watcher = threading.Thread(
        target=Watcher(directory).run, args=(stop,), name="container-exits", daemon=True
    )
    watcher.start()
    _say(f"ready, state in {directory}")
    while not stop.wait(POLL_S):
        _revert_due(log, directory, everything=False)
    _revert_due(log, directory, everything=True)
    watcher.join(timeout=1.0)
    for run_id in probing.stop_all(directory):
        _say(f"stopped the probes of {run_id}")
    _say("stopped")
    return 0


def _answer(body: Body, directory: Path) -> Reply:
    from harness.agent import actions, probing, watching
    from harness.agent.protocol import (
        ApplyRequest,
        InfoRequest,
        InstantsRequest,
        ProbeReadRequest,
        ProbeStartRequest,
        ProbeStopRequest,
        Reply,
    )
    from harness.agent.undo import UndoLog
    from harness.errors import HarnessError

    try:
        if isinstance(body, ProbeStartRequest):
            return probing.start(body, directory, node_name())
        if isinstance(body, ProbeReadRequest):
            read = probe_log.read_reply(body.run_id, body.offset, directory, node_name())
            return Reply.model_validate(read)
        if isinstance(body, ProbeStopRequest):
            return probing.stop(body, directory, node_name())
        if isinstance(body, InstantsRequest):
            return watching.instants(body, directory, node_name())
        log = UndoLog(directory)
        if isinstance(body, InfoRequest):
            return actions.info(body, log)
        if isinstance(body, ApplyRequest):
            return actions.apply(body, directory, log)
        return actions.revert(body, directory, log)
    except (HarnessError, OSError, KeyError) as exc:
        return actions.failed(exc)


def _parsed(raw: str) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return None  # not JSON: the model's parse says so


def _refusal(error: str) -> str:
    from harness.agent.protocol import Reply

    return Reply(ok=False, error=error, node=node_name(), time_ns=time.time_ns()).model_dump_json()


def _full_reply(raw: str) -> str:
    from pydantic import ValidationError

    from harness.agent.protocol import Request

    try:
        request = Request.model_validate_json(raw)
    except ValidationError as exc:
        return _refusal(f"not a request this agent understands: {exc}")
    return _answer(request.body, state_dir()).model_dump_json()


def call(raw: str) -> int:
    parsed = _parsed(raw)
    # the version first (none said: ours, the model's default): another one may not parse
    version = parsed.get("version", PROTOCOL_VERSION) if isinstance(parsed, dict) else None
    body = parsed.get("body") if isinstance(parsed, dict) else None
    if parsed is not None and version != PROTOCOL_VERSION:
        reply = _refusal(
            f"the harness speaks protocol {version}, this agent {PROTOCOL_VERSION}: use an "
            "agent image built from the harness's own version (`harness agent build`)"
        )
    elif isinstance(body, dict) and probe_log.is_read(body):
        answer = probe_log.read_reply(
            body["run_id"], body.get("offset", 0), state_dir(), node_name()
        )
        reply = json.dumps(answer, separators=(",", ":"))
    else:
        reply = _full_reply(raw)
    print(reply, flush=True)
    return 0


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["serve"] and len(argv) == 1:
        return serve()
    if argv[:1] == ["call"] and len(argv) == 2:
        return call(argv[1])
    if argv[:1] == ["probe"] and len(argv) == 2:
        from harness.agent import probing

        return probing.run_probes(Path(argv[1]))
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
