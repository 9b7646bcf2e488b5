"""The fault agent's image, built on this machine from what Debian and PyPI serve (no registry).

Two layers. The base: a Debian root filesystem (`debootstrap --variant=minbase`, with the
tools the fault mechanisms call) plus the third-party Python packages the agent's modules
import, pinned to the versions of the harness's own environment; slow, so it is cached as a
tar under the harness's cache directory and imported once per engine (`docker import`),
both keyed by the package list, the suite and the pins. On top, the harness's own source
(harness/ and faults/ .py files) in /opt/chaos-harness, built `FROM` the base in seconds and
tagged `chaos-harness/agent:<key>`, the key covering the base and every source file: a code
change is a new tag. The build imports every agent module in the image, so a missing package
fails the build, not a run. Figures: docs/notes-agent-image.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from harness import commands
from harness.agent.protocol import SERVE_ARGV
from harness.errors import AgentError, CommandError, TargetError
from harness.labs.kubernetes.build import cache_root
from harness.labs.kubernetes.images import save_host_image

Progress = Callable[[str], None]

REPOSITORY = "chaos-harness/agent"
BASE_REPOSITORY = "chaos-harness/agent-base"
IMAGE_LABEL = "chaos-harness.image"
BASE_LABEL = "chaos-harness.agent.base"
SUITE = "bookworm"
# What the fault mechanisms run: iptables(-restore), tc and ip, nsenter, unshare and setpriv,
# stress-ng under sh, conntrack (hostnet), and ps/kill for people inspecting a node.
DEBIAN_PACKAGES: tuple[str, ...] = (
    "python3",
    "iptables",
    "iproute2",
    "util-linux",
    "stress-ng",
    "procps",
)
DEBIAN_PACKAGES += ("conntrack",)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
INSTALL_DIR = "/opt/chaos-harness"
SOURCE_PACKAGES = ("harness", "faults")
# The agent's program and its protocol (the program's __main__ guards its start on import)
AGENT_ENTRY = ("harness.agent.__main__", "harness.agent.protocol")
# Never needed in the image; removed to keep it small (apt and dpkg are never run in it).
TRIMMED: tuple[str, ...] = ("usr/share/doc", "usr/share/man", "usr/share/info")
TRIMMED += ("usr/share/locale", "var/cache/apt", "var/lib/apt/lists", "var/log")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RECIPE = 1  # raise when the base is made differently in a way its key cannot see
DEBOOTSTRAP_TIMEOUT_S = 1800
BUILD_TIMEOUT_S = 600


def to_stderr(line: str) -> None:
    """The default progress: a line on stderr (stdout stays the caller's)."""
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Plan:
    """What an agent image is made of: the base's recipe and the source on top."""

    packages: tuple[str, ...]  # "name==version" of the third-party distributions
    imports: tuple[str, ...]  # their top-level modules (checked in the root filesystem)
    modules: tuple[str, ...]  # the agent's modules, imported in the image by the build
    arch: str  # Debian's name of this machine's architecture

    @property
    def base_key(self) -> str:
        recipe = {"recipe": RECIPE, "suite": SUITE, "arch": self.arch}
        recipe |= {"debian": sorted(DEBIAN_PACKAGES), "pip": sorted(self.packages)}
        return _digest(json.dumps(recipe, sort_keys=True).encode())

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
    env = {**os.environ, "PYTHONPATH": str(source)}
    argv = [sys.executable, "-c", _FIND_PACKAGES, *modules]
    try:
        found = json.loads(commands.run(argv, timeout_s=120, env=env, cwd=source).stdout)
        arch = commands.output(["dpkg", "--print-architecture"]).strip()
    except CommandError as exc:
        raise AgentError(f"cannot list the agent's Python packages: {exc}") from exc
    return Plan(tuple(found["packages"]), tuple(found["imports"]), modules, arch)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


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
    if _has_image(client, plan.base_tag):
        return
    archive = base_archive(plan, progress)
    progress(f"importing the root filesystem {archive} into the engine")
    changes = [f"ENV PATH={PATH}", "WORKDIR /", f"LABEL {IMAGE_LABEL}=agent-base"]
    try:
        client.api.import_image_from_file(
            str(archive), repository=BASE_REPOSITORY, tag=plan.base_key, changes=changes
        )
    except (docker.errors.APIError, OSError) as exc:
        raise AgentError(f"importing {archive} into the engine failed: {exc}") from exc
    if not _has_image(client, plan.base_tag):
        raise AgentError(f"the engine did not keep {plan.base_tag} after importing {archive}")


def agent_cache() -> Path:
    """Where the base root filesystems are kept (outside the repository)."""
    return cache_root() / "agent"


def base_archive(plan: Plan, progress: Progress) -> Path:
    """The base root filesystem as a tar in the cache, made first if it is absent (one
    builder at a time)."""
    cache = agent_cache()
    archive = cache / f"base-{plan.base_key}.tar"
    if archive.is_file():
        return archive
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / ".lock"):
        if not archive.is_file():  # another process may have made it while this one waited
            _make_base(plan, cache, archive, progress)
    return archive


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _make_base(plan: Plan, cache: Path, archive: Path, progress: Progress) -> None:
    started = time.monotonic()
    work = cache / f".build-{plan.base_key}-{os.getpid()}"
    _remove_tree(work)
    rootfs = work / "rootfs"
    rootfs.mkdir(parents=True)
    try:
        mirror = debian_mirror()
        _debootstrap(rootfs, mirror, plan, cache / "debs", progress)
        _pip_install(rootfs, plan, progress)
        _check_imports(rootfs, plan)
        for relative in TRIMMED:
            _empty(rootfs / relative)
        progress("packing the root filesystem")
        partial = work / "rootfs.tar"
        tar = ["tar", "--numeric-owner", "--exclude=./dev/*", "-C", str(rootfs), "-cf"]
        _run([*tar, str(partial), "."], "packing the root filesystem", timeout_s=600)
        stamp: dict[str, object] = {
            "key": plan.base_key,
            "suite": SUITE,
            "mirror": mirror,
            "arch": plan.arch,
        }
        stamp |= {"debian": list(DEBIAN_PACKAGES), "pip": list(plan.packages)}
        stamp |= {"build_s": round(time.monotonic() - started, 1)}
        archive.with_suffix(".json").write_text(json.dumps(stamp, indent=2) + "\n")
        partial.rename(archive)
        size = archive.stat().st_size / 2**20
        progress(f"root filesystem cached in {time.monotonic() - started:.0f} s: {size:.0f} MiB")
    finally:
        _remove_tree(work)


def debian_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The first Debian mirror apt is set up with for SUITE (one-line or deb822 sources)."""
    candidates = [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*"))]
    for path in candidates:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            found = _mirror_in(path.read_text(), deb822=path.suffix == ".sources")
            if found:
                return found
    return DEFAULT_MIRROR


def _mirror_in(text: str, deb822: bool) -> str | None:
    if not deb822:
        for line in text.splitlines():
            words = [w for w in line.split("#", 1)[0].split() if not w.startswith("[")]
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                return words[1].rstrip("/")
        return None
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line.startswith(("#", " ")):
                fields[key.strip().lower()] = value.strip()
        suites = fields.get("suites", "").split()
        if "deb" in fields.get("types", "").split() and SUITE in suites and fields.get("uris"):
            return fields["uris"].split()[0].rstrip("/")
    return None


def _debootstrap(rootfs: Path, mirror: str, plan: Plan, debs: Path, progress: Progress) -> None:
    if shutil.which("debootstrap") is None:
        raise AgentError(
            "debootstrap is not installed; the agent image's root filesystem is built with it: "
            "apt-get install -y debootstrap (make setup installs it)"
        )
    if os.geteuid() != 0:
        raise AgentError("debootstrap needs root: build the agent image as root (or sudo)")
    _reachable(f"{mirror}/dists/{SUITE}/Release")
    debs.mkdir(parents=True, exist_ok=True)
    progress(f"debootstrap {SUITE} (minbase) from {mirror}: a few minutes, once per package list")
    include = ",".join(DEBIAN_PACKAGES)
    argv = ["debootstrap", "--variant=minbase", f"--include={include}", f"--arch={plan.arch}"]
    argv += [f"--cache-dir={debs}", SUITE, str(rootfs), mirror]
    _run(argv, f"debootstrap of {SUITE} from {mirror}", DEBOOTSTRAP_TIMEOUT_S)


def _reachable(url: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=20) as answer:
            answer.read(1)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AgentError(
            f"cannot reach the Debian mirror ({url}: {reason}); the agent image's root "
            "filesystem is built from it once per package list, then cached in "
            f"{agent_cache()}: build it on a machine that reaches the mirror and load it "
            "here (docker save | docker load), or name an image you pushed in target.agent.image"
        ) from exc


def _pip_install(rootfs: Path, plan: Plan, progress: Progress) -> None:
    """The pinned packages into the root filesystem's site directory, as wheels built for its
    Python and its C library (whatever this machine's are)."""
    python = os.readlink(rootfs / "usr/bin/python3")  # "python3.11"
    version = python.removeprefix("python")
    site = rootfs / f"usr/local/lib/{python}/dist-packages"
    progress(f"pip install {' '.join(plan.packages)} for Python {version}")
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    argv += ["--no-input", "--no-deps", "--only-binary=:all:", "--target", str(site)]
    argv += ["--python-version", version, "--implementation", "cp"]
    for tag in _platforms(rootfs):
        argv += ["--platform", tag]
    _run([*argv, *plan.packages], "pip install into the agent's root filesystem", 900)


def _platforms(rootfs: Path) -> list[str]:
    """The manylinux wheel tags the root filesystem's C library runs, newest first."""
    machine = platform.machine()
    glibc = _libc_version(rootfs)
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(glibc, 16, -1)]
    return [*tags, f"manylinux2014_{machine}"]


def _libc_version(rootfs: Path) -> int:
    """The minor version of the root filesystem's glibc (dpkg's record of libc6)."""
    status = (rootfs / "var/lib/dpkg/status").read_text()
    for stanza in status.split("\n\n"):
        if "\nPackage: libc6\n" in f"\n{stanza}\n":
            version = stanza.split("\nVersion: ", 1)[1].split()[0]  # "2.36-9+deb12u10"
            return int(version.split("-")[0].split(".")[1])
    raise AgentError(f"no libc6 in {rootfs}: the debootstrap did not finish")


def _check_imports(rootfs: Path, plan: Plan) -> None:
    if not plan.imports:
        return
    code = "; ".join(f"import {m}" for m in plan.imports)
    argv = ["chroot", str(rootfs), "/usr/bin/python3", "-c", code]
    try:
        commands.run(argv, timeout_s=60, env={"PATH": PATH, "LANG": "C.UTF-8"})
    except CommandError as exc:
        raise AgentError(f"the agent's Python packages do not import in its image: {exc}") from exc


def _run(argv: Sequence[str], what: str, timeout_s: float) -> None:
    try:
        commands.run(argv, timeout_s=timeout_s)
    except CommandError as exc:
        raise AgentError(f"{what} failed: {exc}") from exc


def _empty(directory: Path) -> None:
    if not directory.is_dir():
        return
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _remove_tree(path: Path) -> None:
    """Remove a build directory, after unmounting whatever debootstrap left mounted in it
    (/proc, /sys, a bound /dev): a tree with a mount left in it is never removed."""
    if not path.exists():
        return
    for mount in reversed(_mounts_under(path)):
        with contextlib.suppress(CommandError):
            commands.run(["umount", "-l", mount], timeout_s=30)
    left = _mounts_under(path)
    if left:
        raise AgentError(f"{', '.join(left)} still mounted: unmount them, then remove {path}")
    shutil.rmtree(path)


def _mounts_under(path: Path) -> list[str]:
    prefix = f"{path.resolve()}/"
    with open("/proc/self/mountinfo") as table:
        points = [line.split()[4] for line in table]
    return sorted(p for p in points if p.startswith(prefix))
