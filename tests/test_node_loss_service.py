"""A node lost from a Kubernetes lab, measured through the Service, and the load's source-port
policy that makes that number the one many users would see (harness/locust/source_ports.py).

- The port ring on constructed inputs (no engine): turns, set-aside ports, shares.
- The policy in a real gevent process: a connection that timed out (a listener that never
  accepts) or found its destination unreachable sets its port aside, one that was answered
  does not.
- Slow, on the 3-node lab: scenarios/kube-node-loss.yaml (node n3 cut for 60 s, default
  tolerations, grace 20 s); users' recovery (the end of the failure stream of the requests
  sent during the cut) is held against the instant node 1's kube-proxy rules dropped the cut
  pod (read from iptables inside node 1, not from the harness), and must come within a few
  seconds of it, long before the link returns. With the kernel's source ports it came with
  the link (+56.5 to +57.7 s in 4 runs).
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from harness.locust.source_ports import PortRing, parse_ports, share

REPO = Path(__file__).resolve().parent.parent
LOCUST_DIR = REPO / "harness" / "locust"


# --- the ring, on constructed inputs ----------------------------------------------------------


def test_ports_come_in_turn_least_recently_used_first() -> None:
    ring = PortRing([5000, 5001, 5002])
    assert [ring.take() for _ in range(7)] == [5000, 5001, 5002, 5000, 5001, 5002, 5000]


def test_a_port_set_aside_is_skipped() -> None:
    ring = PortRing([5000, 5001, 5002, 5003, 5004, 5005, 5006, 5007])
    ring.set_aside(5001)
    ring.set_aside(5004)
    taken = [ring.take() for _ in range(12)]
    assert taken == [5000, 5002, 5003, 5005, 5006, 5007, 5000, 5002, 5003, 5005, 5006, 5007]


def test_at_most_a_quarter_is_set_aside_the_oldest_returns_first() -> None:
    ring = PortRing(list(range(5000, 5008)))  # a quarter of 8: 2
    for port in (5000, 5001, 5002):
        ring.set_aside(port)
    assert list(ring.aside) == [5001, 5002]
    assert [ring.take() for _ in range(3)] == [5000, 5003, 5004]


def test_shares_of_the_range_are_disjoint_and_skip_reserved_ports() -> None:
    reserved = parse_ports("32770,32772-32773\n")
    assert reserved == {32770, 32772, 32773}
    first = share(32768, 32777, reserved, 0, 2)
    second = share(32768, 32777, reserved, 1, 2)
    assert first == [32768, 32774, 32776]
    assert second == [32769, 32771, 32775, 32777]


# --- the policy in a real process -------------------------------------------------------------

_PROBE = """
import json, socket, sys
sys.path.insert(0, sys.argv[1])
import source_ports
from geventhttpclient.connectionpool import ConnectionPool

ring = source_ports.install(0, 1)
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(0)  # one connection queued, never accepted: the next SYNs are dropped
port = listener.getsockname()[1]
pool = ConnectionPool("127.0.0.1", port, "127.0.0.1", port, size=4,
                      connection_timeout=0.3, network_timeout=0.3)
outcomes = []
for _ in range(3):
    try:
        sock = pool._create_socket()
        outcomes.append(["connected", sock.getsockname()[1]])
    except TimeoutError:
        outcomes.append(["timeout", None])
print(json.dumps({"outcomes": outcomes, "aside": list(ring.aside), "ring": ring.ports}))
"""


_UNREACHABLE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import source_ports
from geventhttpclient.connectionpool import ConnectionPool

ring = source_ports.install(0, 1)
# a network namespace of its own without routes: the connect fails at once, unreachable
pool = ConnectionPool("10.9.9.9", 80, "10.9.9.9", 80, size=1, connection_timeout=1)
try:
    pool._create_socket()
except OSError as exc:
    print(json.dumps({"errno": exc.errno, "aside": list(ring.aside), "first": ring.ports[0]}))
"""


def test_an_unreachable_destination_sets_its_port_aside() -> None:
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", _UNREACHABLE, str(LOCUST_DIR)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["errno"] == errno.ENETUNREACH
    assert result["aside"] == [result["first"]]


def test_a_connection_that_timed_out_sets_its_port_aside() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(LOCUST_DIR)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(done.stdout)
    # the first connection is queued by the listener; the next two get no answer, and their
    # ports are set aside. Each comes from the ring, later in it than the one before (a port
    # another process holds is skipped, as on a busy machine: not always the very next one).
    kinds = [kind for kind, _ in result["outcomes"]]
    assert kinds == ["connected", "timeout", "timeout"]
    ring, connected, aside = result["ring"], result["outcomes"][0][1], result["aside"]
    assert len(aside) == 2 and connected not in aside
    positions = [ring.index(port) for port in (connected, *aside)]
    assert positions == sorted(positions) and len(set(positions)) == 3


# --- the node loss on the lab (slow) ----------------------------------------------------------

SCENARIO = REPO / "scenarios" / "kube-node-loss.yaml"
GRACE_ARG = "--node-monitor-grace-period=20s"
FEW_SECONDS = 3.0
# isolated timeouts after the removal (unexplained yet, issue 19's several-host load is the
# lever): 0.02 % of the requests sent then in one run; with the kernel's ports a stream of
# 0.1-0.3 % until the link returned
ISOLATED_SHARE = 0.001


def _lab_or_skip() -> None:
    from harness.labs.kubernetes.lab import load_state

    state = load_state()
    if state is None:
        return  # the run brings the scenario's lab up and takes it down again
    grace = state.control_plane_args.get("kube-controller-manager", ())
    if state.status != "up" or len(state.nodes) != 3 or GRACE_ARG not in grace:
        pytest.skip("another Kubernetes lab is up; this test needs 3 nodes with a 20 s grace")


@pytest.mark.slow
@pytest.mark.docker
def test_users_recover_when_kube_proxy_drops_the_lost_nodes_pod(tmp_path: Path) -> None:
    from bench.node_loss import CUT_NODE, Sampler, report, run_scenario
    from harness.labs.kubernetes.lab import load_state

    _lab_or_skip()
    sampler_box: list[Sampler] = []

    def sample_when_up() -> None:
        # the lab may come up with the run: sample once its state says so
        import time

        for _ in range(600):
            state = load_state()
            if state is not None and state.status == "up" and len(state.nodes) == 3:
                first, cut = state.nodes[0], state.nodes[CUT_NODE - 1]
                sampler = Sampler(first.netns, first.address, cut.pod_cidr, None)
                sampler_box.append(sampler)
                sampler.run()
                return
            time.sleep(1)

    thread = threading.Thread(target=sample_when_up, daemon=True)
    thread.start()
    try:
        code, run_dir, stderr = run_scenario(tmp_path)
    finally:
        for sampler in sampler_box:
            sampler.stop.set()
        thread.join(timeout=30)
    assert run_dir is not None, f"the run failed ({code}):\n{stderr}"
    assert sampler_box, "the lab never came up"
    figures = report(run_dir, sampler_box[0])
    rules_changed = figures["rules_changed_s"]
    assert rules_changed is not None, f"node 1's rules never dropped the cut pod: {figures}"
    assert rules_changed < 45, f"the pod left the rules too late to tell: {figures}"
    # The harness's users' ttr, held against node 1's own iptables (sampled by the test, once
    # a second): users recover when kube-proxy drops the cut pod, not when the link returns
    # (+60 s; the cut pod's probes, target_ttr_s, say that). With the kernel's source ports
    # it read 58.5-61.1 s. Measured with this rule: rules +19.84 s, ttr 20.05 s.
    ttr_s = figures["ttr_s"]
    assert ttr_s is not None, f"users never recovered: {figures}"
    assert rules_changed - 1.0 <= ttr_s <= rules_changed + FEW_SECONDS, figures
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["faults"][0]["target_ttr_s"] > 55, "the cut pod answered before the link"
    # after the removal, failures are isolated timeouts, never a stream
    requests = pd.read_parquet(run_dir / "requests.parquet")
    events = [json.loads(line) for line in (run_dir / "events.jsonl").open(encoding="utf-8")]
    t0 = next(int(e["time_ns"]) for e in events if e["action"] == "fault_inject")
    revert = next(int(e["time_ns"]) for e in events if e["action"] == "fault_revert")
    after = requests[(requests["start_ns"] > t0 + (rules_changed + 1) * 1e9)]
    after = after[after["start_ns"] < revert]
    late = after[~after["ok"]]
    assert len(late) <= ISOLATED_SHARE * len(after), late.to_string()
