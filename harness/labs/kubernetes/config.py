"""The lab's configuration files, as text: containerd, CNI, kubelet, kube-proxy, kubeconfigs.

Pure functions of the lab's state (unit-tested without a lab). Choices, each measured or read
in the components' source:
- containerd: Debian's 1.6 with its CRI plugin, one per node, every path of its own; pod network
  namespaces under its state directory (`netns_mounts_under_state_dir`), never in the host's
  /var/run/netns; cgroupfs driver (no systemd here); the sandbox image is the lab's own pause
  image (PAUSE_IMAGE), loaded into every node, never pulled; `restrict_oom_score_adj`, because
  this machine refuses a negative oom_score_adj (writing -998 fails with EIO, measured) and
  runc then fails every sandbox ("can't get final child's PID from pipe").
- CNI: Debian's plugins (bridge + host-local + portmap), a /24 per node, IPAM state per node.
- kubelet: cgroupRoot per node (its pods' cgroups live under /<node name>), its own root and pod
  log directories, `protectKernelDefaults: true` (it refuses to start rather than write the
  host's kernel settings: the node's mount namespace shows it the values it wants, see
  .node), image GC off (`imageGCHighThresholdPercent: 100`: the lab's images cannot
  be pulled again), x509 client auth from the lab's CA, AlwaysAllow authorization (the kubelet
  is reachable from this machine only).
- kube-proxy: iptables mode (no IPVS here), `conntrack.maxPerCore: 0` and zero timeouts, so it
  writes no conntrack sysctl (nf_conntrack_max and the hash size are the host's, not per node).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import yaml

from harness.labs.kubernetes.state import (
    CLUSTER_CIDR,
    SUBNET,
    KubeLabState,
    NodeState,
)

PAUSE_IMAGE = "chaos-harness/pause:3.10"
CNI_BIN_DIR = "/usr/lib/cni"
CNI_NETWORK = "chaos-harness-kube-lab"
CONTAINERD_NAMESPACE = "k8s.io"


def containerd_toml(state: KubeLabState, node: NodeState) -> str:
    """containerd 1.6's config (version 2) for one node."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return "\n".join(
        [
            "version = 2",
            f'root = "{node.path("containerd")}"',
            f'state = "{node.run_dir}/containerd"',
            "oom_score = 0",
            "disabled_plugins = ["
            + ", ".join(
                f'"io.containerd.snapshotter.v1.{name}"'
                for name in ("aufs", "btrfs", "devmapper", "zfs")
            )
            + ', "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]',
            "",
            "[grpc]",
            f'  address = "{node.containerd_socket}"',
            "[ttrpc]",
            f'  address = "{node.containerd_socket}.ttrpc"',
            "[debug]",
            '  level = "warn"',
            "[metrics]",
            '  address = ""',
            '[plugins."io.containerd.internal.v1.opt"]',
            f'  path = "{node.path("opt")}"',
            f"[{cri}]",
            f'  sandbox_image = "{PAUSE_IMAGE}"',
            "  netns_mounts_under_state_dir = true",
            "  enable_selinux = false",
            "  disable_apparmor = true",
            # this machine refuses negative oom_score_adj (EIO), which the CRI gives every
            # sandbox (-998): containerd keeps pods at or above its own score (0) instead
            "  restrict_oom_score_adj = true",
            "  max_container_log_line_size = 16384",
            f"[{cri}.containerd]",
            f'  snapshotter = "{state.snapshotter}"',
            '  default_runtime_name = "runc"',
            "  discard_unpacked_layers = false",
            f"[{cri}.containerd.runtimes.runc]",
            '  runtime_type = "io.containerd.runc.v2"',
            f"[{cri}.containerd.runtimes.runc.options]",
            "  SystemdCgroup = false",
            f'  Root = "{node.run_dir}/runc"',
            f"[{cri}.cni]",
            f'  bin_dir = "{CNI_BIN_DIR}"',
            f'  conf_dir = "{node.path("cni")}"',
            "  max_conf_num = 1",
            "",
        ]
    )


def cni_conflist(node: NodeState) -> str:
    """The node's pod network: a bridge in the node's namespace, host-local IPAM on its /24."""
    config = {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": node.pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(node.path("cni-ipam")),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(config, indent=2) + "\n"


def kubelet_config(state: KubeLabState, node: NodeState) -> str:
    """KubeletConfiguration (v1beta1) for one node."""
    settings = state.settings
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.address,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "x509": {"clientCAFile": str(state.pki_dir / "ca.crt")},
            "webhook": {"enabled": False},
            "anonymous": {"enabled": False},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": node.cgroup_root,
        "cgroupsPerQOS": True,
        # v1 and hybrid machines boot here too: 1.34 defaults to false, 1.35 to true (refuse)
        "failCgroupV1": False,
        "containerRuntimeEndpoint": f"unix://{node.containerd_socket}",
        "failSwapOn": False,
        "protectKernelDefaults": True,
        "makeIPTablesUtilChains": True,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "podLogsDir": str(node.path("pod-logs")),
        "resolvConf": "/etc/resolv.conf",
        "tlsCertFile": str(state.pki_dir / f"kubelet-serving-{node.name}.crt"),
        "tlsPrivateKeyFile": str(state.pki_dir / f"kubelet-serving-{node.name}.key"),
        "nodeStatusUpdateFrequency": f"{settings.node_status_update_frequency_s:g}s",
        "nodeLeaseDurationSeconds": settings.node_lease_duration_s,
        "serializeImagePulls": False,
        "registerNode": True,
        "shutdownGracePeriod": "0s",
        "localStorageCapacityIsolation": True,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "5%",
            "imagefs.available": "5%",
            "nodefs.inodesFree": "5%",
        },
    }
    return yaml.safe_dump(config, sort_keys=False)


def kube_proxy_config(state: KubeLabState, node: NodeState) -> str:
    """KubeProxyConfiguration (v1alpha1) for one node."""
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(node.path("kube-proxy.kubeconfig"))},
        "hostnameOverride": node.name,
        "bindAddress": "0.0.0.0",
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "mode": "iptables",
        "clusterCIDR": CLUSTER_CIDR,
        "nodePortAddresses": [SUBNET],
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }
    return yaml.safe_dump(config, sort_keys=False)


def kubeconfig(server: str, user: str, ca: Path, cert: Path, key: Path) -> str:
    """A kubeconfig with the certificates embedded (it still works if the lab dir moves)."""

    def embedded(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "chaos-harness-lab",
                "cluster": {"server": server, "certificate-authority-data": embedded(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": embedded(cert),
                    "client-key-data": embedded(key),
                },
            }
        ],
        "contexts": [
            {"name": "chaos-harness-lab", "context": {"cluster": "chaos-harness-lab", "user": user}}
        ],
        "current-context": "chaos-harness-lab",
    }
    return yaml.safe_dump(config, sort_keys=False)
