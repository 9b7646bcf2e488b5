"""The lab's certificates, made with the `cryptography` package.

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

plus `sa.key` / `sa.pub`, the service-account token signing pair. Files are PEM: keys PKCS#8,
public keys SubjectPublicKeyInfo, as the openssl command line wrote them before.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.errors import TargetError

CA_NAME = "ca"
VALID_DAYS = 365
CA_COMMON_NAME = "chaos-harness-lab-ca"
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH


@dataclass(frozen=True)
class Identity:
    """One certificate to issue: its file stem, subject and (for servers) addresses."""

    stem: str
    common_name: str
    organizations: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    usages: tuple[x509.ObjectIdentifier, ...] = field(default=(CLIENT_AUTH,))

    @property
    def subject(self) -> x509.Name:
        """O=... first, then CN: the order kubeadm's certificates have."""
        organizations = [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in self.organizations
        ]
        return x509.Name(
            [*organizations, x509.NameAttribute(NameOID.COMMON_NAME, self.common_name)]
        )

    @property
    def alternative_names(self) -> list[x509.GeneralName]:
        dns: list[x509.GeneralName] = [x509.DNSName(n) for n in self.dns_names]
        ips = [x509.IPAddress(ipaddress.ip_address(a)) for a in self.ip_addresses]
        return [*dns, *ips]


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
            usages=(SERVER_AUTH,),
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
            usages=(SERVER_AUTH,),
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
        ca = self.ca
        key = _new_key(ca.key)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
        public = key.public_key()
        builder = (
            _validity(x509.CertificateBuilder(), x509.random_serial_number())
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
        )
        _write(ca.cert, builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        return ca

    def issue(self, identity: Identity) -> Pair:
        """A key and a certificate for `identity`, signed by the CA."""
        ca_cert, ca_key = self._load_ca()
        pair = self.pair(identity.stem)
        public = _new_key(pair.key).public_key()
        builder = (
            _validity(x509.CertificateBuilder(), secrets.randbits(63))
            .subject_name(identity.subject)
            .issuer_name(ca_cert.subject)
            .public_key(public)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(list(identity.usages)), critical=False)
        )
        if identity.alternative_names:
            names = x509.SubjectAlternativeName(identity.alternative_names)
            builder = builder.add_extension(names, critical=False)
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public), critical=False
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        cert = builder.sign(ca_key, hashes.SHA256())
        _write(pair.cert, cert.public_bytes(serialization.Encoding.PEM))
        return pair

    def service_account_keys(self) -> Pair:
        """The token signing key (sa.key) and its public half (sa.pub, in `cert`)."""
        pair = Pair(self.directory / "sa.pub", self.directory / "sa.key")
        public = _new_key(pair.key).public_key()
        _write(
            pair.cert,
            public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
        return pair

    def _load_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        try:
            cert = x509.load_pem_x509_certificate(self.ca.cert.read_bytes())
            key = serialization.load_pem_private_key(self.ca.key.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise TargetError(f"the lab's CA in {self.directory} cannot be read: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TargetError(f"{self.ca.key} is not the EC key this module makes")
        return cert, key


def _validity(builder: x509.CertificateBuilder, serial: int) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        builder.serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
    )


def _key_usage(ca: bool) -> x509.KeyUsage:
    """The CA signs certificates and CRLs; a leaf signs (ECDHE) and, as kubeadm's, may encipher."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _new_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """A new P-256 key, written as unencrypted PKCS#8 readable by its owner only."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(path, pem, mode=0o600)
    return key


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data`, the file created with `mode` (a key is never readable by others, even
    for a moment)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        path.chmod(mode)  # an existing file keeps its mode through O_CREAT
    except OSError as exc:
        raise TargetError(f"could not write {path}: {exc}") from exc
