"""The Kubernetes lab's certificates, checked without a lab: the chain by the openssl command
(an implementation independent of the one that made them), the names the lab's clients use,
and real TLS handshakes on loopback, as the API server (--client-ca-file) and kubectl make them.
"""

from __future__ import annotations

import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509

from harness.labs.kubernetes import pki

API_ADDRESS, SERVICE_IP, NODE, NODE_ADDRESS = "10.220.0.2", "10.222.0.1", "chk8s-n1", "10.220.0.11"


@pytest.fixture(scope="module")
def lab_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    authority = pki.Authority(directory)
    authority.create()
    for identity in pki.cluster_identities([API_ADDRESS], SERVICE_IP, [(NODE, NODE_ADDRESS)]):
        authority.issue(identity)
    authority.service_account_keys()
    return directory


def openssl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=check)


def field(directory: Path, stem: str, what: str) -> str:
    """One field of a certificate as openssl prints it (`-subject`, `-ext subjectAltName`...)."""
    return openssl("x509", "-in", str(directory / f"{stem}.crt"), "-noout", *what.split()).stdout


STEMS = (
    "admin",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "apiserver-kubelet-client",
    "apiserver",
    f"kubelet-{NODE}",
    f"kubelet-serving-{NODE}",
)


def test_every_certificate_chains_to_the_lab_ca(lab_pki: Path, tmp_path: Path) -> None:
    for stem in STEMS:
        done = openssl("verify", "-CAfile", str(lab_pki / "ca.crt"), str(lab_pki / f"{stem}.crt"))
        assert done.stdout.strip().endswith(": OK"), stem
    # another lab's CA does not vouch for them
    pki.Authority(tmp_path).create()
    other = openssl(
        "verify", "-CAfile", str(tmp_path / "ca.crt"), str(lab_pki / "admin.crt"), check=False
    )
    assert other.returncode != 0


def test_keys_are_p256_and_private(lab_pki: Path) -> None:
    for stem in (*STEMS, "ca", "sa"):
        key = lab_pki / f"{stem}.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, stem
        text = openssl("pkey", "-in", str(key), "-noout", "-text").stdout
        assert "NIST CURVE: P-256" in text, stem
    derived = openssl("pkey", "-in", str(lab_pki / "sa.key"), "-pubout").stdout
    assert derived == (lab_pki / "sa.pub").read_text()


def test_ca_signs_and_leaves_do_not(lab_pki: Path) -> None:
    ca = field(lab_pki, "ca", "-ext basicConstraints,keyUsage")
    assert "CA:TRUE" in ca and "Certificate Sign" in ca
    leaf = field(lab_pki, "admin", "-ext basicConstraints,keyUsage,extendedKeyUsage")
    assert "CA:FALSE" in leaf and "Certificate Sign" not in leaf
    assert "TLS Web Client Authentication" in leaf and "Server" not in leaf
    days = openssl("x509", "-in", str(lab_pki / "apiserver.crt"), "-noout", "-checkend", "0")
    assert days.returncode == 0
    late = 366 * 24 * 3600  # a year's validity, as before
    expired = openssl(
        "x509", "-in", str(lab_pki / "apiserver.crt"), "-noout", "-checkend", str(late), check=False
    )
    assert expired.returncode != 0


def test_subjects_name_the_identities_the_authorizers_expect(lab_pki: Path) -> None:
    expected = {
        "admin": "subject=O = system:masters, CN = chaos-harness-admin",
        "kube-controller-manager": (
            "subject=O = system:masters, CN = system:kube-controller-manager"
        ),
        "kube-scheduler": "subject=CN = system:kube-scheduler",
        "kube-proxy": "subject=CN = system:kube-proxy",
        "apiserver-kubelet-client": (
            "subject=O = system:masters, CN = kube-apiserver-kubelet-client"
        ),
        "apiserver": "subject=CN = kube-apiserver",
        f"kubelet-{NODE}": f"subject=O = system:nodes, CN = system:node:{NODE}",
        f"kubelet-serving-{NODE}": f"subject=O = system:nodes, CN = system:node:{NODE}",
    }
    for stem, subject in expected.items():
        assert field(lab_pki, stem, "-subject").strip() == subject


def test_serving_certificates_carry_the_names_clients_dial(lab_pki: Path) -> None:
    api = field(lab_pki, "apiserver", "-ext subjectAltName")
    for name in ("kubernetes", "kubernetes.default.svc.cluster.local", "localhost"):
        assert f"DNS:{name}," in api or api.rstrip().endswith(f"DNS:{name}")
    for address in (API_ADDRESS, SERVICE_IP, "127.0.0.1"):
        assert f"IP Address:{address}" in api
    kubelet = field(lab_pki, f"kubelet-serving-{NODE}", "-ext subjectAltName,extendedKeyUsage")
    assert f"DNS:{NODE}, IP Address:{NODE_ADDRESS}" in kubelet
    assert "TLS Web Server Authentication" in kubelet
    assert "subjectAltName" not in field(lab_pki, "admin", "-text")


def handshake(
    directory: Path, server: str, client: str, server_hostname: str, client_pki: Path | None = None
) -> str:
    """A TLS handshake on loopback: the server presents `server`'s certificate and requires a
    client certificate from the CA in `directory` (the API server's --client-ca-file); the
    client presents `client`'s and checks the server against `server_hostname` and the CA in
    `client_pki` (default: `directory`). The client's subject as the server saw it;
    ssl.SSLError when refused."""
    client_pki = client_pki or directory
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(directory / f"{server}.crt", directory / f"{server}.key")
    server_context.load_verify_locations(directory / "ca.crt")
    server_context.verify_mode = ssl.CERT_REQUIRED
    client_context = ssl.create_default_context(cafile=str(client_pki / "ca.crt"))
    client_context.load_cert_chain(client_pki / f"{client}.crt", client_pki / f"{client}.key")
    seen: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)

        def serve() -> None:
            connection, _ = listener.accept()
            with connection:
                try:
                    with server_context.wrap_socket(connection, server_side=True) as tls:
                        peer = x509.load_der_x509_certificate(tls.getpeercert(True) or b"")
                        seen.append(peer.subject.rfc4514_string())
                        tls.sendall(b"ok")
                except (ssl.SSLError, OSError):
                    pass  # the client's side of the test says why

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            port = listener.getsockname()[1]
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            with client_context.wrap_socket(raw, server_hostname=server_hostname) as tls:
                assert tls.recv(2) == b"ok"
        finally:
            thread.join(10)
    return seen[0]


@pytest.mark.parametrize(
    "dialled", ["127.0.0.1", "localhost", "kubernetes.default.svc", SERVICE_IP, API_ADDRESS]
)
def test_api_server_certificate_passes_a_real_handshake(lab_pki: Path, dialled: str) -> None:
    assert (
        handshake(lab_pki, "apiserver", "admin", dialled)
        == "CN=chaos-harness-admin,O=system:masters"
    )


def test_kubelet_serving_certificate_passes_for_the_api_server(lab_pki: Path) -> None:
    seen = handshake(lab_pki, f"kubelet-serving-{NODE}", "apiserver-kubelet-client", NODE_ADDRESS)
    assert seen == "CN=kube-apiserver-kubelet-client,O=system:masters"


def test_handshake_refuses_a_name_the_certificate_lacks(lab_pki: Path) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="match"):
        handshake(lab_pki, "apiserver", "admin", "example.com")


def test_client_refuses_a_certificate_of_another_ca(lab_pki: Path, tmp_path: Path) -> None:
    stranger = pki.Authority(tmp_path)
    stranger.create()
    apiserver = next(
        i for i in pki.cluster_identities([API_ADDRESS], SERVICE_IP, []) if i.stem == "apiserver"
    )
    stranger.issue(apiserver)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        handshake(tmp_path, "apiserver", "admin", "127.0.0.1", client_pki=lab_pki)


def test_server_refuses_a_serving_certificate_as_a_client(lab_pki: Path) -> None:
    with pytest.raises(ssl.SSLError, match=r"UNSUPPORTED_CERTIFICATE|unsupported certificate"):
        handshake(lab_pki, "apiserver", f"kubelet-serving-{NODE}", "127.0.0.1")
