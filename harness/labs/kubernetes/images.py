"""Images for the lab's nodes: the sandbox (pause) image and the project's local images.

No registry can be reached, so nothing is ever pulled:
- the pause image is Kubernetes' own build/pause/linux/pause.c from the module cache, compiled
  statically (`gcc -static -Os`) and packed here as a `docker save` archive of one layer
  (FROM scratch, entrypoint /pause, user 65535), cached next to the Kubernetes build;
- workload images are saved from the host's Docker engine (`docker save`);
and each archive is imported into every node's containerd (`ctr images import`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
import tempfile
from pathlib import Path

import docker
import docker.errors

from harness import commands
from harness.errors import CommandError, TargetError
from harness.hostsys import require_tool
from harness.labs.kubernetes import build, config, node
from harness.labs.kubernetes.state import KubeLabState, NodeState

PAUSE_SOURCE = "build/pause/linux/pause.c"


def pause_archive(kubernetes_dir: Path, cache: Path) -> Path:
    """The pause image as a docker archive in `cache`, built once per pause.c."""
    source = kubernetes_dir / PAUSE_SOURCE
    try:
        code = source.read_bytes()
    except OSError as exc:
        raise TargetError(f"cannot read {source}: {exc}") from exc
    archive = cache / f"pause-{hashlib.sha256(code).hexdigest()[:12]}.tar"
    if archive.is_file():
        return archive
    require_tool("gcc", "gcc")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chaos-harness-pause-") as tmp:
        binary = Path(tmp) / "pause"
        tag = config.PAUSE_IMAGE.rsplit(":", 1)[1]
        compile_ = ["gcc", "-Os", "-static", f"-DVERSION=v{tag}", "-o", str(binary), str(source)]
        try:
            commands.run(compile_, timeout_s=120)
        except CommandError as exc:
            raise TargetError(f"compiling {source} failed: {exc}") from exc
        with contextlib.suppress(CommandError):  # a smaller image; works without
            commands.run(["strip", str(binary)], check=False)
        partial = archive.with_suffix(".tmp")
        partial.write_bytes(docker_archive(config.PAUSE_IMAGE, binary.read_bytes(), "/pause"))
        partial.rename(archive)
    return archive


def docker_archive(tag: str, binary: bytes, path: str) -> bytes:
    """A one-layer image (`docker save` format) holding one static binary as its entrypoint."""
    layer = _tar_bytes({path.lstrip("/"): (binary, 0o755)})
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": [path], "User": "65535:65535", "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "chaos-harness: FROM scratch, ADD pause"}],
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = diff_id.split(":")[1] + "/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": [layer_name]}]
    return _tar_bytes(
        {
            layer_name: (layer, 0o644),
            config_name: (config_bytes, 0o644),
            "manifest.json": (json.dumps(manifest).encode(), 0o644),
        }
    )


def _tar_bytes(files: dict[str, tuple[bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def kubernetes_source_dir() -> Path:
    """Kubernetes' module directory in the Go module cache (downloaded if absent)."""
    return build.kubernetes_module(build.find_go()).directory


def save_host_image(image: str, directory: Path, client: docker.DockerClient | None = None) -> Path:
    """`docker save` of a local image of the host's engine, into `directory`."""
    client = client or docker.from_env()
    try:
        wanted = str(client.images.get(image).id)
        archive = directory / f"{wanted.replace(':', '-')}.tar"
        if not archive.exists():
            directory.mkdir(parents=True, exist_ok=True)
            with archive.open("wb") as out:
                for chunk in client.api.get_image(image):  # type: ignore[no-untyped-call]
                    out.write(chunk)
    except docker.errors.ImageNotFound as exc:
        raise TargetError(f"image {image!r} is not on the host engine; build it first") from exc
    except docker.errors.APIError as exc:
        raise TargetError(f"cannot save {image} from the host engine: {exc}") from exc
    return archive


def import_archive(state: KubeLabState, target: NodeState, archive: Path) -> None:
    """Import an image archive into a node's containerd, unpacked for the CRI's snapshotter."""
    node.ctr(
        target,
        ["images", "import", "--snapshotter", state.snapshotter, str(archive)],
        timeout_s=300,
    )


def remove_archives(directory: Path) -> None:
    for archive in directory.glob("*.tar"):
        with contextlib.suppress(OSError):
            archive.unlink()
