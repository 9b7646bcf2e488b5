"""The scenario schema, the timeline and the selector: pure logic, no engine."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import FaultError, ScenarioError
from harness.preflight import late_fault_warnings
from harness.scenario import (
    SelectorSpec,
    build_fault,
    load_scenario,
    parse_scenario,
    scenario_model,
)
from harness.selection import select_instances
from harness.targets.base import RUN_LABEL, Instance
from harness.timeline import actions, expand

REPO = Path(__file__).resolve().parent.parent


def test_defaults_and_units_are_filled_in() -> None:
    scenario = parse_scenario("name: s\nload: {duration: 1m}\nprobes: {interval: 250ms}\n")
    assert scenario.load.duration == 60.0
    assert scenario.probes.interval == 0.25
    assert scenario.workload.image == "demo"
    assert scenario.workload.replicas == 3
    assert scenario.target.kind == "docker"
    assert scenario.analysis.stable_for == 2.0


def test_routing_and_window_default_the_same_on_every_target() -> None:
    for kind in ("docker", "podman", "swarm", "kubernetes"):
        scenario = parse_scenario(f"name: s\ntarget: {kind}\n")
        assert (scenario.load.routing, scenario.analysis.window) == ("service", 10.0)
    chosen = parse_scenario("name: s\nload: {routing: per_instance}\nanalysis: {window: 1m}\n")
    assert (chosen.load.routing, chosen.analysis.window) == ("per_instance", 60.0)
    assert chosen.load.connections == "keep_alive"
    with pytest.raises(ScenarioError, match=r"load\.connections sets the bundled"):
        parse_scenario("name: s\nload: {connections: per_request, locustfile: /x.py}\n")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario("name: s\nload: {routing: dns}\nanalysis: {window: 0s}\n", "r.yaml")
    assert [p.split(":")[:3] for p in caught.value.problems] == [
        ["r.yaml", "2", " load.routing"],
        ["r.yaml", "3", " analysis.window"],
    ]


def test_load_host_is_a_base_url_for_service_routing_only() -> None:
    chosen = parse_scenario("name: s\nload: {host: 'https://shop.staging.example:8443/'}\n")
    assert chosen.load.host == "https://shop.staging.example:8443"
    assert parse_scenario("name: s\n").load.host is None
    for bad in ("shop.example", "ftp://shop.example", "http://", "http://a/?q=1"):
        with pytest.raises(ScenarioError, match=r"load\.host .* (base URL|query)"):
            parse_scenario(f"name: s\nload: {{host: '{bad}'}}\n")
    with pytest.raises(ScenarioError, match=r"routing: per_instance .* cannot apply"):
        parse_scenario("name: s\nload: {host: 'http://a:80', routing: per_instance}\n")


def test_a_fault_too_late_to_be_measured_is_a_warning_not_an_error(tmp_path: Path) -> None:
    # load 40 s, horizon 5 s, stable_for 2 s: the last measurable action is at 40 - 5 - 2 = 33 s.
    # f1 kills at 33 s (in time); f2 kills at 34 s (late: needs 34 + 7 = 41 s of load); f3's
    # pause starts at 20 s but is reverted at 20 + 14 = 34 s (late too); f4 repeats every 10 s
    # from 13 s: 13 and 23 s in time, 33 s in time (not after 33), no 43 s (after the load).
    text = (
        "name: late\nload: {duration: 40s}\nanalysis: {detection_horizon: 5s, stable_for: 2s}\n"
        "faults:\n"
        "  - {kind: container_kill, at: 33s}\n"
        "  - {kind: container_kill, at: 34s}\n"
        "  - {kind: container_pause, at: 20s, duration: 14s}\n"
        "  - {kind: container_kill, at: 13s, every: 10s}\n"
    )
    warnings = late_fault_warnings(parse_scenario(text))
    assert [w.split(" ")[:3] for w in warnings] == [  # in the order of their injections
        ["faults.2", "(container_pause)", "f3"],
        ["faults.1", "(container_kill)", "f2"],
    ]
    assert "lengthen load.duration to at least 41 s" in warnings[1]
    path = tmp_path / "late.yaml"
    path.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "harness", "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(f"{path}: warning: faults.") == 2


def test_every_error_is_reported_at_once_with_its_line() -> None:
    text = "\n".join(
        [
            "name: bad",  # 1
            "workload:",  # 2
            "  replicas: 0",  # 3
            "  imagee: x",  # 4
            "load: {users: lots}",  # 5
            "faults:",  # 6
            "  - {kind: container_kill, at: 5s, duration: 3s}",  # 7
            "  - {kind: no_such_fault, at: 1s}",  # 8
            "  - kind: container_kill",  # 9
            "    at: 2s",  # 10
            "    mode: sideways",  # 11
        ]
    )
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "bad.yaml")
    problems = caught.value.problems
    assert len(problems) == 6
    assert problems[0].startswith("bad.yaml:3: workload.replicas:")
    assert problems[1].startswith(
        "bad.yaml:4: workload.imagee: unknown key 'imagee'; allowed here:"
    )
    assert "image, replicas, port" in problems[1]
    assert problems[2].startswith("bad.yaml:5: load.users:")
    assert problems[3] == "bad.yaml:7: faults.0: container_kill is a one-off event: remove duration"
    assert problems[4].startswith("bad.yaml:8: faults.1: unknown fault kind 'no_such_fault'")
    assert "allowed: " in problems[4] and "container_kill, " in problems[4]
    assert problems[5].startswith("bad.yaml:11: faults.2.mode: Input should be 'signal' or 'api'")


def test_a_fault_after_the_load_is_an_error() -> None:
    with pytest.raises(ScenarioError, match="not before the end of the load"):
        parse_scenario("name: s\nload: {duration: 10s}\nfaults: [{kind: container_kill, at: 12s}]")


def test_yaml_syntax_errors_name_the_line() -> None:
    with pytest.raises(ScenarioError, match=r"^x.yaml:3: not valid YAML: mapping values"):
        parse_scenario("name: s\nload:\n  users: a: b\n", "x.yaml")


def test_fault_params_are_validated_by_the_kind() -> None:
    scenario = parse_scenario(
        "name: s\nfaults: [{kind: container_kill, at: 1s, mode: api, signal: term}]"
    )
    fault = build_fault(scenario.faults[0])
    assert fault.mode == "api"
    assert fault.mode == "api"
    assert fault.params.model_dump() == {"mode": "api", "signal": "TERM"}


def test_json_schema_names_every_fault_kind() -> None:
    schema = json.dumps(scenario_model().model_json_schema())
    for kind in ("container_kill", "container_stop", "container_pause"):
        assert kind in schema


def test_repeated_faults_become_separate_occurrences() -> None:
    scenario = parse_scenario(
        "name: s\nload: {duration: 60s}\nfaults:\n"
        "  - {kind: container_pause, at: 10s, duration: 2s, every: 15s, times: 3}\n"
        "  - {kind: container_kill, at: 11s}\n"
    )
    occurrences = expand(scenario.faults, scenario.load.duration)
    assert [(o.fault_id, o.at_s) for o in occurrences] == [
        ("f1#1", 10.0),
        ("f2", 11.0),
        ("f1#2", 25.0),
        ("f1#3", 40.0),
    ]
    timeline = [(a.at_s, a.verb, a.occurrence.fault_id) for a in actions(occurrences)]
    assert timeline[:3] == [
        (10.0, "inject", "f1#1"),
        (11.0, "inject", "f2"),
        (12.0, "revert", "f1#1"),
    ]


def _instances(run_id: str) -> list[Instance]:
    return [
        Instance(f"web-{i}", "web", f"id{i}", f"c{i}", 100 + i, "http://x", {RUN_LABEL: run_id})
        for i in range(1, 7)
    ] + [Instance("stranger", "web", "idx", "cx", 9, "http://y", {RUN_LABEL: "other-run"})]


def test_selection_is_reproducible_with_the_seed_and_never_leaves_the_run() -> None:
    pool = _instances("r1")
    pick = [
        [i.name for i in select_instances(pool, SelectorSpec(count=2), "r1", random.Random(5))]
        for _ in range(2)
    ]
    assert pick[0] == pick[1]
    assert len(select_instances(pool, SelectorSpec(percent=50), "r1", random.Random(1))) == 3
    chosen = select_instances(pool, SelectorSpec(count=99), "r1", random.Random(1))
    assert "stranger" not in {i.name for i in chosen} and len(chosen) == 6
    with pytest.raises(FaultError, match="no instance named stranger"):
        select_instances(pool, SelectorSpec(names=["stranger"]), "r1", random.Random(1))


def test_cli_validate_exits_2_and_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nload:\n  userz: 3\n")
    for command in ("validate", "run"):
        done = subprocess.run(
            [sys.executable, "-m", "harness", command, str(bad)],
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
        )
        assert done.returncode == 2, done.stderr
        assert f"{bad}:3: load.userz: unknown key 'userz'" in done.stderr


def test_every_bundled_scenario_validates() -> None:
    for path in sorted((REPO / "scenarios").glob("*.yaml")):
        done = subprocess.run(
            [sys.executable, "-m", "harness", "validate", str(path)],
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
        )
        assert done.returncode == 0, f"{path.name}: {done.stderr}"


def test_open_loop_gets_enough_users_for_its_timeout() -> None:
    scenario = parse_scenario("name: s\nload: {rate: 200/s, timeout: 2s}\n")
    # each user keeps one arrival every users / rate s, which must outlast a 2 s timeout + 1 s
    assert (scenario.load.rate, scenario.load.users, scenario.load.spawn_rate) == (200.0, 600, 600)
    assert parse_scenario("name: s\nload: {rate: 600/min}\n").load.rate == 10.0
    with pytest.raises(ScenarioError) as caught:
        parse_scenario("name: s\nload: {rate: 200/s, users: 100, locustfile: x.py}\n", "o.yaml")
    (problem,) = caught.value.problems
    assert "load.rate paces the bundled locustfile only" in problem
    assert "load.users 100 cannot keep load.rate 200/s" in problem
    assert "give at least 400 users" in problem


def test_the_detection_horizon_must_outlast_the_request_timeout() -> None:
    assert parse_scenario("name: s\n").analysis.detection_horizon == 5.0
    with pytest.raises(ScenarioError, match=r"detection_horizon \(5 s\) must exceed load.timeout"):
        parse_scenario("name: s\nload: {timeout: 6s}\n")
    scenario = parse_scenario("name: s\nload: {timeout: 6s}\nanalysis: {detection_horizon: 8s}\n")
    assert scenario.analysis.detection_horizon == 8.0


def test_the_warmup_defaults_to_the_time_locust_takes_to_start_its_users() -> None:
    scenario = parse_scenario("name: s\nload: {users: 50, spawn_rate: 10}\n")
    assert scenario.analysis.warmup_s(scenario.load) == 5.0
    quick = parse_scenario("name: s\nload: {users: 5, spawn_rate: 10}\n")
    assert quick.analysis.warmup_s(quick.load) == 1.0  # at least 1 s


def test_a_relative_locustfile_is_found_beside_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "mine.py").write_text("# a locustfile\n")
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nload: {locustfile: files/mine.py}\n")
    assert load_scenario(path).load.locustfile == str(tmp_path / "files" / "mine.py")
    path.write_text("name: s\nload: {locustfile: files/missing.py}\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert "load.locustfile: no such file" in caught.value.problems[0]
