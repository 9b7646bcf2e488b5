"""The one-node Kubernetes lab the accuracy bench measures on: used as it is when one is up,
else brought up for the bench (with a short node grace period, so the grace case is quick)
and taken down after.

    with kube_lab_for_bench() as ready:
        if ready: ...                    # run the Kubernetes cases
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench.runs import REPO
from harness.labs.kubernetes.build import cache_root
from harness.labs.kubernetes.lab import load_state
from harness.labs.kubernetes.session import lab_info, take_lab_down

BENCH_GRACE = "20s"  # node-monitor-grace-period of a lab the bench brings up


def build_ready() -> bool:
    """Whether the Kubernetes build is cached (a lab can come up without a 7-minute build)."""
    return any(path.is_dir() for path in (cache_root() / "kubernetes").glob("*/bin"))


def current_grace_s() -> float:
    info = lab_info()
    return 50.0 if info is None else info.settings.node_monitor_grace_period_s


def _wait_for_others_lab(limit_s: float = 600) -> None:
    """A lab someone else is making or taking down now is waited for, up to `limit_s`
    (bringing up a second one would fail); a lab that is up is used as it is."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        state = load_state()
        if state is None or state.status == "up":
            return
        time.sleep(5)


@contextmanager
def kube_lab_for_bench() -> Iterator[bool]:
    """Yield whether a lab is up; take down only a lab this call brought up (another user's
    lab, up or still coming up, is never taken down)."""
    _wait_for_others_lab()
    if lab_info() is not None:
        yield True
        return
    if not build_ready():
        print("kubernetes: the build is not cached yet; its cases are skipped", file=sys.stderr)
        yield False
        return
    started_ns = time.time_ns()
    command = [sys.executable, "-m", "harness", "lab", "up", "--kind", "kubernetes"]
    command += ["--nodes", "1", "--control-plane-args"]
    command += [f"kube-controller-manager:--node-monitor-grace-period={BENCH_GRACE}"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    info = lab_info()
    ours = done.returncode == 0 and info is not None and info.created_ns >= started_ns
    if done.returncode != 0:
        print(f"kubernetes lab up failed:\n{done.stderr[-2000:]}", file=sys.stderr)
    try:
        yield info is not None
    finally:
        if ours:
            take_lab_down()
