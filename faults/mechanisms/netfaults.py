"""Host-side network tools shared by the network faults (partition, loss, bandwidth, latency).

Every change is made inside the instance's network namespace from the host (nsenter), so no
tool is needed in the image, and every change can be found again from the revert record alone:
- iptables rules carry the comment `chaos-harness:<run_id>:<fault_id>`; revert lists the rules
  of the namespace and deletes exactly the ones with that comment, never anyone else's;
- a root qdisc is added with the handle `ca05:`; revert deletes the root qdisc only when it is
  ours, so a namespace without it ("no qdisc") is already reverted.
The instance is found again by container id or name through the target, because its PID
changes on restart; an instance that is gone took its namespace, and our rules, with it.

Feature probes run in a throwaway namespace (`unshare --net`) that dies with the command, so a
probe never changes the host and never leaves a namespace behind.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from faults.base import FaultContext, JsonValue, Mechanism
from harness import commands
from harness.errors import CommandError, FaultError
from harness.hostsys import in_netns
from harness.targets.base import Instance

TAG_PREFIX = "chaos-harness"
QDISC_HANDLE = "ca05:"  # ours: a root qdisc with another handle is somebody else's
TABLES = ("filter", "nat")
PACKAGES = {
    **{"iptables": "iptables", "tc": "iproute2", "ip": "iproute2"},
    **{"nsenter": "util-linux", "unshare": "util-linux"},
}
# A restart between looking up the PID and entering its namespace: look again, a few times.
LOOKUP_ATTEMPTS = 3

T = TypeVar("T")


def rule_tag(run_id: str, fault_id: str) -> str:
    """The comment every rule of one fault carries (the key revert deletes by)."""
    return f"{TAG_PREFIX}:{run_id}:{fault_id}"


# --- iptables rules -----------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One iptables rule: chain and spec (matches and jump), without the tag comment."""

    chain: str
    spec: tuple[str, ...]
    table: str = "filter"

    def to_json(self) -> list[str]:
        return [self.table, self.chain, *self.spec]

    @classmethod
    def from_json(cls, raw: Sequence[str]) -> Rule:
        return cls(table=raw[0], chain=raw[1], spec=tuple(raw[2:]))

    def command(self, tag: str) -> list[str]:
        # inserted first, so an ACCEPT already in the chain cannot bypass the fault
        comment = ("-m", "comment", "--comment", tag)
        return ["iptables", "-w", "-t", self.table, "-I", self.chain, *comment, *self.spec]


def add_rules(pid: int, rules: Sequence[Rule], tag: str) -> None:
    for rule in rules:
        in_netns(pid, rule.command(tag))


def _comment(tokens: Sequence[str]) -> str | None:
    for index, token in enumerate(tokens[:-1]):
        if token == "--comment":
            return tokens[index + 1]
    return None


def tagged_rules(pid: int, tag: str) -> list[tuple[str, list[str]]]:
    """(table, `-A CHAIN ...` tokens) of every rule in the namespace that carries `tag`."""
    found = []
    for table in TABLES:
        listing = in_netns(pid, ["iptables", "-w", "-t", table, "-S"])
        for line in listing.splitlines():
            tokens = shlex.split(line)
            if tokens[:1] == ["-A"] and _comment(tokens) == tag:
                found.append((table, tokens))
    return found


def delete_tagged_rules(pid: int, tag: str) -> int:
    """Delete every rule carrying `tag`; how many there were. Safe to run twice."""
    rules = tagged_rules(pid, tag)
    for table, tokens in rules:
        # check=False: a concurrent revert may have deleted it already; verified below
        in_netns(pid, ["iptables", "-w", "-t", table, "-D", *tokens[1:]], check=False)
    left = tagged_rules(pid, tag)
    if left:
        raise FaultError(f"could not delete {len(left)} rule(s) tagged {tag} in PID {pid}'s netns")
    return len(rules)


# --- tc root qdiscs -----------------------------------------------------------------------


def root_qdisc(pid: int, device: str) -> str:
    """The `tc qdisc show` line of the device's root qdisc (e.g. 'qdisc noqueue 0: root ...')."""
    listing = in_netns(pid, ["tc", "qdisc", "show", "dev", device])
    roots = [line for line in listing.splitlines() if " root " in f"{line} "]
    return roots[0].strip() if roots else ""


def is_ours(qdisc_line: str) -> bool:
    parts = qdisc_line.split()
    return len(parts) > 2 and parts[2] == QDISC_HANDLE


def add_root_qdisc(pid: int, device: str, qdisc: Sequence[str]) -> None:
    """Install `qdisc` (e.g. ['tbf', 'rate', ...]) as the device's root, with our handle."""
    current = root_qdisc(pid, device)
    if is_ours(current):
        raise FaultError(f"{device} is already shaped by another chaos-harness fault ({current})")
    in_netns(pid, ["tc", "qdisc", "add", "dev", device, "root", "handle", QDISC_HANDLE, *qdisc])


def delete_root_qdisc(pid: int, device: str) -> bool:
    """Delete the device's root qdisc if it is ours; False when there was none to delete."""
    if not is_ours(root_qdisc(pid, device)):
        return False
    in_netns(pid, ["tc", "qdisc", "del", "dev", device, "root"], check=False)
    if is_ours(root_qdisc(pid, device)):
        raise FaultError(f"could not delete the root qdisc {QDISC_HANDLE} of {device}")
    return True


# --- facts about an instance's namespace -------------------------------------------------


@dataclass(frozen=True)
class NetnsFacts:
    """Where the instance's own address lives in its namespace, and its way out."""

    device: str  # the device that holds the instance's address on the run's network
    network: ipaddress.IPv4Network
    gateway: str | None
    default_device: str | None  # the default route's device: where the host's traffic goes


def url_host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if not parts.hostname:
        raise FaultError(f"the instance url {url!r} has no host")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def netns_facts(pid: int, address: str) -> NetnsFacts:
    """The device and network carrying `address`, and the default route, in PID's netns."""
    device, network = _device_of(pid, address)
    routes = in_netns(pid, ["ip", "-4", "route", "show", "default"]).split()
    gateway = routes[routes.index("via") + 1] if "via" in routes else None
    default_device = routes[routes.index("dev") + 1] if "dev" in routes else None
    return NetnsFacts(device, network, gateway, default_device)


def _device_of(pid: int, address: str) -> tuple[str, ipaddress.IPv4Network]:
    listing = in_netns(pid, ["ip", "-o", "-4", "addr", "show"])
    # lines look like: "80: eth0    inet 172.30.0.2/24 brd 172.30.0.255 scope global eth0"
    for line in listing.splitlines():
        fields = line.split()
        if "inet" not in fields:
            continue
        interface = ipaddress.IPv4Interface(fields[fields.index("inet") + 1])
        if str(interface.ip) == address:
            return fields[1].split("@")[0], interface.network
    raise FaultError(f"no interface in PID {pid}'s netns has the instance's address {address}")


# --- finding the instance again -----------------------------------------------------------


@dataclass(frozen=True)
class InstanceRef:
    """How a revert finds an instance again: its PID changes on restart, these do not."""

    name: str
    container_id: str

    @classmethod
    def of(cls, instance: Instance) -> InstanceRef:
        return cls(instance.name, instance.container_id)

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "container_id": self.container_id}

    @classmethod
    def from_json(cls, raw: Mapping[str, JsonValue]) -> InstanceRef:
        return cls(str(raw["name"]), str(raw.get("container_id", "")))


def refs_of(data: Mapping[str, JsonValue]) -> list[InstanceRef]:
    return [InstanceRef.from_json(raw) for raw in data.get("instances", ())]


def _current_pids(ctx: FaultContext, ref: InstanceRef) -> list[int]:
    """PIDs of the running instances that are `ref` now (by container id, else by name)."""
    instances = ctx.target.instances()
    same = [i for i in instances if ref.container_id and i.container_id == ref.container_id]
    same = same or [i for i in instances if i.name == ref.name]
    return [i.pid for i in same if i.running]


def in_each_netns(ctx: FaultContext, ref: InstanceRef, action: Callable[[int], T]) -> list[T]:
    """Run action(pid) in the namespace of the instance as it is now; [] when it is gone.

    A PID that dies under us (a restart) is looked up again; a namespace that no longer
    exists holds no rules and no qdisc, so "gone" is "reverted".
    """
    for _ in range(LOOKUP_ATTEMPTS):
        pids = _current_pids(ctx, ref)
        try:
            return [action(pid) for pid in pids]
        except FaultError:
            if all(_alive(pid) for pid in pids):
                raise
    raise FaultError(f"{ref.name} kept restarting while its network fault was reverted")


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}/ns/net")


def live_pid(ctx: FaultContext, ref: InstanceRef) -> int:
    """The instance's PID now, for injecting; FaultError when it is not running."""
    pids = _current_pids(ctx, ref)
    if not pids:
        raise FaultError(f"cannot inject into {ref.name}: it is not running")
    return pids[0]


# --- feature probes -----------------------------------------------------------------------


def missing_tools(*names: str) -> list[str]:
    missing = [name for name in names if shutil.which(name) is None]
    return [f"'{n}' is not installed (apt-get install -y {PACKAGES.get(n, n)})" for n in missing]


def probe(what: str, commands: Sequence[Sequence[str]], tools: Sequence[str]) -> Mechanism:
    """Try `commands` in a throwaway network namespace; the mechanism `what`, available or not.

    Each command runs in its own `unshare --net`, so nothing survives it.
    """
    missing = missing_tools("unshare", *tools)
    if missing:
        return Mechanism(what, False, "; ".join(missing))
    for command in commands:
        problem = _fails(["unshare", "--net", *command])
        if problem:
            return Mechanism(what, False, problem)
    return Mechanism(what, True)


def _fails(command: Sequence[str]) -> str:
    """Why `command` failed ('' when it worked): its last line of stderr, quoting the tool."""
    try:
        done = commands.run(command, timeout_s=10, check=False)
    except CommandError as exc:
        return str(exc)
    if done.returncode == 0:
        return ""
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return f"{command[2]}: {lines[-1] if lines else f'exit {done.returncode}'}"


def iptables_probe(what: str, matches: Sequence[str], table: str = "filter") -> Mechanism:
    chain = "PREROUTING" if table == "nat" else "INPUT"
    command = ["iptables", "-w", "-t", table, "-A", chain, "-m", "comment", "--comment", "probe"]
    return probe(what, [[*command, *matches]], ["iptables", "nsenter"])


def qdisc_probe(what: str, qdisc: Sequence[str]) -> Mechanism:
    return probe(what, [["tc", "qdisc", "add", "dev", "lo", "root", *qdisc]], ["tc", "nsenter"])


# --- faults made of tagged rules (partition, loss) ----------------------------------------


def rules_record_data(
    run_id: str, fault_id: str, rules: Sequence[tuple[Instance, Sequence[Rule]]]
) -> dict[str, JsonValue]:
    """The revert record's data of a fault that adds `rules` to each instance's netns."""
    return {
        "tag": rule_tag(run_id, fault_id),
        "instances": [
            {**InstanceRef.of(i).to_json(), "pid": i.pid, "rules": [r.to_json() for r in rs]}
            for i, rs in rules
        ],
    }


def apply_rules(ctx: FaultContext, data: Mapping[str, JsonValue]) -> None:
    tag = str(data["tag"])
    for raw in data["instances"]:
        pid = live_pid(ctx, InstanceRef.from_json(raw))
        ctx.mark_action()
        add_rules(pid, [Rule.from_json(r) for r in raw["rules"]], tag)


def revert_rules(ctx: FaultContext, data: Mapping[str, JsonValue]) -> None:
    tag = str(data["tag"])

    def delete(pid: int) -> int:
        ctx.mark_action()  # the revert's instant: the deletion, not the call that led to it
        return delete_tagged_rules(pid, tag)

    for ref in refs_of(data):
        in_each_netns(ctx, ref, delete)


# --- faults made of a root qdisc (bandwidth, latency by netem) ----------------------------


def service_device(instance: Instance) -> str:
    """The device the instance's answers to the load leave by.

    The load runs on the host, outside the run's network, so its packets arrive (and the
    answers leave) by the namespace's default route: eth0 on Docker and Podman, where the run's
    network is the only one; on Swarm the task's docker_gwbridge device (eth1), which carries
    its host-mode published port, while the overlay (eth0) carries the other tasks' traffic.
    Without a default route, the device of the instance's own address."""
    if not instance.running:
        raise FaultError(f"cannot shape the traffic of {instance.name}: it is not running")
    facts = netns_facts(instance.pid, instance.netns_address)
    return facts.default_device or facts.device


def qdisc_record_data(instances: Sequence[Instance], qdisc: Sequence[str]) -> dict[str, JsonValue]:
    return {
        "instances": [
            {**InstanceRef.of(i).to_json(), "pid": i.pid, "device": service_device(i)}
            for i in instances
        ],
        "qdisc": list(qdisc),
    }


def apply_qdiscs(ctx: FaultContext, data: Mapping[str, JsonValue]) -> None:
    for raw in data["instances"]:
        pid = live_pid(ctx, InstanceRef.from_json(raw))
        ctx.mark_action()
        add_root_qdisc(pid, str(raw["device"]), [str(arg) for arg in data["qdisc"]])


def revert_qdiscs(ctx: FaultContext, data: Mapping[str, JsonValue]) -> None:
    """Delete our root qdisc from each instance's device, where it is still there."""
    for raw in data["instances"]:
        device = str(raw["device"])

        def delete(pid: int, device: str = device) -> bool:
            ctx.mark_action()
            return delete_root_qdisc(pid, device)

        in_each_netns(ctx, InstanceRef.from_json(raw), delete)
