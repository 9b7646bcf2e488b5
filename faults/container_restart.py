"""container_restart: restart the selected instances through the engine (a one-off event).

The engine stops the container gracefully (SIGTERM, SIGKILL after `timeout`) and starts it
again at once, as a rolling restart or an operator's `docker restart` would.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from faults.base import Fault, FaultContext, FaultParams, RevertRecord
from faults.engine_actions import engine_record, recorded_instances
from harness import capabilities
from harness.targets.base import Instance
from harness.units import Seconds


class ContainerRestartParams(FaultParams):
    timeout: Seconds = Field(default=10.0, ge=0, description="seconds between SIGTERM and SIGKILL")


class ContainerRestart(Fault[ContainerRestartParams]):
    kind = "container_restart"
    requires = (capabilities.API_RESTART,)
    summary = "restart the selected instances through the engine (stop, then start at once)"
    params_model = ContainerRestartParams
    has_duration = False

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        assert isinstance(self.params, ContainerRestartParams)
        return engine_record(fault_id, self.kind, instances, timeout_s=self.params.timeout)

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        for instance in recorded_instances(ctx, record):
            ctx.mark_action()
            ctx.target.restart_instance(instance, float(record.data["timeout_s"]))
