"""The registry of target kinds: built-ins by table, third parties by the entry point group
`chaos_harness.targets`, as fault kinds are registered (faults.registry).

A target kind is one package, `harness/targets/<kind>/`, whose `__init__` holds its TargetKind:
its settings' model (the scenario's `target:` union is built from these), its capabilities
and where its Target class lives (imported only when a run needs it).
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.specs import TargetSpec
    from harness.targets.base import Target, TargetKind

ENTRY_POINT_GROUP = "chaos_harness.targets"
DEFAULT_KIND = "docker"

BUILTIN_TARGETS: dict[str, str] = {
    "docker": "harness.targets.docker:TARGET",
    "podman": "harness.targets.podman:TARGET",
    "swarm": "harness.targets.swarm:TARGET",
    "kubernetes": "harness.targets.kubernetes:TARGET",
}


def _load(path: str) -> TargetKind:
    from harness.targets.base import TargetKind

    module_name, _, attr = path.partition(":")
    loaded = getattr(importlib.import_module(module_name), attr)
    if not isinstance(loaded, TargetKind):
        raise HarnessError(f"target plugin {path!r} is not a harness.targets.base.TargetKind")
    return loaded


@functools.cache
def target_kinds() -> dict[str, TargetKind]:
    """Every known target kind by name: built-ins first, then installed plugins."""
    kinds = {name: _load(path) for name, path in BUILTIN_TARGETS.items()}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in kinds:
            kinds[entry.name] = _load(entry.value)
    return kinds


def target_kind(kind: str) -> TargetKind:
    """The registered kind `kind`; a clear error for an unknown one."""
    kinds = target_kinds()
    if kind not in kinds:
        raise HarnessError(f"unknown target {kind!r}; allowed: {', '.join(kinds)}")
    return kinds[kind]


def target_class(kind: str) -> type[Target]:
    """The class of the target `kind` (not connected to anything)."""
    return target_kind(kind).target_class()


def target_spec(kind: str, **settings: object) -> TargetSpec:
    """The settings of a target of `kind`, validated by its model (defaults for the rest)."""
    return target_kind(kind).spec.model_validate({**settings, "kind": kind})


def make_target(run_id: str, spec: TargetSpec) -> Target:
    """The target for `spec.kind`, connected to its engine."""
    return target_class(spec.kind)(run_id, spec)  # type: ignore[call-arg]
