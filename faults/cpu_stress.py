"""cpu_stress: burn CPU inside the selected instances' own cgroups for the fault's duration.

stress-ng runs on the host but joins each container's cgroups before it forks its workers
(see faults/mechanisms/stress.py), so the container's CPU limit caps it and the engine's stats
count it as the container's own load: at `cpus: 0.5`, one worker at load 100 takes the
container's half core, and the workload competes with it for that share, as it would with a
busy neighbour thread.
"""

from __future__ import annotations

from pydantic import Field

from faults.stress_base import StressFault, StressParams
from harness.targets.base import Instance


class CpuStressParams(StressParams):
    workers: int = Field(default=1, ge=1, le=64, description="stress-ng CPU workers per instance")
    load: int = Field(
        default=100, ge=1, le=100, description="percent of a CPU each worker tries to use"
    )


class CpuStress(StressFault[CpuStressParams]):
    kind = "cpu_stress"
    summary = "burn CPU inside the selected instances' cgroups (their CPU limit applies)"
    params_model = CpuStressParams
    controller = "cpu"

    def stress_args(self, _instance: Instance) -> list[str]:
        p = self.params
        return [
            "--cpu", str(p.workers),
            "--cpu-load", str(p.load),
            *p.timeout_arg(),
        ]  # fmt: skip
