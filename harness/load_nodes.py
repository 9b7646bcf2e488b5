"""Load from the Swarm lab's nodes (`load.placement: nodes`): one Locust worker in each node's
network namespace, and the run's service as those nodes reach it.

A worker runs as ``nsenter --net=/var/run/netns/<node> python -m locust --worker ...`` (nsenter,
as the lab starts its daemons: ``ip netns exec`` would remount /sys), dials its master on the
host's address on the lab bridge, and is named by its node; its records travel to the master
through Locust's messages (harness/locust/chaos_shipping.py). Its requests leave through the
node's own link, so a node fault that cuts the node off cuts its load generator off too.

The service from a node (`NodeEntry`), as kube-proxy gives every node a Service: the address
the harness's own load uses is a loopback address DNAT-ed in the host's nat OUTPUT
(harness/targets/service_vip.py), which a node cannot reach. Each node gets the same spread in
its own nat OUTPUT: a chain of the run holding a copy of the host's service rules (the running
tasks' node address and published port), jumped to for a virtual address on the lab's subnet,
and copied again whenever the host's changes (`sync`, on every tick of the runner), so node
load follows replaced tasks as the harness's does. A connection goes from the node straight to
the task's node over the bridge, with no hop through the host (DNAT-ing node load on the host
instead lost first SYNs: docs/LOAD.md). Rules in a node carry the run's comment and go when the
entry closes or the lab goes down; a later run's entry removes those of runs whose harness
died (`harness cleanup` looks at the host only).
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from dataclasses import dataclass, field

from harness import commands
from harness.errors import CommandError, LoadError
from harness.hostnet import CHAIN_PREFIX, chain_name, jump_comment, run_hash
from harness.labs.kubernetes import lab as kube_lab
from harness.labs.kubernetes.state import BRIDGE_ADDRESS as KUBE_BRIDGE_ADDRESS
from harness.labs.swarm.lab import BRIDGE_ADDRESS, NETNS_DIR, SUBNET, load_state
from harness.load import WorkerPlace
from harness.owners import OWNER_LABEL, RUN_LABEL, owner_alive, owner_label_value
from harness.targets.service_vip import vip_chain

ENTRY_ADDRESS = SUBNET.rsplit(".", 1)[0] + ".254"  # a virtual address: no node has it
PURPOSE = "LOAD"
ENTRY_PORTS = (20000, 30000)  # any: the entry address is virtual, no socket listens there


def lab_worker_places(count: int, kind: str = "swarm") -> list[WorkerPlace]:
    """`count` workers spread round-robin over the `kind` lab's nodes (swarm or kubernetes),
    each named by its node (a second one on a node gets `-2`)."""
    places = []
    netns = lab_netns() if kind == "swarm" else kube_lab_netns()
    master = lab_master_bind(kind)
    for i in range(count):
        node = netns[i % len(netns)]
        name = node if i < len(netns) else f"{node}-{i // len(netns) + 1}"
        prefix = ("nsenter", f"--net={NETNS_DIR / node}")
        places.append(WorkerPlace(name, prefix, master))
    return places


def kube_lab_netns() -> list[str]:
    """The network namespaces of the Kubernetes lab's nodes (their kube-proxy DNATs a
    ClusterIP in the node's own nat OUTPUT, so a node's worker reaches the Service as is)."""
    state = kube_lab.load_state()
    if state is None or state.status != "up" or not state.nodes:
        raise LoadError(
            "load.placement nodes needs the Kubernetes lab up (target: kubernetes, the lab)"
        )
    return [node.netns for node in state.nodes]


def lab_netns() -> list[str]:
    """The network namespaces of the Swarm lab's nodes (a node's name is its namespace's)."""
    state = load_state()
    if state is None or state.status != "up" or not state.nodes:
        raise LoadError("load.placement nodes needs the Swarm lab up (target: swarm with a lab)")
    return [node.netns for node in state.nodes]


def lab_master_bind(kind: str = "swarm") -> str:
    """Where the master listens for node workers: the host's address on the lab's bridge."""
    return BRIDGE_ADDRESS if kind == "swarm" else KUBE_BRIDGE_ADDRESS


@dataclass
class NodeEntry:
    """The run's service in every lab node, at ENTRY_ADDRESS and a port of the run's own."""

    run_id: str
    netns: list[str]
    owner: str = field(default_factory=owner_label_value)  # the harness's process
    rules: list[list[str]] = field(default_factory=list)  # the host's, as last copied
    opened: set[str] = field(default_factory=set)

    @property
    def port(self) -> int:
        """The entry's port: one of the run's own (runs sharing a lab do not share it; the
        DNAT sends a connection to the task's published port whatever it is)."""
        return ENTRY_PORTS[0] + int(run_hash(self.run_id), 16) % (ENTRY_PORTS[1] - ENTRY_PORTS[0])

    @property
    def chain(self) -> str:
        return chain_name(self.run_id, PURPOSE)

    def open(self) -> str:
        """Copy the service into every node; the URL node workers send to."""
        self.sync(force=True)
        return f"http://{ENTRY_ADDRESS}:{self.port}"

    def sync(self, force: bool = False) -> None:
        """Copy the host's service rules into the nodes when they changed."""
        rules = self._host_rules()
        if rules == self.rules and not force:
            return
        self.rules = rules
        for netns in self.netns:
            if netns not in self.opened:
                remove_dead_runs_rules(netns)
            lines = [f":{self.chain} - [0:0]"]  # declared: flushed in the transaction
            lines += [_line(["-A", self.chain, *rule]) for rule in rules]
            if netns not in self.opened:
                lines.append(_line(["-I", *self._jump()]))
            try:
                _restore(netns, lines)
            except CommandError as exc:
                if netns in self.opened:  # a node cut off or down: it keeps its last copy
                    continue
                raise LoadError(f"cannot give node {netns} the service: {exc}") from exc
            self.opened.add(netns)

    def close(self) -> None:
        """Remove the jump and the chain from every node (idempotent)."""
        for netns in sorted(self.opened):
            with contextlib.suppress(CommandError):
                _restore(netns, [_line(["-D", *self._jump()])])
                _restore(netns, [f"-F {self.chain}", f"-X {self.chain}"])
        self.opened.clear()

    def _jump(self) -> list[str]:
        comment = jump_comment(self.run_id, self.owner)
        match = ["-d", ENTRY_ADDRESS, "-p", "tcp", "--dport", str(self.port)]
        return ["OUTPUT", *match, "-m", "comment", "--comment", comment, "-j", self.chain]

    def _host_rules(self) -> list[list[str]]:
        """The host's service rules (`-A <chain> ...` without the first two tokens)."""
        chain = vip_chain(self.run_id)
        try:
            done = commands.run(["iptables", "-w", "5", "-t", "nat", "-S", chain])
        except CommandError as exc:
            raise LoadError(f"cannot read the service's rules ({chain}): {exc}") from exc
        lines = [shlex.split(line) for line in done.stdout.splitlines()]
        return [tokens[2:] for tokens in lines if tokens[:2] == ["-A", chain]]


def remove_dead_runs_rules(netns: str) -> list[str]:
    """Remove from a node the entries of runs whose harness is dead (a SIGKILLed run leaves
    them; `harness cleanup` looks at the host only): the chains removed."""
    try:
        done = _in(netns, ["iptables", "-w", "5", "-t", "nat", "-S", "OUTPUT"])
    except CommandError:
        return []
    removed = []
    for tokens in (shlex.split(line) for line in done.stdout.splitlines()):
        if tokens[:2] != ["-A", "OUTPUT"] or "--comment" not in tokens or "-j" not in tokens:
            continue
        fields = dict(
            p.split("=", 1) for p in tokens[tokens.index("--comment") + 1].split() if "=" in p
        )
        chain = tokens[tokens.index("-j") + 1]
        if RUN_LABEL not in fields or not chain.startswith(f"{CHAIN_PREFIX}{PURPOSE}-"):
            continue
        if owner_alive(fields.get(OWNER_LABEL)):
            continue
        with contextlib.suppress(CommandError):
            _restore(netns, [_line(["-D", *tokens[1:]]), f"-F {chain}", f"-X {chain}"])
            removed.append(chain)
    return removed


def _in(netns: str, argv: list[str], text: str | None = None) -> commands.Done:
    return commands.run(["nsenter", f"--net={NETNS_DIR / netns}", *argv], input=text)


def _restore(netns: str, lines: list[str]) -> None:
    text = "\n".join(["*nat", *lines, "COMMIT"]) + "\n"
    _in(netns, ["iptables-restore", "-w", "5", "--noflush"], text)


def _line(tokens: list[str]) -> str:
    """Tokens as iptables-restore reads them: it knows double quotes, not the shell's."""
    return " ".join(t if t and not re.search(r"[\s\"'\\]", t) else json.dumps(t) for t in tokens)
