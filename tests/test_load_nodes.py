"""harness.load_nodes' service copy on a network namespace of the test's own (no lab): the
host's service rules copied in, followed when they change, removed at the end; a dead run's
copy removed by the next entry."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator

import pytest

from harness import hostnet
from harness.load_nodes import ENTRY_ADDRESS, NodeEntry, remove_dead_runs_rules
from harness.targets.service_vip import vip_chain

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def _nat(netns: str, *args: str) -> list[str]:
    argv = ["ip", "netns", "exec", netns, "iptables", "-w", "5", "-t", "nat", "-S", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"chtest-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    yield name
    subprocess.run(["ip", "netns", "delete", name], check=True)


def _host_service(run_id: str, backends: list[tuple[str, int]]) -> None:
    """The run's service chain on the host, with no jump to it (it carries no traffic)."""
    chain = vip_chain(run_id)
    lines = [f":{chain} - [0:0]"] + [
        " ".join(["-A", chain, *rule]) for rule in hostnet.spread_rules(backends)
    ]
    hostnet.restore(lines)


def test_the_service_is_copied_followed_and_removed(netns: str) -> None:
    run_id = f"test-{secrets.token_hex(3)}"
    entry = NodeEntry(run_id, [netns])
    try:
        _host_service(run_id, [("10.213.0.11", 30001), ("10.213.0.12", 30002)])
        url = entry.open()
        assert url == f"http://{ENTRY_ADDRESS}:{entry.port}"
        copied = [line for line in _nat(netns, entry.chain) if line.startswith("-A")]
        assert [line.split()[-1] for line in copied] == ["10.213.0.11:30001", "10.213.0.12:30002"]
        (jump,) = [line for line in _nat(netns, "OUTPUT") if entry.chain in line]
        assert f"-d {ENTRY_ADDRESS}/32" in jump and f"--dport {entry.port}" in jump

        _host_service(run_id, [("10.213.0.13", 30003)])  # a task replaced on another node
        entry.sync()
        copied = [line for line in _nat(netns, entry.chain) if line.startswith("-A")]
        assert [line.split()[-1] for line in copied] == ["10.213.0.13:30003"]
    finally:
        entry.close()
        hostnet.restore([f"-F {vip_chain(run_id)}", f"-X {vip_chain(run_id)}"])
    assert not [line for line in _nat(netns) if "CHAOS-" in line]


def test_a_dead_runs_copy_goes_and_a_live_ones_stays(netns: str) -> None:
    live = NodeEntry(f"test-{secrets.token_hex(3)}", [netns])
    # as a SIGKILLed harness leaves it: its owner (pid 1 with another start) no longer runs
    dead = NodeEntry(f"test-{secrets.token_hex(3)}", [netns], owner="1:1")
    for entry in (live, dead):
        _host_service(entry.run_id, [("10.213.0.11", 30001)])
    try:
        dead.open()
        live.open()  # its first copy into the node removes the dead run's
        chains = [line.split()[-1] for line in _nat(netns, "OUTPUT") if "CHAOS-" in line]
        assert chains == [live.chain]
        assert not [line for line in _nat(netns) if dead.chain in line]
        assert remove_dead_runs_rules(netns) == []  # the live one stays
    finally:
        live.close()
        for entry in (live, dead):
            hostnet.restore([f"-F {vip_chain(entry.run_id)}", f"-X {vip_chain(entry.run_id)}"])
    assert not [line for line in _nat(netns) if "CHAOS-" in line]
