"""The Locust worker's image for `load.placement: pods`, built on this machine from what Debian
and PyPI serve: Debian's Python with this environment's Locust and what it imports, made as
the fault agent's base is (harness.agent.rootfs: a debootstrap root filesystem with wheels,
cached), tagged by its recipe. The run's load files are not in it (a ConfigMap of the run:
harness.load_pods), so a change of the harness never rebuilds it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import docker

from harness.agent.image import agent_archive, recipe_for, repository_root, rootfs_image, to_stderr
from harness.agent.kube import load_into_lab
from harness.agent.rootfs import Progress
from harness.targets.docker.engine import connect

REPOSITORY = "chaos-harness/load-worker"
# what a worker imports: Locust's command line and runners, its fast HTTP client (the bundled
# locustfile's), gevent
WORKER_MODULES = ("locust.main", "locust.runners", "locust.contrib.fasthttp", "gevent")


def worker_image(client: docker.DockerClient, progress: Progress = to_stderr) -> str:
    """The worker image's tag on `client`'s engine, made first if it is missing."""
    recipe = recipe_for(repository_root(), WORKER_MODULES)
    return rootfs_image(client, recipe, REPOSITORY, "load-worker", progress)


def load_worker_image_into_lab(progress: Progress = to_stderr) -> str:
    """The worker image, built on this machine's engine and imported into every node of the
    Kubernetes lab."""
    client = connect(None)
    try:
        tag = worker_image(client, progress)
        with tempfile.TemporaryDirectory(prefix="chaos-harness-load-image-") as tmp:
            load_into_lab(agent_archive(tag, Path(tmp), client))
    finally:
        client.close()
    return tag
