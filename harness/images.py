"""Build the bundled workload images locally (no registry can be reached).

The demo image is `FROM scratch` with Debian's static busybox copied in from the host, so it
builds in about a second and needs nothing pulled.
"""

from __future__ import annotations

import shutil
import tempfile
from importlib import resources
from pathlib import Path

import docker
import docker.errors

from harness.errors import CapabilityError, TargetError

DEMO_IMAGE = "chaos-harness/demo:latest"
BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))


def find_static_busybox() -> Path:
    """The host's static busybox binary (Debian's busybox-static package)."""
    for candidate in BUSYBOX_CANDIDATES:
        if candidate.is_file():
            return candidate
    raise CapabilityError(
        "no static busybox found at /bin/busybox: install it with "
        "'apt-get install -y busybox-static' (make demo/test do this)"
    )


def build_demo_image(client: docker.DockerClient, tag: str = DEMO_IMAGE) -> str:
    """Build the demo workload image and return its id."""
    source = resources.files("harness.workload") / "demo"
    with tempfile.TemporaryDirectory(prefix="chaos-harness-build-") as tmp:
        context = Path(tmp)
        with resources.as_file(source) as src:
            shutil.copytree(src, context, dirs_exist_ok=True)
        shutil.copy2(find_static_busybox(), context / "busybox")
        try:
            image, _logs = client.images.build(
                path=str(context),
                tag=tag,
                rm=True,
                labels={"chaos-harness.image": "demo"},
            )
        except (docker.errors.BuildError, docker.errors.APIError) as exc:
            raise TargetError(f"building the demo image failed: {exc}") from exc
    return str(image.id)


def ensure_image(client: docker.DockerClient, image: str) -> None:
    """Make sure `image` exists locally; build it if it is the bundled demo image."""
    if image in ("demo", DEMO_IMAGE):
        build_demo_image(client)
        return
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound as exc:
        raise TargetError(
            f"image {image!r} is not on the engine and no registry can be reached: "
            "build it locally (docker build) or use 'image: demo'"
        ) from exc
    except docker.errors.APIError as exc:
        raise TargetError(f"cannot inspect image {image!r}: {exc}") from exc
