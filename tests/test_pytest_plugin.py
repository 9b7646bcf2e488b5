"""The pytest plugin: the example test runs in the suite through the installed entry point,
and the summary helpers read a run as summary.json wrote it."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from harness.analysis import analyze_run
from harness.pytest_plugin import RunSummary, load_for_test, merged
from harness.scenario import ScenarioBase
from tests.abort import REPO
from tests.synthetic_run import realistic_run

EXAMPLE = REPO / "examples" / "test_resilience.py"


def test_the_plugin_is_registered_for_pytest() -> None:
    (entry,) = [e for e in entry_points(group="pytest11") if e.name == "chaos_harness"]
    assert entry.value == "harness.pytest_plugin"


def test_overrides_merge_mappings_and_replace_the_rest(tmp_path: Path) -> None:
    assert merged({"load": {"users": 5, "duration": "40s"}, "faults": [1, 2]},
                  {"load": {"duration": "10s"}, "faults": [3]}) == {
        "load": {"users": 5, "duration": "10s"}, "faults": [3],
    }  # fmt: skip
    (tmp_path / "mine.py").write_text("")
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\nload: {locustfile: mine.py, duration: 30s}\n")
    loaded = load_for_test(scenario, {"load": {"duration": "12s"}})
    assert isinstance(loaded, ScenarioBase)
    assert loaded.load.duration == 12.0
    assert loaded.load.locustfile == str(tmp_path / "mine.py")  # beside the scenario file


def test_summary_helpers(tmp_path: Path) -> None:
    run = realistic_run(tmp_path / "run")
    summary = RunSummary(run, analyze_run(run))
    raw = json.loads((run / "summary.json").read_text())

    crash = summary.fault("f1")
    assert crash.ttr_s == raw["faults"][0]["ttr_s"] and crash.recovered
    assert crash.response == "restarted_in_place"
    assert (
        summary.phase("baseline").latency_ms("p95")
        == raw["phases"]["baseline"]["latency_ms"]["p95"]
    )
    assert summary.check("ttr_s[f1]")["verdict"] == "pass"
    assert summary.status == raw["status"]
    if not summary.passed:
        assert summary.verdict.startswith(f"{raw['status']}: ")
    with pytest.raises(KeyError, match="no fault 'f9' in run run"):
        summary.fault("f9")


@pytest.mark.docker
def test_the_example_runs_a_real_scenario(tmp_path: Path, demo_image: str) -> None:
    """The documented example, run by a pytest of its own (the plugin loaded from its entry
    point, as in a team's repository), passes; its run is left where --chaos-out says."""
    junit = tmp_path / "pytest.xml"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", str(EXAMPLE), "-q", "-p", "no:cacheprovider"),
            *("--chaos-out", str(tmp_path / "runs"), f"--junitxml={junit}"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "passed" and summary["faults"][0]["recovered"] is True
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["labels"]["pytest"].endswith(
        "test_a_crashed_replica_is_back_before_users_notice_much"
    )
    (prop,) = ET.parse(junit).getroot().iter("property")
    assert prop.get("name") == "chaos_run_dir" and prop.get("value") == str(run_dir)
