"""The Kubernetes lab: built from its own Go module (build), certificates (pki), kubeconfigs
(config) and nodes in network namespaces of this machine (lab, node, controlplane); the
Kubernetes target's side of it in session, what node faults do to its nodes in nodeops."""

from harness.labs import LabKind

LAB = LabKind(
    name="kubernetes",
    commands="harness.labs.kubernetes.commands:KubeLabCommands",
    nodes="harness.labs.kubernetes.nodeops:KubeNodes",
)
