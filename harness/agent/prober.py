"""Probes from the fault agents, for pods whose addresses this machine cannot reach.

`choose_probes` decides where the run's probes come from (`probes.via`): `harness` (its own
Prober), `agent` (the agent on each instance's node), or `auto`: one probe of each instance
from here first, and the agents when any of them does not answer and the run has agents.
`AgentProber` has the Prober's interface (start, stop, frame, write): it starts a probe process
on each node's agent (harness.agent.probing) for the instances of that node, reads what it
probed every second over the agent's channel, puts the agent's instants on this clock with the
offset the relay measured, and appends the probes to the run's probe log as they arrive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.agent.protocol import (
    ProbeReadRequest,
    ProbeStartRequest,
    ProbeStopRequest,
    ProbeTarget,
    Reply,
)
from harness.agent.relay import AgentRelay, call
from harness.errors import AgentError
from harness.http_probe import probe_once
from harness.observe import ProbeLog
from harness.results.probes import ProbeResult, write_probes_parquet
from harness.targets.base import Instance

AUTO_TIMEOUT_S = 1.0  # auto's one probe of each instance from here
POLL_S = 1.0
IDLE_S = 60.0  # an agent's probe process stops by itself after this long without a read
FINAL_READS = 20  # after the stop: reads until nothing new (a read returns 512 KiB at most)
JOIN_S = 10.0

Probe = Callable[[str, float], tuple[bool, "str | None"]]


@dataclass(frozen=True)
class ProbeChoice:
    """Where the probes come from (`harness` or `agent`), and why, for the manifest."""

    asked: str
    via: str
    reason: str


def choose_probes(
    asked: str,
    instances: Sequence[Instance],
    path: str,
    have_agents: bool,
    probe: Probe = probe_once,
) -> ProbeChoice:
    """`probes.via` decided: auto tries one probe of each instance from here."""
    if asked == "harness":
        return ProbeChoice(asked, "harness", "probes.via: harness")
    if asked == "agent":
        if not have_agents:
            raise AgentError(
                "probes.via: agent, but the run has no fault agents (they come with a host-side "
                "fault on a target the harness does not run, or target.agent.use: always)"
            )
        return ProbeChoice(asked, "agent", "probes.via: agent")
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(instances)))) as pool:
        # at once: an address that drops packets takes the whole timeout
        answers = list(pool.map(lambda i: probe(f"{i.url}{path}", AUTO_TIMEOUT_S), instances))
    failed = {
        instance.name: error or "failed"
        for instance, (ok, error) in zip(instances, answers, strict=True)
        if not ok
    }
    if not failed:
        reason = f"every instance ({len(instances)}) answered a probe from the harness"
        return ProbeChoice(asked, "harness", reason)
    said = ", ".join(f"{name} ({error})" for name, error in sorted(failed.items()))
    if not have_agents:
        reason = f"{said} did not answer a probe from the harness, and the run has no agents"
        return ProbeChoice(asked, "harness", reason)
    reason = f"{said} did not answer a probe from the harness: the agents on their nodes probe"
    return ProbeChoice(asked, "agent", reason)


def agent_url(instance: Instance, path: str) -> str:
    """The instance's own address and port, as its node reaches it (not a route of this host:
    a Swarm slot's or the lab's slot addresses are this machine's)."""
    address = instance.netns_address
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{instance.netns_port}{path}"


class AgentProber:
    """harness.observe.Prober's interface, the probes done by the agent on each node."""

    def __init__(
        self,
        relay: AgentRelay,
        instances: Sequence[Instance],
        path: str,
        interval_s: float,
        timeout_s: float,
        log: Path | None = None,
        warn: Callable[[str], None] = lambda _message: None,
        poll_s: float = POLL_S,
    ) -> None:
        self._relay = relay
        self._targets: dict[str, list[ProbeTarget]] = {}
        for instance in instances:
            target = ProbeTarget(name=instance.name, url=agent_url(instance, path))
            self._targets.setdefault(relay.node_of(instance), []).append(target)
        self._interval_s, self._timeout_s, self._poll_s = interval_s, timeout_s, poll_s
        self._warn = warn
        self._log = ProbeLog(log)
        self._offsets: dict[str, int] = {}
        self._warned: set[str] = set()
        self._stop = threading.Event()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._poll, args=(node,), name=f"agent-probes-{node}")
            for node in self._targets
        ]

    @property
    def nodes(self) -> list[str]:
        return sorted(self._targets)

    def start(self) -> AgentProber:
        """Start every node's probe process (AgentError if one cannot), then the reads."""
        for node, targets in self._targets.items():
            request = ProbeStartRequest(
                run_id=self._relay.run_id,
                targets=targets,
                interval_s=self._interval_s,
                timeout_s=self._timeout_s,
                idle_s=IDLE_S,
            )
            self._offsets[node] = self._call(node, request).next_offset
        for thread in self._threads:
            thread.daemon = True
            thread.start()
        return self

    def _call(
        self, node: str, body: ProbeStartRequest | ProbeReadRequest | ProbeStopRequest
    ) -> Reply:
        reply = call(self._relay.channel(node), body)
        if not reply.ok:
            raise AgentError(f"the fault agent on {node}: {reply.error}")
        return reply

    def _poll(self, node: str) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                reply = self._read(node)
            except AgentError as exc:  # an exec that failed once: the next read catches up
                self._warn_once(node, f"reading the probes of the agent on {node} failed: {exc}")
                continue
            if reply.pid is None and not self._stop.is_set():
                self._warn_once(node, f"the probe process on {node} stopped before the run ended")

    def _read(self, node: str) -> Reply:
        request = ProbeReadRequest(run_id=self._relay.run_id, offset=self._offsets[node])
        reply = self._call(node, request)
        offset_ns = self._relay.offsets[node].offset_ns
        self._log.add(
            [
                ProbeResult(p.start_ns - offset_ns, p.latency_ms, p.ok, p.instance, p.error)
                for p in reply.probes
            ]
        )
        self._offsets[node] = reply.next_offset
        return reply

    def _warn_once(self, node: str, message: str) -> None:
        if node not in self._warned:
            self._warned.add(node)
            self._warn(message)

    def stop(self) -> None:
        """Stop the reads and every probe process, then read what is left; safe twice."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=JOIN_S)
        failures = []
        for node in self._offsets:
            try:
                self._finish(node)
            except AgentError as exc:  # the other nodes' processes are stopped all the same
                failures.append(str(exc))
        self._log.close()
        if failures:
            raise AgentError("; ".join(failures))

    def _finish(self, node: str) -> None:
        self._call(node, ProbeStopRequest(run_id=self._relay.run_id))
        for _ in range(FINAL_READS):
            if not self._read(node).probes:
                return

    def frame(self) -> pd.DataFrame:
        return self._log.frame()

    def write(self, path: Path) -> None:
        write_probes_parquet(self.frame(), path)
