"""Labs: multi-node clusters built on this one machine, one package per kind
(`harness/labs/<kind>/`), with the host plumbing they share (host, nodes).

A lab kind registers here as a target kind does in harness.targets: its package's `LAB` names
its Lab (built and taken down by `harness lab`) and its nodes (what node faults act on), and a
target kind that runs on it names it (TargetKind.lab).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from harness.errors import FaultError, HarnessError
from harness.labs.nodes import LabNodes
from harness.targets import target_kind

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
