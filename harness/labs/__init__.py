"""Labs: multi-node clusters built on this one machine, one package per kind
(`harness/labs/<kind>/`), with the host plumbing they share (host, nodes).

A lab kind registers here as a target kind does in harness.targets: its package's `LAB` names
its Lab (built and taken down by `harness lab`) and its nodes (what node faults act on), and a
target kind that runs on it names it (TargetKind.lab).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

from harness.errors import HarnessError

if TYPE_CHECKING:
    from pathlib import Path

    from harness.labs.nodes import LabNodes

ENTRY_POINT_GROUP = "chaos_harness.labs"
BUILTIN_LABS: dict[str, str] = {
    "swarm": "harness.labs.swarm:LAB",
    "kubernetes": "harness.labs.kubernetes:LAB",
}


class Lab(Protocol):
    """One lab of a kind: brought up by `harness lab up`, taken down from its state alone."""

    def down(self) -> list[str]:
        """Remove every node, network and process of the lab; what was removed."""
        ...


class LabNodesOf(Protocol):
    """How node faults find a lab's nodes: the lab up now, or the one a record names."""

    def current(self) -> LabNodes: ...

    def of_lab(self, directory: Path, created_ns: object) -> LabNodes | None: ...


@dataclass(frozen=True)
class LabKind:
    name: str
    lab: str  # "module:Class" of its Lab
    nodes: str  # "module:Class" of its LabNodes, with current() and of_lab()

    def lab_class(self) -> type[Lab]:
        cls: type[Lab] = _attribute(self.lab)
        return cls

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
