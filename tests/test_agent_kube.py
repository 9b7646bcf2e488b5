"""The fault agent's Kubernetes path (harness.agent.kube) on the local lab, through the API only.

Until the agent's own image lands, the DaemonSet runs the demo image (static busybox) with
`sleep` as its command: what is tested here is the path (permissions, the DaemonSet, one exec
per command, removal), not the agent program. Every check reads what the cluster or this
host says, not the module's own record: the nodes through the API, PID 1's start time and the
cgroup tree from this host's /proc and /sys.
"""

from __future__ import annotations

import re
import secrets
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import config as kube_config
from kubernetes.client import (
    ApiClient,
    AuthenticationV1TokenRequest,
    Configuration,
    CoreV1Api,
    V1ServiceAccount,
)
from kubernetes.client.exceptions import ApiException

from harness import cgroups
from harness.agent.kube import (
    LAB_PULL_POLICY,
    PERMISSIONS,
    KubeAgents,
    load_into_lab,
    remove_orphan_agents,
)
from harness.agent.kube_exec import ExecChannel
from harness.agent.kube_objects import agent_namespace, namespace_object
from harness.agent.wire import NODE_ENV
from harness.errors import AgentError
from harness.images import DEMO_IMAGE
from harness.labs.kubernetes import lab as kube_lab
from harness.labs.kubernetes.images import save_host_image
from harness.owners import owner_label_value
from harness.targets import target_spec
from harness.targets.kubernetes.target import KubernetesTarget
from tests.test_kubernetes import lab

pytestmark = pytest.mark.docker  # the image comes from the host's Docker engine
__all__ = ["lab"]

COMMAND = ("sleep", "86400")  # a stand-in for `python3 -m harness.agent serve`
EXEC_S = 30.0
GONE = "4194304:1"  # an owner that cannot be alive: no PID reaches pid_max's limit


@pytest.fixture(scope="module")
def admin(lab: kube_lab.KubeLabInfo) -> Iterator[ApiClient]:
    client = kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=lab.kubeconfig, persist_config=False
    )
    yield client
    client.close()  # type: ignore[no-untyped-call]


def _namespace_exists(admin: ApiClient, name: str) -> bool:
    try:
        CoreV1Api(admin).read_namespace(name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _ready_nodes(admin: ApiClient) -> set[str]:
    nodes = CoreV1Api(admin).list_node().items
    return {
        str(n.metadata.name)
        for n in nodes
        if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
    }


@pytest.fixture(scope="module")
def agents(
    lab: kube_lab.KubeLabInfo,
    admin: ApiClient,
    demo_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KubeAgents]:
    del lab, demo_image
    archive = save_host_image(DEMO_IMAGE, tmp_path_factory.mktemp("agent-image"))
    loaded = load_into_lab(archive)
    assert set(loaded) == _ready_nodes(admin)
    made = KubeAgents(admin, f"agent-test-{secrets.token_hex(3)}")
    try:
        started = time.monotonic()
        made.deploy(DEMO_IMAGE, LAB_PULL_POLICY, COMMAND)
        made.wait_ready(120)
        print(f"\nagents Ready on {len(loaded)} node(s) in {time.monotonic() - started:.2f} s")
        yield made
    finally:
        made.remove()
    assert not _namespace_exists(admin, made.namespace)


def test_one_ready_agent_per_node_and_a_channel_each(agents: KubeAgents, admin: ApiClient) -> None:
    agents.wait_ready(10)
    placed = agents.placed
    assert set(placed) == _ready_nodes(admin)
    channels = agents.channels()
    assert set(channels) == set(placed)
    core = CoreV1Api(admin)
    for node, channel in channels.items():
        assert isinstance(channel, ExecChannel)
        pod = core.read_namespaced_pod(channel.pod, agents.namespace)
        assert pod.spec.node_name == node  # the API's placement, not the module's map
        # the downward API gives the agent its node's name (its hostname is the host's)
        assert channel.run(["sh", "-c", f"echo ${NODE_ENV}"], EXEC_S).strip() == node


def _start_ticks(stat: str) -> int:
    """Field 22 of /proc/PID/stat (after the command name, which may hold spaces)."""
    return int(stat.rsplit(")", 1)[1].split()[19])


def _local_addresses(fib_trie: str) -> set[str]:
    """The addresses /proc/net/fib_trie marks local (the line after each is "/32 host LOCAL")."""
    lines = fib_trie.splitlines()
    return {lines[i - 1].split()[-1] for i, line in enumerate(lines) if "host LOCAL" in line}


def test_the_agent_sees_the_hosts_pid_1_and_its_node_network(
    agents: KubeAgents, admin: ApiClient
) -> None:
    ours = _start_ticks(Path("/proc/1/stat").read_text())
    nodes = {str(n.metadata.name): n for n in CoreV1Api(admin).list_node().items}
    for node, channel in agents.channels().items():
        seen = channel.run(["cat", "/proc/1/stat"], EXEC_S)
        assert _start_ticks(seen) == ours, node  # hostPID: PID 1 is this host's init
        # the lab's nodes share this host's UTS namespace: hostNetwork gives its hostname
        assert channel.run(["hostname"], EXEC_S).strip() == socket.gethostname()
        address = next(a.address for a in nodes[node].status.addresses if a.type == "InternalIP")
        local = _local_addresses(channel.run(["cat", "/proc/net/fib_trie"], EXEC_S))
        assert address in local, f"hostNetwork: {node}'s {address} is not local there: {local}"


def test_the_agent_sees_the_nodes_cgroup_hierarchy(agents: KubeAgents) -> None:
    layout = cgroups.layout()
    for node, channel in agents.channels().items():
        own = cgroups.parse_proc_cgroup(channel.run(["cat", "/proc/self/cgroup"], EXEC_S))
        directory = cgroups.directory_for(layout, own, "memory")
        # the agent's cgroup, named as this host names it, exists here and at the same
        # path in the agent: the hostPath shows the node's tree, not the container's own
        assert directory.is_dir(), (node, directory)
        assert channel.run(["ls", "-d", str(directory)], EXEC_S).strip() == str(directory)
        with pytest.raises(AgentError, match="exit status"):
            channel.run(["ls", "-d", str(directory / "not-a-cgroup")], EXEC_S)


def test_a_failing_command_raises_with_its_stderr(agents: KubeAgents) -> None:
    channel = next(iter(agents.channels().values()))
    out = channel.run(["sh", "-c", "echo to-stdout; echo to-stderr >&2"], EXEC_S)
    assert out == "to-stdout\n"  # stdout alone: stderr kept apart
    with pytest.raises(AgentError) as failed:
        channel.run(["sh", "-c", "echo out; echo why-it-failed >&2; exit 3"], EXEC_S)
    assert "exit status 3" in str(failed.value)
    assert "why-it-failed" in str(failed.value)
    assert channel.node in str(failed.value)
    with pytest.raises(AgentError, match="not-a-command"):
        channel.run(["not-a-command"], EXEC_S)
    with pytest.raises(AgentError, match="did not end within 1 s"):
        channel.run(["sleep", "5"], 1.0)


def test_exec_round_trip(agents: KubeAgents) -> None:
    channel = next(iter(agents.channels().values()))
    times = []
    for _ in range(20):
        started = time.monotonic()
        assert channel.run(["true"], EXEC_S) == ""
        times.append(time.monotonic() - started)
    print(
        f"\nexec round trip: median {statistics.median(times) * 1000:.0f} ms, "
        f"max {max(times) * 1000:.0f} ms (20)"
    )


@pytest.mark.parametrize(
    ("image", "command", "reason"),
    [
        ("chaos-harness/absent:none", COMMAND, r"ErrImageNeverPull: Container image"),
        (DEMO_IMAGE, ("sh", "-c", "exit 7"), r"CrashLoopBackOff|last exit 7|exited 7"),
    ],
    ids=["image-missing", "crash"],
)
def test_an_agent_that_cannot_start_is_named_with_each_node(
    admin: ApiClient, agents: KubeAgents, image: str, command: tuple[str, ...], reason: str
) -> None:
    hopeless = KubeAgents(admin, f"agent-hopeless-{secrets.token_hex(3)}")
    try:
        hopeless.deploy(image, LAB_PULL_POLICY, command)
        started = time.monotonic()
        with pytest.raises(AgentError) as failed:
            hopeless.wait_ready(60)
        took = time.monotonic() - started
        print(f"\n{image} {' '.join(command)}: said after {took:.2f} s: {failed.value}")
        assert took < 20  # said as soon as a pod cannot start, not at the timeout
        assert re.search(reason, str(failed.value)), failed.value
        for node in _ready_nodes(admin):
            assert f"node {node}:" in str(failed.value)
    finally:
        hopeless.remove()
    assert not _namespace_exists(admin, hopeless.namespace)
    assert agents.channels()  # the run's own agents untouched


def _token_client(admin: ApiClient, namespace: str) -> ApiClient:
    """A client with the token of a new ServiceAccount that no RBAC rule names."""
    core = CoreV1Api(admin)
    core.create_namespaced_service_account(
        namespace, V1ServiceAccount.model_validate({"metadata": {"name": "no-rights"}})
    )
    request = AuthenticationV1TokenRequest.model_validate(
        {"spec": {"audiences": [], "expirationSeconds": 600}}
    )
    token = core.create_namespaced_service_account_token("no-rights", namespace, request)
    configuration = Configuration()
    configuration.host = admin.configuration.host
    configuration.ssl_ca_cert = admin.configuration.ssl_ca_cert
    configuration.api_key = {"authorization": token.status.token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    return ApiClient(configuration)


def test_permissions_named_before_anything_is_deployed(admin: ApiClient) -> None:
    run_id = f"agent-rbac-{secrets.token_hex(3)}"
    assert KubeAgents(admin, run_id).check_permissions() == []
    scratch = agent_namespace(f"{run_id}-account")
    CoreV1Api(admin).create_namespace(namespace_object(scratch, run_id, owner_label_value()))
    try:
        weak = _token_client(admin, scratch)
        missing = KubeAgents(weak, run_id).check_permissions()
        weak.close()  # type: ignore[no-untyped-call]
    finally:
        CoreV1Api(admin).delete_namespace(scratch)
    assert len(missing) == len(PERMISSIONS)
    assert any(line.startswith("create pods/exec in namespace ") for line in missing)
    assert all("ClusterRole rule {apiGroups:" in line for line in missing)
    assert not _namespace_exists(admin, agent_namespace(run_id))  # nothing was deployed


def test_dead_runs_agents_are_removed_by_cleanup(admin: ApiClient, agents: KubeAgents) -> None:
    core = CoreV1Api(admin)
    dead = [f"agent-dead-{secrets.token_hex(3)}" for _ in range(2)]
    for run_id in dead:
        core.create_namespace(namespace_object(agent_namespace(run_id), run_id, GONE))
    removed = remove_orphan_agents(admin, keep=set())
    assert any(agent_namespace(dead[0]) in line for line in removed)
    assert not any(agents.namespace in line for line in removed)  # a live owner's: kept
    # the target's own sweep finds them too (dead[1] was removed above as well: make another)
    again = f"agent-dead-{secrets.token_hex(3)}"
    core.create_namespace(namespace_object(agent_namespace(again), again, GONE))
    swept = KubernetesTarget.remove_orphans(target_spec("kubernetes"), set())
    assert any(agent_namespace(again) in line for line in swept)
    for run_id in [*dead, again]:
        assert not _namespace_exists(admin, agent_namespace(run_id))
    assert _namespace_exists(admin, agents.namespace)


def test_remove_leaves_no_namespace(admin: ApiClient, agents: KubeAgents) -> None:
    assert _namespace_exists(admin, agents.namespace)
    started = time.monotonic()
    agents.remove()
    print(f"\nagent namespace removed in {time.monotonic() - started:.2f} s")
    assert not _namespace_exists(admin, agents.namespace)
    agents.remove()  # safe twice
    assert not _namespace_exists(admin, agents.namespace)
