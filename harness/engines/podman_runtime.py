"""Podman's OCI runtime, chosen by trying: a trivial container with each, the first that works.

Machines of one kind differ. Debian's Podman defaults to crun, and crun refuses a host whose
cgroup v1 controllers sit beside a cgroup2 hierarchy holding a controller ("cgroups in hybrid
mode not supported, drop all controllers from cgroupv2"), where runc works. So the layout is
not guessed: each installed runtime, in Podman's own order of preference, runs `true` in a
container made from a directory holding a static busybox (no image, no registry), and the first
that exits 0 is used. The choice, with the reason, is kept for the boot (a reboot may change
the cgroup layout) in the Podman state directory, and named in every run's manifest.
`CHAOS_HARNESS_PODMAN_RUNTIME` forces a runtime (name or path), untried.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from harness import commands
from harness.errors import CapabilityError, CommandError

CANDIDATES = ("crun", "runc")  # Podman's engine.runtimes order: its default first
TRIAL_TIMEOUT_S = 60.0
STATIC_BINARY = "busybox"  # Debian's busybox-static, installed by `make setup`
FORCE_ENV = "CHAOS_HARNESS_PODMAN_RUNTIME"


@dataclass(frozen=True)
class RuntimeChoice:
    """The runtime the project's Podman services run containers with, and why."""

    name: str
    path: str
    reason: str
    boot_id: str

    def describe(self) -> str:
        return f"{self.name} ({self.path}): {self.reason}"


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def choose(podman: str, state_dir: Path, conf: str | None) -> RuntimeChoice:
    """The runtime to use: forced, else this boot's earlier choice, else tried now."""
    forced = os.environ.get(FORCE_ENV)
    if forced:
        path = shutil.which(forced) or forced
        return RuntimeChoice(Path(path).name, path, f"forced by {FORCE_ENV}", boot_id())
    cache = state_dir / "runtime.json"
    kept = _kept(cache)
    if kept is not None and kept.boot_id == boot_id() and Path(kept.path).exists():
        return kept
    choice = _try_each(podman, conf)
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".runtime.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(choice), indent=2) + "\n")
    tmp.replace(cache)
    return choice


def _kept(cache: Path) -> RuntimeChoice | None:
    try:
        return RuntimeChoice(**json.loads(cache.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _try_each(podman: str, conf: str | None) -> RuntimeChoice:
    installed = [(name, shutil.which(name)) for name in CANDIDATES]
    refusals: list[str] = []
    with tempfile.TemporaryDirectory(prefix="chaos-harness-rootfs-") as rootfs:
        _static_rootfs(Path(rootfs))
        for name, path in installed:
            if path is None:
                refusals.append(f"{name}: not installed")
                continue
            refusal = _trial(podman, path, rootfs, conf)
            if refusal is None:
                why = "ran a trial container" + (
                    f" ({'; '.join(refusals)})" if refusals else " (Podman's default)"
                )
                return RuntimeChoice(name, path, why, boot_id())
            refusals.append(f"{name} refused: {refusal}")
    raise CapabilityError(
        "no OCI runtime can run a container with Podman here: "
        + "; ".join(refusals)
        + " (apt-get install -y runc crun; or set "
        + f"{FORCE_ENV})"
    )


def _static_rootfs(rootfs: Path) -> None:
    binary = shutil.which(STATIC_BINARY)
    if binary is None:
        raise CapabilityError("busybox is not installed: apt-get install -y busybox-static")
    (rootfs / "bin").mkdir()
    shutil.copy2(binary, rootfs / "bin" / "busybox")


def _trial(podman: str, runtime: str, rootfs: str, conf: str | None) -> str | None:
    """None when a container ran and exited 0 with `runtime`; else what went wrong."""
    env = dict(os.environ)
    if conf is not None:
        env["CONTAINERS_CONF"] = conf
    command = [podman, "--runtime", runtime, "run", "--rm", "--net=none", "--rootfs", rootfs]
    try:
        done = commands.run(
            [*command, "/bin/busybox", "true"], env=env, check=False, timeout_s=TRIAL_TIMEOUT_S
        )
    except CommandError as exc:
        return str(exc)
    if done.ok:
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"
