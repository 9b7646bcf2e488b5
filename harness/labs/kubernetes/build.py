"""Kubernetes built from its own Go module: one multicall binary, cached outside the repository.

`go install k8s.io/kubernetes/cmd/...@v1.34.12` refuses: Kubernetes' go.mod replaces its ~31
staging modules (k8s.io/api, client-go...) with ./staging directories. So the build writes a
small wrapper module (in a temporary directory, never in the repository):

- go.mod requires k8s.io/kubernetes at KUBERNETES_VERSION and etcd's server at the version
  Kubernetes' own go.mod pins, and replaces every `k8s.io/X => ./staging/...` line of that
  go.mod with the published tag `k8s.io/X v0.<minor>.<patch>`; its `go` and `godebug` lines are
  Kubernetes' own (the main module's godebug decides the binary's defaults);
- main.go (harness/labs/kubernetes/wrapper/main.go) runs the component named by argv[0]: etcd,
  kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl.

`go mod tidy` fills go.sum (checked against the Go checksum database), then one
`go build -trimpath -ldflags "-s -w"` compiles everything once; a symlink per component points
at the binary. The result lands in `<cache>/kubernetes/<version>-<hash>/` where the hash covers
the wrapper's files and the build settings; it is built in a temporary directory next to it and
renamed into place, so a directory with that name is always complete. A valid build is never
rebuilt. Go's own module and build caches are used as the environment sets them (by default
~/go/pkg/mod and ~/.cache/go-build), so a rebuild after a change of the wrapper recompiles only
what changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from harness import commands
from harness.errors import CapabilityError, CommandError, TargetError

KUBERNETES_VERSION = "v1.34.12"
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
)
MODULE_PATH = "chaos-harness.local/kube"
BINARY = "kube"
GO_CANDIDATES = ("/usr/local/go/bin/go", "/usr/lib/go/bin/go")
MIN_GO = (1, 25)
LDFLAGS = "-s -w"
# cgo off: a static binary that needs no C toolchain and runs on any glibc (as Kubernetes'
# own release builds are made); the pure-Go resolver is all a lab needs.
BUILD_ENV = {"CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
HEARTBEAT_S = 15.0

Progress = Callable[[str], None]


@dataclass(frozen=True)
class KubeBuild:
    """A finished build: the binary and one symlink per component."""

    directory: Path
    version: str
    key: str

    @property
    def bin_dir(self) -> Path:
        return self.directory / "bin"

    def path(self, component: str) -> Path:
        """The executable of one component (a symlink to the multicall binary)."""
        if component not in COMPONENTS:
            raise TargetError(f"no component {component!r}; built: {', '.join(COMPONENTS)}")
        return self.bin_dir / component

    def valid(self) -> bool:
        """Complete: the stamp, the binary and every symlink are there."""
        binary = self.bin_dir / BINARY
        if not (self.directory / "build.json").is_file() or not os.access(binary, os.X_OK):
            return False
        return all((self.bin_dir / c).resolve() == binary.resolve() for c in COMPONENTS)


def cache_root() -> Path:
    """$CHAOS_HARNESS_CACHE, else $XDG_CACHE_HOME/chaos-harness, else ~/.cache/chaos-harness."""
    explicit = os.environ.get("CHAOS_HARNESS_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "chaos-harness"


def find_go() -> str:
    """The Go tool: $CHAOS_HARNESS_GO, `go` on the PATH, or Go's usual install places."""
    candidates = [os.environ.get("CHAOS_HARNESS_GO") or "", shutil.which("go") or ""]
    for candidate in [*candidates, *GO_CANDIDATES]:
        if candidate and os.access(candidate, os.X_OK):
            _require_go_version(candidate)
            return candidate
    raise CapabilityError(
        "no Go toolchain found (tried $CHAOS_HARNESS_GO, PATH, /usr/local/go/bin/go): "
        f"install Go {MIN_GO[0]}.{MIN_GO[1]} or newer from https://go.dev/dl"
    )


def _require_go_version(go: str) -> None:
    output = _go(go, ["env", "GOVERSION"], Path.cwd(), timeout_s=60).strip()
    found = re.match(r"go(\d+)\.(\d+)", output)
    if found is None or (int(found[1]), int(found[2])) < MIN_GO:
        raise CapabilityError(
            f"{go} is {output or 'an unknown version'}; Kubernetes {KUBERNETES_VERSION} needs "
            f"Go {MIN_GO[0]}.{MIN_GO[1]} or newer"
        )


def staging_version(kubernetes_version: str) -> str:
    """The tag of the published staging modules: v1.34.12 -> v0.34.12."""
    found = re.fullmatch(r"v1\.(\d+\.\d+)", kubernetes_version)
    if found is None:
        raise TargetError(f"not a Kubernetes release version: {kubernetes_version!r}")
    return f"v0.{found[1]}"


def wrapper_go_mod(kubernetes_go_mod: str, version: str = KUBERNETES_VERSION) -> str:
    """The wrapper module's go.mod, derived from Kubernetes' own go.mod text."""
    staging = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", kubernetes_go_mod, re.M)
    if not staging:
        raise TargetError("Kubernetes' go.mod has no `=> ./staging/` replacements; wrong file?")
    etcd = re.search(r"^\s*go\.etcd\.io/etcd/server/v3\s+(v\S+)", kubernetes_go_mod, re.M)
    if etcd is None:
        raise TargetError("Kubernetes' go.mod pins no go.etcd.io/etcd/server/v3 version")
    go_line = re.search(r"^go\s+\S+", kubernetes_go_mod, re.M)
    godebug = re.search(r"^godebug\s+.+$", kubernetes_go_mod, re.M)
    tag = staging_version(version)
    lines = [f"module {MODULE_PATH}", "", go_line[0] if go_line else "go 1.25.0", ""]
    if godebug:
        lines += [godebug[0], ""]
    lines += [
        "require (",
        f"\tgo.etcd.io/etcd/server/v3 {etcd[1]}",
        f"\tk8s.io/kubernetes {version}",
        ")",
        "",
        "replace (",
        *(f"\t{module} => {module} {tag}" for module in staging),
        ")",
        "",
    ]
    return "\n".join(lines)


def wrapper_main() -> str:
    return (resources.files("harness.labs.kubernetes") / "wrapper" / "main.go").read_text()


def build_key(go_mod: str, main_go: str, flags: str) -> str:
    """What the cached build depends on: the wrapper's files and the build settings."""
    digest = hashlib.sha256()
    for part in (go_mod, main_go, flags, json.dumps(BUILD_ENV, sort_keys=True)):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class KubernetesModule:
    """Kubernetes' module as the Go module cache holds it."""

    version: str
    directory: Path  # the module's source (build/pause/linux/pause.c lives here)
    go_mod: str  # its go.mod text
    time: str  # the version's publication time, used as the build date (reproducible)


def kubernetes_module(go: str, version: str = KUBERNETES_VERSION) -> KubernetesModule:
    """Kubernetes' module from the module cache (downloaded through the proxy if absent)."""
    raw = _go(go, ["mod", "download", "-json", f"k8s.io/kubernetes@{version}"], Path.cwd(), 900)
    try:
        found = json.loads(raw)
        published = json.loads(Path(found["Info"]).read_text())["Time"]
        return KubernetesModule(
            version, Path(found["Dir"]), Path(found["GoMod"]).read_text(), str(published)
        )
    except (ValueError, KeyError, OSError) as exc:
        raise TargetError(f"cannot read Kubernetes {version}'s module: {exc}") from exc


def ldflags(module: KubernetesModule) -> str:
    """-s -w, and the version variables Kubernetes' own build sets (hack/lib/version.sh), so
    every component reports v1.34.12 rather than v0.0.0-master."""
    found = re.fullmatch(r"v(\d+)\.(\d+)\.\d+", module.version)
    if found is None:
        raise TargetError(f"not a Kubernetes release version: {module.version!r}")
    values = {
        "gitVersion": module.version,
        "gitMajor": found[1],
        "gitMinor": found[2],
        "gitTreeState": "archive",
        "buildDate": module.time[:19] + "Z",
    }
    flags = [LDFLAGS]
    for package in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in values.items()]
    return " ".join(flags)


def planned(version: str = KUBERNETES_VERSION, go: str | None = None) -> tuple[KubeBuild, str, str]:
    """The build for `version` (maybe not made yet), the wrapper's go.mod and the ldflags."""
    go = go or find_go()
    module = kubernetes_module(go, version)
    go_mod = wrapper_go_mod(module.go_mod, version)
    flags = ldflags(module)
    key = build_key(go_mod, wrapper_main(), flags)
    directory = cache_root() / "kubernetes" / f"{version}-{key}"
    return KubeBuild(directory, version, key), go_mod, flags


def ensure_built(progress: Progress = print, version: str = KUBERNETES_VERSION) -> KubeBuild:
    """The cached build of `version`, built first if it is absent (one builder at a time)."""
    go = find_go()
    build, go_mod, flags = planned(version, go)
    if build.valid():
        return build
    build.directory.parent.mkdir(parents=True, exist_ok=True)
    with _locked(build.directory.parent / ".lock"):
        if build.valid():  # another process built it while this one waited
            return build
        _build(go, build, go_mod, flags, progress)
    return build


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _build(go: str, build: KubeBuild, go_mod: str, flags: str, progress: Progress) -> None:
    started = time.monotonic()
    tmp = build.directory.with_name(f".{build.directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    source = tmp / "src"
    source.mkdir(parents=True)
    try:
        (source / "go.mod").write_text(go_mod)
        (source / "main.go").write_text(wrapper_main())
        progress(f"building Kubernetes {build.version} into {build.directory} (once per machine)")
        progress("resolving modules (go mod tidy)")
        _go(go, ["mod", "tidy"], source, timeout_s=1800)
        total = len(_go(go, ["list", "-deps", "."], source, 600).split())
        _compile(go, source, tmp / "bin" / BINARY, flags, total, progress)
        for component in COMPONENTS:
            (tmp / "bin" / component).symlink_to(BINARY)
        elapsed = time.monotonic() - started
        stamp: dict[str, object] = {"version": build.version, "key": build.key}
        stamp |= {"go": _go_version(go), "build_s": round(elapsed, 1)}
        stamp["built_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        (tmp / "build.json").write_text(json.dumps(stamp, indent=2) + "\n")
        shutil.rmtree(source)
        shutil.rmtree(build.directory, ignore_errors=True)  # an incomplete leftover, if any
        tmp.rename(build.directory)
        progress(f"built in {elapsed / 60:.1f} min: {build.bin_dir}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _compile(
    go: str, source: Path, output: Path, flags: str, total: int, progress: Progress
) -> None:
    """`go build -v`, reporting compiled packages and elapsed time every HEARTBEAT_S."""
    args = [go, "build", "-v", "-trimpath", "-ldflags", flags, "-o", str(output), "."]
    started = time.monotonic()
    compiled: list[str] = []
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(HEARTBEAT_S):
            minutes, seconds = divmod(int(time.monotonic() - started), 60)
            if compiled and compiled[-1] == MODULE_PATH:  # the main package: then the link
                doing = f"linking ({len(compiled)} packages compiled)"
            else:
                last = f" (last: {compiled[-1]})" if compiled else ""
                doing = f"compiled {len(compiled)} of at most {total} packages{last}"
            progress(f"[{minutes}:{seconds:02d}] {doing}")

    ticker = threading.Thread(target=heartbeat, daemon=True)
    with subprocess.Popen(
        args, cwd=source, env=go_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        ticker.start()
        assert proc.stdout is not None
        errors = []
        for line in proc.stdout:
            line = line.rstrip()
            if re.fullmatch(r"[\w./~+-]+", line):
                compiled.append(line)
            else:
                errors.append(line)
        code = proc.wait()
    done.set()
    ticker.join()
    if code != 0:
        tail = "\n".join(errors[-30:])
        raise TargetError(f"building Kubernetes failed (go build exit {code}):\n{tail}")


def go_env() -> dict[str, str]:
    return {**os.environ, **BUILD_ENV}


def _go_version(go: str) -> str:
    return _go(go, ["env", "GOVERSION"], Path.cwd(), 60).strip()


def _go(go: str, args: list[str], cwd: Path, timeout_s: float) -> str:
    try:
        return commands.run([go, *args], cwd=cwd, env=go_env(), timeout_s=timeout_s).stdout
    except CommandError as exc:
        raise TargetError(str(exc)) from exc
