"""Prometheus against a real server started here (Debian's prometheus): a real Docker run whose
own /metrics it scrapes, SLO checks read back from it, the preflight's refusals, and
`harness prometheus up/down` stopping only the process it started.

The evidence is Prometheus' own answers: what it scraped from the run, compared with the
requests the run recorded (requests.parquet) and the instants of its events.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from harness.errors import ScenarioError
from harness.load import free_port
from harness.prometheus import server
from harness.prometheus.client import PrometheusClient
from harness.prometheus.evaluate import evaluate_checks
from harness.prometheus.exporter import HOLD_S, POLL_S
from harness.results.summary import PhaseSummary, Summary
from harness.scenario import parse_scenario
from harness.specs import PrometheusCheckSpec
from harness.waiting import wait_until
from tests.helpers import harness_cli

REPO = Path(__file__).resolve().parents[1]
needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="no prometheus binary (make setup)"
)


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, metrics_port: int) -> Iterator[str]:
    """A Prometheus of this module's own, scraping the port the runs serve /metrics on."""
    directory = tmp_path_factory.mktemp("prometheus")
    targets = server.url_targets([f"http://127.0.0.1:{metrics_port}/metrics"])
    state = server.up(targets, directory)
    try:
        yield state.url
    finally:
        server.down(directory)
        assert not state.alive()


def _scenario(path: Path, url: str, port: int, checks: str, load_s: int = 26) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""\
            name: prom-test
            target: docker
            workload: {{image: demo, replicas: 3, restart: always}}
            load: {{users: 10, spawn_rate: 10, duration: {load_s}s, routing: per_instance}}
            probes: {{interval: 200ms}}
            analysis: {{window: 10s}}
            observe:
              metrics: {{port: {port}}}
              prometheus: {{url: "{url}"}}
            faults:
              - {{kind: container_stop, at: 8s, duration: 5s, timeout: 1s}}
            slo:
              require_recovery: false
              prometheus:
            """
        )
        + textwrap.indent(textwrap.dedent(checks), "    ")
    )
    return path


def _harness(*args: str) -> subprocess.CompletedProcess[str]:
    return harness_cli(*args)


CHECKS = """\
- name: baseline_failures
  query: 'sum(increase(chaos_request_failures_total[3s]))'
  max: 0
  phase: baseline
- {name: fault_failures, query: 'sum(chaos_request_failures_total{phase="fault"})', max: 0,
   fault: f1}
- {name: fault_gauge, query: 'max(chaos_fault_active{fault_id="f1"})', min: 1, phase: fault}
"""


@needs_prometheus
@pytest.mark.docker
def test_prometheus_slos_on_a_real_run(
    tmp_path: Path, prometheus: str, metrics_port: int, demo_image: str
) -> None:
    scenario = _scenario(tmp_path / "s.yaml", prometheus, metrics_port, CHECKS)
    junit, markdown = tmp_path / "junit.xml", tmp_path / "run.md"
    done = _harness(
        "run", str(scenario), "--out", str(tmp_path / "r"), "--junit", str(junit),
        "--markdown", str(markdown),
    )  # fmt: skip
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    summary = json.loads((run_dir / "summary.json").read_text())
    # the failing Prometheus check alone decides the exit code
    assert done.returncode == 1, done.stderr
    assert summary["status_reason"] == "failed: fault_failures[f1]", summary["status_reason"]
    checks = {c["name"]: c for c in summary["prometheus"]["checks"]}
    passing, failing = checks["baseline_failures[baseline]"], checks["fault_failures[f1]"]
    assert passing["verdict"] == "pass" and passing["value"] == 0 and passing["points"] >= 2
    gauge = checks["fault_gauge[fault]"]  # a lower limit: the lowest point while f1 was on
    assert (gauge["verdict"], gauge["bound"], gauge["value"]) == ("pass", "min", 1)
    assert failing["verdict"] == "fail"
    assert failing["query"] == 'sum(chaos_request_failures_total{phase="fault"})'

    # (a request is counted HOLD_S after the exporter read it, so the window, 10 s after the
    # revert, outlasts the last failed request's timeout, a read, the hold and a scrape; with a
    # 5 s window the ten users' last timed-out requests were missing)
    # what Prometheus scraped is what the run recorded: the failed requests that started while
    # f1 was active (by the events' instants), counted by the exporter, read at the window's end
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    inject = next(e["time_ns"] for e in events if e["action"] == "fault_inject")
    revert = next(e["time_ns"] for e in events if e["action"] == "fault_revert")
    apply_s = next(e["attributes"]["apply_s"] for e in events if e["action"] == "fault_inject")
    assert apply_s < HOLD_S - POLL_S, "the exporter's hold is shorter than this fault's action"
    requests = pd.read_parquet(run_dir / "requests.parquet")
    during = requests[(requests.start_ns >= inject) & (requests.start_ns < revert)]
    expected = int((~during.ok).sum())
    assert expected > 0
    assert failing["value"] == expected
    fault = summary["faults"][0]
    assert (failing["start_ns"], failing["end_ns"]) == (
        fault["window"]["start_ns"],
        fault["window"]["end_ns"],
    )

    # the same checks in JUnit and Markdown, with the query as sent
    xml = junit.read_text()
    assert 'name="fault_failures[f1]"' in xml and "limit at most 0" in xml
    assert "fault_gauge[fault]: 1, limit at least 1: pass" in xml
    assert "chaos_request_failures_total" in xml
    md = markdown.read_text()
    assert "❌ fault_failures[f1]" in md and "✅ baseline_failures[baseline]" in md

    # the fault's gauge, as Prometheus saw it: present while f1 was active, gone after
    client = PrometheusClient(prometheus)
    series = client.query_range(
        'chaos_fault_active{fault_id="f1"}', inject / 1e9 - 3, revert / 1e9 + 6, 0.5
    )
    assert len(series) == 1 and series[0].labels["kind"] == "container_stop"
    seen = [t for t, v in series[0].points if v == 1]
    assert seen, "the gauge was never scraped while the fault was active"
    # set once the harness recorded the injection (after its action), gone within a scrape
    # and a poll of the revert; Prometheus' staleness marks end the series
    assert min(seen) >= inject / 1e9 - 0.5
    assert max(seen) <= revert / 1e9 + 2.5
    assert max(seen) >= revert / 1e9 - 1.5


@needs_prometheus
@pytest.mark.docker
def test_preflight_refuses_a_bad_query_and_an_absent_server(
    tmp_path: Path, prometheus: str, metrics_port: int, demo_image: str
) -> None:
    bad = _scenario(
        tmp_path / "bad.yaml",
        prometheus,
        metrics_port,
        "- {name: broken, query: 'sum(rate(x[5s]', max: 1, phase: baseline}\n",
    )
    out = tmp_path / "r"
    done = _harness("run", str(bad), "--out", str(out))
    assert done.returncode == 2, done.stderr
    assert "slo.prometheus.0.query" in done.stderr and "refused" in done.stderr
    ranged = _scenario(
        tmp_path / "ranged.yaml",
        prometheus,
        metrics_port,
        "- {name: ok, query: 'up', max: 1, phase: baseline}\n"
        "- {name: ranged, query: 'up[5s]', max: 1, phase: baseline}\n",
    )
    done = _harness("run", str(ranged), "--out", str(out))
    assert done.returncode == 2, done.stderr
    assert "slo.prometheus.1.query: 'up[5s]' is a range vector" in done.stderr
    assert "slo.prometheus.0" not in done.stderr
    assert not out.exists() or not any(out.iterdir())  # nothing was run

    port = free_port()  # nobody listens there
    absent = _scenario(tmp_path / "absent.yaml", f"http://127.0.0.1:{port}", metrics_port, CHECKS)
    done = _harness("run", str(absent), "--out", str(out))
    assert done.returncode == 3, done.stderr
    assert f"127.0.0.1:{port} does not answer" in done.stderr
    assert "harness prometheus up" in done.stderr


def test_a_check_naming_a_fault_that_does_not_exist() -> None:
    text = textwrap.dedent(
        """\
        name: s
        observe: {prometheus: {url: "http://127.0.0.1:9090"}}
        faults:
          - {kind: container_kill, at: 5s}
          - {kind: container_kill, at: 9s, every: 10s, times: 2}
        slo:
          prometheus:
            - {name: ok, query: up, max: 1, fault: "f2#2"}
            - {name: gone, query: up, max: 1, fault: f3}
            - {name: late, query: up, max: 1, fault: "f2#3"}
        """
    )
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "s.yaml")
    message = str(caught.value)
    # each at the check's own line
    assert "s.yaml:9: slo.prometheus.1.fault: no such fault in this scenario" in message
    assert "s.yaml:10: slo.prometheus.2.fault: no such fault" in message
    assert "(its fault ids: f1, f2, f2#1, f2#2) (got 'f3')" in message
    assert "slo.prometheus.0" not in message
    both = text + "    - {name: both, query: up, max: 1, min: 0, phase: fault, fault: f1}\n"
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(both, "s.yaml")
    assert (
        "s.yaml:11: slo.prometheus.3: give exactly one of max, min; give exactly one of "
        "phase, fault" in str(caught.value)
    )
    without_server = text.replace('observe: {prometheus: {url: "http://127.0.0.1:9090"}}', "")
    with pytest.raises(ScenarioError, match=r"slo\.prometheus needs observe\.prometheus\.url"):
        parse_scenario(without_server, "s.yaml")


@needs_prometheus
def test_up_and_down_stop_only_the_process_started(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    env = {**os.environ, server.DIR_ENV: str(directory)}
    up = subprocess.run(
        [sys.executable, "-m", "harness", "prometheus", "up", "--no-kube-lab"],
        capture_output=True, text=True, timeout=120, check=True, cwd=REPO, env=env,
    )  # fmt: skip
    url = up.stdout.strip().splitlines()[-1]
    state = server.read_state(directory)
    assert state is not None and state.alive() and url == state.url
    PrometheusClient(url).ready()
    assert "127.0.0.1:9464" in (directory / "prometheus.yml").read_text()
    # a state naming that PID with another start time (a recycled PID) is never signalled
    other = tmp_path / "other"
    other.mkdir()
    saved = (directory / "state.json").read_text()
    recycled = saved.replace(f'"start_ticks": {state.start_ticks}', '"start_ticks": 1')
    (other / "state.json").write_text(recycled)
    assert "had already exited" in server.down(other)
    assert state.alive()
    down = subprocess.run(
        [sys.executable, "-m", "harness", "prometheus", "down"],
        capture_output=True, text=True, timeout=60, check=True, cwd=REPO, env=env,
    )  # fmt: skip
    assert f"stopped Prometheus pid {state.pid}" in down.stdout
    assert not state.alive() and not directory.exists()


@needs_prometheus
def test_cleanup_removes_the_state_of_a_dead_prometheus(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    state = server.up([], directory)
    assert list(server.stale_state(directory)) == []  # running: left alone
    os.kill(state.pid, signal.SIGKILL)  # the process this test started
    os.waitpid(state.pid, 0)
    assert [line for line in server.stale_state(directory) if "no longer running" in line]
    assert not directory.exists()


@needs_prometheus
def test_after_the_run_an_absent_server_or_a_refused_query_fails_the_check(
    prometheus: str,
) -> None:
    """Evaluated after a run: nothing answers, or Prometheus refuses the range query (a
    range vector has no value at an instant): each check fails, saying what and where."""
    now = time.time_ns()
    summary = Summary(
        run_id="r",
        phases={"baseline": PhaseSummary(intervals=[[now - 10_000_000_000, now]])},
    )
    spec = PrometheusCheckSpec(name="up", query="up", max=1, phase="baseline")
    port = free_port()  # nobody listens there
    absent = evaluate_checks(f"http://127.0.0.1:{port}", [spec], summary).checks[0]
    assert absent.verdict == "fail" and absent.value is None
    assert f"127.0.0.1:{port} does not answer /api/v1/query_range" in str(absent.reason)
    ranged = spec.model_copy(update={"query": "up[5s]"})
    refused = evaluate_checks(prometheus, [ranged], summary).checks[0]
    assert refused.verdict == "fail" and "refused 'up[5s]'" in str(refused.reason)
    assert "correct the query" in str(refused.reason)
    # the same server answers the plain query: its own scrapes' `up` (0 or 1), at most 1
    client = PrometheusClient(prometheus)
    scraped = "count_over_time(up[10s]) >= 3"  # a few scrapes: a point of the range has one
    assert wait_until(lambda: bool(client.query(scraped)["result"]), 15.0, 0.2)
    summary.phases["baseline"].intervals[0][1] = time.time_ns()
    answered = evaluate_checks(prometheus, [spec], summary).checks[0]
    assert answered.verdict == "pass" and answered.points >= 1 and answered.value in (0, 1)
