"""Scrape targets found on this machine: the Kubernetes lab's kubelets and their cAdvisor,
read from the lab's state file (read only; the lab's own certificates authenticate).

The lab's cAdvisor reports each pod's cgroup (labels `namespace`, `pod`; `container` empty),
not its containers: it looks for containerd at the default socket, and every lab node runs a
containerd of its own elsewhere.

The Swarm lab's nested engines serve no metrics (dockerd serves /metrics only with
`metrics-addr` set, which the lab does not set), so they add no target.
"""

from __future__ import annotations

from harness.errors import HarnessError
from harness.labs.kubernetes.lab import load_state
from harness.labs.kubernetes.pki import CA_NAME
from harness.prometheus.server import Target

KUBELET_PORT = 10250
# A client certificate of the lab that the kubelets accept (system:masters; their
# authorization is AlwaysAllow): the API server's own for kubelets.
CLIENT = "apiserver-kubelet-client"


def kube_lab_targets() -> list[Target]:
    """The lab's kubelets (/metrics) and cAdvisor (/metrics/cadvisor) when it is up."""
    try:
        state = load_state()
    except HarnessError:
        return []
    if state is None or state.status != "up":
        return []
    pki = state.pki_dir
    ca, cert, key = (
        str(pki / name) for name in (f"{CA_NAME}.crt", f"{CLIENT}.crt", f"{CLIENT}.key")
    )
    targets = []
    for node in state.nodes:
        base = f"https://{node.address}:{KUBELET_PORT}"
        for job, path in (("kubelet", "/metrics"), ("cadvisor", "/metrics/cadvisor")):
            targets.append(Target(f"{job}-{node.name}", base + path, ca, cert, key))
    return targets
