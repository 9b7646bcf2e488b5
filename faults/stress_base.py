"""What cpu_stress and memory_stress share: stress-ng started inside each instance's cgroups.

A subclass names its cgroup controller and builds stress-ng's arguments for one instance;
planning, starting and stopping are the same for both (see faults/mechanisms/stress.py).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import ClassVar, TypeVar

from pydantic import Field

from faults.base import Fault, FaultContext, FaultParams, Mechanism, RevertRecord
from faults.mechanisms import stress
from harness import capabilities
from harness.targets.base import Instance
from harness.units import Seconds


class StressParams(FaultParams):
    safety_timeout: Seconds = Field(
        default=600.0,
        gt=0,
        description="stress-ng exits on its own after this long even if the harness dies;"
        " keep it above the fault's duration",
    )

    def timeout_arg(self) -> list[str]:
        return ["--timeout", f"{max(1, round(self.safety_timeout))}s"]


SP = TypeVar("SP", bound=StressParams)


class StressFault(Fault[SP]):
    requires = (capabilities.HOST_PROCESS,)
    controller: ClassVar[str]

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        return [stress.stress_mechanism(cls.controller)]

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        return stress.stress_record(ctx, fault_id, self.kind, instances, self.stress_args)

    @abstractmethod
    def stress_args(self, instance: Instance) -> list[str]:
        """stress-ng's arguments for one instance."""

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        ctx.mark_action()
        stress.start_all(record)

    @classmethod
    def revert(cls, ctx: FaultContext, record: RevertRecord) -> None:
        stress.stop_all(record)
