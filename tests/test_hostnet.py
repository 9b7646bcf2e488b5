"""harness.hostnet on the real kernel: a run's chain and jump, DNAT to a listening socket, a
replacement in one transaction, removal back to the table as it was, and cleanup of chains an
older version named differently.

Each test runs in a network namespace of its own (a forked child that unshares it), so its
nat table is not the host's, which other runs change at the same time: "as before" can then be
compared exactly, and nothing is left on the host whatever happens.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import re
import select
import shutil
import socket
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import commands, hostnet
from harness.cleanup import cleanup_all
from harness.errors import CommandError
from harness.owners import owner_label_value
from harness.targets.swarm.events import TaskView
from harness.targets.swarm.routes import SlotRouter

CLONE_NEWNET = 0x40000000
DEAD_OWNER = "4194305:1"  # a PID above the kernel's limit (2**22): never a live process

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("iptables-restore") is None,
    reason="needs root and iptables",
)


def _in_own_netns(body: Callable[[], Any]) -> Any:
    """body() in a forked child that has unshared its network namespace (lo up); its result,
    or the child's exception re-raised here as an AssertionError with its traceback."""
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe(duplex=False)

    def child() -> None:
        try:
            if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
            commands.run(["ip", "link", "set", "lo", "up"])
            child_end.send(("ok", body()))
        except BaseException:  # everything goes back to the test
            child_end.send(("error", traceback.format_exc()))

    process = ctx.Process(target=child)
    process.start()
    status, value = parent_end.recv()
    process.join(timeout=30)
    if status != "ok":
        raise AssertionError(f"in the test's network namespace:\n{value}")
    return value


def _nat_text() -> str:
    """`iptables-save -t nat` without its comment lines and packet counters (which traffic
    moves): the rules and chains as they are."""
    text = commands.run(["iptables-save", "-t", "nat"]).stdout
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    return re.sub(r"\[\d+:\d+\]", "[0:0]", "\n".join(lines))


def _listener() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(5)
    return server


def _send_through(address: str, port: int, servers: list[socket.socket], data: bytes) -> int:
    """Connect to address:port, send `data`; the index of the server that received it."""
    with socket.create_connection((address, port), timeout=5) as client:
        client.sendall(data)
        ready, _, _ = select.select(servers, [], [], 5)
        assert len(ready) == 1, f"{len(ready)} listeners got the connection to {address}:{port}"
        conn, _ = ready[0].accept()
        with conn:
            assert conn.recv(100) == data
        return servers.index(ready[0])


def test_chain_names_fit_iptables_and_differ_by_run_and_purpose() -> None:
    name = hostnet.chain_name("quickstart-20261207-110312-c63c", "SLOTS")
    assert re.fullmatch(r"CHAOS-SLOTS-[0-9A-F]{12}", name) and len(name) <= 28
    assert len(hostnet.chain_name("r", "ABCDEFGHI")) == 28
    assert hostnet.chain_name("r", "VIP") != hostnet.chain_name("s", "VIP")
    assert hostnet.chain_name("r", "VIP") != hostnet.chain_name("r", "PODS")
    with pytest.raises(ValueError):
        hostnet.chain_name("r", "ABCDEFGHIJ")  # 29 characters


def _chain_dnat_replace_remove() -> dict[str, Any]:
    # rules the harness did not write, which it must leave exactly as they are
    commands.run(["iptables", "-t", "nat", "-N", "SOMEONE-ELSE"])
    commands.run(["iptables", "-t", "nat", "-A", "SOMEONE-ELSE", "-p", "udp", "-j", "RETURN"])
    commands.run(["iptables", "-t", "nat", "-A", "OUTPUT", "-d", "127.9.9.9/32", "-j", "RETURN"])
    before = _nat_text()
    servers = [_listener(), _listener()]
    ports = [s.getsockname()[1] for s in servers]
    chain = hostnet.RunChain("test-run", owner_label_value(), "TEST", ["-d", "127.77.0.0/16"])
    match = ["-d", "127.77.0.5/32", "--dport", "80"]
    chain.replace([hostnet.dnat(("127.0.0.1", ports[0]), match)])
    jumps = [j for j in hostnet.run_jumps() if j.run_id == "test-run"]
    first = _send_through("127.77.0.5", 80, servers, b"to the first")
    chain.replace([hostnet.dnat(("127.0.0.1", ports[1]), match)])
    rules_after_replace = [line for line in _nat_text().splitlines() if chain.chain in line]
    second = _send_through("127.77.0.5", 80, servers, b"to the second")
    try:  # a refused transaction changes nothing
        chain.replace([hostnet.dnat(("127.0.0.1", ports[0]), match), ["-j", "NO-SUCH-CHAIN"]])
        refused = ""
    except CommandError as exc:
        refused = str(exc)
    third = _send_through("127.77.0.5", 80, servers, b"still the second")
    chain.remove()
    chain.remove()  # idempotent
    return {
        "before": before,
        "after": _nat_text(),
        "jumps": [(j.chain, j.owner) for j in jumps],
        "received": [first, second, third],
        "rules": rules_after_replace,
        "refused": refused,
        "chain": chain.chain,
        "owner": owner_label_value(),  # the child's own
    }


def test_a_runs_chain_dnats_replaces_in_one_transaction_and_leaves_no_trace() -> None:
    found = _in_own_netns(_chain_dnat_replace_remove)
    chain = found["chain"]
    assert found["jumps"] == [(chain, found["owner"])]
    assert found["received"] == [0, 1, 1]  # the second replace held after a refused one
    assert len([r for r in found["rules"] if r.startswith(f"-A {chain} ")]) == 1
    assert len([r for r in found["rules"] if r.startswith("-A OUTPUT ")]) == 1
    assert "iptables-restore" in found["refused"] and "NO-SUCH-CHAIN" in found["refused"]
    assert found["after"] == found["before"]
    assert "SOMEONE-ELSE" in found["after"]


def _orphans_of_every_naming(results: Path) -> dict[str, Any]:
    def add(chain: str, run_id: str, owner: str) -> None:
        comment = f"chaos-harness.run-id={run_id} chaos-harness.owner={owner}"
        commands.run(["iptables", "-t", "nat", "-N", chain])
        commands.run(["iptables", "-t", "nat", "-A", chain, "-p", "tcp", "-j", "RETURN"])
        commands.run(
            [
                *("iptables", "-t", "nat", "-I", "OUTPUT", "-d", "127.0.0.0/8"),
                *("-m", "comment", "--comment", comment, "-j", chain),
            ]
        )

    before = _nat_text()
    # the names older versions gave: Swarm's slots, Kubernetes' routes, a service address
    for chain in ("CHAOS-0123456789AB", "CHAOS-K8S-0123456789AB", "CHAOS-VIP-0123456789AB"):
        add(chain, "old-dead-run", DEAD_OWNER)
    live = hostnet.RunChain("live-run", owner_label_value(), "VIP", ["-d", "127.78.0.1/32"])
    live.replace([["-p", "tcp", "-j", "RETURN"]])
    with_live = _nat_text()
    removed = [line for line in cleanup_all(results) if "iptables" in line]
    after_cleanup = _nat_text()
    live.remove()
    return {
        "before": before,
        "with_live": with_live,
        "removed": removed,
        "after_cleanup": after_cleanup,
        "after": _nat_text(),
        "live": live.chain,
    }


def test_cleanup_removes_chains_of_dead_runs_by_their_comment_whatever_their_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`harness cleanup`'s sweep, without its engines and labs (other tests' business)."""
    monkeypatch.setattr("harness.cleanup.engines_to_sweep", lambda _dead: [])
    monkeypatch.setattr("harness.cleanup.take_down_orphaned_labs", lambda: iter(()))
    found = _in_own_netns(lambda: _orphans_of_every_naming(tmp_path))
    assert sorted(found["removed"]) == [
        f"old-dead-run: removed iptables chain {c}"
        for c in ("CHAOS-0123456789AB", "CHAOS-K8S-0123456789AB", "CHAOS-VIP-0123456789AB")
    ]
    assert "old-dead-run" not in found["after_cleanup"]
    assert "0123456789AB" not in found["after_cleanup"]
    assert found["live"] in found["after_cleanup"]  # a live owner's chain stays
    assert found["after"] == found["before"]


def _task(slot: int, port: int, running: bool = True) -> TaskView:
    state = "running" if running else "shutdown"
    return TaskView(f"t{slot}", "s", slot, state, state, 0, "c", 1, port, "", "", None)


def _slot_router_follows_tasks() -> dict[str, Any]:
    before = _nat_text()
    servers = [_listener() for _ in range(3)]
    ports = [s.getsockname()[1] for s in servers]
    router = SlotRouter("test-slots", 8080)
    assert router.setup(), router.reason
    router.sync([_task(1, ports[0]), _task(2, ports[1])])
    first = [_send_through(router.address(s), 8080, servers, b"x") for s in (1, 2)]
    service = router.service_url()
    spread = {_send_through(router.address(254), 8080, servers, b"s") for _ in range(30)}
    router.sync([_task(1, ports[0], running=False), _task(1, ports[2]), _task(2, ports[1])])
    moved = [_send_through(router.address(s), 8080, servers, b"y") for s in (1, 2)]
    chains = [line for line in _nat_text().splitlines() if line.startswith("-A CHAOS-")]
    router.remove()
    return {
        "before": before,
        "after": _nat_text(),
        "first": first,
        "moved": moved,
        "service": service,
        "spread": sorted(spread),
        "chains": chains,
    }


def test_swarm_slot_router_sends_each_slot_to_its_current_task() -> None:
    found = _in_own_netns(_slot_router_follows_tasks)
    assert found["first"] == [0, 1]
    assert found["spread"] == [0, 1]  # the service address reaches both running slots
    assert found["moved"] == [2, 1]  # slot 1's new task, slot 2 unchanged
    slot_rules = [r for r in found["chains"] if r.startswith("-A CHAOS-SLOTS-")]
    assert len(slot_rules) == 2  # replaced, not appended to
    assert found["service"].endswith(".254:8080")
    assert found["after"] == found["before"]
