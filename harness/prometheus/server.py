"""A local Prometheus for labs and tests (`harness prometheus up/down`): Debian's `prometheus`
binary, its own config and data in a state directory that belongs to no run, listening on
127.0.0.1 on a free port.

The state directory (default /var/lib/chaos-harness/prometheus, or $CHAOS_HARNESS_PROMETHEUS_DIR)
holds prometheus.yml, data/, prometheus.log and state.json: the process' PID and start time
(so `down` and `harness cleanup` signal that process only, never a recycled PID), its port and
its scrape targets. `up` on a running one rewrites its targets and reloads it (SIGHUP).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import yaml

from harness.errors import PrometheusError
from harness.hostsys import kill_recorded, process_start_ticks
from harness.load import free_port
from harness.prometheus.client import PrometheusClient
from harness.waiting import wait_until

DEFAULT_DIR: Final = Path("/var/lib/chaos-harness/prometheus")
DIR_ENV: Final = "CHAOS_HARNESS_PROMETHEUS_DIR"
# The run's own /metrics at its default observe.metrics port (harness.specs.MetricsSpec).
HARNESS_METRICS: Final = "http://127.0.0.1:9464/metrics"
SCRAPE_INTERVAL_S: Final = 1.0
READY_TIMEOUT_S: Final = 60.0
LABEL: Final = "chaos-harness"  # the scrape jobs' and the config's mark


@dataclass(frozen=True)
class Target:
    """One scrape target: a job of its own (a path and a scheme of its own), and what it
    needs to reach a TLS endpoint (a lab's kubelets)."""

    job: str
    url: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False


@dataclass(frozen=True)
class ServerState:
    pid: int
    start_ticks: int | None
    port: int
    targets: tuple[Target, ...]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.start_ticks is not None and process_start_ticks(self.pid) == self.start_ticks


def state_dir() -> Path:
    return Path(os.environ.get(DIR_ENV) or DEFAULT_DIR)


def url_targets(urls: Sequence[str]) -> list[Target]:
    """--scrape URLs as targets, one job each (prometheus.yml needs host:port and a path)."""
    targets = []
    for index, url in enumerate(urls, start=1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PrometheusError(f"--scrape {url!r}: give an http(s)://host:port/path URL")
        targets.append(Target(f"{LABEL}-{index}", url))
    return targets


def up(
    targets: Sequence[Target], directory: Path | None = None, port: int | None = None
) -> ServerState:
    """Start Prometheus scraping `targets` on `port` (default: a free one), or give the
    running one these targets."""
    directory = directory or state_dir()
    binary = shutil.which("prometheus")
    if binary is None:
        raise PrometheusError(
            "no prometheus binary: install Debian's package (apt-get install prometheus; "
            "`make setup` does)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "prometheus.yml"
    config.write_text(render_config(targets))
    running = read_state(directory)
    if running is not None and running.alive():
        kill_recorded(running.pid, running.start_ticks, signal.SIGHUP)
        state = ServerState(running.pid, running.start_ticks, running.port, tuple(targets))
        _write_state(directory, state)
        return state
    port = port or free_port()
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=2d",
        "--web.enable-lifecycle",
    ]
    with (directory / "prometheus.log").open("ab") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
    state = ServerState(process.pid, process_start_ticks(process.pid), port, tuple(targets))
    _write_state(directory, state)
    _wait_ready(state, process, directory)
    return state


def _wait_ready(state: ServerState, process: subprocess.Popen[bytes], directory: Path) -> None:
    client = PrometheusClient(state.url, timeout_s=2.0)

    def ready() -> bool:
        if process.poll() is not None:
            log = (directory / "prometheus.log").read_text(errors="replace")[-1500:]
            raise PrometheusError(f"prometheus exited ({process.returncode}) at start:\n{log}")
        try:
            client.ready()
        except PrometheusError:
            return False
        return True

    failure = (
        f"Prometheus at {state.url} was not ready within {READY_TIMEOUT_S:g} s (its log: "
        f"{directory / 'prometheus.log'}); `harness prometheus down` stops it"
    )
    wait_until(ready, READY_TIMEOUT_S, 0.2, failure, PrometheusError)


def render_config(targets: Sequence[Target]) -> str:
    """prometheus.yml: one job per target, every SCRAPE_INTERVAL_S."""
    interval = f"{SCRAPE_INTERVAL_S:g}s"
    jobs = [_job(t) for t in targets]
    body = {"global": {"scrape_interval": interval, "evaluation_interval": interval}}
    return f"# {LABEL}: written by `harness prometheus up`\n" + yaml.safe_dump(
        {**body, "scrape_configs": jobs}, sort_keys=False
    )


def _job(target: Target) -> dict[str, object]:
    parts = urlsplit(target.url)
    job: dict[str, object] = {
        "job_name": target.job,
        "scheme": parts.scheme,
        "metrics_path": parts.path or "/metrics",
        "static_configs": [{"targets": [parts.netloc], "labels": {"source": LABEL}}],
    }
    if parts.scheme == "https":
        tls = {
            k: v
            for k, v in (
                ("ca_file", target.ca_file),
                ("cert_file", target.cert_file),
                ("key_file", target.key_file),
            )
            if v
        }
        job["tls_config"] = {**tls, "insecure_skip_verify": target.insecure}
    return job


def down(directory: Path | None = None) -> str:
    """Stop the Prometheus `up` started here (that process only) and remove its state."""
    directory = directory or state_dir()
    state = read_state(directory)
    if state is None:
        return f"no Prometheus started by the harness in {directory}"
    said = f"Prometheus pid {state.pid} had already exited"
    if kill_recorded(state.pid, state.start_ticks, signal.SIGTERM):
        if not _gone_within(state, 15.0):
            kill_recorded(state.pid, state.start_ticks, signal.SIGKILL)
        said = f"stopped Prometheus pid {state.pid} ({state.url})"
    shutil.rmtree(directory, ignore_errors=True)
    return said


def _gone_within(state: ServerState, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not state.alive():
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(state.pid, os.WNOHANG)  # our own child (tests): reap it
        time.sleep(0.1)
    return not state.alive()


def stale_state(directory: Path | None = None) -> Iterator[str]:
    """For `harness cleanup`: a state whose process is gone (the machine rebooted, it was
    killed) is removed; a running Prometheus is left alone (`harness prometheus down`)."""
    directory = directory or state_dir()
    state = read_state(directory)
    if state is not None and not state.alive():
        shutil.rmtree(directory, ignore_errors=True)
        yield f"removed the state of a Prometheus that is no longer running ({directory})"


def read_state(directory: Path) -> ServerState | None:
    path = directory / "state.json"
    try:
        raw = json.loads(path.read_text())
        targets = tuple(Target(**t) for t in raw.pop("targets"))
        return ServerState(**raw, targets=targets)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise PrometheusError(f"{path}: unreadable ({exc}); remove it by hand") from exc


def _write_state(directory: Path, state: ServerState) -> None:
    path = directory / "state.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(path)
