"""Network faults on the real engine, with measured effects: a partition cuts requests off,
packet loss fails its share of fresh connections, bandwidth caps a download, latency raises the
median; every revert (run twice) leaves no tagged rule, no qdisc of ours and no proxy behind.
The abort tests SIGKILL the harness mid-fault and check the lease reverts it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from faults.bandwidth import Bandwidth, BandwidthParams
from faults.base import AnyFault, FaultContext, RevertRecord
from faults.latency import PROXY, Latency, LatencyParams
from faults.mechanisms.netfaults import is_ours, root_qdisc, rule_tag, tagged_rules
from faults.mechanisms.tcpproxy import find_proxies, is_running
from faults.network_partition import NetworkPartition, NetworkPartitionParams
from faults.packet_loss import PacketLoss, PacketLossParams
from harness.targets.base import Instance
from tests.abort import (
    SCENARIOS,
    finish_with_cleanup,
    run_and_kill_during_fault,
    shortened,
    wait_for_lease_revert,
)
from tests.conftest import DeployFactory
from tests.helpers import download_mbit_s, failure_rate, fetch, median_ms

pytestmark = pytest.mark.docker

Context = Callable[..., FaultContext]


def leftovers(instance: Instance, tag: str) -> list[str]:
    """What the fault `tag` could have left in the instance's namespace or as a process."""
    rules = [" ".join(tokens) for _table, tokens in tagged_rules(instance.pid, tag)]
    qdisc = root_qdisc(instance.pid, "eth0")
    return rules + ([qdisc] if is_ours(qdisc) else []) + [str(p) for p in find_proxies(tag)]


@contextmanager
def injected(
    fault: AnyFault, ctx: FaultContext, instances: list[Instance]
) -> Iterator[RevertRecord]:
    """The fault in place for the block; reverted twice after it (idempotent), even on failure."""
    record = fault.plan(ctx, "f1", instances)
    try:
        fault.apply(ctx, record)
        yield record
    finally:
        fault.revert(ctx, record)
        fault.revert(ctx, record)
    for instance in ctx.target.instances():
        assert leftovers(instance, rule_tag(ctx.run_id, "f1")) == []


# --- network_partition -------------------------------------------------------------------


def test_partition_from_the_load_cuts_requests_off_until_reverted(
    deploy: DeployFactory, fault_context: Context
) -> None:
    target = deploy(replicas=1)
    ctx = fault_context(target)
    instance = target.instances()[0]
    assert fetch(instance.url)
    fault = NetworkPartition(NetworkPartitionParams.model_validate({"from": "load"}))
    with injected(fault, ctx, [instance]) as record:
        assert record.mechanism == "iptables DROP in netns"
        assert len(tagged_rules(instance.pid, rule_tag(ctx.run_id, "f1"))) >= 2
        assert [fetch(instance.url) for _ in range(3)] == [False] * 3
    assert all(fetch(instance.url) for _ in range(3))


def test_partition_groups_cut_instances_apart_but_not_from_the_load(
    deploy: DeployFactory, fault_context: Context
) -> None:
    target = deploy(replicas=2)
    ctx = fault_context(target)
    one, two = target.instances()
    container = target.client.containers.get(one.container_id)

    def one_reaches_two() -> bool:
        # busybox's own `wget -T` crashes (exit 139) in this image: `timeout` bounds it instead
        wget = ["timeout", "2", "wget", "-q", "-O", "/dev/null", f"{two.url}/health"]
        return container.exec_run(wget).exit_code == 0

    assert one_reaches_two()
    params = NetworkPartitionParams(groups=[[one.name], [two.name]])
    with injected(NetworkPartition(params), ctx, []) as record:
        assert record.targets == (one.name, two.name)
        assert not one_reaches_two()
        assert fetch(one.url) and fetch(two.url)  # the load is on neither side of the cut
    assert one_reaches_two()


# --- packet_loss --------------------------------------------------------------------------


def test_packet_loss_fails_its_share_of_fresh_connections(
    deploy: DeployFactory, fault_context: Context
) -> None:
    target = deploy(replicas=1)
    ctx = fault_context(target)
    instance = target.instances()[0]
    percent, count = 30.0, 300
    fault = PacketLoss(PacketLossParams(percent=percent, direction="inbound"))
    with injected(fault, ctx, [instance]):
        measured = failure_rate(instance.url, count)
    # each connect fails when its SYN is dropped (p); a request also lost twice later on
    # adds a little. 4 standard deviations of a binomial share of `count`: 6e-5 false alarms
    p = percent / 100
    tolerance = 4 * math.sqrt(p * (1 - p) / count)
    print(f"packet loss {percent:g} %: measured {measured:.1%} of {count} fresh requests")
    assert p - tolerance <= measured <= p + tolerance + 0.03
    assert failure_rate(instance.url, 100) <= 0.01


# --- bandwidth ----------------------------------------------------------------------------


def test_bandwidth_caps_a_download_near_the_rate(
    deploy: DeployFactory, fault_context: Context
) -> None:
    target = deploy(replicas=1)
    ctx = fault_context(target)
    instance = target.instances()[0]
    blob = f"{instance.url}/blob"  # 4 MiB in the demo image
    with injected(Bandwidth(BandwidthParams(rate="10mbit")), ctx, [instance]):
        assert is_ours(root_qdisc(instance.pid, "eth0"))
        capped = download_mbit_s(blob)
    after = download_mbit_s(blob)
    print(f"bandwidth 10mbit: measured {capped:.2f} Mbit/s, after revert {after:.0f} Mbit/s")
    assert 7.0 <= capped <= 13.0
    assert after > 50.0


# --- latency ------------------------------------------------------------------------------


def test_latency_by_the_proxy_adds_the_delay_to_each_request(
    deploy: DeployFactory, fault_context: Context
) -> None:
    target = deploy(replicas=1)
    ctx = fault_context(target)
    instance = target.instances()[0]
    before = median_ms(instance.url)
    fault = Latency(LatencyParams(delay=0.1, mechanism="proxy"))
    with injected(fault, ctx, [instance]) as record:
        assert record.mechanism == PROXY
        proxies = find_proxies(rule_tag(ctx.run_id, "f1"))
        assert len(proxies) == 1 and is_running(proxies[0].pid)
        during = median_ms(instance.url)
    after = median_ms(instance.url)
    print(f"latency +100 ms: p50 {before:.1f} ms -> {during:.1f} ms -> {after:.1f} ms")
    assert abs((during - before) - 100.0) <= 10.0 + 5.0
    assert after <= before + 20.0  # back: a fifth of the delay is room for a busy machine
    assert not is_running(proxies[0].pid)


def test_revert_finds_a_restarted_instance_and_treats_a_removed_one_as_reverted(
    deploy: DeployFactory, fault_context: Context
) -> None:
    target = deploy(replicas=1)
    ctx = fault_context(target)
    instance = target.instances()[0]
    fault = Latency(LatencyParams(delay=0.05, mechanism="proxy"))
    record = fault.plan(ctx, "f1", [instance])
    fault.apply(ctx, record)
    tag = rule_tag(ctx.run_id, "f1")
    target.restart_instance(instance, timeout_s=1)
    restarted = target.instances()[0]
    assert restarted.pid not in (0, instance.pid)
    assert find_proxies(tag)  # it still holds the old namespace: only its tag finds it
    fault.revert(ctx, record)
    assert leftovers(target.instances()[0], tag) == []
    target.client.containers.get(instance.container_id).remove(force=True)
    fault.revert(ctx, record)  # gone: its namespace took whatever was in it


def test_latency_check_tells_which_mechanism_works_here() -> None:
    netem, proxy = Latency.mechanisms()
    assert proxy.available  # nsenter and iptables REDIRECT work on every machine we run on
    assert Latency(LatencyParams(delay=0.1)).check() == []
    forced = Latency(LatencyParams(delay=0.1, mechanism="netem")).check()
    assert (forced == []) == netem.available
    if not netem.available:
        assert "sch_netem" in forced[0]


def test_partition_params_accept_from_as_written_in_yaml() -> None:
    params = NetworkPartitionParams.model_validate({"from": "all", "direction": "inbound"})
    assert params.peer == "all"
    assert NetworkPartitionParams(groups=[["web-1"]]).peer == "instances"
    with pytest.raises(ValueError, match="use from: instances"):
        NetworkPartitionParams.model_validate({"from": "load", "groups": [["web-1"]]})


# --- abort: the harness SIGKILLed mid-fault ----------------------------------------------


def _in_place(kind: str, instances: list[Instance], tag: str) -> bool:
    if kind == "bandwidth":
        return any(is_ours(root_qdisc(i.pid, "eth0")) for i in instances)
    found = [r for i in instances for r in tagged_rules(i.pid, tag)]
    return bool(found) and (kind != "latency" or bool(find_proxies(tag)))


@pytest.mark.parametrize("kind", ["network_partition", "packet_loss", "bandwidth", "latency"])
def test_abort_mid_fault_the_lease_reverts_it(kind: str, tmp_path: Path) -> None:
    scenario = shortened(SCENARIOS / f"{kind}.yaml", tmp_path, at_s=2.0, duration_s=3.0)
    aborted = run_and_kill_during_fault(scenario, tmp_path / "runs")
    tag = rule_tag(aborted.run_id, aborted.fault_id)
    try:
        assert _in_place(kind, aborted.instances(), tag)
        wait_for_lease_revert(aborted)
        for instance in aborted.instances():
            assert leftovers(instance, tag) == []
    finally:
        finish_with_cleanup(aborted)
    assert find_proxies(tag) == []
