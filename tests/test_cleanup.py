"""`harness cleanup` follows each run's own engine: the target is rebuilt from the run's resolved
scenario.yaml (kind, engine, lab), every engine runs may have used is swept once, and the
iptables chains of a dead run's service address are removed while a live run's stay.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.cleanup import engines_to_sweep, run_target_spec
from harness.hostnet import remove_orphaned_chains, run_jumps
from harness.results import RunDir
from harness.scenario import TargetSpec, parse_scenario, resolved_yaml
from harness.targets import target_spec
from harness.targets.base import owner_label_value
from harness.targets.service_vip import VirtualService

DEAD_OWNER = "4194305:1"  # a PID above the kernel's limit (2**22): never a live process


def _run_dir(tmp_path: Path, target_yaml: str) -> RunDir:
    scenario = parse_scenario(f"name: s\n{target_yaml}\n")
    run = RunDir(tmp_path / "s-20260101-000000-abcd")
    run.path.mkdir()
    run.scenario.write_text(resolved_yaml(scenario))
    return run


@pytest.mark.parametrize(
    ("target_yaml", "expected"),
    [
        ("target: docker", target_spec("docker")),
        ("target: podman", target_spec("podman")),
        (
            "target: {kind: podman, engine: 'unix:///run/p.sock'}",
            target_spec("podman", engine="unix:///run/p.sock"),
        ),
        (
            "target: {kind: swarm, lab: {nodes: 3, heartbeat: 2s}, swarm: {restart_delay: 1s}}",
            target_spec("swarm", lab={"nodes": 3, "heartbeat": 2}, swarm={"restart_delay": 1}),
        ),
    ],
)
def test_the_runs_target_comes_back_from_its_resolved_scenario(
    tmp_path: Path, target_yaml: str, expected: TargetSpec
) -> None:
    assert run_target_spec(_run_dir(tmp_path, target_yaml)) == expected


def test_a_run_without_its_scenario_falls_back_to_the_manifests_kind(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    run.manifest.write_text('{"target": "podman"}')
    assert run_target_spec(run) == target_spec("podman")


def test_every_engine_is_swept_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.cleanup.labs_up", lambda: [])  # no lab up, whatever this host has
    given = target_spec("podman", engine="unix:///run/p.sock")
    specs = engines_to_sweep([target_spec("docker"), given, given, target_spec("podman")])
    keys = [(s.kind, s.engine) for s in specs]
    assert keys == [("swarm", None), ("podman", None), ("podman", "unix:///run/p.sock")]


def _nat_output() -> str:
    return subprocess.run(
        ["iptables", "-t", "nat", "-S"], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.docker
def test_a_dead_runs_service_address_is_removed_and_a_live_ones_stays() -> None:
    dead = VirtualService("test-vip-dead", DEAD_OWNER, "127.250.1.254", 9)
    live = VirtualService("test-vip-live", owner_label_value(), "127.250.2.254", 9)
    try:
        for service in (dead, live):
            service.setup([("127.0.0.1", 9), ("127.0.0.2", 9)])
        assert {"test-vip-dead", "test-vip-live"} <= {j.run_id for j in run_jumps()}
        removed = remove_orphaned_chains(keep=set(), dead_runs=set())
        assert removed == [f"test-vip-dead: removed iptables chain {dead.chain}"]
        rules = _nat_output()
        assert dead.chain not in rules  # neither its jump nor its chain
        assert f"-A {live.chain} -p tcp -m statistic --mode random --probability" in rules
    finally:
        dead.remove()
        live.remove()
    assert dead.chain not in _nat_output() and live.chain not in _nat_output()


def test_which_labs_cleanup_takes_down() -> None:
    """A lab whose builder died half-way, or one built for a run whose harness is gone; never
    one `harness lab up` made on purpose, one whose builder lives, or one of an older harness."""
    from harness.labs import orphaned as _orphaned_lab

    live = owner_label_value()
    assert _orphaned_lab("creating", DEAD_OWNER, for_run=False)
    assert _orphaned_lab("up", DEAD_OWNER, for_run=True)
    assert not _orphaned_lab("up", DEAD_OWNER, for_run=False)
    assert not _orphaned_lab("creating", live, for_run=True)
    assert not _orphaned_lab("creating", None, for_run=True)
