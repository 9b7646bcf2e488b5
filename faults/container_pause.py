"""container_pause: freeze the selected instances (cgroup freezer) for the fault's duration.

The process hangs but its connections stay open: clients see timeouts, not refusals, which is
what a stuck process or a long GC pause looks like from outside.
"""

from __future__ import annotations

from collections.abc import Sequence

from faults.base import Fault, FaultContext, FaultParams, RevertRecord
from faults.engine_actions import engine_record, recorded_instances
from harness import capabilities
from harness.targets.base import Instance


class ContainerPause(Fault[FaultParams]):
    kind = "container_pause"
    requires = (capabilities.API_PAUSE,)
    summary = "freeze the selected instances (connections stay open, nothing answers)"

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        return engine_record(fault_id, self.kind, instances)

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        for instance in recorded_instances(ctx, record):
            ctx.mark_action()
            ctx.target.pause_instance(instance)

    @classmethod
    def revert(cls, ctx: FaultContext, record: RevertRecord) -> None:
        for instance in recorded_instances(ctx, record):
            if instance.state == "paused":
                ctx.target.unpause_instance(instance)
