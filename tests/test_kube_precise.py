"""Kubernetes timed and explained like Docker, on the real lab: a die stamped by the node's
containerd (checked against the kernel's own instant of death, a pidfd), Kubernetes' own Events
(checked against kubectl), the API server's silence seen, and a watch RBAC refuses said so."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from bench.deathwatch import DeathWatch
from harness.labs.kubernetes import lab as kube_lab
from harness.labs.kubernetes.pki import Authority, Identity
from harness.targets import target_spec
from harness.targets.kubernetes.cluster import Cluster, ClusterRef
from harness.targets.kubernetes.events import PodTracker, SlotBook
from harness.targets.kubernetes.target import KubernetesTarget
from harness.targets.kubernetes.watch import KubeEventStream, Resource
from tests.helpers import EventCollector, wait_until
from tests.test_kubernetes import Deploy, deploy, kubectl, lab

pytestmark = pytest.mark.docker  # the lab's images come from the host's Docker engine
__all__ = ["deploy", "lab"]  # fixtures shared with test_kubernetes.py

MS = 1_000_000


def test_a_die_is_the_node_runtimes_exit_within_50_ms_of_the_death(deploy: Deploy) -> None:
    target = deploy(replicas=1)
    events = EventCollector(target)
    victim = target.instances()[0]
    watch = DeathWatch(victim.pid)
    killed_ns = time.time_ns()
    os.kill(victim.pid, signal.SIGKILL)
    died_ns = watch.wait(timeout=30)
    watch.close()
    assert died_ns is not None, "the kernel never said the process died"

    def die_seen() -> bool:
        return any(e.action == "die" and e.instance == victim.name for e in list(events.events))

    assert wait_until(die_seen, 60)
    die = next(e for e in events.close() if e.action == "die" and e.instance == victim.name)
    assert die.attributes["time_source"] == "host"
    assert abs(die.time_ns - died_ns) < 50 * MS, (die.time_ns - died_ns) / MS
    assert int(die.attributes["api_time_ns"]) + 10**9 > die.time_ns  # within the API's second
    print(
        f"\nkill -> die {(die.time_ns - killed_ns) / MS:.1f} ms (the kernel's death "
        f"{(died_ns - killed_ns) / MS:.1f} ms; the API's second ended "
        f"{(int(die.attributes['api_time_ns']) + 10**9 - killed_ns) / MS:.0f} ms after the kill)"
    )


def test_kubernetes_own_events_are_recorded_as_kubectl_shows_them(
    deploy: Deploy, lab: kube_lab.KubeLabInfo
) -> None:
    target = deploy(replicas=1)
    events = EventCollector(target)
    victim = target.instances()[0]
    target.delete_pod(victim, grace_period_s=0)

    def killing_seen() -> bool:
        return any(
            e.action == "k8s_event" and e.attributes["reason"] == "Killing"
            for e in list(events.events)
        )

    assert wait_until(killing_seen, 60)
    recorded = [e for e in events.close() if e.action == "k8s_event"]
    killing = next(e for e in recorded if e.attributes["reason"] == "Killing")
    assert killing.attributes["object"] == f"Pod/{victim.container_name}"
    assert killing.instance == victim.name
    shown = yaml.safe_load(kubectl(lab, "get", "events", "-n", target.namespace, "-o", "yaml"))
    reasons = {
        (e["reason"], e["involvedObject"]["name"]) for e in shown["items"] if e.get("reason")
    }
    assert ("Killing", victim.container_name) in reasons
    # every Event the run recorded is one kubectl lists (none made up)
    for event in recorded:
        name = event.attributes["object"].split("/", 1)[1]
        if event.attributes["object"].startswith("Node/"):
            continue
        assert (event.attributes["reason"], name) in reasons


def test_the_api_servers_silence_is_seen(lab: kube_lab.KubeLabInfo, tmp_path: Path) -> None:
    answering = KubernetesTarget("test-answers", target_spec("kubernetes"))
    assert answering.engine_answers()
    answering.release()
    config = yaml.safe_load(Path(lab.kubeconfig).read_text())
    with_port = _closed_port()
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{with_port}"
    silent_config = tmp_path / "silent.kubeconfig"
    silent_config.write_text(yaml.safe_dump(config))
    silent = KubernetesTarget(
        "test-silent", target_spec("kubernetes", kubeconfig=str(silent_config))
    )
    started = time.monotonic()
    assert not silent.engine_answers()
    assert time.monotonic() - started < 10  # bounded by its own timeouts
    silent.release()


def test_a_watch_refused_by_rbac_says_so_at_once(lab: kube_lab.KubeLabInfo, tmp_path: Path) -> None:
    """A user the lab's RBAC grants nothing: the API server answers 403 to its list."""
    pki = tmp_path / "pki"
    pki.mkdir()
    lab_pki = Path(lab.lab_dir) / "pki"
    for name in ("ca.crt", "ca.key"):
        shutil.copy2(lab_pki / name, pki / name)
    nobody = Authority(pki).issue(
        Identity("nobody", f"chaos-harness-nobody-{secrets.token_hex(3)}")
    )
    config = yaml.safe_load(Path(lab.kubeconfig).read_text())
    for user in config["users"]:
        user["user"] = {
            "client-certificate": str(nobody.cert),
            "client-key": str(nobody.key),
        }
    path = tmp_path / "nobody.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    cluster = Cluster(ClusterRef(path, None, lab.server, lab=False))
    stream = KubeEventStream(time.time_ns())
    guard = threading.Timer(20, stream.close)
    started = time.monotonic()
    try:
        stream.follow(
            Resource(
                "pods",
                lambda **kw: cluster.core.list_namespaced_pod("default", **kw),
                lambda raw: None,  # never reached: the list is refused
            ),
            PodTracker(SlotBook()),
        )
        guard.start()  # a regression ends the stream instead of hanging the test
        failing = next((e for e in stream if e.action == "watch_failing"), None)
    finally:
        guard.cancel()
        stream.close()
        cluster.close()
    assert failing is not None, "the refused watch was never said to fail"
    assert time.monotonic() - started < 10
    assert failing.attributes["resource"] == "pods"
    assert "403" in failing.attributes["error"] or "Forbidden" in failing.attributes["error"]


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends
