"""What the agent does for one request: plan and apply a fault, revert one, say the time.

The fault modules are the harness's own, run against a NodeTarget (the run's instances, PIDs
found on this node), so a fault does the same thing here as from the harness's host.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path

from faults.base import AnyFault, FaultContext
from faults.registry import fault_kind
from harness.agent.node import NodeTarget
from harness.agent.protocol import AgentInstance, ApplyRequest, InfoRequest, Reply, RevertRequest
from harness.agent.undo import Held, UndoLog
from harness.agent.wire import node_name
from harness.errors import HarnessError

GRACE_NS = 1_500_000_000  # the harness reverts at the deadline; the agent this much later


def _context(
    state_dir: Path, run_id: str, instances: Sequence[AgentInstance], seed: int
) -> FaultContext:
    run_dir = state_dir / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    return FaultContext(NodeTarget(run_id, instances), run_id, run_dir, random.Random(seed))


def _fault(kind: str, params: dict[str, object]) -> AnyFault:
    cls = fault_kind(kind)
    return cls(cls.params_model.model_validate(params))


def info(_request: InfoRequest, log: UndoLog) -> Reply:
    held = [h.record.fault_id for h in log.held()]
    return Reply(ok=True, node=node_name(), time_ns=time.time_ns(), outstanding=held)


def apply(request: ApplyRequest, state_dir: Path, log: UndoLog) -> Reply:
    ctx = _context(state_dir, request.run_id, request.instances, request.seed)
    fault = _fault(request.kind, request.params)
    chosen = [i for i in ctx.target.instances() if i.name in set(request.targets)]
    with log.locked():
        record = fault.plan(ctx, request.fault_id, chosen)
        if fault.has_duration:
            deadline = None
            if request.lease_s is not None:
                deadline = time.time_ns() + int(request.lease_s * 1e9) + GRACE_NS
            log.hold(Held(request.run_id, request.kind, record, request.instances, deadline))
        started_ns = time.time_ns()
        fault.apply(ctx, record)
    return Reply(
        ok=True,
        node=node_name(),
        time_ns=time.time_ns(),
        action_ns=_acted(ctx, started_ns),
        mechanism=record.mechanism,
    )


def _acted(ctx: FaultContext, started_ns: int) -> int:
    """The fault's own mark, else the instant the agent began its apply or revert: never the
    harness's call, which began an exec and an interpreter earlier (0.2 to 0.6 s)."""
    return started_ns if ctx.clock.first_ns is None else ctx.clock.first_ns


def revert(request: RevertRequest, state_dir: Path, log: UndoLog) -> Reply:
    with log.locked():
        held = log.get(request.run_id, request.fault_id)
        if held is None:  # reverted already (its lease, or a second call): nothing to do
            return Reply(ok=True, node=node_name(), time_ns=time.time_ns())
        started_ns = time.time_ns()
        ctx = revert_held(held, state_dir, log, request.instances)
    return Reply(
        ok=True, node=node_name(), time_ns=time.time_ns(), action_ns=_acted(ctx, started_ns)
    )


def revert_held(
    held: Held, state_dir: Path, log: UndoLog, instances: Sequence[AgentInstance] | None = None
) -> FaultContext:
    """Undo one held fault (the caller holds the lock) and forget it."""
    ctx = _context(state_dir, held.run_id, instances or held.instances, 0)
    fault_kind(held.kind).revert(ctx, held.record)
    log.release(held.run_id, held.record.fault_id)
    return ctx


def failed(exc: HarnessError | OSError | KeyError) -> Reply:
    return Reply(ok=False, error=str(exc), node=node_name(), time_ns=time.time_ns())
