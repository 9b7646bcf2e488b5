"""The lab's control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.

They run in a network namespace of their own (`chk8s-cp`, 10.220.0.2 on the lab's bridge)
rather than in the host's: their ports (2379, 6443, 10257, 10259) cannot collide with anything
on the host or another lab, etcd listens on that namespace's loopback only, the harness and the
nodes reach the API server on the bridge, and every process is found by its namespace.

Settings: client certificates for every identity with Node,RBAC authorization (as kubeadm sets
a cluster up, so node and kubelet permissions are the real ones); one etcd member without fsync
(a throwaway lab: a crash loses the lab anyway, and fsync stalls on a shared disk would show as
control-plane hiccups); the controller manager's controllers use its own credentials (it is in
system:masters) rather than one service account each, which held back the `default` service
account pods need (docs/LABS.md, Kubernetes control plane); leader election off
(one instance of each: a restarted controller manager would otherwise wait out its
predecessor's lease). Node-failure timing is Kubernetes' own unless `control_plane_args` says
otherwise; the values in force are in the state's `settings`.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from pathlib import Path

from harness.errors import TargetError
from harness.labs import host
from harness.labs.kubernetes import config, pki
from harness.labs.kubernetes.state import (
    API_PORT,
    CLUSTER_CIDR,
    CONTROL_PLANE_ADDRESS,
    SERVICE_CIDR,
    KubeLabState,
    kubernetes_service_ip,
)
from harness.waiting import wait_until

ETCD_CLIENT = "http://127.0.0.1:2379"
ETCD_PEER = "http://127.0.0.1:2380"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


def issue_certificates(state: KubeLabState) -> None:
    """The CA, every identity's certificate, the service-account keys, the kubeconfigs."""
    authority = pki.Authority(state.pki_dir)
    authority.create()
    nodes = [(n.name, n.address) for n in state.nodes]
    for identity in pki.cluster_identities([CONTROL_PLANE_ADDRESS], kubernetes_service_ip(), nodes):
        authority.issue(identity)
    authority.service_account_keys()
    cp = state.control_plane_dir
    cp.mkdir(parents=True, exist_ok=True)
    for stem in ("kube-controller-manager", "kube-scheduler"):
        write_kubeconfig(state, cp / f"{stem}.kubeconfig", stem)
    write_kubeconfig(state, state.kubeconfig, "admin")
    state.kubeconfig.chmod(0o600)


def write_kubeconfig(state: KubeLabState, path: Path, stem: str) -> None:
    pair = pki.Authority(state.pki_dir).pair(stem)
    path.write_text(
        config.kubeconfig(state.server, stem, state.pki_dir / "ca.crt", pair.cert, pair.key)
    )


def argv(state: KubeLabState, component: str) -> list[str]:
    """The command line of one control-plane component, with the lab's extra args last."""
    binary = str(Path(state.bin_dir) / component)
    builders = {
        "etcd": _etcd,
        "kube-apiserver": _apiserver,
        "kube-controller-manager": _controller_manager,
        "kube-scheduler": _scheduler,
    }
    if component not in builders:
        raise TargetError(f"no control-plane component {component!r}")
    return [binary, *builders[component](state), *state.control_plane_args.get(component, ())]


def _etcd(state: KubeLabState) -> list[str]:
    return [
        "--name=lab",
        f"--data-dir={state.control_plane_dir / 'etcd'}",
        f"--listen-client-urls={ETCD_CLIENT}",
        f"--advertise-client-urls={ETCD_CLIENT}",
        f"--listen-peer-urls={ETCD_PEER}",
        f"--initial-advertise-peer-urls={ETCD_PEER}",
        f"--initial-cluster=lab={ETCD_PEER}",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def _apiserver(state: KubeLabState) -> list[str]:
    pki_dir = state.pki_dir
    return [
        f"--etcd-servers={ETCD_CLIENT}",
        f"--bind-address={CONTROL_PLANE_ADDRESS}",
        f"--advertise-address={CONTROL_PLANE_ADDRESS}",
        f"--secure-port={API_PORT}",
        f"--tls-cert-file={pki_dir / 'apiserver.crt'}",
        f"--tls-private-key-file={pki_dir / 'apiserver.key'}",
        f"--client-ca-file={pki_dir / 'ca.crt'}",
        f"--kubelet-certificate-authority={pki_dir / 'ca.crt'}",
        f"--kubelet-client-certificate={pki_dir / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki_dir / 'apiserver-kubelet-client.key'}",
        "--kubelet-preferred-address-types=InternalIP",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki_dir / 'sa.pub'}",
        f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    ]


def _controller_manager(state: KubeLabState) -> list[str]:
    cp, pki_dir = state.control_plane_dir, state.pki_dir
    kubeconfig = cp / "kube-controller-manager.kubeconfig"
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--root-ca-file={pki_dir / 'ca.crt'}",
        f"--service-account-private-key-file={pki_dir / 'sa.key'}",
        f"--cluster-cidr={CLUSTER_CIDR}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allocate-node-cidrs=false",
        "--use-service-account-credentials=false",
        "--leader-elect=false",
        "--bind-address=0.0.0.0",
        "--profiling=false",
        "--v=1",
    ]


def _scheduler(state: KubeLabState) -> list[str]:
    kubeconfig = state.control_plane_dir / "kube-scheduler.kubeconfig"
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--bind-address=0.0.0.0",
        "--profiling=false",
        "--v=1",
    ]


def launcher(state: KubeLabState) -> list[str]:
    return ["nsenter", f"--net={host.netns_path(state.control_plane_netns)}", "--"]


def log_file(state: KubeLabState, component: str) -> Path:
    return state.control_plane_dir / f"{component}.log"


def find(state: KubeLabState, component: str) -> int | None:
    return host.find_process(argv(state, component))


def start(state: KubeLabState, component: str) -> None:
    """Start one component unless it runs; do not wait for it."""
    command = argv(state, component)
    if host.find_process(command) is not None:
        return
    host.spawn_detached([*launcher(state), *command], log_file(state, component))
    wait_until(lambda: host.find_process(command) is not None, 10, 0.05)


def processes(state: KubeLabState) -> set[int]:
    return host.processes_of(state.control_plane_netns, f"{state.control_plane_netns}-none")


def api_context(state: KubeLabState) -> ssl.SSLContext:
    """TLS to the API server as the lab's admin."""
    context = ssl.create_default_context(cafile=str(state.pki_dir / "ca.crt"))
    admin = pki.Authority(state.pki_dir).pair("admin")
    context.load_cert_chain(str(admin.cert), str(admin.key))
    return context


def wait_ready(state: KubeLabState, timeout_s: float) -> None:
    """Until the API server's /readyz says ok (etcd reached, bootstrap done)."""
    context = api_context(state)
    last = [""]

    def ready() -> bool:
        dead = [c for c in ("etcd", "kube-apiserver") if find(state, c) is None]
        if dead:
            where = log_file(state, dead[0])
            raise TargetError(
                f"{', '.join(dead)} of the Kubernetes lab exited; {where} ends:"
                + host.log_tail(where)
            )
        try:
            with urllib.request.urlopen(
                f"{state.server}/readyz", context=context, timeout=5
            ) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError) as exc:
            last[0] = str(exc)
            return False

    def failure() -> str:
        where = log_file(state, "kube-apiserver")
        return (
            f"the lab's API server was not ready within {timeout_s:g} s ({last[0]}); {where} "
            "ends:" + host.log_tail(where)
        )

    wait_until(ready, timeout_s, 0.3, failure)
