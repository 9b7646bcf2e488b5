"""A node cut off a 3-node Kubernetes lab, measured through the Service, with the evidence of
what the load's failures were: node 1's connection tracking and kube-proxy rules, sampled
beside the run.

    python -m bench.node_loss [--clear-after-removal S] [--out results/node-loss]

Runs scenarios/kube-node-loss.yaml (the lab must be up with 3 nodes and the scenario's grace
period, or the run brings one up). Meanwhile, once a second, inside node 1's network namespace
(the node the load enters by):
- kube-proxy's rules: how many endpoints the run's Service chain spreads over (iptables-save);
- conntrack: the load's flows (from this host to node 1) that node 1 sent on to the cut
  node's pods, in every state, with their source port and remaining timeout;
and conntrack's NEW events of the load's flows on node 1 (new-flows.txt: each new NAT decision).
`--clear-after-removal S` deletes the flows sent on to the cut node's pods S seconds after
kube-proxy dropped that pod from its rules (what kube-proxy does for UDP, never for TCP).
`CHAOS_HARNESS_SOURCE_PORTS=kernel` in the environment makes the load take the kernel's
source ports (see harness/locust/source_ports.py).

Prints, from the run's own files and the samples (seconds from the cut): node down, endpoint
removed, rules changed; the summary's ttr (users' recovery through the Service: the
requests alone; `target_ttr_s` in the summary is the cut pod's own return); the end of the
failure stream of requests sent during the cut (the last failure with two more in the 2 s
before it); the requests sent after the endpoint's removal that failed; the stale flows to
the cut pod; the new NAT decisions for the cut pod after the rules changed. Samples go to
<run dir>/node-loss.jsonl.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.runs import REPO
from harness.labs.host import netns_path
from harness.labs.kubernetes.lab import load_state
from harness.labs.kubernetes.state import BRIDGE_ADDRESS

SCENARIO = REPO / "scenarios" / "kube-node-loss.yaml"
CUT_NODE = 3
_ENTRY = re.compile(
    r"^tcp\s+\d+\s+(?P<timeout>\d+)\s+(?P<state>[A-Z_]+)\s+src=\S+\s+dst=\S+\s+sport=(?P<sport>\d+)"
    r"\s+dport=(?P<dport>\d+).*?src=(?P<reply_src>\S+)\s+dst=\S+\s+sport=(?P<reply_sport>\d+)"
)
_SEP_JUMP = re.compile(r"^-A KUBE-SVC-\S+ .*chaos-.* -j KUBE-SEP-")


@dataclass
class Sampler:
    """Samples node 1's conntrack and kube-proxy rules once a second until stopped."""

    netns: str
    node_address: str
    cut_cidr: str
    clear_after_s: float | None
    out: list[dict[str, Any]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    removed_ns: int | None = None
    cleared: dict[str, Any] | None = None

    def run(self) -> None:
        endpoints_before = 0
        while not self.stop.wait(1.0):
            now = time.time_ns()
            endpoints = self._endpoints()
            if endpoints_before >= 3 and 0 < endpoints < endpoints_before:
                self.removed_ns = self.removed_ns or now
            endpoints_before = max(endpoints_before, endpoints)
            flows = self._flows()
            self.out.append({"t_ns": now, "rule_endpoints": endpoints, "flows": flows})
            if self._clear_due(now):
                self.cleared = self._clear(flows)

    def _nsenter(self, *argv: str) -> str:
        command = ["nsenter", f"--net={netns_path(self.netns)}", "--", *argv]
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout

    def _nsenter_err(self, *argv: str) -> str:
        command = ["nsenter", f"--net={netns_path(self.netns)}", "--", *argv]
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stderr

    def _endpoints(self) -> int:
        lines = self._nsenter("iptables-save", "-t", "nat").splitlines()
        return sum(1 for line in lines if _SEP_JUMP.match(line))

    def _flows(self) -> list[dict[str, Any]]:
        """The load's flows (every state) that node 1 sent on to the cut node's pods."""
        text = self._nsenter(
            *("conntrack", "-L", "-p", "tcp"),
            *("--orig-src", BRIDGE_ADDRESS, "--orig-dst", self.node_address),
        )
        found = []
        for line in text.splitlines():
            match = _ENTRY.match(line)
            if match:
                flow = {k: _number(v) for k, v in match.groupdict().items()}
                if self._on_cut_node(flow):
                    found.append(flow)
        return found

    def _clear_due(self, now: int) -> bool:
        if self.clear_after_s is None or self.removed_ns is None or self.cleared is not None:
            return False
        return now >= self.removed_ns + self.clear_after_s * 1e9

    def _clear(self, flows: list[dict[str, Any]]) -> dict[str, Any]:
        pods = sorted({str(f["reply_src"]) for f in flows if self._on_cut_node(f)})
        deleted = 0
        for pod in pods:
            deleted += _deleted_count(
                self._nsenter_err("conntrack", "-D", "-p", "tcp", "--reply-src", pod)
            )
        return {"at_ns": time.time_ns(), "pods": pods, "deleted": deleted}

    def _on_cut_node(self, flow: dict[str, Any]) -> bool:
        return ipaddress.ip_address(str(flow["reply_src"])) in ipaddress.ip_network(self.cut_cidr)


def _number(text: str) -> object:
    return int(text) if text.isdigit() else text


def _deleted_count(stderr: str) -> int:
    match = re.search(r"(\d+) flow entries have been deleted", stderr)
    return int(match.group(1)) if match else 0


def run_scenario(out: Path) -> tuple[int, Path | None, str]:
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(SCENARIO), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    run_dir = Path(lines[-1]) if lines and Path(lines[-1]).is_dir() else None
    return done.returncode, run_dir, done.stderr[-3000:]


Event = dict[str, Any]


def _events(run_dir: Path) -> list[Event]:
    with (run_dir / "events.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _first(events: list[Event], action: str, after_ns: int, new: str | None = None) -> int | None:
    """The first `action` event at or after `after_ns` (with attributes.new == `new`)."""
    for event in events:
        if event["action"] != action or int(event["time_ns"]) < after_ns:
            continue
        if new is None or event["attributes"].get("new") == new:
            return int(event["time_ns"])
    return None


def stream_end(failure_ends_ns: list[int]) -> int | None:
    """The end of a failure stream: the last failure with two more in the 2 s before it (an
    isolated timeout does not extend it)."""
    ends = sorted(failure_ends_ns)
    stream = [ends[i] for i in range(2, len(ends)) if ends[i] - ends[i - 2] <= 2_000_000_000]
    return stream[-1] if stream else None


def _since(t0: int, at: int | None) -> float | None:
    return None if at is None else round((at - t0) / 1e9, 2)


def report(run_dir: Path, sampler: Sampler) -> dict[str, Any]:
    """The figures of one run (seconds from the cut)."""
    events = _events(run_dir)
    t0 = _first(events, "fault_inject", 0) or 0
    removed = _first(events, "endpoint_removed", t0)
    revert = _first(events, "fault_revert", t0) or 2**63 - 1
    fault = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["faults"][0]
    requests = pd.read_parquet(run_dir / "requests.parquet")
    failed = requests[~requests["ok"] & (requests["start_ns"] < revert)]  # sent during the cut
    failed_end = failed["start_ns"] + (failed["latency_ms"] * 1e6).astype("int64")
    after_removal = failed[failed["start_ns"] > removed] if removed else failed.iloc[0:0]
    cleared = dict(sampler.cleared or {})
    if cleared:
        cleared["at_s"] = _since(t0, int(cleared["at_ns"]))
    return {
        "run": run_dir.name,
        "node_down_s": _since(t0, _first(events, "node_state", t0, "down")),
        "endpoint_removed_s": _since(t0, removed),
        "rules_changed_s": _since(t0, sampler.removed_ns),
        "ttr_s": fault.get("ttr_s"),
        "users_recovered_s": _since(t0, stream_end(failed_end.tolist())),
        "recovered": fault.get("recovered"),
        "failed_requests_in_window": fault.get("failed_requests"),
        "requests": len(requests),
        "failed_sent_during_cut": len(failed),
        "failed_sent_after_removal": len(after_removal),
        "errors_after_removal": after_removal["error"].value_counts().to_dict(),
        "cleared": cleared or None,
        **_stale_flows(sampler, removed),
    }


def _stale_flows(sampler: Sampler, removed: int | None) -> dict[str, Any]:
    """Flows to the cut node's pods seen after the endpoint's removal: how many, and how many
    times their timeout was renewed (each renewal is a packet of a new connection on an old
    source port, or a retransmission of one)."""
    if removed is None:
        return {}
    later = [s for s in sampler.out if int(s["t_ns"]) > removed]
    seen: dict[tuple[object, object], int] = {}
    ports: set[object] = set()
    renewals = 0
    for sample in later:
        for flow in sample["flows"]:
            if not sampler._on_cut_node(flow):
                continue
            key = (flow["state"], flow["sport"])
            ports.add(flow["sport"])
            timeout = int(flow["timeout"])
            if key in seen and timeout > seen[key]:
                renewals += 1
            seen[key] = timeout
    counts = [sum(1 for f in s["flows"] if sampler._on_cut_node(f)) for s in later]
    return {
        "stale_flows_after_removal_max": max(counts, default=0),
        "stale_source_ports": len(ports),
        "stale_flow_renewals_after_removal": renewals,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clear-after-removal", type=float, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "node-loss")
    args = parser.parse_args()
    state = load_state()
    if state is None or state.status != "up" or len(state.nodes) != 3:
        sys.exit("needs the 3-node Kubernetes lab up (harness lab up --kind kubernetes --nodes 3)")
    first, cut = state.nodes[0], state.nodes[CUT_NODE - 1]
    sampler = Sampler(first.netns, first.address, cut.pod_cidr, args.clear_after_removal)
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    args.out.mkdir(parents=True, exist_ok=True)
    new_flows = args.out / f"new-flows-{time.time_ns()}.txt"
    with new_flows.open("w", encoding="utf-8") as sink:
        watch = ["conntrack", "-E", "-e", "NEW", "-p", "tcp", "-o", "timestamp"]
        flows = ["--orig-src", BRIDGE_ADDRESS, "--orig-dst", first.address]
        watcher = subprocess.Popen(
            ["nsenter", f"--net={netns_path(first.netns)}", "--", *watch, *flows],
            stdout=sink,
            stderr=subprocess.DEVNULL,
        )
        try:
            code, run_dir, stderr = run_scenario(args.out)
        finally:
            watcher.terminate()
            watcher.wait(10)
    sampler.stop.set()
    thread.join()
    if run_dir is None:
        sys.exit(f"the run failed ({code}):\n{stderr}")
    new_flows = new_flows.rename(run_dir / "new-flows.txt")
    (run_dir / "node-loss.jsonl").write_text(
        "".join(json.dumps(s) + "\n" for s in sampler.out), encoding="utf-8"
    )
    figures = report(run_dir, sampler)
    revert = _first(_events(run_dir), "fault_revert", 0) or 2**63 - 1
    figures["new_flows_to_cut_pod_after_removal"] = _new_flows_after(new_flows, sampler, revert)
    print(json.dumps({"exit": code, **figures}, indent=1))


def _new_flows_after(path: Path, sampler: Sampler, revert_ns: int) -> int | None:
    """New connections node 1 sent on to the cut node's pods once its rules dropped them,
    before the link returned (conntrack's NEW events: each names the pod in its reply)."""
    if sampler.removed_ns is None:
        return None
    count = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        stamp, _, rest = line.partition("]")
        match = _ENTRY.match(rest[rest.find("tcp") :])
        at_ns = float(stamp.lstrip("[")) * 1e9
        if not match or not sampler.removed_ns <= at_ns < revert_ns:
            continue
        count += sampler._on_cut_node({k: _number(v) for k, v in match.groupdict().items()})
    return count


if __name__ == "__main__":
    main()
