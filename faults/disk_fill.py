"""disk_fill: fill the filesystem behind a directory of the selected instances with one file.

The file is written from the host through /proc/<pid>/root, the container's root as its own
processes see it: under /tmp (the default) it lands in the container's writable layer; under a
volume's mount path it lands in the volume. Blocks are reserved with fallocate where the
filesystem supports it (instant), else zeros are written in 4 MiB chunks.

On overlay storage the writable layer IS the host's disk (the filesystem of the run's engine's
data root: Docker's DockerRootDir, Podman's graphRoot), so a fill that would leave that
filesystem with less than `safety_margin` percent of its size free is refused, with the
numbers: a fixed size before the run (`check_storage`, called by the target with its engine's
data root), and every fill at injection through the container's own root, before anything is
written. Fills that share a filesystem (replicas on one host) are added up for that check.

Revert removes the file. If the container is gone, so is its writable layer: nothing to do. If
it is stopped, the file cannot be reached from the host, and goes when teardown removes it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from faults.base import Fault, FaultContext, FaultParams, JsonValue, Mechanism, RevertRecord
from harness import capabilities
from harness.errors import FaultError
from harness.targets.base import Instance
from harness.units import Bytes

MECHANISM = "file written through /proc/<pid>/root"
CHUNK = 4 * 1024 * 1024
GIB = 1024**3


class DiskFillParams(FaultParams):
    size: Bytes | None = Field(default=None, gt=0, description="bytes to write, e.g. 64Mi")
    percent: float | None = Field(
        default=None, gt=0, le=100, description="or: percent of the filesystem's free space"
    )
    directory: str = Field(
        default="/tmp",
        description="directory inside the container that gets the file; a volume's mount"
        " path fills the volume",
    )
    safety_margin: float = Field(
        default=10.0,
        ge=0,
        lt=100,
        description="refuse fills that would leave less than this percent of the filesystem free",
    )

    @field_validator("directory")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/"):
            raise ValueError(f"directory must be an absolute path without '..', got {value!r}")
        return posixpath.normpath(value)

    @model_validator(mode="after")
    def _one_amount(self) -> DiskFillParams:
        if (self.size is None) == (self.percent is None):
            raise ValueError("give exactly one of size (e.g. 64Mi) or percent (of free space)")
        return self


@dataclass(frozen=True)
class Space:
    """A filesystem's numbers, from statvfs."""

    total: int
    free: int  # available to an unprivileged writer (f_bavail)
    key: tuple[int, int, int]  # tells filesystems apart (fsid, size, block size)

    @classmethod
    def of(cls, path: str) -> Space:
        try:
            st = os.statvfs(path)
        except OSError as exc:
            raise FaultError(f"cannot stat the filesystem of {path}: {exc.strerror}") from exc
        return cls(st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize, _fs_key(st))

    def refusal(self, fill: int, margin_percent: float, where: str) -> str | None:
        """Why a fill of `fill` bytes is refused on this filesystem, or None if it fits."""
        left = self.free - fill
        floor = self.total * margin_percent / 100
        if left >= floor:
            return None
        return (
            f"filling {_gib(fill)} at {where} would leave {_gib(max(left, 0))} free of"
            f" {_gib(self.total)} ({_gib(self.free)} free now), under the safety margin of"
            f" {margin_percent:g} % ({_gib(int(floor))}); lower size or safety_margin"
        )


@dataclass(frozen=True)
class Fill:
    """One file to write: in which container, where inside it, how big."""

    instance: str
    container_id: str
    path: str  # inside the container
    size: int

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "instance": self.instance,
            "container_id": self.container_id,
            "path": self.path,
            "bytes": self.size,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, JsonValue]) -> Fill:
        return cls(
            str(raw["instance"]), str(raw["container_id"]), str(raw["path"]), int(raw["bytes"])
        )


def _fills(record: RevertRecord) -> list[Fill]:
    return [Fill.from_json(raw) for raw in record.data.get("files", [])]


def _fs_key(st: os.statvfs_result) -> tuple[int, int, int]:
    return (st.f_fsid, st.f_blocks, st.f_frsize)


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


class DiskFill(Fault[DiskFillParams]):
    requires = (capabilities.HOST_PROCESS,)
    kind = "disk_fill"
    summary = "fill the filesystem of the selected instances' writable layer (or a volume)"
    params_model = DiskFillParams

    @classmethod
    def mechanisms(cls) -> list[Mechanism]:
        if os.geteuid() != 0:
            return [Mechanism(MECHANISM, False, "needs root to reach other processes' roots")]
        detail = "fallocate, else zeros; free space checked on the run's engine's data root"
        return [Mechanism(MECHANISM, True, detail)]

    def check_storage(self, data_root: Path) -> list[str]:
        """A fixed size that cannot fit the engine's disk is refused before the run.

        Local overlay storage puts the writable layer on the filesystem of the engine's data
        root; the check at injection time, through the container itself, is the one that
        counts (a volume, or a percent of free space, is only known then)."""
        p = self.params
        if p.size is None or not data_root.is_dir():
            return []
        space = Space.of(str(data_root))
        reason = space.refusal(p.size, p.safety_margin, f"{data_root}'s filesystem")
        return [reason] if reason else []

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        fills = [self._plan_one(fault_id, i) for i in instances]
        self._refuse_unsafe(instances, fills)
        return RevertRecord(
            fault_id=fault_id,
            kind=self.kind,
            targets=tuple(i.name for i in instances),
            mechanism=MECHANISM,
            data={"files": [f.to_json() for f in fills]},
        )

    def _plan_one(self, fault_id: str, instance: Instance) -> Fill:
        if not instance.running:
            raise FaultError(f"cannot fill the disk of {instance.name}: it is not running")
        p = self.params
        directory = _host_path(instance, p.directory)
        if not os.path.isdir(directory):
            raise FaultError(f"{p.directory} is not a directory in {instance.name}")
        size = (
            p.size if p.size is not None else int(Space.of(directory).free * (p.percent or 0) / 100)
        )
        return Fill(
            instance=instance.name,
            container_id=instance.container_id,
            path=posixpath.join(p.directory, f"chaos-harness-fill-{fault_id}-{instance.name}"),
            size=size,
        )

    def _refuse_unsafe(self, instances: Sequence[Instance], fills: Sequence[Fill]) -> None:
        """Fills on one filesystem add up; refuse if together they cross the margin."""
        by_fs: dict[tuple[int, int, int], tuple[Space, int, list[str]]] = {}
        for instance, fill in zip(instances, fills, strict=True):
            space = Space.of(_host_path(instance, self.params.directory))
            _, total, names = by_fs.get(space.key, (space, 0, []))
            by_fs[space.key] = (space, total + fill.size, [*names, instance.name])
        for space, total, names in by_fs.values():
            where = f"{self.params.directory} of {', '.join(names)}"
            reason = space.refusal(total, self.params.safety_margin, where)
            if reason:
                raise FaultError(f"disk_fill refused: {reason}")

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        current = {i.name: i for i in ctx.target.instances()}
        for fill in _fills(record):
            instance = current.get(fill.instance)
            if instance is None or not instance.running:
                raise FaultError(f"cannot fill the disk of {fill.instance}: it is not running")
            ctx.mark_action()
            _fill(_host_path(instance, fill.path), fill.size)

    @classmethod
    def revert(cls, ctx: FaultContext, record: RevertRecord) -> None:
        current = {i.container_id: i for i in ctx.target.instances()}
        for fill in _fills(record):
            instance = current.get(fill.container_id)
            if instance is None or not instance.running:
                continue  # gone with its container, or out of reach until it runs (see above)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_host_path(instance, fill.path))


def _host_path(instance: Instance, inside: str) -> str:
    """A path inside the container as the host reaches it (through the container's root)."""
    return f"{instance.root_path}/{inside.lstrip('/')}"


def _fill(path: str, size: int) -> None:
    """Write a file of `size` bytes whose blocks are all allocated; removed again on failure."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise FaultError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        _allocate(fd, size)
    except OSError as exc:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise FaultError(f"cannot fill {path} with {size} bytes: {exc.strerror}") from exc
    os.close(fd)


def _allocate(fd: int, size: int) -> None:
    try:
        os.posix_fallocate(fd, 0, size)
        return
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # no fallocate here: write
            raise
    zeros = bytes(CHUNK)
    left = size
    while left > 0:
        left -= os.write(fd, zeros[: min(CHUNK, left)])
    os.fsync(fd)
