"""The fault agents of a run on Kubernetes: when, with which image, deployed by KubeAgents.

`target.agent.use` auto deploys them when this machine cannot act on the pods itself (a
cluster elsewhere, or CHAOS_HARNESS_HOST_ACCESS=none); always deploys them anyway (to compare
both paths on the lab); never does not (host-side faults are then refused on such a cluster).
The image: `target.agent.image` from the user's registry, or on the lab the one built here
(`harness agent build`) and imported into its nodes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Set
from pathlib import Path

from harness.agent.image import agent_archive, agent_image
from harness.agent.kube import (
    LAB_PULL_POLICY,
    KubeAgents,
    load_into_lab,
    remove_orphan_agents,
)
from harness.agent.kube_objects import agent_namespace
from harness.errors import AgentError, TargetError
from harness.specs import TargetSpec
from harness.targets.base import Target
from harness.targets.docker.engine import connect
from harness.targets.kubernetes.cluster import Cluster, resolve
from harness.targets.kubernetes.spec import kube_spec
from harness.targets.kubernetes.target import KubernetesTarget


class KubernetesAgents:
    """harness.agent.fleet.AgentSupport for the Kubernetes target."""

    def open(self, target: Target, spec: TargetSpec, run_id: str) -> KubeAgents | None:
        return open_agents(target, spec, run_id)

    def remove_orphans(self, spec: TargetSpec, keep: Set[str]) -> list[str]:
        settings = kube_spec(spec)
        try:
            ref = resolve(settings.kubeconfig, settings.context, lab_wanted=True)
        except TargetError:
            return []  # the target's own sweep says why
        if ref is None:
            return []
        cluster = Cluster(ref)
        try:
            return remove_orphan_agents(cluster.client, keep)
        finally:
            cluster.close()


AGENTS = KubernetesAgents()


def open_agents(target: Target, spec: TargetSpec, run_id: str) -> KubeAgents | None:
    settings = kube_spec(spec).agent
    if not isinstance(target, KubernetesTarget):
        raise AgentError(f"a Kubernetes agent for a {target.kind} target")
    if settings.use == "never" or (settings.use == "auto" and target.host_access):
        return None
    cluster = target.cluster
    agents = KubeAgents(cluster.client, run_id)
    missing = agents.check_permissions()
    if missing:
        raise AgentError(
            f"the fault agent cannot be deployed on {cluster.ref.describe()} "
            f"(namespace {agent_namespace(run_id)}): " + "; ".join(missing)
        )
    if settings.image is not None:
        image, pull_policy = settings.image, "IfNotPresent"
    elif cluster.ref.lab:
        image, pull_policy = _lab_image(), LAB_PULL_POLICY
    else:
        raise AgentError(
            "name the fault agent's image in target.agent.image: build it with `harness agent "
            "build`, push it to a registry the cluster pulls from (docs/AGENT.md)"
        )
    agents.deploy(image, pull_policy)
    return agents


def _lab_image() -> str:
    """The agent's image built on this machine and imported into the lab's nodes."""
    try:
        client = connect(None)
    except TargetError as exc:
        raise AgentError(
            f"the agent's image is built with the host's Docker engine: {exc}"
        ) from exc
    try:
        tag = agent_image(client)
        with tempfile.TemporaryDirectory(prefix="chaos-agent-") as directory:
            load_into_lab(agent_archive(tag, Path(directory), client))
    finally:
        client.close()
    return tag
