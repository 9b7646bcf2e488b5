"""latency: the selected instances answer `delay` (+- `jitter`) later.

Two mechanisms, chosen by `mechanism` (auto: netem where the kernel has it, else the proxy):
- `netem`: a tc netem root qdisc on the instance's device delays every packet it sends, so a
  request on a fresh connection pays the delay twice (the SYN-ACK and the response), one on a
  kept-alive connection once.
- `proxy in netns`: where the kernel has no sch_netem, a small TCP proxy
  (faults.mechanisms.tcpproxy) is started inside the instance's network namespace and an
  iptables REDIRECT (nat PREROUTING, tagged) sends the service port's incoming connections to
  it. The proxy holds what the service sends for `delay`, so every request, fresh or
  kept-alive, pays it once. Its own
  upstream connection to 127.0.0.1 goes through OUTPUT, not PREROUTING, so it is not
  redirected again; connections that were open before the rule keep going direct.
The mechanism used is in the revert record, so the report says which one ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from faults.base import Fault, FaultContext, FaultParams, Mechanism, RevertRecord
from faults.mechanisms.netfaults import (
    InstanceRef,
    Rule,
    add_rules,
    apply_qdiscs,
    delete_tagged_rules,
    in_each_netns,
    iptables_probe,
    live_pid,
    qdisc_probe,
    qdisc_record_data,
    refs_of,
    revert_qdiscs,
    rule_tag,
)
from faults.mechanisms.tcpproxy import start_proxy, stop_proxies
from harness import capabilities
from harness.targets.base import Instance
from harness.units import Seconds

NETEM = "netem"
PROXY = "proxy in netns"


class LatencyParams(FaultParams):
    delay: Seconds = Field(gt=0, description="added to each response, e.g. 200ms")
    jitter: Seconds = Field(default=0.0, ge=0, description="+- this much, at random")
    mechanism: Literal["auto", "netem", "proxy"] = Field(
        default="auto", description="auto: netem where the kernel has it, else the proxy"
    )

    @property
    def delay_ms(self) -> float:
        return self.delay * 1000

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000

    def netem(self) -> list[str]:
        jitter = [f"{self.jitter_ms:g}ms"] if self.jitter else []
        return ["netem", "delay", f"{self.delay_ms:g}ms", *jitter]


class Latency(Fault[LatencyParams]):
    kind = "latency"
    requires = (capabilities.NETNS,)
    summary = "delay what the selected instances send (tc netem, or a proxy in their netns)"
    params_model = LatencyParams

    @property
    def mode(self) -> str:
        jitter = f" +- {self.params.jitter_ms:g} ms" if self.params.jitter else ""
        return f"+{self.params.delay_ms:g} ms{jitter}"

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        netem = qdisc_probe(NETEM, ["netem", "delay", "1ms"])
        if not netem.available:
            netem = Mechanism(NETEM, False, f"the kernel has no sch_netem ({netem.detail})")
        redirect = ["-p", "tcp", "--dport", "1", "-j", "REDIRECT", "--to-ports", "2"]
        return [netem, iptables_probe(PROXY, redirect, table="nat")]

    def check(self) -> list[str]:
        wanted = self.params.mechanism
        if wanted == "auto":
            return super().check()
        name = NETEM if wanted == "netem" else PROXY
        found = next(m for m in self.mechanisms() if m.name == name)
        return [] if found.available else [f"latency by {name} does not work: {found.detail}"]

    def _choose(self) -> str:
        wanted = self.params.mechanism
        if wanted == "auto":
            return NETEM if self.mechanisms()[0].available else PROXY
        return NETEM if wanted == "netem" else PROXY

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        data = qdisc_record_data(instances, self.params.netem())
        ports = {i.name: i.netns_port for i in instances}  # the workload's own, in its netns
        for raw in data["instances"]:
            raw["port"] = ports[raw["name"]]
        return RevertRecord(
            fault_id=fault_id,
            kind=self.kind,
            targets=tuple(i.name for i in instances),
            mechanism=self._choose(),
            data={**data, "tag": rule_tag(ctx.run_id, fault_id)},
        )

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        if record.mechanism == NETEM:
            apply_qdiscs(ctx, record.data)
            return
        tag = str(record.data["tag"])
        for raw in record.data["instances"]:
            ref = InstanceRef.from_json(raw)
            pid = live_pid(ctx, ref)
            proxy = start_proxy(
                f"/proc/{pid}/ns/net",
                upstream_port=int(raw["port"]),
                delay_ms=self.params.delay_ms,
                jitter_ms=self.params.jitter_ms,
                tag=tag,
                instance=ref.name,
                log_path=ctx.run_dir / "logs" / f"tcpproxy-{record.fault_id}-{ref.name}.log",
            )
            ctx.mark_action()
            add_rules(pid, [redirect_rule(int(raw["port"]), proxy.port)], tag)

    @classmethod
    def revert(cls, ctx: FaultContext, record: RevertRecord) -> None:
        if record.mechanism == NETEM:
            revert_qdiscs(ctx, record.data)
            return
        tag = str(record.data["tag"])
        # the rule first, so no new connection reaches a proxy that is stopping
        for ref in refs_of(record.data):
            in_each_netns(ctx, ref, lambda pid: delete_tagged_rules(pid, tag))
        stop_proxies(tag)


def redirect_rule(service_port: int, proxy_port: int) -> Rule:
    """Incoming connections to the service port go to the proxy instead."""
    redirect = ("-j", "REDIRECT", "--to-ports", str(proxy_port))
    return Rule("PREROUTING", ("-p", "tcp", "--dport", str(service_port), *redirect), "nat")
