"""The harness's side of the fault agents: host-side faults sent to the node of each target.

A fault that acts on a process or a namespace (harness.capabilities HOST_PROCESS, NETNS) is
split by the node of each selected instance and sent to that node's agent, which plans,
keeps the undo record and applies it; the harness's own record only names the nodes. Each
agent's clock is compared with the harness's at the start and the end (measure_offset says
how), and its action instants are put on the harness's clock with the start's offset.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from faults.base import RELAYED, AnyFault, FaultContext, RevertRecord
from harness import capabilities
from harness.agent.channel import AgentChannel, TimedChannel
from harness.agent.node import from_instance
from harness.agent.protocol import (
    CALL_ARGV,
    CLOCK_ARGV,
    PROTOCOL_VERSION,
    ApplyRequest,
    Body,
    InfoRequest,
    Reply,
    Request,
    RevertRequest,
)
from harness.errors import AgentError, FaultError
from harness.targets.base import Instance

RELAYED_NEEDS = frozenset({capabilities.HOST_PROCESS, capabilities.NETNS})
CALL_TIMEOUT_S = 60.0
CLOCK_SAMPLES = 5


def relays(fault: AnyFault) -> bool:
    """Whether `fault` acts on a process or a namespace (what an agent does for it)."""
    return any(need in RELAYED_NEEDS for need in fault.needs())


@dataclass(frozen=True)
class ClockOffset:
    """The agent's clock minus the harness's, and half the round trip it was measured in."""

    offset_ns: int
    uncertainty_ns: int


def call(channel: AgentChannel, body: Body) -> Reply:
    """One request to one agent; its reply (AgentError when it cannot be read)."""
    request = Request(body=body).model_dump_json()
    output = channel.run([*CALL_ARGV, request], CALL_TIMEOUT_S)
    line = output.strip().splitlines()[-1] if output.strip() else ""
    version = _version_of(line)  # first: another version's reply may not parse
    if version is not None and version != PROTOCOL_VERSION:
        raise AgentError(
            f"the agent on {channel.node} speaks protocol {version}, the harness "
            f"{PROTOCOL_VERSION}: rebuild its image (`harness agent build`)"
        )
    try:
        return Reply.model_validate_json(line)
    except ValidationError as exc:
        raise AgentError(
            f"the agent on {channel.node} answered something that is not a reply: "
            f"{output[-300:]!r} ({exc})"
        ) from exc


def _version_of(line: str) -> object:
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed.get("version") if isinstance(parsed, dict) else None


def measure_offset(channel: AgentChannel, samples: int = CLOCK_SAMPLES) -> ClockOffset:
    """The agent's clock minus ours, from the sample with the smallest bound.

    The agent reads its clock after the exec has started an interpreter (most of the round
    trip) and just before it exits: the round trip's midpoint is early by tens of ms. A
    channel that times its output's arrival (TimedChannel) gives a bound [sent, arrived]
    whose late end is the reading plus the short way back: the offset is taken there, its
    error at most the whole bound (the arrival's leg alone, in practice). Without it: the
    midpoint, within half the round trip."""
    best: ClockOffset | None = None
    for _ in range(samples):
        sample = _clock_sample(channel)
        if best is None or sample.uncertainty_ns < best.uncertainty_ns:
            best = sample
    assert best is not None
    return best


def _clock_sample(channel: AgentChannel) -> ClockOffset:
    before = time.time_ns()
    arrived: int | None = None
    if isinstance(channel, TimedChannel):
        output, arrived = channel.run_timed(CLOCK_ARGV, CALL_TIMEOUT_S)
    else:
        output = channel.run(CLOCK_ARGV, CALL_TIMEOUT_S)
    after = time.time_ns()
    try:
        theirs = int(output.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise AgentError(f"the agent on {channel.node} did not tell its time: {output!r}") from exc
    if arrived is not None:
        return ClockOffset(theirs - arrived, arrived - before)
    return ClockOffset(theirs - (before + after) // 2, (after - before) // 2)


class AgentRelay:
    """faults.base.FaultRelay over the agents of one run (node name -> channel)."""

    def __init__(self, run_id: str, seed: int, channels: Mapping[str, AgentChannel]) -> None:
        if not channels:
            raise AgentError("no fault agent is running for the run")
        self.run_id = run_id
        self.seed = seed
        self._channels = dict(channels)
        for channel in self._channels.values():
            call(channel, InfoRequest())  # it answers, in this protocol's version
        self.offsets = {node: measure_offset(ch) for node, ch in self._channels.items()}
        self._said: dict[str, dict[str, str]] = {}  # fault id -> node -> what its agent did

    def takes(self, fault: AnyFault) -> bool:
        return relays(fault)

    def plan(
        self,
        fault: AnyFault,
        ctx: FaultContext,
        fault_id: str,
        instances: Sequence[Instance],
        lease_s: float | None,
    ) -> RevertRecord:
        everyone = ctx.target.instances()
        acted_on = set(fault.acts_on(everyone, instances))
        by_node: dict[str, list[str]] = {}
        for instance in [i for i in everyone if i.name in acted_on]:
            by_node.setdefault(self.node_of(instance), []).append(instance.name)
        where = ", ".join(sorted(by_node))
        return RevertRecord(
            fault_id=fault_id,
            kind=fault.kind,
            targets=tuple(name for names in by_node.values() for name in names),
            mechanism=f"the fault agent on {where}",
            data={RELAYED: by_node, "lease_s": lease_s},
        )

    def apply(self, fault: AnyFault, ctx: FaultContext, record: RevertRecord) -> None:
        everyone = [from_instance(i) for i in ctx.target.instances()]
        lease = record.data.get("lease_s")
        for node, names in self._shares(record).items():
            request = ApplyRequest(
                run_id=self.run_id,
                fault_id=record.fault_id,
                kind=fault.kind,
                params=fault.params.model_dump(mode="json"),
                targets=names,
                instances=everyone,
                seed=self.seed,
                lease_s=None if lease is None else float(lease),
            )
            reply = self._checked(node, request)
            self._said.setdefault(record.fault_id, {})[node] = reply.mechanism
            if reply.action_ns is not None:
                ctx.clock.mark_at(reply.action_ns - self.offsets[node].offset_ns)

    def mechanism(self, record: RevertRecord) -> str:
        """What the agents did for an applied fault, node by node (else the record's words)."""
        said = self._said.get(record.fault_id)
        if not said:
            return record.mechanism
        return "; ".join(
            f"the fault agent on {node}: {what}" if what else f"the fault agent on {node}"
            for node, what in sorted(said.items())
        )

    def revert(self, ctx: FaultContext, record: RevertRecord) -> None:
        everyone = [from_instance(i) for i in ctx.target.instances()]
        failures = []
        for node in self._shares(record):
            request = RevertRequest(
                run_id=self.run_id, fault_id=record.fault_id, instances=everyone
            )
            try:
                reply = self._checked(node, request)
            except FaultError as exc:
                failures.append(str(exc))
                continue
            if reply.action_ns is not None:
                ctx.clock.mark_at(reply.action_ns - self.offsets[node].offset_ns)
        if failures:
            raise FaultError("; ".join(failures))

    def clock_report(self) -> dict[str, dict[str, float]]:
        """Each agent's clock offset now and at the start (ms), for the manifest."""
        report = {}
        for node, channel in self._channels.items():
            end = measure_offset(channel)
            start = self.offsets[node]
            report[node] = {
                "offset_start_ms": start.offset_ns / 1e6,
                "offset_end_ms": end.offset_ns / 1e6,
                "uncertainty_ms": max(start.uncertainty_ns, end.uncertainty_ns) / 1e6,
            }
        return report

    def channel(self, node: str) -> AgentChannel:
        """The agent on `node` (AgentError: none runs there)."""
        channel = self._channels.get(node)
        if channel is None:
            raise AgentError(f"the fault agent on {node} is gone")
        return channel

    def node_of(self, instance: Instance) -> str:
        """The node of the agent that acts on `instance` (AgentError: none runs there)."""
        if instance.node in self._channels:
            return instance.node
        if instance.node is None and len(self._channels) == 1:
            return next(iter(self._channels))
        raise AgentError(
            f"no fault agent runs on {instance.node or 'the node'} of {instance.name} "
            f"(agents on: {', '.join(sorted(self._channels))}); is the node tainted against "
            "the agent, or not Ready?"
        )

    def _shares(self, record: RevertRecord) -> dict[str, list[str]]:
        raw = record.data.get(RELAYED, {})
        return {str(node): [str(n) for n in names] for node, names in dict(raw).items()}

    def _checked(self, node: str, body: ApplyRequest | RevertRequest) -> Reply:
        reply = call(self.channel(node), body)
        if not reply.ok:
            raise FaultError(f"the fault agent on {node}: {reply.error}")
        return reply
