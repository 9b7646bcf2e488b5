"""The fault agent's image, built on this machine from what Debian and PyPI serve (no registry).

Two layers. The base (harness.agent.rootfs: Debian's packages and the agent's pinned Python
packages, cached as a tar) is imported once per engine as `chaos-harness/agent-base:<key>`
(`docker import`); its Python packages are found here, by importing the agent's modules. On
top, the harness's own source (harness/ and faults/ .py files) in /opt/chaos-harness, built
`FROM` the base in seconds and tagged `chaos-harness/agent:<key>`, the key covering the base
and every source file: a code change is a new tag. The build imports every agent module in
the image, so a missing package fails the build, not a run. Figures: docs/notes-agent-image.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from harness import commands
from harness.agent.protocol import SERVE_ARGV
from harness.agent.rootfs import PATH, Progress, Recipe, base_archive
from harness.errors import AgentError, CommandError, TargetError
from harness.labs.kubernetes.images import save_host_image

REPOSITORY = "chaos-harness/agent"
BASE_REPOSITORY = "chaos-harness/agent-base"
IMAGE_LABEL = "chaos-harness.image"
BASE_LABEL = "chaos-harness.agent.base"
INSTALL_DIR = "/opt/chaos-harness"
SOURCE_PACKAGES = ("harness", "faults")
# The agent's program and what it imports as it serves (its __main__ imports most of it only
# when a request needs it, and guards its start on import)
AGENT_ENTRY = (
    "harness.agent.__main__",
    "harness.agent.protocol",
    "harness.agent.actions",
    "harness.agent.probing",
)
BUILD_TIMEOUT_S = 600


def to_stderr(line: str) -> None:
    """The default progress: a line on stderr (stdout stays the caller's)."""
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Plan:
    """What an agent image is made of: the base's recipe and the modules on top."""

    recipe: Recipe
    modules: tuple[str, ...]  # the agent's modules, imported in the image by the build

    @property
    def base_key(self) -> str:
        return self.recipe.key

    @property
    def base_tag(self) -> str:
        return f"{BASE_REPOSITORY}:{self.base_key}"


def repository_root() -> Path:
    """The directory holding this harness's harness/ and faults/ packages."""
    return Path(__file__).resolve().parents[2]


def agent_image(client: docker.DockerClient, progress: Progress = to_stderr) -> str:
    """The agent image's tag on `client`'s engine, built first if it is missing."""
    return build_agent_image(client, repository_root(), progress)


def build_agent_image(client: docker.DockerClient, source: Path, progress: Progress) -> str:
    """The agent image of the harness source under `source` (harness/, faults/)."""
    plan = plan_for(source)
    files = source_files(source)
    dockerfile = _dockerfile(plan)
    tag = f"{REPOSITORY}:{_image_key(plan, dockerfile, files)}"
    if _has_image(client, tag):
        return tag
    started = time.monotonic()
    progress(f"agent image {tag}: building (base {plan.base_tag})")
    _ensure_base(client, plan, progress)
    progress(f"adding the harness source ({len(files)} files) and importing its modules")
    _build_top(client, tag, plan, dockerfile, files)
    progress(f"built {tag} in {time.monotonic() - started:.1f} s")
    return tag


def agent_archive(tag: str, directory: Path, client: docker.DockerClient | None = None) -> Path:
    """A `docker save` archive of the agent image `tag`, in `directory` (for a lab's nodes)."""
    try:
        return save_host_image(tag, directory, client)
    except TargetError as exc:
        raise AgentError(f"cannot save the agent image: {exc}") from exc


def tag_image(client: docker.DockerClient, image: str, name: str) -> None:
    """Give `image` another name, such as a registry's ("host:5000/agent" means :latest)."""
    repository, _, version = name.rpartition(":")
    if not repository or "/" in version:  # "host:5000/agent": the colon is the port's
        repository, version = name, "latest"
    try:
        client.images.get(image).tag(repository, version)
    except docker.errors.APIError as exc:
        raise AgentError(f"cannot name {image} {name}: {exc}") from exc


def source_files(source: Path) -> dict[str, bytes]:
    """harness/ and faults/ .py files under `source`, by path relative to it."""
    files: dict[str, bytes] = {}
    for package in SOURCE_PACKAGES:
        for path in sorted((source / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                files[path.relative_to(source).as_posix()] = path.read_bytes()
    if not files:
        raise AgentError(f"no harness source under {source}: expected harness/ and faults/")
    return files


def agent_modules(source: Path) -> tuple[str, ...]:
    """The modules the agent runs: its program (`python -m harness.agent`, whose imports
    bring the rest), the fault registry, and every fault module and mechanism (the registry
    imports those by name, so no import statement leads to them)."""
    names = [m for m in AGENT_ENTRY if (source / f"{m.replace('.', '/')}.py").is_file()]
    names.append("faults.registry")
    for package in ("faults", "faults/mechanisms"):
        for path in sorted((source / package).glob("*.py")):
            dotted = package.replace("/", ".")
            names.append(dotted if path.stem == "__init__" else f"{dotted}.{path.stem}")
    return tuple(dict.fromkeys(names))


# Run by this environment's Python with the source on its path: the distributions (and their
# top-level modules) that importing the agent's modules brings in, with their versions.
_FIND_PACKAGES = """
import importlib, json, sys
from importlib import metadata
before = set(sys.modules)
for name in sys.argv[1:]:
    importlib.import_module(name)
owners = metadata.packages_distributions()
tops = {n.partition(".")[0] for n in set(sys.modules) - before}
tops = {t for t in tops if t not in sys.stdlib_module_names and t in owners}
tops -= {"harness", "faults"}  # the source itself, copied into the image
dists = {d for t in tops for d in owners[t]}
print(json.dumps({"packages": sorted(f"{d}=={metadata.version(d)}" for d in dists),
                  "imports": sorted(tops)}))
"""


def plan_for(source: Path) -> Plan:
    """Which packages the agent's modules import, found by importing them here."""
    modules = agent_modules(source)
    return Plan(recipe_for(source, modules), modules)


def recipe_for(source: Path, modules: Sequence[str]) -> Recipe:
    """The third-party packages (this environment's versions) that importing `modules` with
    `source` on the path brings in, as a root filesystem's recipe."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    argv = [sys.executable, "-c", _FIND_PACKAGES, *modules]
    try:
        found = json.loads(commands.run(argv, timeout_s=120, env=env, cwd=source).stdout)
        arch = commands.output(["dpkg", "--print-architecture"]).strip()
    except CommandError as exc:
        raise AgentError(f"cannot list the Python packages of {', '.join(modules)}: {exc}") from exc
    return Recipe(tuple(found["packages"]), tuple(found["imports"]), arch)


def _image_key(plan: Plan, dockerfile: str, files: dict[str, bytes]) -> str:
    digest = hashlib.sha256(f"{plan.base_key}\n{dockerfile}".encode())
    for name, data in files.items():
        digest.update(f"\n{name}\n{hashlib.sha256(data).hexdigest()}".encode())
    return digest.hexdigest()[:12]


def _dockerfile(plan: Plan) -> str:
    imports = "; ".join(f"import {m}" for m in plan.modules)
    return "\n".join(
        [
            f"FROM {plan.base_tag}",
            "COPY opt /opt",
            f"ENV PYTHONPATH={INSTALL_DIR}",
            f"WORKDIR {INSTALL_DIR}",
            # compiled once here, not in every `call`; every agent module must import
            f'RUN python3 -m compileall -q {INSTALL_DIR} && python3 -c "{imports}"',
            f"CMD {json.dumps(list(SERVE_ARGV))}",
            "",
        ]
    )


def _has_image(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as exc:
        raise AgentError(f"cannot inspect {tag} on the engine: {exc}") from exc
    return True


def _build_top(
    client: docker.DockerClient, tag: str, plan: Plan, dockerfile: str, files: dict[str, bytes]
) -> None:
    with tempfile.TemporaryDirectory(prefix="chaos-harness-agent-") as tmp:
        context = Path(tmp)
        (context / "Dockerfile").write_text(dockerfile)
        for name, data in files.items():
            path = context / INSTALL_DIR.lstrip("/") / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        labels = {IMAGE_LABEL: "agent", BASE_LABEL: plan.base_key}
        try:
            client.images.build(
                path=str(context),
                tag=tag,
                rm=True,
                forcerm=True,
                labels=labels,
                pull=False,
                network_mode="none",  # the build's one step needs no network
                timeout=BUILD_TIMEOUT_S,
            )
        except docker.errors.BuildError as exc:
            log = "".join(str(step.get("stream", step.get("error", ""))) for step in exc.build_log)
            tail = "\n".join(log.strip().splitlines()[-8:])
            raise AgentError(f"building {tag} failed: {exc}\n{tail}") from exc
        except docker.errors.APIError as exc:
            raise AgentError(f"building {tag} failed: {exc}") from exc


def _ensure_base(client: docker.DockerClient, plan: Plan, progress: Progress) -> None:
    rootfs_image(client, plan.recipe, BASE_REPOSITORY, "agent-base", progress)


def rootfs_image(
    client: docker.DockerClient,
    recipe: Recipe,
    repository: str,
    role: str,
    progress: Progress,
    changes: Sequence[str] = (),
) -> str:
    """`repository:<recipe key>` on the engine: the recipe's cached root filesystem imported
    (made first if missing), labelled with its `role`, with Dockerfile-like `changes`."""
    tag = f"{repository}:{recipe.key}"
    if _has_image(client, tag):
        return tag
    archive = base_archive(recipe, progress)
    progress(f"importing the root filesystem {archive} into the engine")
    changes = [f"ENV PATH={PATH}", "WORKDIR /", f"LABEL {IMAGE_LABEL}={role}", *changes]
    try:
        client.api.import_image_from_file(
            str(archive), repository=repository, tag=recipe.key, changes=changes
        )
    except (docker.errors.APIError, OSError) as exc:
        raise AgentError(f"importing {archive} into the engine failed: {exc}") from exc
    if not _has_image(client, tag):
        raise AgentError(f"the engine did not keep {tag} after importing {archive}")
    return tag
