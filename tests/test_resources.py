"""The resource analysis on synthetic samples: known CPU rates give known cores, per phase and
around a fault; the sampler's log and its reading; summary.json without samples unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.analysis import analyze_run, load_run, summarize
from harness.analysis.report import write_report
from harness.analysis.resources import OFF_HOST, Usage, load_samples, resources
from harness.hostsys import UsageFiles
from harness.resources import (
    HEADER,
    RESOURCES_FILE,
    RESOURCES_LOG,
    ResourceSampler,
    read_resources_log,
    write_resources_parquet,
)
from harness.targets.base import Instance
from tests.synthetic_run import BASE_NS, inject, ns, revert, series, write_run

MIB = 1024 * 1024
S = 1_000_000_000


def _samples(rates: dict[str, list[tuple[float, float, float]]], end_s: int) -> pd.DataFrame:
    """Samples every second from 0 to `end_s` of instances whose CPU rate (cores) and memory
    (MiB) are given as (from_s, cores, mib) steps."""
    rows = []
    for name, steps in rates.items():
        used = 0.0
        for t in range(end_s + 1):
            cores, mib = next((c, m) for start, c, m in reversed(steps) if t >= start)
            rows.append((ns(t), name, used, int(mib * MIB)))
            used += cores  # the CPU of the second that follows the sample
    frame = pd.DataFrame(rows, columns=["time_ns", "instance", "cpu_seconds", "memory_bytes"])
    return frame.astype({"instance": "string"})


def _stress_samples() -> pd.DataFrame:
    # web-1 steady at 0.5 cores; web-2 at 0.25, 1.25 while stressed in [10, 20) s
    return _samples(
        {
            "web-1": [(0, 0.5, 100)],
            "web-2": [(0, 0.25, 50), (10, 1.25, 60), (20, 0.25, 50)],
        },
        30,
    )


def test_known_rates_give_known_cores_and_memory() -> None:
    usage = Usage.of(_stress_samples())
    before = usage.use([(ns(0), ns(10))])
    during = usage.use([(ns(10), ns(20))])
    after = usage.use([(ns(20), ns(30))])
    assert before.cpu_cores == pytest.approx(0.75)
    assert during.cpu_cores == pytest.approx(1.75)
    assert after.cpu_cores == pytest.approx(0.75)
    assert during.memory_max_bytes == 160 * MIB
    assert before.memory_mean_bytes == 150 * MIB
    assert during.rounds == 10
    # half a second of each: the rate is spread evenly over the second
    assert usage.use([(ns(9.5), ns(10.5))]).cpu_cores == pytest.approx(1.25)


def test_a_restarted_counter_counts_its_new_reading_and_a_gap_counts_nothing() -> None:
    frame = _samples({"web-1": [(0, 1.0, 10)]}, 20)
    # web-1 restarts between 9 s and 10 s: its new cgroup counts from zero (0.4 s at 10 s)
    restarted = frame["time_ns"] >= ns(10)
    frame.loc[restarted, "cpu_seconds"] = frame.loc[restarted, "cpu_seconds"] - 9.6
    usage = Usage.of(frame)
    assert usage.use([(ns(9), ns(10))]).cpu_cores == pytest.approx(0.4)
    assert usage.use([(ns(10), ns(20))]).cpu_cores == pytest.approx(1.0)
    # web-2 is sampled only until 5 s: afterwards only web-1's CPU counts
    other = _samples({"web-2": [(0, 2.0, 10)]}, 5)
    both = Usage.of(pd.concat([_samples({"web-1": [(0, 1.0, 10)]}, 20), other]))
    assert both.use([(ns(0), ns(5))]).cpu_cores == pytest.approx(3.0)
    assert both.use([(ns(10), ns(20))]).cpu_cores == pytest.approx(1.0)
    assert both.use([(ns(30), ns(40))]).cpu_cores is None  # nothing sampled there


def test_no_samples_file_means_no_block_and_an_empty_one_says_why(tmp_path: Path) -> None:
    assert load_samples(tmp_path) is None
    assert resources(None, (), (), None) is None  # type: ignore[arg-type]
    write_resources_parquet(read_resources_log(tmp_path / RESOURCES_LOG), tmp_path / RESOURCES_FILE)
    empty = load_samples(tmp_path)
    assert empty is not None and empty.empty
    block = resources(empty, (), (), None)  # type: ignore[arg-type]
    assert block is not None and not block.sampled and block.reason == OFF_HOST


def _stress_run(run_dir: Path) -> Path:
    events = [
        inject(10.0, "f1", kind="cpu_stress", targets=("web-2",), has_duration=True),
        revert(20.0, "f1", kind="cpu_stress"),
    ]
    write_run(run_dir, series(0.0, 30.0, 0.05), events=events, load_s=(0.0, 30.0))
    write_resources_parquet(_stress_samples(), run_dir / RESOURCES_FILE)
    return run_dir


def test_summary_has_the_faults_cost_per_window_and_phase(tmp_path: Path) -> None:
    run_dir = _stress_run(tmp_path / "run")
    summary = summarize(load_run(run_dir))
    use = summary.resources
    assert use is not None and use.sampled
    assert use.instances == ["web-1", "web-2"]
    assert use.interval_s == pytest.approx(1.0)
    fault = use.faults[0]
    assert fault.fault == "f1"
    assert fault.baseline.cpu_cores == pytest.approx(0.75)
    assert fault.during.cpu_cores == pytest.approx(1.75)
    assert fault.cpu_cost_cores == pytest.approx(1.0)
    assert fault.memory_cost_bytes == 10 * MIB
    assert use.phases["baseline"].cpu_cores == pytest.approx(0.75)
    assert use.phases["fault"].cpu_cores == pytest.approx(1.75)
    written = analyze_run(run_dir)
    assert written["resources"]["faults"][0]["cpu_cost_cores"] == pytest.approx(1.0)  # type: ignore[index]


def test_the_report_shows_the_resource_figure_beside_the_timeline(tmp_path: Path) -> None:
    run_dir = _stress_run(tmp_path / "run")
    html = write_report(run_dir).read_text(encoding="utf-8")
    assert (run_dir / "figures" / "resources.png").stat().st_size > 10_000
    assert html.index("timeline.png") < html.index("resources.png") < html.index("latency_by")
    assert "<h2>Resources</h2>" in html and "f1 during" in html


def test_a_run_without_samples_writes_the_summary_it_wrote_before(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", series(0.0, 10.0, 0.05), load_s=(0.0, 10.0))
    written = analyze_run(run_dir)
    assert "resources" not in written
    assert "resources" not in json.loads((run_dir / "summary.json").read_text())
    assert "<h2>Resources</h2>" not in write_report(run_dir).read_text(encoding="utf-8")


def test_the_log_keeps_whole_lines_only(tmp_path: Path) -> None:
    log = tmp_path / RESOURCES_LOG
    log.write_text(HEADER + f"{BASE_NS}\tweb-1\t1.5\t1024\n{BASE_NS + S}\tweb-1\t2.", "utf-8")
    frame = read_resources_log(log)
    assert list(frame["cpu_seconds"]) == [1.5]
    assert frame.dtypes["memory_bytes"] == "int64"


def _me(pid: int) -> Instance:
    return Instance("self", "svc", "", "", pid, "http://127.0.0.1:1")


def test_the_sampler_reads_its_own_process_and_leaves_a_parquet(tmp_path: Path) -> None:
    sampler = ResourceSampler([_me(os.getpid())], tmp_path, interval_s=0.05).start()
    assert sampler.on_host
    sum(i * i for i in range(300_000))  # some CPU of its own between rounds
    time.sleep(0.3)
    sampler.stop()
    frame = pd.read_parquet(tmp_path / RESOURCES_FILE)
    assert len(frame) >= 2
    assert (frame["memory_bytes"] > 0).all()
    assert frame["cpu_seconds"].is_monotonic_increasing


def test_a_sampler_with_no_host_pid_samples_nothing(tmp_path: Path) -> None:
    sampler = ResourceSampler([_me(0)], tmp_path, interval_s=0.05).start()
    assert not sampler.on_host
    sampler.stop()
    assert pd.read_parquet(tmp_path / RESOURCES_FILE).empty


def test_a_vanished_instance_is_a_gap_until_the_runner_hands_its_new_pid(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "60"])
    try:
        sampler = ResourceSampler([_me(child.pid)], tmp_path, refresh_s=0.0)
        sampler.sample_once()
        assert not sampler.wants_instances
    finally:
        child.kill()
        child.wait()
    # the files stay (the same cgroup), so force a read that fails: a cgroup that is gone
    sampler._files["self"] = UsageFiles(tmp_path / "gone", tmp_path / "gone")
    sampler.sample_once()
    assert sampler.wants_instances
    sampler.update([_me(os.getpid())])  # a restart: the instance's new PID
    assert not sampler.wants_instances
    sampler.sample_once()
    sampler.stop()
    frame = pd.read_parquet(tmp_path / RESOURCES_FILE)
    assert len(frame) == 2  # the round with the gone cgroup wrote nothing
