"""Trials: `harness run --repeat N` and the aggregate of a trials directory.

The aggregate is checked on synthetic runs with known times to recover (tests/test_compare.py's
`make_run`: recovery at exactly the kill + ttr); the real trials run the short kill scenario
twice on the Docker engine and check, against the engine's own event history, that each trial
had a deployment of its own and that everything was removed.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import docker
import pytest
import xmlschema
import yaml

from harness.analysis.aggregate import load_trials, write_aggregate
from harness.analysis.matrix import load_matrix
from harness.analysis.stats import median_interval
from harness.analysis.trials_report import fault_sentences, write_trials_report
from harness.campaign import Cell
from harness.errors import AnalysisError, ScenarioError
from harness.ledger import read_ledger
from harness.ledger import write_ledger as write_ledger_file
from harness.matrix import plan_matrix
from harness.scenario import parse_scenario
from harness.targets.base import RUN_LABEL
from harness.trials import plan_trials, run_trials
from tests.abort import REPO, SCENARIOS
from tests.junit_schema import junit_schema
from tests.synthetic_run import inject, series, write_run
from tests.test_compare import KILL_AT, make_run, strict_json


def no_impact_run(run_dir: Path) -> Path:
    """A kill that changed nothing users could see: every request succeeded."""
    events = [inject(KILL_AT, "f1")]
    return write_run(run_dir, series(0.0, 30.0, 0.1), events=events, load_s=(0.0, 30.0))


def write_ledger(root: Path, entries: list[dict[str, object]]) -> None:
    (root / "trials.json").write_text(
        json.dumps(
            {
                "kind": "trials",
                "scenario": "synthetic",
                "target": "docker",
                "planned": len(entries),
                "interrupted": False,
                "trials": entries,
            }
        )
    )


def completed(index: int, run_dir: Path) -> dict[str, object]:
    return {"index": index, "outcome": "completed", "run_dir": run_dir.name, "error": None}


@pytest.fixture(scope="module")
def trials_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """7 planned trials: 4 recovered (1, 2, 3, 4 s), 1 never recovered, 1 without visible
    impact, 1 that failed to run."""
    root = tmp_path_factory.mktemp("trials")
    ttrs = [1.0, 2.0, 3.0, 4.0, None]
    runs = [make_run(root / f"run-{i}", ttr) for i, ttr in enumerate(ttrs, start=1)]
    runs.append(no_impact_run(root / "run-6"))
    entries = [completed(i, run) for i, run in enumerate(runs, start=1)]
    entries.append({"index": 7, "outcome": "failed", "run_dir": None, "error": "deploy timed out"})
    write_ledger(root, entries)
    return root


def test_aggregate_counts_every_trial_and_averages_only_the_measured(trials_dir: Path) -> None:
    aggregate = load_trials(trials_dir)
    write_aggregate(aggregate)
    data = strict_json(trials_dir / "aggregate.json")

    assert data["planned"] == 7 and data["included"] == 6
    assert data["status"] == "failed"  # a trial failed to run: the set is not a clean pass
    failed = [t for t in data["trials"] if not t["included"]]
    assert failed == [
        {
            "index": 7,
            "run_id": None,
            "run_dir": None,
            "status": "failed",
            "included": False,
            "reason": "deploy timed out",
        }
    ]
    (fault,) = data["faults"]
    assert (fault["id"], fault["trials"], fault["recovered"]) == ("f1", 6, 4)
    assert fault["no_impact"] == 1 and fault["impact_note"] == "1 of 6 had no visible impact"
    assert fault["unrecovered"] == ["run-5"]
    ttr = fault["metrics"]["ttr_s"]
    # only the 4 recovered trials: neither the unrecovered one nor the no-impact one is a time
    assert ttr["n"] == 4 and ttr["values"] == pytest.approx([1.0, 2.0, 3.0, 4.0], abs=1e-6)
    assert ttr["median"] == pytest.approx(2.5, abs=1e-6)
    assert (ttr["q1"], ttr["q3"]) == pytest.approx((1.75, 3.25), abs=1e-6)
    # 4 values: [min, max] holds the median with 1 - 2/16 = 87.5 %, short of 95 %
    assert ttr["median_ci95"] == {
        "low": pytest.approx(1.0, abs=1e-6),
        "high": pytest.approx(4.0, abs=1e-6),
        "coverage": 0.875,
        "reaches_95": False,
    }
    # detection: every trial with a visible impact (the unrecovered one too), 5 ms after t0
    assert fault["metrics"]["ttd_s"]["n"] == 5


def test_trials_report_says_what_was_left_out(trials_dir: Path) -> None:
    aggregate = load_trials(trials_dir)
    html = write_trials_report(aggregate).read_text(encoding="utf-8")

    (sentence,) = fault_sentences(aggregate)
    assert sentence.startswith("f1 container_kill: users recovered in a median of 2.500 s")
    assert "4 of 6 trials recovered; 1 of 6 never recovered" in sentence
    assert "1 of 6 had no visible impact (counted apart, not as 0 s)" in sentence
    assert "deploy timed out" in html and "never averaged in" in html
    assert (trials_dir / "figures" / "ttr_distribution.png").stat().st_size > 5_000


def test_median_interval_is_exact_order_statistics() -> None:
    """Against the binomial by hand: 9 runs -> [x(2), x(8)] covers 1 - 2 * 10/512."""
    interval = median_interval([9.0, 1.0, 8.0, 2.0, 7.0, 3.0, 6.0, 4.0, 5.0])
    assert interval is not None and interval.reaches
    assert (interval.low, interval.high) == (2.0, 8.0)
    assert interval.coverage == pytest.approx(1 - 2 * (1 + 9) / 512)
    five = median_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert five is not None and not five.reaches and five.coverage == pytest.approx(0.9375)


def test_trials_are_a_matrix_of_one_target(tmp_path: Path) -> None:
    """The same plan as the matrix's for one scenario on its target, labelled as trials."""
    scenario = parse_scenario("name: s\ntarget: podman\nseed: 5\n")
    trials = plan_trials(scenario, "s.yaml", 3, tmp_path, None, {})
    matrix = plan_matrix([("s.yaml", scenario)], ["podman"], 3, tmp_path)

    def plan(cells: list[Cell]) -> list[tuple[object, ...]]:
        return [(c.index, c.repetition, c.seed, c.target, c.scenario) for c in cells]

    assert plan(trials) == plan(matrix)
    assert [c.labels for c in trials] == [
        {"trials": tmp_path.name, "trial": str(i)} for i in (1, 2, 3)
    ]


def test_ledgers_of_every_version_read_alike(tmp_path: Path) -> None:
    """A trials ledger written before schema_version (its pending trials without scenario or
    target) and today's read as the same plan; a trials directory loads as a matrix."""
    old = tmp_path / "old"
    old.mkdir()
    run = make_run(old / "run-1", 1.5)
    write_ledger(
        old,
        [
            completed(1, run),
            {"index": 2, "seed": 8, "outcome": "pending", "run_dir": None},
        ],
    )
    ledger = read_ledger(old)
    assert (ledger.kind, ledger.targets, ledger.repeat, ledger.planned) == (
        "trials",
        ["docker"],
        2,
        2,
    )
    pending = ledger.runs[1]
    assert (pending.scenario, pending.target, pending.repetition, pending.seed) == (
        "synthetic",
        "docker",
        2,
        8,
    )
    new = tmp_path / "new"
    new.mkdir()
    write_ledger_file(new, ledger)
    data = json.loads((new / "trials.json").read_text())
    assert data["schema_version"] == 1 and [t["index"] for t in data["trials"]] == [1, 2]
    assert "runs" not in data  # the trials' readers know `trials`
    assert read_ledger(new) == ledger

    matrix = load_matrix(old)  # the runs resolve against the directory the ledger is in
    assert matrix.targets == ("docker",) and [r.status for r in matrix.runs] == [
        "passed",
        "pending",
    ]
    (ranking,) = matrix.scenarios[0].rankings
    assert ranking.order == ("docker",)
    assert ranking.group("docker").stat("ttr_s").median == pytest.approx(1.5, abs=1e-6)


def test_a_ledger_newer_than_the_harness_is_refused(tmp_path: Path) -> None:
    (tmp_path / "matrix.json").write_text(
        json.dumps({"schema_version": 99, "kind": "matrix", "runs": []})
    )
    with pytest.raises(AnalysisError, match="schema_version 99"):
        read_ledger(tmp_path)


def test_trials_that_cannot_run_are_refused_before_the_first(tmp_path: Path) -> None:
    """As the matrix: a scenario its target cannot run is invalid input, and nothing runs
    (no trials directory), instead of N trials that each fail."""
    text = (
        "name: node\nload: {duration: 30s}\nfaults:\n"
        "  - {kind: node_down, at: 5s, duration: 5s, select: {count: 1}}\n"
    )
    with pytest.raises(ScenarioError) as caught:
        run_trials(parse_scenario(text), "node.yaml", 3, tmp_path)
    assert caught.value.problems and all(
        p.startswith("node.yaml on docker: ") for p in caught.value.problems
    )
    assert list(tmp_path.iterdir()) == []


def test_each_trial_gets_its_own_seed(tmp_path: Path) -> None:
    scenario = parse_scenario("name: s\nseed: 40\n")
    cells = plan_trials(scenario, "s.yaml", 3, tmp_path, None, {"team": "a"})
    assert [c.seed for c in cells] == [40, 41, 42]
    assert [c.labels["trial"] for c in cells] == ["1", "2", "3"]
    assert all(c.labels["team"] == "a" for c in cells)
    assert [c.seed for c in plan_trials(scenario, "s.yaml", 2, tmp_path, 7, {})] == [7, 8]


# -- real trials -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def schema(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> xmlschema.XMLSchema:
    return junit_schema(pytestconfig, tmp_path_factory)


class EngineWatch:
    """The engine's create and destroy events of labelled containers, read on a thread (the
    engine keeps too short a history to ask afterwards: health-check execs flood it)."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.seen: list[tuple[str, str]] = []
        self._stream = client.events(
            decode=True,
            filters={"type": "container", "event": ["create", "destroy"], "label": RUN_LABEL},
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for event in self._stream:
            labels = event.get("Actor", {}).get("Attributes", {})
            self.seen.append((labels.get(RUN_LABEL, ""), event.get("Action", "")))

    def stop(
        self, expected: dict[tuple[str, str], int], timeout_s: float = 10.0
    ) -> list[tuple[str, str]]:
        """What was seen, once the `expected` number of each event has arrived (the stream
        lags the engine) or the timeout passed."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(
            self.seen.count(event) < count for event, count in expected.items()
        ):
            time.sleep(0.05)
        self._stream.close()
        self._thread.join(timeout=5)
        return self.seen


def short_kill(tmp_path: Path, duration: str = "14s") -> Path:
    """The quickstart's kill, shorter: 14 s of load, web-2 killed at 5 s."""
    data = yaml.safe_load((SCENARIOS / "quickstart.yaml").read_text())
    data["name"] = "trial-kill"
    data["load"].update(duration=duration, users=10, spawn_rate=10)
    data["faults"] = [
        {"kind": "container_kill", "name": "crash", "at": "5s", "select": {"names": ["web-2"]}}
    ]
    path = tmp_path / "trial-kill.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.docker
def test_run_repeat_runs_fresh_trials_and_sums_them_up(
    tmp_path: Path,
    docker_client: docker.DockerClient,
    demo_image: str,
    schema: xmlschema.XMLSchema,
) -> None:
    watch = EngineWatch(docker_client)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "harness", "run", str(short_kill(tmp_path))),
            *("--out", str(tmp_path / "out"), "--repeat", "2", "--seed", "3"),
            *("--junit", str(tmp_path / "trials.xml"), "--markdown", str(tmp_path / "t.md")),
        ],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    root = Path(done.stdout.strip().splitlines()[-1])
    data = strict_json(root / "aggregate.json")
    assert data["included"] == 2 and data["status"] == "passed"
    runs = [t["run_id"] for t in data["trials"]]
    (fault,) = data["faults"]
    assert fault["recovered"] == 2
    assert fault["responses"] == {"restarted the same container in place": 2}
    values = fault["metrics"]["ttr_s"]["values"]
    assert fault["metrics"]["ttr_s"]["median"] == pytest.approx(statistics.median(values))
    for run_id, ttr in zip(runs, values, strict=True):
        summary = json.loads((root / run_id / "summary.json").read_text())
        assert summary["faults"][0]["ttr_s"] == pytest.approx(ttr, abs=1e-6)
        assert json.loads((root / run_id / "manifest.json").read_text())["labels"]["trials"] == (
            root.name
        )
    # the engine's own account: each trial created its own 3 containers and destroyed them
    seen = watch.stop({(run_id, "destroy"): 3 for run_id in runs})
    for run_id in runs:
        assert seen.count((run_id, "create")) == 3 and seen.count((run_id, "destroy")) == 3
        assert (
            docker_client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
            == []
        )
    assert "trials passed: 2 of 2 summed up" in done.stderr
    schema.validate(str(tmp_path / "trials.xml"))  # a suite per trial, its SLO checks
    suites = ET.parse(tmp_path / "trials.xml").getroot().findall("testsuite")
    assert [s.get("failures") for s in suites] == ["0", "0"]
    assert (tmp_path / "t.md").read_text().startswith("### ✅ chaos-harness: trial-kill on docker")
