"""Labs: multi-node clusters built on this one machine, one package per kind
(`harness/labs/<kind>/`), with the host plumbing they share (host, nodes).

A lab kind registers here as a target kind does in harness.targets: its package's `LAB` names
its commands (what `harness lab` and `harness cleanup` ask of it, `LabCommands`) and its nodes
(what node faults act on), and a target kind that runs on it names it (TargetKind.lab). The CLI
and cleanup loop over the registered kinds; neither names one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from harness.errors import FaultError, HarnessError
from harness.labs.nodes import LabNodes
from harness.specs import TargetSpec
from harness.targets import target_kind
from harness.targets.base import owner_alive

ENTRY_POINT_GROUP = "chaos_harness.labs"
BUILTIN_LABS: dict[str, str] = {
    "swarm": "harness.labs.swarm:LAB",
    "kubernetes": "harness.labs.kubernetes:LAB",
    "docker": "harness.labs.docker:LAB",
}


Progress = Callable[[str], None]


@dataclass(frozen=True)
class LabRequest:
    """What `harness lab up` asks for; each kind refuses what it cannot do (`problems`)."""

    nodes: int = 3
    managers: int = 1
    heartbeat_s: float = 5.0
    control_plane_args: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    images: tuple[str, ...] = ()


@dataclass(frozen=True)
class StatusView:
    """A lab's state for `harness lab status`: lines, then one table (Rich markup allowed)."""

    lines: list[str]
    columns: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]


class LabCommands(Protocol):
    """What `harness lab` and `harness cleanup` ask of a lab kind."""

    def build(self, progress: Progress) -> Path | None:
        """Build what the lab needs (None: it needs no build); where the binaries are."""
        ...

    def problems(self, request: LabRequest) -> list[str]:
        """What in `request` this kind cannot do, each saying what to ask instead."""
        ...

    def up(self, request: LabRequest, progress: Progress) -> list[str]:
        """Bring the lab up; lines to print, the last one what a scenario's target needs."""
        ...

    def status(self) -> StatusView | None:
        """The lab's state, None when there is no lab of this kind."""
        ...

    def down(self) -> list[str]:
        """Remove every node, network and process of the lab; what was removed."""
        ...

    def target_if_up(self) -> TargetSpec | None:
        """The target spec that reaches the lab while it is up (cleanup sweeps it)."""
        ...

    def take_down_if_orphaned(self) -> list[str] | None:
        """Take the lab down when its builder died half-way, or it was built for a run whose
        harness is gone and no live run uses it; what was removed, None when left alone."""
        ...


def orphaned(status: str, creator: str | None, for_run: bool) -> bool:
    """A lab whose builder is dead and that was never finished, or was made for a run."""
    if creator is None or owner_alive(creator):
        return False  # a lab of an older harness, or its builder still at work
    return status != "up" or for_run


class LabRecord(Protocol):
    """What a lab's state file says of who made it and for what."""

    @property
    def status(self) -> str: ...
    @property
    def creator(self) -> str | None: ...
    @property
    def for_run(self) -> bool: ...


def down_if_orphaned(
    state: LabRecord | None, in_use: Callable[[], bool], down: Callable[[], list[str]]
) -> list[str] | None:
    """`down()` for an orphaned lab that no live run uses (`in_use`, asked of a lab that is up
    only); None when the lab is left alone."""
    if state is None or not orphaned(state.status, state.creator, state.for_run):
        return None
    if state.status == "up" and in_use():
        return None
    return down()


class LabNodesOf(Protocol):
    """How node faults find a lab's nodes: the lab up now, or the one a record names."""

    def current(self) -> LabNodes: ...

    def of_lab(self, directory: Path, created_ns: object) -> LabNodes | None: ...


@dataclass(frozen=True)
class LabKind:
    name: str
    commands: str  # "module:Class" of its LabCommands
    nodes: str  # "module:Class" of its LabNodes, with current() and of_lab()

    def lab_commands(self) -> LabCommands:
        made: LabCommands = _attribute(self.commands)()
        return made

    def nodes_of(self) -> LabNodesOf:
        found: LabNodesOf = _attribute(self.nodes)
        return found


def _attribute(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def lab_kinds() -> dict[str, LabKind]:
    """Every known lab kind by name: built-ins first, then installed plugins."""
    kinds: dict[str, LabKind] = {}
    paths = [
        *BUILTIN_LABS.items(),
        *((e.name, e.value) for e in entry_points(group=ENTRY_POINT_GROUP)),
    ]
    for name, path in paths:
        loaded = _attribute(path)
        if not isinstance(loaded, LabKind):
            raise HarnessError(f"lab plugin {path!r} is not a harness.labs.LabKind")
        kinds.setdefault(name, loaded)
    return kinds


def for_target(kind: str) -> LabNodes:
    """The nodes of the lab the target `kind` runs on; a clear error when there is none."""
    lab = target_kind(kind).lab
    if lab is None:
        raise FaultError(
            f"node faults act on the nodes of a lab: target swarm or kubernetes (with "
            f"target.lab or `harness lab up`), not {kind}"
        )
    return lab_kinds()[lab].nodes_of().current()


def of_record(data: Mapping[str, Any]) -> LabNodes | None:
    """The lab a record was made on, if it is still the same lab (else: nothing to revert).

    Records written before there were two kinds of labs name no kind: they are Swarm's.
    """
    kind = str(data.get("lab_kind", "swarm"))
    directory = Path(str(data["lab_dir"]))
    return lab_kinds()[kind].nodes_of().of_lab(directory, data.get("lab_created_ns"))
