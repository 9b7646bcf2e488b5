"""The Docker lab's pure parts: its plan (names, the daemon's command line, the state file that
`down` works from) and what `harness lab` may ask of it. The lab itself, up and down on this
machine, is in tests/test_agent_docker.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import FaultError
from harness.labs import LabRequest, lab_kinds
from harness.labs.docker import lab
from harness.labs.docker.commands import DockerLabCommands


def test_the_plan_names_everything_and_the_state_file_reads_back(tmp_path: Path) -> None:
    state = lab.plan_state(tmp_path / "lab", tmp_path / "run", "overlay2")
    node = state.node
    assert (node.name, node.netns, node.veth_host) == ("chdock-n1", "chdock-n1", "chdock-n1h")
    assert state.url == "tcp://10.216.0.2:2375" == node.url
    argv = list(node.argv)
    assert argv[:2] == ["nsenter", "--net=/var/run/netns/chdock-n1"]
    dockerd = argv[argv.index("dockerd") :]
    assert dockerd[dockerd.index("-H") + 1] == state.url  # TCP on the bridge address only
    assert dockerd.count("-H") == 1
    assert dockerd[dockerd.index("--cgroup-parent") + 1] == "/chdock-n1"
    assert str(tmp_path / "lab" / "n1" / "data") in dockerd
    lab.save_state(state)
    again = lab.load_state(tmp_path / "lab")
    assert again == state and isinstance(again.node, lab.EngineNode)


def test_harness_lab_knows_the_kind_and_what_it_refuses(tmp_path: Path) -> None:
    commands = lab_kinds()["docker"].lab_commands()
    assert isinstance(commands, DockerLabCommands)
    assert commands.problems(LabRequest()) == []  # the CLI's defaults
    assert commands.problems(LabRequest(managers=3)) and commands.problems(
        LabRequest(control_plane_args={"kube-apiserver": ("--v=2",)})
    )
    empty = DockerLabCommands(lab.DockerLab(tmp_path / "none"))
    assert empty.status() is None and empty.target_if_up() is None
    assert empty.take_down_if_orphaned() is None and empty.down() == []
    with pytest.raises(FaultError, match="one engine"):
        lab_kinds()["docker"].nodes_of().current()
