"""The fault agent's base: a Debian root filesystem with its tools and Python packages, cached.

`debootstrap --variant=minbase` of SUITE from the mirror apt is set up with, with the tools
the fault mechanisms call; the third-party Python packages the agent imports, installed with
this environment's pip at this environment's versions, as wheels for the root filesystem's
own Python and C library; documentation and apt's lists removed. Packed as a tar under the
harness's cache directory, keyed by the package list, the suite and the pins (`Recipe.key`),
made once per key by one process at a time. Figures: docs/notes-agent-image.md.
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
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import commands
from harness.errors import AgentError, CommandError
from harness.labs.kubernetes.build import cache_root

Progress = Callable[[str], None]

SUITE = "bookworm"
# What the fault mechanisms run: iptables(-restore), tc and ip, nsenter, unshare and setpriv,
# stress-ng under sh, conntrack (hostnet), and ps/kill for people inspecting a node.
DEBIAN_PACKAGES: tuple[str, ...] = ("python3", "iptables", "iproute2", "util-linux")
DEBIAN_PACKAGES += ("stress-ng", "procps", "conntrack")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Never needed in the image; removed to keep it small (apt and dpkg are never run in it).
TRIMMED: tuple[str, ...] = ("usr/share/doc", "usr/share/man", "usr/share/info")
TRIMMED += ("usr/share/locale", "var/cache/apt", "var/lib/apt/lists", "var/log")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RECIPE = 1  # raise when the base is made differently in a way its key cannot see
DEBOOTSTRAP_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Recipe:
    """What a base holds beyond DEBIAN_PACKAGES: the agent's pinned Python packages."""

    packages: tuple[str, ...]  # "name==version" of the third-party distributions
    imports: tuple[str, ...]  # their top-level modules (checked in the root filesystem)
    arch: str  # Debian's name of this machine's architecture

    @property
    def key(self) -> str:
        recipe = {"recipe": RECIPE, "suite": SUITE, "arch": self.arch}
        recipe |= {"debian": sorted(DEBIAN_PACKAGES), "pip": sorted(self.packages)}
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def agent_cache() -> Path:
    """Where the base root filesystems are kept (outside the repository)."""
    return cache_root() / "agent"


def base_archive(
    recipe: Recipe, progress: Progress, cache: Path | None = None, mirror: str | None = None
) -> Path:
    """The base root filesystem as a tar in `cache` (default: agent_cache()), made first from
    `mirror` (default: apt's) if it is absent, by one builder at a time."""
    cache = cache or agent_cache()
    archive = cache / f"base-{recipe.key}.tar"
    if archive.is_file():
        return archive
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / ".lock"):
        if not archive.is_file():  # another process may have made it while this one waited
            _make_base(recipe, cache, archive, mirror or debian_mirror(), progress)
    return archive


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _make_base(recipe: Recipe, cache: Path, archive: Path, mirror: str, progress: Progress) -> None:
    started = time.monotonic()
    work = cache / f".build-{recipe.key}-{os.getpid()}"
    _remove_tree(work)
    rootfs = work / "rootfs"
    rootfs.mkdir(parents=True)
    try:
        _debootstrap(rootfs, mirror, recipe, cache / "debs", progress)
        _pip_install(rootfs, recipe, progress)
        _check_imports(rootfs, recipe)
        for relative in TRIMMED:
            _empty(rootfs / relative)
        progress("packing the root filesystem")
        partial = work / "rootfs.tar"
        tar = ["tar", "--numeric-owner", "--exclude=./dev/*", "-C", str(rootfs), "-cf"]
        _run([*tar, str(partial), "."], "packing the root filesystem", timeout_s=600)
        stamp: dict[str, object] = {
            "key": recipe.key,
            "suite": SUITE,
            "mirror": mirror,
            "arch": recipe.arch,
        }
        stamp |= {"debian": list(DEBIAN_PACKAGES), "pip": list(recipe.packages)}
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


def _debootstrap(rootfs: Path, mirror: str, recipe: Recipe, debs: Path, progress: Progress) -> None:
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
    argv = ["debootstrap", "--variant=minbase", f"--include={include}", f"--arch={recipe.arch}"]
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


def _pip_install(rootfs: Path, recipe: Recipe, progress: Progress) -> None:
    """The pinned packages into the root filesystem's site directory, as wheels built for its
    Python and its C library (whatever this machine's are)."""
    python = os.readlink(rootfs / "usr/bin/python3")  # "python3.11"
    version = python.removeprefix("python")
    site = rootfs / f"usr/local/lib/{python}/dist-packages"
    progress(f"pip install {' '.join(recipe.packages)} for Python {version}")
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    argv += ["--no-input", "--no-deps", "--only-binary=:all:", "--target", str(site)]
    argv += ["--python-version", version, "--implementation", "cp"]
    for tag in _platforms(rootfs):
        argv += ["--platform", tag]
    _run([*argv, *recipe.packages], "pip install into the agent's root filesystem", 900)


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


def _check_imports(rootfs: Path, recipe: Recipe) -> None:
    if not recipe.imports:
        return
    code = "; ".join(f"import {m}" for m in recipe.imports)
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
