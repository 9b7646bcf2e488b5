"""memory_stress: allocate and hold memory inside the selected instances' own cgroups.

stress-ng joins each container's cgroups before it forks (see faults/mechanisms/stress.py), so
what it holds is charged to the container: its usage rises by `size` (plus stress-ng's own
few MiB), and the memory limit applies. One vm worker touches every page once, then holds
them without burning CPU (`--vm-hang 0`).

Past the limit, the kernel's OOM killer acts inside the container's cgroup and the engine emits
an `oom` event each time. It picks the largest process, normally the stress worker; stress-ng's
parent then starts the worker again (its default, without --oomable), which allocates again:
the pressure stays on for the whole fault, and the event recorder logs every `oom` and whatever
the orchestrator did (a restart if the OOM killer took the container's main process instead).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from faults.mechanisms import stress
from faults.stress_base import StressFault, StressParams
from harness.errors import FaultError
from harness.targets.base import Instance
from harness.units import Bytes


class MemoryStressParams(StressParams):
    size: Bytes | None = Field(default=None, gt=0, description="bytes to hold, e.g. 64Mi")
    percent: float | None = Field(
        default=None,
        gt=0,
        le=1000,
        description="or: percent of the container's memory limit (over 100 reaches the OOM killer)",
    )

    @model_validator(mode="after")
    def _one_amount(self) -> MemoryStressParams:
        if (self.size is None) == (self.percent is None):
            raise ValueError("give exactly one of size (e.g. 64Mi) or percent (of the limit)")
        return self


class MemoryStress(StressFault[MemoryStressParams]):
    kind = "memory_stress"
    summary = "hold memory inside the selected instances' cgroups (their memory limit applies)"
    params_model = MemoryStressParams
    controller = "memory"

    def bytes_for(self, instance: Instance) -> int:
        """How much to hold in `instance`: the size, or the percent of its memory limit."""
        p = self.params
        if p.size is not None:
            return p.size
        assert p.percent is not None
        limit = stress.memory_limit(instance.pid)
        if limit is None:
            raise FaultError(
                f"{instance.name} has no memory limit, so percent={p.percent:g} means nothing;"
                " give size instead, or set workload.resources.memory"
            )
        return int(limit * p.percent / 100)

    def stress_args(self, instance: Instance) -> list[str]:
        return [
            "--vm", "1",
            "--vm-bytes", f"{self.bytes_for(instance)}",
            "--vm-hang", "0",
            *self.params.timeout_arg(),
        ]  # fmt: skip
