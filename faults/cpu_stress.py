"""cpu_stress: burn CPU inside the selected instances' own cgroups for the fault's duration.

stress-ng runs on the host but joins each container's cgroups before it forks its workers (see
harness/stress.py), so the container's CPU limit caps it and the engine's stats count it as the
container's own load: at `cpus: 0.5`, one worker at load 100 takes the container's half core,
and the workload competes with it for that share, as it would with a busy neighbour thread.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from faults.base import Fault, FaultContext, FaultParams, Mechanism, RevertRecord
from harness import stress
from harness.targets.base import Instance
from harness.units import Seconds


class CpuStressParams(FaultParams):
    workers: int = Field(default=1, ge=1, le=64, description="stress-ng CPU workers per instance")
    load: int = Field(
        default=100, ge=1, le=100, description="percent of a CPU each worker tries to use"
    )
    safety_timeout: Seconds = Field(
        default=600.0,
        gt=0,
        description="stress-ng exits on its own after this long even if the harness dies;"
        " keep it above the fault's duration",
    )


class CpuStress(Fault):
    kind = "cpu_stress"
    summary = "burn CPU inside the selected instances' cgroups (their CPU limit applies)"
    params_model = CpuStressParams

    @property
    def params_(self) -> CpuStressParams:
        assert isinstance(self.params, CpuStressParams)
        return self.params

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        return [stress.stress_mechanism("cpu")]

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        return stress.stress_record(ctx, fault_id, self.kind, instances, self._args)

    def _args(self, _instance: Instance) -> list[str]:
        p = self.params_
        return [
            "--cpu", str(p.workers),
            "--cpu-load", str(p.load),
            "--timeout", f"{max(1, round(p.safety_timeout))}s",
        ]  # fmt: skip

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        stress.start_all(record)

    @classmethod
    def revert(cls, ctx: FaultContext, record: RevertRecord) -> None:
        stress.stop_all(record)
