"""The Swarm lab's nodes for the node faults (harness.labs.nodes.LabNodes): which nodes a fault
hits, cutting and restoring their links, killing and restarting their daemons, partition rules
in their namespaces, drain through the manager, and the manager's record of node states.

A fault's revert works from its record alone (`node_record_data` / `recorded_nodes`): the lab's
directory and creation time name the lab, and a lab that was replaced since is left alone.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors

from harness.errors import FaultError, TargetError
from harness.labs import host
from harness.labs.swarm.lab import (
    NS_PER_S,
    LabState,
    NodeState,
    connect,
    find_daemon,
    kill_node_processes,
    lab_dir,
    load_state,
    locked,
    save_state,
    spawn_daemon,
    wait_answers,
    with_pid,
)
from harness.targets.base import Instance


def lab_for_fault(directory: str | None = None) -> LabState:
    """The lab a node fault acts on; a clear error when there is none."""
    state = load_state(Path(directory) if directory else None)
    if state is None or state.status != "up":
        where = directory or lab_dir()
        raise FaultError(f"node faults need the Swarm lab, and there is none up (state in {where})")
    return state


def same_lab(record_data: dict[str, Any]) -> LabState | None:
    """The lab a record was made on, if it is still the same lab (else: nothing to revert)."""
    state = load_state(Path(str(record_data["lab_dir"])))
    if state is None or state.created_ns != record_data.get("lab_created_ns"):
        return None
    return state


def set_link(node: NodeState, up: bool) -> bool:
    """Bring the host side of the node's veth up or down; False if it is gone."""
    return host.set_link(node.veth_host, up)


def kill_daemon(node: NodeState) -> int | None:
    """SIGKILL the node's dockerd only (its managed containerd follows it; containers live on)."""
    pid = find_daemon(node)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pid


def restart_daemons(state: LabState, nodes: Sequence[NodeState], timeout_s: float = 90.0) -> None:
    """Start the nodes' daemons again with the same command lines; record their new PIDs.

    All are started before any is waited for: a restarted manager does not answer until the
    managers have a quorum again, which may need the others (measured: 30 s one by one).
    """
    try:
        for node in nodes:
            spawn_daemon(node)
        for node in nodes:
            wait_answers(node, timeout_s)
        started = [with_pid(node) for node in nodes]
    except (TargetError, OSError, subprocess.SubprocessError) as exc:
        raise FaultError(f"cannot restart the daemons of {[n.name for n in nodes]}: {exc}") from exc
    with locked(Path(state.lab_dir)):
        current = load_state(Path(state.lab_dir))
        if current is not None and current.created_ns == state.created_ns:
            for node in started:
                current = current.with_node(node)
            save_state(current)


def partition_rules(state: LabState, node: NodeState, tag: str) -> list[list[str]]:
    """iptables rules, for the node's own namespace, that drop traffic with the other nodes."""
    rules = []
    for other in state.nodes:
        if other.index == node.index:
            continue
        comment = ["-m", "comment", "--comment", tag, "-j", "DROP"]
        rules.append(["INPUT", "-s", other.address, *comment])
        rules.append(["OUTPUT", "-d", other.address, *comment])
    return rules


def netns_iptables(node: NodeState, action: str, rule: Sequence[str]) -> bool:
    """Run iptables inside the node's network namespace; False if the rule (or node) is gone."""
    return host.netns_iptables(node.netns, action, rule)


def set_availability(state: LabState, node: NodeState, availability: str) -> None:
    """Set a node's Swarm availability (active, pause, drain) through the manager."""
    node_id = str(node.node_id)
    try:
        client = connect(state.manager.url)
        raw = client.api.inspect_node(node_id)  # type: ignore[no-untyped-call]
        spec: Any = dict(raw["Spec"], Availability=availability)
        client.api.update_node(node_id, raw["Version"]["Index"], spec)
    except (docker.errors.DockerException, OSError) as exc:
        raise FaultError(f"cannot set {node.name} to {availability}: {exc}") from exc


def node_events(state: LabState, since_ns: int, until_ns: int) -> list[tuple[int, str, str, str]]:
    """The manager's node state changes: (time_ns, hostname, old state, new state)."""
    client = connect(state.manager.url)
    events = client.api.events(  # type: ignore[no-untyped-call]
        since=since_ns // NS_PER_S,
        until=-(-until_ns // NS_PER_S),
        filters={"type": "node"},
        decode=True,
    )
    found = []
    for event in events:
        attributes = event.get("Actor", {}).get("Attributes", {})
        if "state.new" in attributes:
            found.append(
                (
                    int(event["timeNano"]),
                    str(attributes.get("name", "")),
                    str(attributes.get("state.old", "")),
                    str(attributes["state.new"]),
                )
            )
    return found


def choose_nodes(
    state: LabState,
    selected: Sequence[Instance],
    everyone: Sequence[Instance],
    rng: random.Random,
    explicit: str | None = None,
) -> tuple[list[NodeState], str]:
    """The nodes a node fault hits, and how they were chosen.

    The nodes of the selected instances, never the manager the harness talks to. When every
    selected instance is on that manager, one other node that runs an instance of the run is
    taken instead (and the record says so). `explicit` (a node name or ID) overrides both.
    """
    if explicit is not None:
        try:
            node = state.node(explicit)
        except TargetError as exc:
            raise FaultError(str(exc)) from exc
        if node.index == state.manager.index:
            raise FaultError(f"{node.name} is the manager the harness talks to; pick another node")
        return [node], "named"
    if any(i.node is None for i in selected):
        raise FaultError("the instances carry no node: node faults need the swarm target's lab")
    picked = _nodes_of(state, selected)
    if picked:
        return picked, "selected instances"
    others = _nodes_of(state, everyone)
    if not others:
        raise FaultError(
            f"every instance runs on {state.manager.name}, the manager the harness talks to"
        )
    return [rng.choice(others)], "another node of the run (the selected ones are on the manager)"


def _nodes_of(state: LabState, instances: Sequence[Instance]) -> list[NodeState]:
    names = {i.node for i in instances if i.node}
    return [
        n
        for n in state.nodes
        if n.index != state.manager.index and any(n.matches(name) for name in names)
    ]


def on_nodes(nodes: Sequence[NodeState], instances: Sequence[Instance]) -> tuple[str, ...]:
    """The names of the instances that run on `nodes` (what users lose with them)."""
    return tuple(
        sorted(i.name for i in instances if i.node and any(n.matches(i.node) for n in nodes))
    )


def node_record_data(state: LabState, nodes: Sequence[NodeState], **extra: Any) -> dict[str, Any]:
    """What a node fault's revert needs, from its record alone."""
    return {
        "lab_dir": state.lab_dir,
        "lab_created_ns": state.created_ns,
        "nodes": [n.name for n in nodes],
        **extra,
    }


def recorded_nodes(data: dict[str, Any]) -> tuple[LabState, list[NodeState]] | None:
    """The record's lab and nodes; None when that lab is gone (nothing is left to revert)."""
    state = same_lab(data)
    if state is None:
        return None
    return state, [state.node(name) for name in data["nodes"]]


class SwarmNodes:
    """The nodes of the Swarm lab for the node faults (harness.labs.nodes.LabNodes)."""

    kind = "swarm"
    agent = "dockerd"
    drain_mechanism = "node availability drain"

    def __init__(self, state: LabState) -> None:
        self.state = state

    @classmethod
    def current(cls) -> SwarmNodes:
        return cls(lab_for_fault())

    @classmethod
    def of_lab(cls, directory: Path, created_ns: object) -> SwarmNodes | None:
        state = load_state(directory)
        if state is None or state.created_ns != created_ns:
            return None
        return cls(state)

    def _nodes(self, names: Sequence[str]) -> list[NodeState]:
        return [self.state.node(name) for name in names]

    def choose(
        self,
        selected: Sequence[Instance],
        everyone: Sequence[Instance],
        rng: random.Random,
        explicit: str | None,
    ) -> tuple[list[str], str]:
        nodes, how = choose_nodes(self.state, selected, everyone, rng, explicit)
        return [n.name for n in nodes], how

    def record_data(self, nodes: Sequence[str]) -> dict[str, Any]:
        return {"lab_kind": self.kind, **node_record_data(self.state, self._nodes(nodes))}

    def instances_on(self, nodes: Sequence[str], instances: Sequence[Instance]) -> tuple[str, ...]:
        return on_nodes(self._nodes(nodes), instances)

    def power_off(self, nodes: Sequence[str]) -> None:
        for node in self._nodes(nodes):
            set_link(node, up=False)
            kill_node_processes(node)

    def power_on(self, nodes: Sequence[str]) -> None:
        for node in self._nodes(nodes):
            set_link(node, up=True)
        restart_daemons(self.state, self._nodes(nodes))

    def stop_agent(self, nodes: Sequence[str]) -> None:
        for node in self._nodes(nodes):
            kill_daemon(node)

    def start_agent(self, nodes: Sequence[str]) -> None:
        restart_daemons(self.state, self._nodes(nodes))

    def set_link(self, node: str, up: bool) -> bool:
        return set_link(self.state.node(node), up)

    def partition_rules(self, node: str, tag: str) -> list[list[str]]:
        return partition_rules(self.state, self.state.node(node), tag)

    def node_iptables(self, node: str, action: str, rule: Sequence[str]) -> bool:
        return netns_iptables(self.state.node(node), action, rule)

    def drain(self, node: str) -> list[str]:
        set_availability(self.state, self.state.node(node), "drain")
        return []

    def undrain(self, node: str) -> None:
        set_availability(self.state, self.state.node(node), "active")
