"""The one-node Kubernetes lab the accuracy bench measures on: used as it is when one is up,
else brought up for the bench (with a short node grace period, so the grace case is quick)
and taken down after.

    with kube_lab_for_bench() as ready:
        if ready: ...                    # run the Kubernetes cases
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from bench.runs import REPO
from harness.kube.build import cache_root
from harness.targets.kube_lab import lab_info, take_lab_down

BENCH_GRACE = "20s"  # node-monitor-grace-period of a lab the bench brings up


def build_ready() -> bool:
    """Whether the Kubernetes build is cached (a lab can come up without a 7-minute build)."""
    return any(path.is_dir() for path in (cache_root() / "kubernetes").glob("*/bin"))


def current_grace_s() -> float:
    info = lab_info()
    return 50.0 if info is None else info.settings.node_monitor_grace_period_s


@contextmanager
def kube_lab_for_bench() -> Iterator[bool]:
    """Yield whether a lab is up; take down only a lab this call brought up."""
    if lab_info() is not None:
        yield True
        return
    if not build_ready():
        print("kubernetes: the build is not cached yet; its cases are skipped", file=sys.stderr)
        yield False
        return
    command = [sys.executable, "-m", "harness", "lab", "up", "--kind", "kubernetes"]
    command += ["--nodes", "1", "--control-plane-args"]
    command += [f"kube-controller-manager:--node-monitor-grace-period={BENCH_GRACE}"]
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            print(f"kubernetes lab up failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        yield done.returncode == 0
    finally:
        take_lab_down()
