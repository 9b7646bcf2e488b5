"""The lab's certificates, made with the openssl command line (no new Python dependency).

One CA signs everything; every key is EC P-256 (made in milliseconds, unlike RSA on a loaded
machine). Identities follow kubeadm's, so the API server's Node and RBAC authorizers treat each
component as it treats them in a real cluster:

    admin                    CN=chaos-harness-admin, O=system:masters   (the user's kubeconfig)
    kube-controller-manager  CN=system:kube-controller-manager, O=system:masters
    kube-scheduler           CN=system:kube-scheduler
    kube-proxy               CN=system:kube-proxy
    kubelet of node X        CN=system:node:X, O=system:nodes          (Node authorizer)
    kubelet-serving-X        the kubelet's serving certificate (its name and address)
    apiserver-kubelet-client CN=kube-apiserver-kubelet-client, O=system:masters
    apiserver                serving: the API server's addresses and in-cluster names

plus `sa.key` / `sa.pub`, the service-account token signing pair.
"""

from __future__ import annotations

import secrets
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import TargetError
from harness.hostsys import require_tool

CA_NAME = "ca"
VALID_DAYS = 365
CA_SUBJECT = "/CN=chaos-harness-lab-ca"


@dataclass(frozen=True)
class Identity:
    """One certificate to issue: its file stem, subject and (for servers) addresses."""

    stem: str
    common_name: str
    organizations: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    usages: tuple[str, ...] = field(default=("clientAuth",))

    @property
    def subject(self) -> str:
        parts = [f"/O={o}" for o in self.organizations]
        return "".join(parts) + f"/CN={self.common_name}"


@dataclass(frozen=True)
class Pair:
    """A certificate and its key on disk."""

    cert: Path
    key: Path


def cluster_identities(
    api_addresses: Sequence[str], service_ip: str, nodes: Sequence[tuple[str, str]]
) -> list[Identity]:
    """Every certificate the lab needs (see the module docstring)."""
    server_names = (
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
    )
    return [
        Identity("admin", "chaos-harness-admin", ("system:masters",)),
        # in system:masters: its controllers use its own credentials (see controlplane.py)
        Identity("kube-controller-manager", "system:kube-controller-manager", ("system:masters",)),
        Identity("kube-scheduler", "system:kube-scheduler"),
        Identity("kube-proxy", "system:kube-proxy"),
        Identity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)),
        Identity(
            "apiserver",
            "kube-apiserver",
            dns_names=server_names,
            ip_addresses=(*api_addresses, service_ip, "127.0.0.1"),
            usages=("serverAuth",),
        ),
        *(i for name, address in nodes for i in kubelet_identities(name, address)),
    ]


def kubelet_identities(node: str, address: str) -> tuple[Identity, Identity]:
    """A kubelet's client certificate (Node authorizer) and its serving certificate."""
    return (
        Identity(f"kubelet-{node}", f"system:node:{node}", ("system:nodes",)),
        Identity(
            f"kubelet-serving-{node}",
            f"system:node:{node}",
            ("system:nodes",),
            dns_names=(node,),
            ip_addresses=(address,),
            usages=("serverAuth",),
        ),
    )


class Authority:
    """The lab's CA in `directory`, issuing certificates next to itself."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def ca(self) -> Pair:
        return self.pair(CA_NAME)

    def pair(self, stem: str) -> Pair:
        return Pair(self.directory / f"{stem}.crt", self.directory / f"{stem}.key")

    def create(self) -> Pair:
        """A new CA (replacing none: a lab's CA lives and dies with the lab)."""
        require_openssl()
        self.directory.mkdir(parents=True, exist_ok=True)
        ca = self.ca
        _new_key(ca.key)
        _openssl(
            [
                *("req", "-x509", "-new", "-key", str(ca.key), "-subj", CA_SUBJECT),
                *("-days", str(VALID_DAYS), "-out", str(ca.cert), "-sha256"),
                *("-addext", "basicConstraints=critical,CA:TRUE"),
                *("-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"),
            ]
        )
        return ca

    def issue(self, identity: Identity) -> Pair:
        """A key and a certificate for `identity`, signed by the CA."""
        pair = self.pair(identity.stem)
        _new_key(pair.key)
        with tempfile.TemporaryDirectory(prefix="chaos-harness-pki-") as tmp:
            csr, extensions = Path(tmp) / "req.csr", Path(tmp) / "ext.cnf"
            extensions.write_text(_extensions(identity))
            _openssl(
                ["req", "-new", "-key", str(pair.key), "-subj", identity.subject, "-out", str(csr)]
            )
            _openssl(
                [
                    *("x509", "-req", "-in", str(csr), "-CA", str(self.ca.cert)),
                    *("-CAkey", str(self.ca.key), "-set_serial", str(secrets.randbits(63))),
                    *("-days", str(VALID_DAYS), "-sha256", "-extfile", str(extensions)),
                    *("-out", str(pair.cert)),
                ]
            )
        return pair

    def service_account_keys(self) -> Pair:
        """The token signing key (sa.key) and its public half (sa.pub, in `cert`)."""
        pair = Pair(self.directory / "sa.pub", self.directory / "sa.key")
        _new_key(pair.key)
        _openssl(["pkey", "-in", str(pair.key), "-pubout", "-out", str(pair.cert)])
        return pair


def _extensions(identity: Identity) -> str:
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={','.join(identity.usages)}",
    ]
    names = [f"DNS:{n}" for n in identity.dns_names] + [f"IP:{a}" for a in identity.ip_addresses]
    if names:
        lines.append(f"subjectAltName={','.join(names)}")
    return "\n".join(lines) + "\n"


def _new_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _openssl(
        ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path)]
    )
    path.chmod(0o600)


def require_openssl() -> None:
    require_tool("openssl", "openssl")


def _openssl(args: list[str]) -> None:
    try:
        done = subprocess.run(
            ["openssl", *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TargetError(f"'openssl {args[0]}' could not run: {exc}") from exc
    if done.returncode != 0:
        raise TargetError(f"'openssl {' '.join(args)}' failed: {done.stderr.strip()}")
