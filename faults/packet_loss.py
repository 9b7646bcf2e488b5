"""packet_loss: each packet of the selected instances is dropped with probability `percent`,
by an iptables rule with the `statistic` match (random mode) in their network namespace.

`inbound` drops packets arriving at the instance, `outbound` packets leaving it, `both` each
side once (a request then meets the loss on both ways). A dropped SYN costs a client a 1 s
retransmission, so short client timeouts turn loss into failed requests. Loopback is spared,
so the container's own health check still answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from faults.base import Fault, FaultContext, FaultParams, Mechanism, RevertRecord
from faults.mechanisms.netfaults import (
    Rule,
    apply_rules,
    iptables_probe,
    revert_rules,
    rules_record_data,
)
from harness import capabilities
from harness.errors import FaultError
from harness.targets.base import Instance

MECHANISM = "iptables statistic in netns"


class PacketLossParams(FaultParams):
    percent: float = Field(gt=0, le=100, description="chance that a packet is dropped, in %")
    direction: Literal["both", "inbound", "outbound"] = Field(
        default="inbound", description="which packets may be dropped: inbound, outbound or both"
    )


class PacketLoss(Fault[PacketLossParams]):
    kind = "packet_loss"
    requires = (capabilities.NETNS,)
    summary = "drop a random share of the selected instances' packets"
    params_model = PacketLossParams

    @property
    def mode(self) -> str:
        return f"{self.params.percent:g} % {self.params.direction}"

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        random_drop = ["-m", "statistic", "--mode", "random", "--probability", "0.5", "-j", "DROP"]
        return [iptables_probe(MECHANISM, random_drop)]

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        for instance in instances:
            if not instance.running:
                raise FaultError(f"cannot drop packets of {instance.name}: it is not running")
        rules = loss_rules(self.params.percent, self.params.direction)
        return RevertRecord(
            fault_id=fault_id,
            kind=self.kind,
            targets=tuple(i.name for i in instances),
            mechanism=MECHANISM,
            data=rules_record_data(ctx.run_id, fault_id, [(i, rules) for i in instances]),
        )

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        apply_rules(ctx, record.data)

    @classmethod
    def revert(cls, ctx: FaultContext, record: RevertRecord) -> None:
        revert_rules(ctx, record.data)


def loss_rules(percent: float, direction: str) -> list[Rule]:
    probability = f"{percent / 100:.6f}"
    drop = ("-m", "statistic", "--mode", "random", "--probability", probability, "-j", "DROP")
    rules = []
    if direction in ("both", "inbound"):
        rules.append(Rule("INPUT", ("!", "-i", "lo", *drop)))
    if direction in ("both", "outbound"):
        rules.append(Rule("OUTPUT", ("!", "-o", "lo", *drop)))
    return rules
