"""The interface every fault kind implements.

A fault kind is one module in `faults/` with one `Fault` subclass and one line in
`faults/registry.py` (or an entry point in the `chaos_harness.faults` group for third parties).

Life of one fault instance:
    check(target)            before the run: what is missing on this machine (kernel, tool)
    plan(ctx, instances)     what will change, as a serialisable revert record
    -- the runner writes the record to the run's undo log (faults.jsonl) --
    apply(ctx, record)       make the change
    revert(ctx, record)      undo it from the record alone; idempotent, safe after a crash
"""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict

from harness.capabilities import NODES
from harness.errors import FaultError
from harness.targets.base import Instance, Target

JsonValue = Any  # what json.dumps accepts; only at the serialisation edge


class FaultParams(BaseModel):
    """Kind-specific parameters, given inline in the scenario's fault entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Mechanism:
    """One way to realise a fault, and whether it works on this machine."""

    name: str
    available: bool
    detail: str = ""


class ActionClock:
    """The instant a fault acted: the first signal sent, rule inserted or process started.

    A fault calls `ctx.mark_action()` right before the change that users can feel, after its
    preparation (listing containers, starting a proxy), so t0 is not stamped early by the
    preparation's API round trips. The runner gives every injection a fresh clock.
    """

    def __init__(self) -> None:
        self.first_ns: int | None = None

    def mark(self) -> None:
        if self.first_ns is None:
            self.first_ns = time.time_ns()

    def mark_at(self, time_ns: int) -> None:
        """An action stamped elsewhere (the fault agent's, on the harness's clock)."""
        self.first_ns = time_ns if self.first_ns is None else min(self.first_ns, time_ns)


@dataclass(frozen=True)
class FaultContext:
    """What a fault may use while injecting or reverting."""

    target: Target
    run_id: str
    run_dir: Path
    rng: random.Random
    clock: ActionClock = field(default_factory=ActionClock)
    # where host-side faults go when this machine may not act (the fault agent); None: here
    relay: FaultRelay | None = None

    def mark_action(self) -> None:
        """Record now as the instant of the fault's action (the first call wins)."""
        self.clock.mark()


@dataclass(frozen=True)
class RevertRecord:
    """What a fault changed, written to disk before the change (crash-safe undo log)."""

    fault_id: str
    kind: str
    targets: tuple[str, ...]
    mechanism: str
    data: Mapping[str, JsonValue] = field(default_factory=dict)

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "fault_id": self.fault_id,
            "kind": self.kind,
            "targets": list(self.targets),
            "mechanism": self.mechanism,
            "data": dict(self.data),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, JsonValue]) -> RevertRecord:
        return cls(
            fault_id=str(raw["fault_id"]),
            kind=str(raw["kind"]),
            targets=tuple(raw.get("targets", ())),
            mechanism=str(raw.get("mechanism", "")),
            data=dict(raw.get("data", {})),
        )


P = TypeVar("P", bound=FaultParams)


class Fault(ABC, Generic[P]):
    """One fault kind, typed by its own parameters' model (`class Latency(Fault[LatencyParams])`).
    Subclasses set the class attributes and implement plan/apply/revert."""

    kind: ClassVar[str]
    summary: ClassVar[str]
    params_model: ClassVar[type[FaultParams]] = FaultParams
    # True: the fault lasts `duration` and is reverted; False: a one-off event (a kill).
    has_duration: ClassVar[bool] = True
    # None when the question does not arise; for kills: does the engine's restart policy apply?
    restart_policy_applies: ClassVar[bool | None] = None
    # What it needs from the target (harness.capabilities), in the order a refusal names them;
    # a target that does not provide one refuses the fault before the run.
    requires: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: P) -> None:
        self.params: P = params

    @property
    def mode(self) -> str:
        """A short name of the variant chosen by the params (e.g. 'signal' or 'api')."""
        return str(getattr(self.params, "mode", "default"))

    def needs(self) -> tuple[str, ...]:
        """The capabilities this fault, with its params, needs from the target."""
        return self.requires

    @classmethod
    def needs_nodes(cls) -> bool:
        """Whether it acts on whole nodes of a multi-node lab (node_down, ...)."""
        return NODES in cls.requires

    def acts_on(self, everyone: Sequence[Instance], chosen: Sequence[Instance]) -> list[str]:
        """The names of the instances whose process or namespace the fault changes: the
        chosen ones, unless its parameters name others (a partition's groups). The fault
        agents are asked by these instances' nodes."""
        del everyone
        return [i.name for i in chosen]

    def heals_during_fault(self, target: Target) -> bool:
        """Whether the orchestrator is expected to restore service while the fault is on.

        False for most faults (nothing heals a partitioned instance until the revert); True
        where the orchestrator replaces what the fault took (a lost node's tasks rescheduled).
        The analysis then looks for recovery from detection on, not only after the revert.
        """
        del target
        return False

    def restart_policy(self, target: Target) -> bool | None:
        """Whether the orchestrator's restart policy brings the instance back on `target`."""
        del target
        return self.restart_policy_applies

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        """The mechanisms this kind can use, and which work here (for `harness faults`)."""
        return [Mechanism(name="default", available=True)]

    def check(self) -> list[str]:
        """Problems that would stop this fault from working on this machine (empty: fine)."""
        mechanisms = self.mechanisms()
        if any(m.available for m in mechanisms):
            return []
        missing = "; ".join(f"{m.name}: {m.detail}" for m in mechanisms)
        return [f"no way to inject {self.kind} works on this machine ({missing})"]

    def check_storage(self, data_root: Path) -> list[str]:
        """Problems given the run's engine, whose container storage is at `data_root` on this
        host (a target calls this before the run, from its scenario_problems)."""
        del data_root
        return []

    @abstractmethod
    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        """Decide what will change; nothing is changed yet."""

    @abstractmethod
    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        """Make the change described by the record."""

    @classmethod
    def revert(cls, ctx: FaultContext, record: RevertRecord) -> None:
        """Undo the change from the record alone (a crashed run has only the record).

        Idempotent: safe twice, and safe when the instance is gone. One-off faults have
        nothing to undo.
        """
        del ctx, record


AnyFault: TypeAlias = Fault[Any]  # a fault of any kind (the runner, the registry, the loader)


RELAYED = "relayed_to"  # a record's data key: {node: [instance names]} the agents hold


class FaultRelay(Protocol):
    """Host-side faults done elsewhere (harness.agent): the agent plans, applies and keeps
    the undo record on its node; the harness's record only says where it went."""

    def takes(self, fault: AnyFault) -> bool:
        """Whether `fault` goes through the relay (it acts on a process or a namespace)."""
        ...

    def plan(
        self,
        fault: AnyFault,
        ctx: FaultContext,
        fault_id: str,
        instances: Sequence[Instance],
        lease_s: float | None,
    ) -> RevertRecord: ...

    def apply(self, fault: AnyFault, ctx: FaultContext, record: RevertRecord) -> None: ...

    def revert(self, ctx: FaultContext, record: RevertRecord) -> None: ...


def plan_fault(
    fault: AnyFault,
    ctx: FaultContext,
    fault_id: str,
    instances: Sequence[Instance],
    lease_s: float | None,
) -> RevertRecord:
    """The fault's record: planned here, or by the relay when it takes the fault."""
    if ctx.relay is not None and ctx.relay.takes(fault):
        return ctx.relay.plan(fault, ctx, fault_id, instances, lease_s)
    return fault.plan(ctx, fault_id, instances)


def apply_fault(fault: AnyFault, ctx: FaultContext, record: RevertRecord) -> None:
    if RELAYED not in record.data:
        fault.apply(ctx, record)
    elif ctx.relay is None:
        raise FaultError(f"{record.fault_id} was planned for the fault agent, and none is here")
    else:
        ctx.relay.apply(fault, ctx, record)


Reverter = Callable[[FaultContext, RevertRecord], None]  # a fault kind's `revert`


def revert_fault(revert: Reverter, ctx: FaultContext, record: RevertRecord) -> bool:
    """Undo `record` with the kind's `revert` here, or through the relay; False when neither
    can (a relayed record without its relay: the agent reverts it at its lease, or when it
    is removed)."""
    if RELAYED not in record.data:
        revert(ctx, record)
        return True
    if ctx.relay is None:
        return False
    ctx.relay.revert(ctx, record)
    return True
