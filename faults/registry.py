"""The table of fault kinds: built-ins by import path, third parties by entry point.

Adding a fault kind is one module plus one line in BUILTIN_FAULTS.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from faults.base import AnyFault, Fault
from harness.errors import HarnessError

ENTRY_POINT_GROUP = "chaos_harness.faults"

BUILTIN_FAULTS: dict[str, str] = {
    "container_kill": "faults.container_kill:ContainerKill",
    "container_stop": "faults.container_stop:ContainerStop",
    "container_pause": "faults.container_pause:ContainerPause",
    "container_restart": "faults.container_restart:ContainerRestart",
    "cpu_stress": "faults.cpu_stress:CpuStress",
    "memory_stress": "faults.memory_stress:MemoryStress",
    "disk_fill": "faults.disk_fill:DiskFill",
    "network_partition": "faults.network_partition:NetworkPartition",
    "packet_loss": "faults.packet_loss:PacketLoss",
    "bandwidth": "faults.bandwidth:Bandwidth",
    "latency": "faults.latency:Latency",
    "node_down": "faults.node_down:NodeDown",
    "node_partition": "faults.node_partition:NodePartition",
    "node_drain": "faults.node_drain:NodeDrain",
    "manager_quorum_loss": "faults.manager_quorum_loss:ManagerQuorumLoss",
    "pod_delete": "faults.pod_delete:PodDelete",
}


def _load(path: str) -> type[AnyFault]:
    module_name, _, attr = path.partition(":")
    loaded = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(loaded, type) and issubclass(loaded, Fault)):
        raise HarnessError(f"fault plugin {path!r} is not a subclass of faults.base.Fault")
    return loaded


def fault_kinds() -> dict[str, type[AnyFault]]:
    """Every known fault kind by name: built-ins first, then installed plugins."""
    kinds = {name: _load(path) for name, path in BUILTIN_FAULTS.items()}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in kinds:
            kinds[entry.name] = _load(entry.value)
    return kinds


def fault_kind(name: str) -> type[AnyFault]:
    """One fault kind by name, importing only its module (the agent's one action per call);
    KeyError when no built-in or plugin has that name."""
    if name in BUILTIN_FAULTS:
        return _load(BUILTIN_FAULTS[name])
    for entry in entry_points(group=ENTRY_POINT_GROUP, name=name):
        return _load(entry.value)
    raise KeyError(name)
