"""bandwidth: what the selected instances send is capped at `rate`, by a tc token bucket
(tbf) as the root qdisc of their network device, set up in their namespace from the host.

Only egress is shaped: downloads from the instance (its responses) slow down, uploads do not.
Packets that would wait longer than `latency` in the bucket's queue are dropped, as on a
saturated link. Revert deletes the root qdisc if it is still ours (handle ca05:), which puts
the device back on its default qdisc.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import Field, field_validator

from faults.base import Fault, FaultContext, FaultParams, Mechanism, RevertRecord
from faults.mechanisms.netfaults import apply_qdiscs, qdisc_probe, qdisc_record_data, revert_qdiscs
from harness import capabilities
from harness.targets.base import Instance
from harness.units import Bytes, Seconds

MECHANISM = "tc tbf in netns"
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)\s*$", re.I)
# tc's units: *bit are bits per second, *bps BYTES per second; k, m, g are powers of 1000
_RATE_FACTOR = {
    **{"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9},
    **{"bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9},
}
MIN_BURST_BYTES = 16 * 1024
BURST_S = 0.02  # the default bucket holds 20 ms at the rate


def parse_rate(value: str) -> int:
    """Bits per second from tc's notation: '1mbit', '500kbit', '2mbps' (bytes per second)."""
    match = _RATE.match(value)
    if match is None:
        raise ValueError(f"expected a rate like '1mbit', '500kbit' or '2mbps', got {value!r}")
    bits = int(float(match.group(1)) * _RATE_FACTOR[match.group(2).lower()])
    if bits < 8:
        raise ValueError(f"a rate must be at least 8 bit/s, got {value!r}")
    return bits


class BandwidthParams(FaultParams):
    rate: str = Field(
        description="egress cap in tc's units: 1mbit, 500kbit (bits/s), 2mbps (bytes/s)"
    )
    burst: Bytes | None = Field(
        default=None, description="bucket size in bytes (default: 20 ms at the rate, >= 16 KiB)"
    )
    latency: Seconds = Field(
        default=0.05, gt=0, description="longest a packet may queue before it is dropped"
    )

    @field_validator("rate")
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        parse_rate(value)
        return value.strip()

    @property
    def bits_per_s(self) -> int:
        return parse_rate(self.rate)

    @property
    def burst_bytes(self) -> int:
        if self.burst is not None:
            return self.burst
        return max(MIN_BURST_BYTES, int(self.bits_per_s / 8 * BURST_S))

    def tbf(self) -> list[str]:
        latency_ms = f"{self.latency * 1000:g}ms"
        rate = f"{self.bits_per_s}bit"
        return ["tbf", "rate", rate, "burst", str(self.burst_bytes), "latency", latency_ms]


class Bandwidth(Fault[BandwidthParams]):
    kind = "bandwidth"
    requires = (capabilities.NETNS,)
    summary = "cap what the selected instances send at a rate (tc tbf)"
    params_model = BandwidthParams

    @property
    def mode(self) -> str:
        return self.params.rate

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        return [qdisc_probe(MECHANISM, ["tbf", "rate", "1mbit", "burst", "16k", "latency", "50ms"])]

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        return RevertRecord(
            fault_id=fault_id,
            kind=self.kind,
            targets=tuple(i.name for i in instances),
            mechanism=MECHANISM,
            data=qdisc_record_data(instances, self.params.tbf()),
        )

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        apply_qdiscs(ctx, record.data)

    @classmethod
    def revert(cls, ctx: FaultContext, record: RevertRecord) -> None:
        revert_qdiscs(ctx, record.data)
