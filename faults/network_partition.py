"""network_partition: the selected instances are cut off, by iptables DROP rules in their own
network namespace (added from the host, so any image works).

From whom (`from`):
- `load`: everything outside the run's network, and its gateway: that is where the load
  generator and the probes come from (the host reaches a bridge network through its gateway);
- `instances`: the other instances of the run;
- `all`: both.
With `groups` (lists of instance names), the run is split: traffic between instances of
different groups is dropped, and instances named in no group form one more group. The groups
name the instances, so `select` is not used.

A DROP (not a REJECT) is what a cut cable looks like: connections hang until they time out.
Loopback stays open, so the container's own health check still answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import AliasChoices, ConfigDict, Field, model_validator

from faults.base import Fault, FaultContext, FaultParams, Mechanism, RevertRecord
from faults.mechanisms.netfaults import (
    NetnsFacts,
    Rule,
    apply_rules,
    iptables_probe,
    netns_facts,
    revert_rules,
    rules_record_data,
)
from harness import capabilities
from harness.errors import FaultError
from harness.targets.base import Instance

Direction = Literal["both", "inbound", "outbound"]
Peer = Literal["load", "instances", "all"]


class NetworkPartitionParams(FaultParams):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: Peer | None = Field(
        default=None,
        validation_alias=AliasChoices("from", "from_"),
        serialization_alias="from",
        description="(YAML key: from) cut off from whom: load (the load generator and"
        " probes), instances (the run's other instances) or all; default load, or"
        " instances with groups",
    )
    direction: Direction = Field(
        default="both", description="which packets are dropped: inbound, outbound or both"
    )
    groups: list[list[str]] | None = Field(
        default=None,
        description="split the run into groups of instance names; traffic between groups is"
        " dropped (instances in no group form one more group)",
    )

    @model_validator(mode="after")
    def _groups_make_sense(self) -> NetworkPartitionParams:
        if self.groups is None:
            return self
        if self.from_ == "load":
            raise ValueError("groups split the instances from each other: use from: instances")
        names = [name for group in self.groups for name in group]
        if not names or any(not group for group in self.groups):
            raise ValueError("groups must be non-empty lists of instance names")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"an instance can be in one group only: {', '.join(twice)}")
        return self

    @property
    def peer(self) -> Peer:
        return self.from_ or ("instances" if self.groups else "load")


class NetworkPartition(Fault[NetworkPartitionParams]):
    kind = "network_partition"
    requires = (capabilities.NETNS,)
    summary = "drop the traffic of the selected instances (from load, other instances, or all)"
    params_model = NetworkPartitionParams

    @property
    def mode(self) -> str:
        return f"from {self.params.peer}, {self.params.direction}"

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        return [iptables_probe("iptables DROP in netns", ["-s", "192.0.2.1", "-j", "DROP"])]

    def acts_on(self, everyone: Sequence[Instance], chosen: Sequence[Instance]) -> list[str]:
        names = {name for group in self.params.groups or [] for name in group}
        return [i.name for i in everyone if i.name in names] if names else [i.name for i in chosen]

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        everyone = ctx.target.instances()
        group_of = self._group_index(everyone)
        # with groups, every member whose namespace is here (a fault agent sees its node's)
        targets = (
            [i for i in everyone if i.name in group_of and i.running]
            if group_of
            else list(instances)
        )
        rules = [(i, self._rules(i, self._peers(i, everyone, group_of))) for i in targets]
        return RevertRecord(
            fault_id=fault_id,
            kind=self.kind,
            targets=tuple(i.name for i in targets),
            mechanism="iptables DROP in netns",
            data={**rules_record_data(ctx.run_id, fault_id, rules), "from": self.params.peer},
        )

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        apply_rules(ctx, record.data)

    @classmethod
    def revert(cls, ctx: FaultContext, record: RevertRecord) -> None:
        revert_rules(ctx, record.data)

    # --- who is cut off from whom ---------------------------------------------------------

    def _group_index(self, everyone: Sequence[Instance]) -> dict[str, int]:
        """Instance name -> its group's index; empty without groups."""
        groups = self.params.groups or []
        index = {name: n for n, group in enumerate(groups) for name in group}
        unknown = sorted(set(index) - {i.name for i in everyone})
        if unknown:
            known = ", ".join(i.name for i in everyone) or "none"
            raise FaultError(f"groups name unknown instances {', '.join(unknown)} ({known})")
        return index

    def _peers(
        self, instance: Instance, everyone: Sequence[Instance], group_of: dict[str, int]
    ) -> list[str]:
        """Addresses of the instances `instance` is cut off from."""
        if self.params.peer == "load":
            return []
        rest = len(self.params.groups or [])  # the group of the instances named nowhere
        mine = group_of.get(instance.name, rest)
        others = [
            i
            for i in everyone
            if i.name != instance.name and (not group_of or group_of.get(i.name, rest) != mine)
        ]
        return [i.netns_address for i in others]  # where peers reach it, whatever the load's route

    def _rules(self, instance: Instance, peers: Sequence[str]) -> list[Rule]:
        if not instance.running:
            raise FaultError(f"cannot partition {instance.name}: it is not running")
        facts = None
        if self.params.peer in ("load", "all"):
            facts = netns_facts(instance.pid, instance.netns_address)
        direction = self.params.direction
        rules = []
        if direction in ("both", "inbound"):
            rules += drop_rules("INPUT", "-s", "-i", peers, facts)
        if direction in ("both", "outbound"):
            rules += drop_rules("OUTPUT", "-d", "-o", peers, facts)
        return rules


def drop_rules(
    chain: str, address_flag: str, device_flag: str, peers: Sequence[str], load: NetnsFacts | None
) -> list[Rule]:
    """DROP rules for one direction: `address_flag` is -s (inbound) or -d (outbound)."""
    rules = [Rule(chain, (address_flag, peer, "-j", "DROP")) for peer in peers]
    if load is not None:
        # whatever is not on the run's network (loopback excepted), and the host's gateway
        outside = ("!", device_flag, "lo", "!", address_flag, str(load.network))
        rules.append(Rule(chain, (*outside, "-j", "DROP")))
        if load.gateway:
            rules.append(Rule(chain, (address_flag, load.gateway, "-j", "DROP")))
    return rules
