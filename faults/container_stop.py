"""container_stop: a graceful stop (SIGTERM, then SIGKILL after `timeout`), started again at
the end of the fault.

Docker treats a stop through its API as a manual stop: the restart policy does not bring the
container back, so the fault's revert starts it (as an operator would).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from faults.base import Fault, FaultContext, FaultParams, RevertRecord
from faults.engine_actions import engine_record, recorded_instances
from harness import capabilities
from harness.targets.base import Instance, Target
from harness.units import Seconds


class ContainerStopParams(FaultParams):
    timeout: Seconds = Field(
        default=10.0, ge=0, description="seconds between SIGTERM and SIGKILL (e.g. 10s)"
    )


class ContainerStop(Fault[ContainerStopParams]):
    kind = "container_stop"
    requires = (capabilities.API_STOP,)
    summary = "stop the selected instances gracefully; start them again at the end"
    params_model = ContainerStopParams

    def restart_policy(self, target: Target) -> bool | None:
        return target.api_stop_is_restarted

    def heals_during_fault(self, target: Target) -> bool:
        return target.api_stop_is_restarted  # Swarm replaces a stopped task at once

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        assert isinstance(self.params, ContainerStopParams)
        return engine_record(fault_id, self.kind, instances, timeout_s=self.params.timeout)

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        for instance in recorded_instances(ctx, record):
            ctx.mark_action()
            ctx.target.stop_instance(instance, float(record.data["timeout_s"]))

    @classmethod
    def revert(cls, ctx: FaultContext, record: RevertRecord) -> None:
        for instance in recorded_instances(ctx, record):
            if instance.state not in ("running", "restarting"):
                ctx.target.start_instance(instance)
