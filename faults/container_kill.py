"""container_kill: the selected instances' main process dies at once.

Two modes, because engines treat them differently:
- `signal` (default): SIGKILL (or `signal`) sent to the container's main PID from the host, as a
  crash happens. The engine sees the process die and its restart policy applies.
- `api`: a kill through the engine's API (`docker kill`). Docker records that as a manual stop,
  so the restart policy does NOT apply and the container stays down. The report says so.
"""

from __future__ import annotations

import os
import signal as signals
from collections.abc import Sequence
from typing import Literal

from pydantic import Field, field_validator

from faults.base import Fault, FaultContext, FaultParams, RevertRecord
from harness import capabilities
from harness.errors import FaultError
from harness.targets.base import Instance, Target


class ContainerKillParams(FaultParams):
    mode: Literal["signal", "api"] = Field(
        default="signal",
        description="signal: a host-side kill of the main PID (a crash, restart policy applies);"
        " api: the engine's kill (a manual stop, restart policy does not apply)",
    )
    signal: str = Field(default="KILL", description="signal name, e.g. KILL or TERM")

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, value: str) -> str:
        name = value.upper().removeprefix("SIG")
        if not hasattr(signals, f"SIG{name}"):
            raise ValueError(f"unknown signal {value!r}; use a name like KILL, TERM or INT")
        return name


class ContainerKill(Fault[ContainerKillParams]):
    kind = "container_kill"
    summary = "kill the main process of the selected instances (a crash, or the engine's kill)"
    params_model = ContainerKillParams
    has_duration = False

    def needs(self) -> tuple[str, ...]:
        if self.params.mode == "api":
            return (capabilities.API_KILL,)
        return (capabilities.HOST_PROCESS,)

    def restart_policy(self, target: Target) -> bool | None:
        return self.params.mode == "signal" or target.api_stop_is_restarted

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        return RevertRecord(
            fault_id=fault_id,
            kind=self.kind,
            targets=tuple(i.name for i in instances),
            mechanism="host signal to PID" if self.params.mode == "signal" else "engine API kill",
            data={"pids": {i.name: i.pid for i in instances}, "signal": self.params.signal},
        )

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        current = {i.name: i for i in ctx.target.instances()}
        for name in record.targets:
            instance = current.get(name)
            if instance is None or not instance.running:
                raise FaultError(f"cannot kill {name}: it is not running")
            ctx.mark_action()
            if self.params.mode == "api":
                ctx.target.kill_instance(instance, self.params.signal)
            else:
                _kill_pid(instance, self.params.signal)


def _kill_pid(instance: Instance, signal_name: str) -> None:
    try:
        os.kill(instance.pid, getattr(signals, f"SIG{signal_name}"))
    except ProcessLookupError:
        pass  # it died on its own between the lookup and the kill: the effect is the same
    except PermissionError as exc:
        raise FaultError(
            f"cannot signal PID {instance.pid} of {instance.name}: permission denied "
            "(host-side faults need root)"
        ) from exc
