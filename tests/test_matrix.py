"""`harness matrix`: the plan (interleaved, rotated, seeded), the checks before anything runs,
the ranking and its report, a failing run that does not stop the matrix, Ctrl-C, and a real
matrix of Docker and Podman.

Rankings are checked on synthetic runs with known times to recover (tests/test_compare.py's
`make_run`); the real matrix checks what the engines themselves report.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import xmlschema
import yaml

from harness.analysis.matrix import load_matrix
from harness.analysis.matrix_report import write_matrix_report
from harness.analysis.matrix_words import headline, step_sentence
from harness.errors import ScenarioError
from harness.matrix import check_matrix, parse_targets, plan_matrix
from harness.scenario import parse_scenario
from harness.targets.base import RUN_LABEL
from tests.abort import REPO
from tests.helpers import podman_leftovers
from tests.junit_schema import junit_schema
from tests.test_compare import make_run, measured_as, strict_json
from tests.test_trials import short_kill


@pytest.fixture(scope="session")
def schema(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> xmlschema.XMLSchema:
    return junit_schema(pytestconfig, tmp_path_factory)


# -- the plan --------------------------------------------------------------------------------


def test_plan_interleaves_and_rotates_targets(tmp_path: Path) -> None:
    scenarios = [("a.yaml", parse_scenario("name: a\n")), ("b.yaml", parse_scenario("name: b\n"))]
    cells = plan_matrix(scenarios, ["docker", "podman", "swarm"], 3, tmp_path, seed=100)

    order = [(c.repetition, c.scenario.name, c.target) for c in cells]
    assert order[:6] == [
        (1, "a", "docker"), (1, "a", "podman"), (1, "a", "swarm"),
        (1, "b", "docker"), (1, "b", "podman"), (1, "b", "swarm"),
    ]  # fmt: skip
    assert [s for r, s, t in order if r == 2][::3] == ["b", "a"]  # scenarios rotate too
    assert [t for r, s, t in order if (r, s) == (2, "a")] == ["podman", "swarm", "docker"]
    assert [t for r, s, t in order if (r, s) == (3, "a")] == ["swarm", "docker", "podman"]
    # every target is once first, once second, once last over the 3 repetitions
    for target in ("docker", "podman", "swarm"):
        positions = sorted(
            [t for r, s, t in order if (r, s) == (rep, "a")].index(target) for rep in (1, 2, 3)
        )
        assert positions == [0, 1, 2]
    # one seed per repetition, the same on every target of it
    assert {c.seed for c in cells if c.repetition == 2} == {101}
    assert [c.index for c in cells] == list(range(1, 19))
    assert all(c.scenario.target.kind == c.target for c in cells)
    assert {c.labels["repetition"] for c in cells} == {"1", "2", "3"}


def test_targets_are_checked() -> None:
    assert parse_targets("docker, swarm") == ["docker", "swarm"]
    with pytest.raises(ScenarioError) as caught:
        parse_targets("docker,nomad,docker")
    assert caught.value.problems == [
        "--targets: unknown target 'nomad'; allowed: docker, podman, swarm, kubernetes",
        "--targets: a target is named twice in 'docker,nomad,docker'",
    ]


def test_a_pair_a_target_cannot_run_is_refused_before_anything_runs() -> None:
    text = (
        "name: node\nload: {duration: 30s}\nfaults:\n"
        "  - {kind: node_down, at: 5s, duration: 5s, select: {count: 1}}\n"
    )
    with pytest.raises(ScenarioError) as caught:
        check_matrix([("node.yaml", parse_scenario(text))], ["docker"])
    assert all(p.startswith("node.yaml on docker: ") for p in caught.value.problems)


# -- the ranking and its report --------------------------------------------------------------


def synthetic_matrix(root: Path, ttrs: dict[str, list[float | None]]) -> Path:
    """A matrix directory with made-up runs of scenario 'kill' (run dirs from make_run)."""
    runs, index = [], 0
    for repetition in range(1, max(len(v) for v in ttrs.values()) + 1):
        for target, values in ttrs.items():
            if repetition > len(values):
                continue
            index += 1
            run_dir = make_run(root / f"{target}-{repetition}", values[repetition - 1], target)
            runs.append(
                {
                    "index": index,
                    "scenario": "synthetic",
                    "target": target,
                    "repetition": repetition,
                    "outcome": "completed",
                    "run_dir": run_dir.name,
                    "error": None,
                }
            )
    runs.append(
        {
            "index": index + 1,
            "scenario": "synthetic",
            "target": "podman",
            "repetition": 1,
            "outcome": "failed",
            "run_dir": None,
            "error": "podman: cannot start the API service",
        }
    )
    ledger = {"kind": "matrix", "targets": list(ttrs), "repeat": 5, "runs": runs}
    (root / "matrix.json").write_text(json.dumps(ledger))
    return root


def test_ranking_with_its_uncertainty(tmp_path: Path) -> None:
    root = synthetic_matrix(
        tmp_path,
        {
            "swarm": [7.6, 7.7, 7.8, 7.9, 8.0],
            "docker": [1.2, 1.3, 1.4, 1.5, 1.6],
            "podman": [1.25, 1.35, 1.45, 1.55, None],
        },
    )
    matrix = load_matrix(root)
    (scenario,) = matrix.scenarios
    (ranking,) = scenario.rankings

    # podman never recovered in one run: it ranks last, behind a slower swarm that always did
    assert ranking.order == ("docker", "swarm", "podman")
    assert [r.status for r in matrix.excluded] == ["failed"]
    docker_swarm, swarm_podman = ranking.steps
    assert docker_swarm.wins.wins == 25 and docker_swarm.wins.pairs == 25
    assert docker_swarm.verdict.p_value is not None and docker_swarm.verdict.p_value < 0.05
    assert docker_swarm.told_apart
    assert swarm_podman.told_apart and swarm_podman.verdict.basis == "unrecovered"
    # resampled, podman's unrecovered run drops out of a third of the resamples (0.8^5), and
    # then its fast runs often rank it first; swarm is never first, docker never last
    assert 0.5 < ranking.shares["docker"][0] < 1.0
    assert ranking.shares["swarm"][0] == 0.0 and ranking.shares["docker"][2] == 0.0
    text = headline(ranking)
    assert text.startswith("docker recovered fastest from f1 container_kill: median 1.40 s")
    assert "then swarm at 7.80 s (+6.40 s, 5.6× as long)" in text
    assert "then podman at 1.40 s (+0.00 s), and it never recovered in 1 of 5 runs" in text
    assert "docker recovered faster in 25 of 25 pairings" in step_sentence(docker_swarm)
    assert "podman never recovered in 1 of 5 runs" in step_sentence(swarm_podman)


def test_three_runs_each_are_ranked_but_not_called_significant(tmp_path: Path) -> None:
    root = synthetic_matrix(tmp_path, {"docker": [1.2, 1.3, 1.4], "swarm": [7.6, 7.7, 7.8]})
    (ranking,) = load_matrix(root).scenarios[0].rankings
    (step,) = ranking.steps
    sentence = step_sentence(step)

    assert ranking.order == ("docker", "swarm")
    assert step.wins.wins == 9 and not step.told_apart
    assert "docker recovered faster in 9 of 9 pairings" in sentence
    assert step.verdict.p_value is None  # 3 vs 3: p >= 2 / C(6, 3) = 0.1, never tested
    assert "3 against 3 gives p = 0.1 at best" in sentence
    assert "repeat 4 times or more" in sentence
    # the ranges' difference: [7.6 - 1.4, 7.8 - 1.2], held with >= (1 - 2/8)^2 = 56 %
    assert "the ranges put the difference at 6.20 to 6.60 s with at least 56% confidence" in (
        sentence
    )


def test_targets_measured_on_different_routing_are_not_ranked(tmp_path: Path) -> None:
    root = synthetic_matrix(tmp_path, {"docker": [1.2, 1.3], "kubernetes": [0.9, 1.0]})
    for repetition in (1, 2):
        measured_as(root / f"docker-{repetition}", "per_instance", 10.0)
        measured_as(root / f"kubernetes-{repetition}", "service", 10.0)
    with pytest.raises(ScenarioError) as info:
        load_matrix(root)
    assert info.value.exit_code == 2
    assert info.value.problems[0] == (
        "load.routing differs: per_instance (docker-1, docker-2) vs service (kubernetes-1, "
        "kubernetes-2)"
    )

    for repetition in (1, 2):  # the same routing and window: ranked, and the report says so
        measured_as(root / f"docker-{repetition}", "service", 10.0)
    html = write_matrix_report(load_matrix(root)).read_text(encoding="utf-8")
    assert "Every run measured the same way: load.routing service" in html
    assert "analysis.window_s 10 s" in html


def test_matrix_report_reads_for_a_newcomer(tmp_path: Path) -> None:
    root = synthetic_matrix(tmp_path, {"docker": [1.2, 1.3, 1.4], "swarm": [7.6, 7.7, 7.8]})
    report = write_matrix_report(load_matrix(root))
    html = report.read_text(encoding="utf-8")

    assert "Which orchestrator recovers faster?" in html
    assert "docker recovered fastest from f1 container_kill" in html
    assert "How sure is that order?" in html
    assert "podman: cannot start the API service" in html  # the failed run, listed
    data = strict_json(root / "comparison.json")
    assert data["scenarios"][0]["rankings"][0]["order"] == ["docker", "swarm"]
    figures = sorted(p.name for p in (root / "figures").iterdir())
    assert figures == ["synthetic-median-runs.png", "synthetic-ttr.png"]


# -- real matrices ---------------------------------------------------------------------------


def run_matrix_cli(
    tmp_path: Path, *args: str, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "matrix", *args, "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )


def broken_image(tmp_path: Path) -> Path:
    """A scenario whose image does not exist: its deploy fails at once on the real engine."""
    data = yaml.safe_load(short_kill(tmp_path).read_text())
    data["name"] = "no-such-image"
    data["workload"]["image"] = "chaos-harness-test/no-such-image:none"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.docker
def test_a_failing_run_does_not_stop_the_matrix_and_ctrl_c_still_reports(
    tmp_path: Path, docker_client: docker.DockerClient, demo_image: str
) -> None:
    """Run 1 (a missing image) fails; run 2 is interrupted by SIGINT in the middle of its
    load: the matrix exits 130, the run cleaned up after itself, the report lists both."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "harness", "matrix", str(broken_image(tmp_path))),
            *(str(short_kill(tmp_path, "30s")), "--targets", "docker", "--repeat", "1"),
            *("--out", str(tmp_path / "out")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        ledger = wait_for_load(tmp_path / "out")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr[-3000:]
    root = Path(stdout.strip().splitlines()[-1]).parent
    assert root == ledger.parent
    data = json.loads(ledger.read_text())
    assert data["interrupted"] is True
    first, second = data["runs"]
    assert first["outcome"] == "failed" and "no-such-image" in first["error"]
    assert second["outcome"] == "aborted"
    html = (root / "report.html").read_text(encoding="utf-8")
    assert "interrupted" in html and "aborted" in html and "no-such-image" in html
    run_id = Path(second["run_dir"]).name
    leftovers = docker_client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
    assert leftovers == []


def engine_says(run_dir: Path, t0_ns: int) -> str:
    """What the engine's own events (as recorded) say happened to web-2 after the kill: the
    same container id died and started again, or nothing was reported at all."""
    lines = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines() if x]
    engine = [e for e in lines if e["source"] == "engine"]
    after = [e for e in engine if e["time_ns"] >= t0_ns - 1_000_000]
    if not after:
        return "unknown"  # the engine's event stream delivered nothing (seen with Podman)
    before_ids = {
        e["container_id"] for e in engine if e["time_ns"] < t0_ns and e["instance"] == "web-2"
    }
    died = [e for e in after if e["action"] == "die" and e["instance"] == "web-2"]
    started = [
        e for e in after
        if e["action"] == "start" and e["instance"] == "web-2" and e["container_id"] in before_ids
    ]  # fmt: skip
    assert died and started and died[0]["container_id"] in before_ids
    return "restarted_in_place"


def wait_for_load(out: Path, timeout_s: float = 180.0) -> Path:
    """The matrix ledger, once its second run's load is going: its first request recorded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for ledger in out.glob("matrix-*/matrix.json"):
            for events in ledger.parent.glob("trial-kill-*/events.jsonl"):
                lines = [json.loads(x) for x in events.read_text().splitlines() if x.strip()]
                if any(e["action"] == "load_start" for e in lines) and _requested(events.parent):
                    return ledger
        time.sleep(0.2)
    raise AssertionError("the matrix's second run never started its load")


@pytest.mark.slow  # 85 s; the Docker/Kubernetes matrix below runs the same path by default
@pytest.mark.docker
def test_docker_and_podman_matrix(
    tmp_path: Path, demo_image: str, schema: xmlschema.XMLSchema
) -> None:
    done = run_matrix_cli(
        tmp_path,
        str(short_kill(tmp_path)),
        *("--targets", "docker,podman", "--repeat", "2", "--seed", "11"),
        "--junit",
        str(tmp_path / "matrix.xml"),
        "--markdown",
        str(tmp_path / "matrix.md"),
    )
    assert done.returncode == 0, done.stderr[-4000:]
    root = Path(done.stdout.strip().splitlines()[-1]).parent
    ledger = json.loads((root / "matrix.json").read_text())
    assert [(r["repetition"], r["target"]) for r in ledger["runs"]] == [
        (1, "docker"), (1, "podman"), (2, "podman"), (2, "docker"),
    ]  # fmt: skip
    starts = [
        json.loads((root / r["run_dir"] / "manifest.json").read_text())["started_at_ns"]
        for r in ledger["runs"]
    ]
    assert starts == sorted(starts)  # they ran in that order
    data = strict_json(root / "comparison.json")
    (ranking,) = data["scenarios"][0]["rankings"]
    assert sorted(ranking["order"]) == ["docker", "podman"]
    for target in ("docker", "podman"):
        group = ranking["targets"][target]
        assert group["runs"] == 2 and group["recovered_runs"] == 2
        ttrs = []
        for run in (r for r in ledger["runs"] if r["target"] == target):
            run_dir = root / run["run_dir"]
            summary = json.loads((run_dir / "summary.json").read_text())
            assert summary["target"] == target
            (fault,) = summary["faults"]
            ttrs.append(fault["ttr_s"])
            assert fault["response"]["action"] == engine_says(run_dir, fault["injected_at_ns"])
        assert sorted(group["ttr_s"]["values"]) == pytest.approx(sorted(ttrs), abs=1e-6)
        assert sum(group["responses"].values()) == 2
    html = (root / "report.html").read_text(encoding="utf-8")
    assert "recovered fastest from f1 container_kill" in html
    assert "restarted the same container in place" in html
    markdown = (tmp_path / "matrix.md").read_text()
    assert "| rank | target | median ttr |" in markdown
    for run in ledger["runs"]:
        assert podman_leftovers(Path(run["run_dir"]).name) == []
    schema.validate(str(tmp_path / "matrix.xml"))
    cases = list(ET.parse(tmp_path / "matrix.xml").getroot().iter("testcase"))
    assert len(cases) == sum(
        len(json.loads((root / r["run_dir"] / "summary.json").read_text())["slo"]["checks"])
        for r in ledger["runs"]
    )


@pytest.fixture(scope="module")
def kube_lab_up(demo_image: str) -> Iterator[None]:
    """The Kubernetes lab that is up, or one node brought up (and taken down) for this module."""
    from tests.kube_labs import module_lab

    del demo_image
    for _ in module_lab(nodes=1):
        yield


@pytest.mark.docker
def test_docker_and_kubernetes_say_what_each_orchestrator_did(
    tmp_path: Path, kube_lab_up: None
) -> None:
    """The same crash: Docker restarts the same container, the kubelet restarts the container
    inside the same pod; the report puts each beside what users saw."""
    done = run_matrix_cli(
        tmp_path,
        str(short_kill(tmp_path)),
        *("--targets", "docker,kubernetes", "--repeat", "1", "--seed", "5"),
    )
    assert done.returncode == 0, done.stderr[-4000:]
    root = Path(done.stdout.strip().splitlines()[-1]).parent
    ledger = json.loads((root / "matrix.json").read_text())
    responses = {}
    for run in ledger["runs"]:
        run_dir = root / run["run_dir"]
        (fault,) = json.loads((run_dir / "summary.json").read_text())["faults"]
        responses[run["target"]] = fault["response"]["description"].split(" (+")[0]
        if run["target"] == "kubernetes":  # the kubelet's own words: same pod, a new container
            events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
            starts = [
                e for e in events
                if e["action"] == "start" and e["instance"] == "web-2"
                and e["time_ns"] > fault["injected_at_ns"]
            ]  # fmt: skip
            assert starts and starts[0]["attributes"]["restart_count"] == "1"
    assert responses == {
        "docker": "restarted the same container in place",
        "kubernetes": "restarted the container inside the same pod",
    }
    html = (root / "report.html").read_text(encoding="utf-8")
    assert "restarted the container inside the same pod" in html


# -- progress --------------------------------------------------------------------------------


def test_plain_progress_lines_for_logs(tmp_path: Path) -> None:
    """Off a terminal: a line when a run starts and ends, with the count and the time left."""
    import io

    from rich.console import Console

    from harness.campaign import CampaignProgress, CellResult
    from harness.cli_progress import PlainLines, duration_text

    scenario = parse_scenario("name: s\nload: {duration: 30s}\n")
    (cell,) = plan_matrix([("s.yaml", scenario)], ["docker"], 1, tmp_path, seed=1)
    buffer = io.StringIO()
    show = PlainLines(Console(file=buffer, width=200), "matrix")
    progress = CampaignProgress(total=3, current=cell, eta_s=250.0)
    show(progress)
    progress.done, progress.current, progress.eta_s = 1, None, 130.0
    progress.last = CellResult(cell, "completed", None, None, "passed", 31.4)
    show(progress)
    assert buffer.getvalue().splitlines() == [
        "matrix [1/3] s on docker (repetition 1): started · 0/3 runs done · about 4 min 10 s left",
        "matrix [1/3] s on docker (repetition 1): completed, passed, 31 s · 1/3 runs done · "
        "about 2 min 10 s left",
    ]
    assert [duration_text(x) for x in (None, 35, 61, 3725)] == [
        "unknown",
        "35 s",
        "1 min 01 s",
        "1 h 02 min",
    ]


def _requested(run_dir: Path) -> bool:
    """Whether the run's load recorded a request (a line past the header of a record file)."""
    for record in (run_dir / "load").glob("requests-*.tsv"):
        if len(record.read_text(encoding="utf-8", errors="replace").splitlines()) > 1:
            return True
    return False
