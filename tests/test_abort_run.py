"""An interrupted run's directory: it says it is incomplete (status `aborted`, the signal, the
instant, the phase), it keeps the data recorded until then, and `harness report` still builds a
report from it. A second Ctrl-C cannot cut the cleanup short. Files are replaced whole.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pandas as pd
import pytest
import yaml

from harness import results
from harness.results import read_json_lines, repair_torn_tail, write_json
from tests.conftest import labelled_objects
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parent.parent


def _scenario(tmp_path: Path) -> Path:
    data = {
        "name": "abort-run",
        "target": "docker",
        "workload": {"image": "demo", "replicas": 2, "resources": {"cpus": 0.5, "memory": "64Mi"}},
        "load": {"users": 4, "spawn_rate": 4, "duration": "40s"},
        "probes": {"interval": "100ms"},
        "faults": [{"kind": "packet_loss", "at": "2s", "duration": "30s", "percent": 20}],
        "slo": {},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    out = tmp_path / "runs"
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", str(_scenario(tmp_path)), "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )

    def applied() -> bool:
        return any(
            line.get("state") == "applied"
            for journal in out.glob("*/faults.jsonl")
            for line in read_json_lines(journal)
        )

    assert wait_until(applied, 90), "the fault never started"
    (run_dir,) = out.iterdir()
    # load and probes during the fault, as many as the tests below ask of the stored data
    assert wait_until(lambda: _recorded(run_dir) >= (REQUESTS_WANTED, PROBES_WANTED), 60)
    return process, run_dir


REQUESTS_WANTED, PROBES_WANTED = 51, 21


def _recorded(run_dir: Path) -> tuple[int, int]:
    """Requests and probes the run has recorded so far (whole lines of its TSV files)."""

    def rows(path: Path) -> int:
        text = path.read_text() if path.is_file() else ""
        return sum(1 for line in text.splitlines(keepends=True)[1:] if line.endswith("\n"))

    requests = sum(rows(p) for p in (run_dir / "load").glob("requests-*.tsv"))
    return requests, rows(run_dir / "probes.tsv")


def _reverted_by_cleanup(run_dir: Path) -> bool:
    """The first step of the cleanup is done: signals are only noted from then on."""
    return any(
        line.get("state") == "reverted" for line in read_json_lines(run_dir / "faults.jsonl")
    )


def _harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.docker
def test_a_sigkilled_run_is_finished_by_cleanup_and_still_reports(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    process, run_dir = _start(tmp_path)
    killed_ns = time.time_ns()
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    # a line torn by the kill (as a full disk or a kill in the middle of a write leaves it)
    with (run_dir / "events.jsonl").open("a") as events:
        events.write('{"time_ns": 17961, "source": "harn')
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"

    done = _harness("cleanup", "--results", str(run_dir.parent))
    assert done.returncode == 0, done.stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "aborted"
    abort = manifest["abort"]
    assert abort["signal"] is None and abort["by"] == "harness cleanup"
    assert abort["phase"] == "fault f1"
    # the last sign of life is the harness's own last write, just before the kill
    assert killed_ns - 2e9 < abort["at_ns"] <= killed_ns
    assert labelled_objects(docker_client, run_dir.name) == []

    # the data recorded until the kill is there, as the harness would have written it
    requests = pd.read_parquet(run_dir / "requests.parquet")
    probes = pd.read_parquet(run_dir / "probes.parquet")
    assert len(requests) >= REQUESTS_WANTED and len(probes) >= PROBES_WANTED
    # Locust's processes die of their parent-death signal a few ms after the harness (once,
    # a request 18 ms after the kill): nothing is recorded much after it
    grace_ns = 500_000_000
    assert requests["start_ns"].max() < killed_ns + grace_ns
    assert probes["start_ns"].max() < killed_ns
    assert (run_dir / "events.jsonl").read_text().endswith("\n")  # the torn line was cut
    report = _harness("report", str(run_dir))
    assert report.returncode == 0, report.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "aborted"
    assert (run_dir / "report.html").stat().st_size > 1000


@pytest.mark.docker
def test_a_second_ctrl_c_cannot_cut_the_cleanup_short(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    process, run_dir = _start(tmp_path)
    os.kill(process.pid, signal.SIGINT)
    # the second one while the cleanup runs: after it reverted the fault, before it stopped
    # the load and removed the containers (seconds more)
    assert wait_until(lambda: _reverted_by_cleanup(run_dir), 60), "the cleanup never reverted"
    os.kill(process.pid, signal.SIGINT)
    _stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "SIGINT noted: cleaning up first" in stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "aborted" and manifest["abort"]["signal"] == "SIGINT"
    assert manifest["signals_during_cleanup"] == ["SIGINT"]
    assert labelled_objects(docker_client, run_dir.name) == []
    actions = [e["attributes"].get("by") for e in read_json_lines(run_dir / "events.jsonl")]
    assert "cleanup" in actions  # the fault was reverted by the harness's own cleanup
    assert [line for line in read_json_lines(run_dir / "faults.jsonl")][-1]["state"] == "reverted"


def test_a_crash_while_a_file_is_replaced_leaves_the_old_one_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "manifest.json"
    write_json(path, {"status": "running"})

    def crash(_src: object, _dst: object) -> None:
        raise OSError("the machine stopped here")

    monkeypatch.setattr(results.os, "replace", crash)
    with pytest.raises(OSError):
        write_json(path, {"status": "completed", "big": "x" * 100_000})
    assert json.loads(path.read_text()) == {"status": "running"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]  # no half file


def test_only_a_torn_last_line_is_cut(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text('{"a": 1}\n{"b": 2}\n{"c":')
    assert repair_torn_tail(log) is True
    assert log.read_text() == '{"a": 1}\n{"b": 2}\n'
    assert repair_torn_tail(log) is False  # whole lines stay as they are
    assert repair_torn_tail(tmp_path / "none.jsonl") is False
