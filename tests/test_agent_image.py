"""The fault agent's image, built on the real engine: its tools and modules work in a container.

The container runs with the agent's powers (the host's PID namespace, CAP_SYS_ADMIN,
CAP_NET_ADMIN, CAP_SYS_PTRACE) and no network of its own (`--network=none`: a namespace of its
own), so iptables is tried there and the host's rules are never touched. Not `--privileged`:
Docker 20.10 then asks for every capability it knows, and on a machine whose bounding set
lacks one (this one lacks CAP_SYS_RESOURCE) runc cannot start the container at all. The
first build (debootstrap + pip) takes a minute or more and is cached in
~/.cache/chaos-harness/agent; after that the module's fixture takes seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from faults.registry import BUILTIN_FAULTS
from harness.agent.image import (
    BASE_LABEL,
    IMAGE_LABEL,
    SOURCE_PACKAGES,
    agent_archive,
    agent_image,
    build_agent_image,
    repository_root,
)
from harness.agent.protocol import PROTOCOL_VERSION
from harness.agent.rootfs import DEFAULT_MIRROR, Recipe, base_archive, debian_mirror
from harness.commands import output
from harness.errors import AgentError

pytestmark = pytest.mark.docker

TEST_LABEL = {"chaos-harness.test": "agent-image"}
POWERS = ["SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE"]  # nsenter (setns), iptables and tc, /proc/PID


@pytest.fixture(scope="module")
def agent_tag(docker_client: docker.DockerClient) -> str:
    return agent_image(docker_client, progress=print)


def run_in(client: docker.DockerClient, image: str, command: list[str]) -> str:
    """`command` in a container of `image` with the agent's powers and host PIDs, and no
    network; its output, the container removed whatever happened."""
    container = client.containers.create(
        image, command, cap_add=POWERS, pid_mode="host", network_mode="none", labels=TEST_LABEL
    )
    try:
        container.start()
        status = container.wait(timeout=60)
        logs = container.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 0, logs
    return str(logs)


def test_the_agents_modules_import_and_know_every_fault(
    docker_client: docker.DockerClient, agent_tag: str
) -> None:
    code = (
        "import json, harness.agent.protocol as p, faults.registry as r; "
        "print(json.dumps([p.PROTOCOL_VERSION, sorted(r.fault_kinds())]))"
    )
    version, kinds = json.loads(run_in(docker_client, agent_tag, ["python3", "-c", code]))
    assert version == PROTOCOL_VERSION
    assert kinds == sorted(BUILTIN_FAULTS)


def test_the_mechanisms_tools_run(docker_client: docker.DockerClient, agent_tag: str) -> None:
    assert "stress-ng, version" in run_in(docker_client, agent_tag, ["stress-ng", "--version"])
    assert "util-linux" in run_in(docker_client, agent_tag, ["nsenter", "--version"])
    assert "nf_tables" in run_in(docker_client, agent_tag, ["iptables", "--version"])
    assert "-P INPUT ACCEPT" in run_in(docker_client, agent_tag, ["iptables", "-S"])


def test_iptables_writes_a_rule_in_a_namespace(
    docker_client: docker.DockerClient, agent_tag: str
) -> None:
    """Debian's default iptables (nft) adds, lists and deletes a tagged rule in the
    container's own network namespace, as the mechanisms do in an instance's."""
    rule = ["INPUT", "-m", "comment", "--comment", "chaos-agent-probe", "-j", "DROP"]
    script = (
        f"iptables -w -I {' '.join(rule)} && iptables -S INPUT && "
        f"iptables -w -D {' '.join(rule)} && echo deleted && iptables -S INPUT"
    )
    added, _, after = run_in(docker_client, agent_tag, ["sh", "-c", script]).partition("deleted")
    assert "-A INPUT -m comment --comment chaos-agent-probe -j DROP" in added
    assert "chaos-agent-probe" not in after


def test_nsenter_reaches_the_hosts_network_namespace(
    docker_client: docker.DockerClient, agent_tag: str
) -> None:
    """With the host's PIDs, the agent enters a host process's network namespace (this
    test's; the host's PID 1 may refuse anyone): it sees the host's default route and its
    device, where its own container has only lo."""
    enter = ["nsenter", "-t", str(os.getpid()), "-n"]
    seen = run_in(docker_client, agent_tag, [*enter, "ip", "-o", "route"])
    own = run_in(docker_client, agent_tag, ["ip", "-o", "route"])
    default = output(["ip", "-o", "route", "show", "default"]).split()
    device = default[default.index("dev") + 1]
    assert f"dev {device}" in seen
    assert seen.startswith("default ") and not own.strip()


def test_the_image_is_labelled_and_found_again_at_once(
    docker_client: docker.DockerClient, agent_tag: str
) -> None:
    labels = docker_client.images.get(agent_tag).labels
    assert labels[IMAGE_LABEL] == "agent"
    assert docker_client.images.get(f"chaos-harness/agent-base:{labels[BASE_LABEL]}")
    started = time.monotonic()
    assert agent_image(docker_client) == agent_tag
    assert time.monotonic() - started < 10


@pytest.fixture
def changed_source(tmp_path: Path) -> Iterator[Path]:
    """A copy of the harness source with one line added to a fault module."""
    for package in SOURCE_PACKAGES:
        shutil.copytree(
            repository_root() / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    registry = tmp_path / "faults" / "registry.py"
    registry.write_text(registry.read_text() + "\nAGENT_IMAGE_TEST_MARK = 1\n")
    yield tmp_path


def test_a_source_change_is_a_new_tag_built_in_seconds(
    docker_client: docker.DockerClient, agent_tag: str, changed_source: Path
) -> None:
    started = time.monotonic()
    tag = build_agent_image(docker_client, changed_source, progress=print)
    elapsed = time.monotonic() - started
    try:
        assert tag != agent_tag
        base = docker_client.images.get(agent_tag).labels[BASE_LABEL]
        assert docker_client.images.get(tag).labels[BASE_LABEL] == base
        code = "import faults.registry as r; print(r.AGENT_IMAGE_TEST_MARK)"
        assert run_in(docker_client, tag, ["python3", "-c", code]).strip() == "1"
        print(f"rebuild after a source change: {elapsed:.1f} s")
        assert elapsed < 60
    finally:
        docker_client.images.remove(tag, force=True)


def test_the_archive_holds_the_image(
    docker_client: docker.DockerClient, agent_tag: str, tmp_path: Path
) -> None:
    archive = agent_archive(agent_tag, tmp_path, docker_client)
    with tarfile.open(archive) as tar:
        manifest = tar.extractfile("manifest.json")
        assert manifest is not None
        assert agent_tag in json.load(manifest)[0]["RepoTags"]


def test_the_mirror_is_apts_own(tmp_path: Path) -> None:
    """One-line and deb822 sources both name the mirror; the first for bookworm wins."""
    assert debian_mirror(tmp_path) == DEFAULT_MIRROR  # no sources at all
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "Types: deb-src deb\n# a comment\nURIs: http://mirror.example/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text(
        "# deb http://old.example/debian bookworm main\n"
        "deb [arch=amd64] http://one.example/debian bookworm main\n"
    )
    assert debian_mirror(tmp_path) == "http://one.example/debian"


def test_the_first_builds_needs_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without debootstrap the error gives the apt line; without the mirror it says so."""
    recipe = Recipe((), (), "amd64")
    monkeypatch.setenv("PATH", str(tmp_path))  # no debootstrap on it
    nowhere = "http://127.0.0.1:9/debian"  # the discard port: nothing listens there
    with pytest.raises(AgentError, match=r"apt-get install -y debootstrap"):
        base_archive(recipe, print, cache=tmp_path, mirror=nowhere)
    monkeypatch.undo()
    with pytest.raises(AgentError, match=r"cannot reach the Debian mirror \(http://127\.0\.0\.1:9"):
        base_archive(recipe, print, cache=tmp_path, mirror=nowhere)
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]  # the build directory is gone
